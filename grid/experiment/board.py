"""The live progress channel: workers post step-level progress to a named Ray actor, the driver reads it.

It stays off `ray.train.report`, which waits for the controller and would throttle training. A post is a
fire-and-forget actor call (no ray.get on the worker), at most every `every_s` per training; the board keeps
only each training's latest update, so a lost or late one costs nothing. Updates are keyed by training id,
so the members of a pack post as trainings of their own.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from grid.train.training import Training


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    def post(self, update: dict[str, Any]) -> None:
        self.latest[update["training"]] = update

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.latest


NAMESPACE = "cifar-grid"


def start_board(name: str):
    """The board as a named actor on this (the driver's) node, where the trial drivers live too. It lives as
    long as the returned handle: the caller keeps it until the grid ends."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return ProgressBoard.options(name=name, namespace=NAMESPACE, scheduling_strategy=here).remote()


def board(name: str):
    """The named board's handle (ValueError when there is none)."""
    return ray.get_actor(name, namespace=NAMESPACE)


class StepReporter:
    """`on_step` for `Training.run_epoch`: posts the training's progress at most every `every_s` seconds.

    images_per_second is measured over training steps only: the window restarts at each epoch's end, so
    evaluation does not dilute it (its time travels separately, as the last epoch's eval_seconds)."""

    def __init__(self, board, training: Training, every_s: float = 2.0) -> None:
        self.board, self.training, self.every_s = board, training, every_s
        self._window(step=0)
        self.last_post = self.window_start
        self.warm = False  # the first figure after `every_s` of steps, not after one

    def _window(self, step: int) -> None:
        self.window_start, self.window_step = time.monotonic(), self._global(step)

    def _global(self, step: int) -> int:
        return self.training.epoch * self.training.steps_per_epoch + step

    def __call__(self, step: int) -> None:
        now = time.monotonic()
        if not self.warm:  # a training's first step pays one-time costs (allocations): not its throughput
            self.warm = True
            self.window_start, self.window_step = now, self._global(step)
        elif now - self.last_post >= self.every_s:
            self.post(step, now)

    def epoch_done(self) -> None:
        """After run_epoch: posts the epoch's metrics at once and restarts the throughput window."""
        self.post(0, time.monotonic())
        self._window(step=0)

    def post(self, step: int, now: float) -> None:
        t = self.training
        steps = self._global(step) - self.window_step
        seconds = now - self.window_start
        last = t.history[-1] if t.history else {}
        update = {
            "training": t.cfg.training_id,
            "arch": t.cfg.arch,
            "epoch": t.epoch,  # epochs done; `step` counts the steps of the next one
            "epochs": t.cfg.epochs,
            "step": step,
            "steps_per_epoch": t.steps_per_epoch,
            "steps_per_second": steps / seconds if steps and seconds > 0 else None,
            "images_per_second": steps * t.batch_size / seconds if steps and seconds > 0 else None,
            "eval_seconds": last.get("eval_seconds"),
            "test_acc": last.get("test_acc"),
            "time": time.time(),
        }
        self.last_post = now
        try:
            self.board.post.remote(update)  # fire and forget: the ObjectRef is dropped, never waited on
        except Exception:  # noqa: BLE001 - the board gone (grid ending) must not stop a training
            pass
