"""The live progress channel on a real local Ray: a real training in a Ray task posts its steps to the
progress board, and the driver reads them while the training runs."""

from __future__ import annotations

import time

import pytest
import ray

import data
from grid.experiment.board import StepReporter, board, start_board
from grid.train.config import TrainConfig
from grid.train.training import Training

EPOCHS = 2


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=1)
def _train(board_name: str, shards: str) -> int:
    cifar = data.load(shards, val_size=100)
    cfg = TrainConfig(arch="baseline", activation="relu", epochs=EPOCHS, device="cpu", val_size=100, threads=1)
    training = Training(cfg, cifar)
    reporter = StepReporter(board(board_name), training, every_s=0.0)  # every step: the test sees them all

    def on_step(step: int) -> None:
        reporter(step)
        time.sleep(0.05)  # a step of a real training's length, so the driver can look in mid-epoch

    for _ in range(EPOCHS):
        training.run_epoch(on_step)
        reporter.epoch_done()
    return training.steps_per_epoch


def test_the_driver_sees_step_updates_while_the_training_runs(local_ray, grid_shards):
    handle = start_board("test-progress-board")
    running = _train.remote("test-progress-board", grid_shards)
    seen: list[dict] = []
    while not ray.wait([running], timeout=0)[0]:
        update = ray.get(handle.snapshot.remote()).get("baseline-relu-paper-s0-val100")
        if update and (not seen or update != seen[-1]):
            seen.append(update)
        time.sleep(0.01)
    steps_per_epoch = ray.get(running)

    mid_epoch = [u for u in seen if 0 < u["step"] < steps_per_epoch]
    assert len(mid_epoch) >= 3, seen  # several step-level posts arrived before the training ended
    assert all(u["images_per_second"] > 0 and u["steps_per_epoch"] == steps_per_epoch for u in mid_epoch)
    progress = [u["epoch"] * steps_per_epoch + u["step"] for u in seen]
    assert progress == sorted(progress)  # the board keeps the latest: never goes back
    assert {u["epoch"] for u in mid_epoch} <= set(range(EPOCHS))
    final = ray.get(handle.snapshot.remote())["baseline-relu-paper-s0-val100"]
    assert (final["epoch"], final["step"]) == (EPOCHS, 0) and final["test_acc"] is not None
