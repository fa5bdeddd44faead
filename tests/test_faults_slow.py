"""Faults that need a real grid running for a while: a Ray Train worker SIGKILLed mid-epoch, and
run_grid.py itself killed mid-grid. Each must cost only the work since the last checkpoint, never a result:
the final metrics equal an uninterrupted training's, bit for bit on the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from grid.cli import build_spec, main, parser
from grid.experiment.plan import plan
from tests.ray_helpers import (
    check_against_reference,
    checkpoint_status,
    descends_from,
    kill_session,
    processes,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parent.parent
GRID = ["--archs", "improved", "--epochs", "1", "2", "3", "4", "5", "--val-size", "300", "--wandb", "disabled"]


def start_grid(args: list[str]) -> subprocess.Popen:
    """`run_grid.py ARGS` in a session of its own (the tests kill that session), its output discarded."""
    return subprocess.Popen(
        [sys.executable, "run_grid.py", *args],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_mid_epoch_restarts_from_its_checkpoint(slow_shards, tmp_path, faults):
    out = tmp_path / "killworker"
    args = [*GRID, "--activations", "relu", "--data", slow_shards, "--out", str(out)]
    outcome: dict = {}
    is_worker = lambda pid, cmd: cmd.startswith("ray::RayTrainWorker")  # noqa: E731
    others = set(processes(is_worker))  # another grid on this machine is not ours to kill
    grid = threading.Thread(target=lambda: outcome.setdefault("code", main(args)))
    grid.start()
    training_id = plan(build_spec(parser().parse_args(args), out.name))[0].training_id
    # A checkpoint counts once the Train controller has taken its report, and a worker reports the next one
    # only after that: when epoch 2's files land, epoch 1's checkpoint is registered.
    wait_for(
        lambda: (checkpoint_status(out / "storage", training_id) or {}).get("epoch", 0) >= 2,
        600,
        "the second checkpoint",
    )
    workers = [pid for pid in processes(is_worker) if pid not in others]
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)  # mid-epoch 3
    grid.join(900)
    assert outcome.get("code") == 0
    runs = checkpoint_status(out / "storage", training_id)["runs"]
    assert len(runs) == 2 and runs[1]["from_epoch"] >= 1  # restarted, from a checkpoint, not from scratch
    check_against_reference(out, args, slow_shards)
    faults.record(survived=True)


def test_run_grid_killed_mid_grid_resumes_without_recomputing(slow_shards, tmp_path, faults):
    out = tmp_path / "killgrid"
    # 2 CPUs per worker: one training at a time, so one is finished and one half done when the grid dies.
    args = [*GRID, "--activations", "relu", "swish", "--cpus-per-worker", "2", "--pack", "1"]
    args += ["--data", slow_shards, "--out", str(out)]
    first, second = (p.training_id for p in plan(build_spec(parser().parse_args(args), out.name)))
    proc = start_grid(args)
    try:

        def midway() -> bool:
            a, b = checkpoint_status(out / "storage", first), checkpoint_status(out / "storage", second)
            done, started = (a, b) if a and a["status"] == "ok" else (b, a)
            # epoch >= 2: the first checkpoint of the started one is registered (see the test above).
            return bool(
                done and done["status"] == "ok" and started and started["status"] == "running" and started["epoch"] >= 2
            )

        wait_for(midway, 600, "one finished and one half-done training", every=0.02)
        proc.kill()
        proc.wait()
    finally:
        kill_session(proc.pid)  # whatever of its Ray outlived it
    finished = first if checkpoint_status(out / "storage", first)["status"] == "ok" else second
    untouched = {p: p.stat().st_mtime_ns for p in (out / "storage").glob(f"*.{finished}/epoch_*/*")}
    assert not (out / "results.parquet").exists()

    assert main(["--resume", "--out", str(out), "--data", slow_shards]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "storage").glob(f"*.{finished}/epoch_*/*")} == untouched
    resumed = first if finished == second else second
    runs = checkpoint_status(out / "storage", resumed)["runs"]
    assert len(runs) == 2 and runs[1]["from_epoch"] >= 1
    assert check_against_reference(out, args, slow_shards) == 2
    faults.record(survived=True)


def _pack_checkpoints_at(out: Path, training_ids: list[str], epoch: int) -> bool:
    statuses = [checkpoint_status(out / "storage", t) for t in training_ids]
    return all(s and s["status"] == "running" and s["epoch"] >= epoch for s in statuses)


def test_a_packs_worker_killed_mid_epoch_restarts_every_member_from_the_checkpoint(slow_shards, tmp_path, faults):
    out = tmp_path / "killpackworker"
    args = [*GRID, "--activations", "relu", "swish", "--pack", "2", "--data", slow_shards, "--out", str(out)]
    ids = [p.training_id for p in plan(build_spec(parser().parse_args(args), out.name))]
    outcome: dict = {}
    # Only this grid's worker: other grids on the machine start workers of their own meanwhile.
    ours = lambda pid, cmd: cmd.startswith("ray::RayTrainWorker") and descends_from(pid, os.getpid())  # noqa: E731
    grid = threading.Thread(target=lambda: outcome.setdefault("code", main(args)))
    grid.start()
    # epoch 2's files landed: epoch 1's checkpoint is registered (see the unpacked test above).
    wait_for(lambda: _pack_checkpoints_at(out, ids, 2), 900, "the pack's second checkpoint")
    workers = processes(ours)
    assert len(workers) == 1, workers  # one worker trains the whole pack
    os.kill(workers[0], signal.SIGKILL)
    grid.join(1200)
    assert outcome.get("code") == 0
    for training_id in ids:
        runs = checkpoint_status(out / "storage", training_id)["runs"]
        assert len(runs) == 2 and runs[1]["from_epoch"] >= 1 and runs[1]["pack"] == runs[0]["pack"] != ""
    assert check_against_reference(out, args, slow_shards) == 2
    faults.record(survived=True, pack=True)


def test_a_killed_packed_grid_resumes_without_rerunning_a_finished_member(slow_shards, tmp_path, faults):
    out = tmp_path / "killpackgrid"
    # 2 CPUs per worker: one pack at a time, so one pack is finished and one half done when the grid dies.
    args = [*GRID, "--activations", "relu", "leaky_relu", "swish", "--seeds", "0", "1", "--pack", "3"]
    args += ["--cpus-per-worker", "2", "--data", slow_shards, "--out", str(out)]
    proc = start_grid(args)
    try:

        def midway() -> bool:
            packed = _packs_of(out)
            done = [ids for ids in packed if all(_status(out, t) == "ok" for t in ids)]
            started = [ids for ids in packed if _pack_checkpoints_at(out, ids, 2)]
            return bool(done and started)

        wait_for(midway, 1200, "one finished and one half-done pack", every=0.05)
        proc.kill()
        proc.wait()
    finally:
        kill_session(proc.pid)
    finished = [d for d in (out / "storage").glob("*.pack*") if (d / "epoch_0005").is_dir()]
    assert len(finished) == 1
    untouched = {p: p.stat().st_mtime_ns for p in finished[0].glob("epoch_*/*/*")}
    assert not (out / "results.parquet").exists()

    assert main(["--resume", "--out", str(out), "--data", slow_shards]) == 0
    assert {p: p.stat().st_mtime_ns for p in finished[0].glob("epoch_*/*/*")} == untouched
    resumed = [t for ids in _packs_of(out) for t in ids if not (finished[0] / "epoch_0005" / t).is_dir()]
    assert len(resumed) == 3
    for training_id in resumed:
        runs = checkpoint_status(out / "storage", training_id)["runs"]
        assert len(runs) == 2 and runs[1]["from_epoch"] >= 1
    assert check_against_reference(out, args, slow_shards) == 6
    faults.record(survived=True, pack=True)


def _status(out: Path, training_id: str) -> str | None:
    return (checkpoint_status(out / "storage", training_id) or {}).get("status")


def _packs_of(out: Path) -> list[list[str]]:
    """The members of each pack that has a checkpoint in local storage."""
    found = []
    for run in sorted((out / "storage").glob("*.pack*")):
        for checkpoint in sorted(run.glob("epoch_*"), reverse=True):
            try:
                found.append(sorted(d.name for d in checkpoint.iterdir() if d.is_dir()))
                break
            except OSError:  # rotated away just now: the one before
                continue
    return found
