"""Ctrl-C and SIGTERM: the grid's own handling, on real signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grid.experiment.interrupt import Interrupt, StopOnInterrupt
from tests.ray_helpers import check_against_reference, checkpoint_status, kill_session, processes, session_of, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_first_signal_asks_to_stop_and_a_second_stops_at_once(capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupt = Interrupt()
    with interrupt.catching():
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.requested and interrupt.exit_code == 143
        assert StopOnInterrupt(interrupt).stop_all()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back
    assert "SIGTERM: stopping the trainings" in capsys.readouterr().err
    assert Interrupt().exit_code == 128 and not StopOnInterrupt(Interrupt()).stop_all()


def test_sigterm_reaches_the_grid_once_ray_is_up():
    """ray.init installs a SIGTERM handler of its own (a stack dump, then death): the grid's goes back over it."""
    import ray

    interrupt = Interrupt()
    with interrupt.catching():
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            interrupt.install()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert interrupt.exit_code == 143
        finally:
            ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigint_after_the_first_epoch_then_resume_equals_an_uninterrupted_run(slow_shards, tmp_path):
    out = tmp_path / "interrupted"
    args = ["--archs", "improved", "--activations", "relu", "--epochs", *"1 2 3 4 5 6".split(), "--val-size", "300"]
    args += ["--wandb", "disabled", "--data", slow_shards, "--out", str(out)]
    # Its own session, signalled as a group: what a terminal's Ctrl-C does (Ray's processes get it too).
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "run_grid.py", *args], cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=err
        )
    lines: list[bytes] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        status = lambda: checkpoint_status(out / "storage", "improved-relu-paper-s0-val300") or {}  # noqa: E731
        figure = re.compile(rb"improved-relu-paper-s0-val300: epoch \d/6 [^\n]*, \d+ images/s")  # mid-epoch or done
        # The first epoch's checkpoint, and a live throughput figure on the console (it comes within seconds).
        wait_for(lambda: status().get("epoch", 0) >= 1 and any(figure.search(ln) for ln in lines), 600, "epoch 1")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(10)
        stdout, stderr = b"".join(lines).decode(), errors.read_text()
        sid = proc.pid
        wait_for(lambda: not processes(lambda pid, _: _in_session(pid, sid)), 15, "the grid's processes to end")
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 130, stderr
    assert (
        stdout.splitlines()[-1]
        == f"interrupted: continue with python run_grid.py --resume --out {out} --wandb disabled"
    )
    assert "Tuner.restore" not in stdout + stderr and "Resume experiment" not in stdout + stderr
    assert status()["status"] == "running" and (out / "results.parquet").is_file() and (out / "report.html").is_file()

    # The printed command's --resume: no --data needed, the grid recorded its shards.
    from grid.cli import main

    assert main(["--resume", "--out", str(out), "--wandb", "disabled"]) == 0
    runs = checkpoint_status(out / "storage", "improved-relu-paper-s0-val300")["runs"]
    assert len(runs) == 2 and runs[1]["from_epoch"] >= 1  # continued from a checkpoint, not from scratch
    assert check_against_reference(out, args, slow_shards) == 1


def _in_session(pid: int, sid: int) -> bool:
    try:
        return session_of(pid) == sid
    except (OSError, IndexError, ValueError):
        return False
