"""Helpers for tests that drive a real Ray grid: reference trainings, processes, storage polling."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

import data
from grid.cli import build_spec, parser
from grid.experiment.plan import plan
from grid.train.config import TrainConfig
from grid.train.training import TIMING_KEYS as TIMINGS
from grid.train.training import Diverged, Training


def reference_history(cfg: TrainConfig, shards: str, *, stop_at_divergence: bool = False) -> list[dict]:
    """The same training run uninterrupted, in this process, on the CPU with the worker's thread count
    (`stop_at_divergence`: the epochs before a NaN/inf loss, where Diverged would otherwise be raised)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads)
    try:
        cifar = data.load(
            shards,
            val_size=cfg.val_size,
            split_seed=cfg.split_seed,
            max_train_images=cfg.max_train_images,
            max_eval_images=cfg.max_eval_images,
        )
        training = Training(cfg, cifar, "cpu")
        for _ in range(cfg.epochs):
            try:
                training.run_epoch()
            except Diverged:
                if not stop_at_divergence:
                    raise
                break
        return training.history
    finally:
        torch.set_num_threads(threads)


def check_against_reference(out: Path, args: list[str], shards: str) -> int:
    """Asserts each training's history equals its uninterrupted reference; returns the trainings checked."""
    spec = build_spec(parser().parse_args(args), out.name)
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["status"]) == {"ok"}
    for planned in plan(spec):
        stored = checkpoint_status(out / "storage", planned.training_id)
        assert stored["status"] == "ok"
        history = pd.read_parquet(out / "history.parquet").query("training_id == @planned.training_id")
        got = without_timings(
            history.drop(
                columns=["training_id", "pack", "arch", "activation", "recipe", "seed"], errors="ignore"
            ).to_dict("records")
        )
        assert got == without_timings(reference_history(planned.config, shards)), planned.training_id
    return len(plan(spec))


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in TIMINGS} for h in history]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def checkpoint_status(storage: Path, training_id: str) -> dict | None:
    """The status document of a training's latest checkpoint in local storage (alone, or a pack's member),
    or None."""
    alone = storage.glob(f"*.{training_id}/epoch_*/status.json")
    checkpoints = sorted([*alone, *storage.glob(f"*.pack*/epoch_*/{training_id}/status.json")])
    for path in reversed(checkpoints):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # being written or rotated away right now
            continue
    return None


def processes(match: Callable[[int, str], bool]) -> list[int]:
    """pids of live processes whose (pid, command line) match."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and match(int(entry.name), cmdline):
            found.append(int(entry.name))
    return found


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is `pid` or among its parents: a grid's own Ray processes descend from its driver,
    another grid's on the same machine do not."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


def session_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[3])


def kill_session(sid: int) -> None:
    """SIGKILL every process left in a session (Ray agents can outlive a killed driver)."""
    for pid in processes(lambda pid, _: _session_or_none(pid) == sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _session_or_none(pid: int) -> int | None:
    try:
        return session_of(pid)
    except (OSError, IndexError, ValueError):
        return None
