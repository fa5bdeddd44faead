"""The grid's compact progress lines: state changes and the periodic status with its ETA."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import models
from grid.experiment.progress import Progress


def trial(name: str) -> SimpleNamespace:
    return SimpleNamespace(config={"training": name})


def test_status_counts_resumed_epochs_and_estimates_from_this_sessions_pace(capsys) -> None:
    progress = Progress({"a": 100, "b": 100}, resumed_from={"a": 10, "b": 0})
    assert progress.status_line(progress.start + 60).endswith("epochs reported 10/200; best test_acc -; ETA unknown")

    progress.on_trial_start(0, [], trial("a"))
    progress.on_trial_result(0, [], trial("a"), {"epoch": 20, "test_acc": 0.5, "status": "running"})
    progress.on_trial_result(0, [], trial("b"), {"epoch": 10, "test_acc": 0.4, "status": "running"})
    # 20 epochs in this session's 4 minutes: the 170 left take 34 minutes (the 10 resumed ones cost nothing).
    line = progress.status_line(progress.start + 240)
    assert line == (
        "status: 0 done, 1 running, 1 pending; epochs reported 30/200; best test_acc 0.5000 (a@20); ETA 34.0 min"
    )
    printed = capsys.readouterr().out
    assert "a: running" in printed and "a: epoch 20/100 test_acc 0.5000" in printed


def test_failed_and_diverged_trainings_are_named_with_their_reason(capsys) -> None:
    progress = Progress({"a": 10, "b": 10})
    progress.on_trial_result(0, [], trial("a"), {"epoch": 3, "status": "diverged", "error": "train loss nan"})
    progress.on_trial_complete(0, [], trial("a"))
    printed = capsys.readouterr().out
    assert "a: diverged: train loss nan" in printed and "a: done" not in printed
    assert progress.status_line(progress.start + 1).startswith("status: 0 done, 0 running, 1 pending, 1 diverged;")


def post(name: str, epoch: int, step: int, *, rate: float = 10.0, at: float = 1000.0, **extra) -> dict:
    """A progress board post as grid.experiment.board.StepReporter writes it (100 steps of 32 an epoch)."""
    return {
        "training": name,
        "arch": "baseline",
        "epoch": epoch,
        "epochs": 10,
        "step": step,
        "steps_per_epoch": 100,
        "steps_per_second": rate,
        "images_per_second": rate * 32,
        "eval_seconds": 2.0,
        "test_acc": None,
        "time": at,
        **extra,
    }


def test_eta_moves_within_an_epoch_and_counts_only_what_is_left_after_resume(capsys) -> None:
    # Resumed at epoch 8 of 10: the 8 epochs in the checkpoint cost nothing.
    progress = Progress({"a": 10}, resumed_from={"a": 8}, archs={"a": "baseline"})
    progress.on_trial_start(0, [], trial("a"))
    progress.take({"a": post("a", 8, 50, test_acc=0.61)}, wall=1000.0)
    # 150 steps left at 10 steps/s and 2 evaluations of 2 s: 19 s, less the 4 s since the post.
    assert progress.grid_seconds_left(1004.0) == pytest.approx(15.0)
    progress.take({"a": post("a", 8, 90, at=1004.0)}, wall=1004.0)
    # 40 steps later (on pace): still 15 s, and it runs down between posts.
    assert progress.grid_seconds_left(1004.0) == pytest.approx(15.0)
    assert progress.grid_seconds_left(1008.0) == pytest.approx(11.0)
    line = progress.training_line("a", 1004.0)
    assert line == "epoch 9/10 step 90/100, 320 images/s, ETA 0.2 min"
    # The first throughput figure is printed at once; later ones wait for the status line.
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith("a: epoch 9/10 step 50/100, 320 images/s, test_acc 0.6100, ETA 0.3 min")
    )


def test_waiting_trainings_take_their_architectures_measured_epochs() -> None:
    archs = {"a": "baseline", "b": "baseline", "c": "improved"}
    progress = Progress(dict.fromkeys(archs, 10), archs=archs, max_concurrent=2)
    progress.on_trial_start(0, [], trial("a"))
    progress.take({"a": post("a", 0, 0, rate=50.0)}, wall=1000.0)  # 100 steps at 50/s + 2 s eval: 4 s an epoch
    # a: 40 s; b: 10 epochs of 4 s; c: improved's forward FLOPs over baseline's times 4 s an epoch. Costliest
    # first, c starts on the free core and b after a: the grid ends with c.
    improved = 10 * 4.0 * models.FORWARD_MFLOPS["improved"] / models.FORWARD_MFLOPS["baseline"]
    assert progress.grid_seconds_left(1000.0) == pytest.approx(max(improved, 40 + 40))
    assert Progress({"x": 1}, archs={"x": "nope"}).grid_seconds_left(0.0) is None


def test_the_eta_before_any_figure_is_the_estimated_schedule() -> None:
    archs = {"a": "baseline", "b": "baseline", "c": "improved"}
    progress = Progress(dict.fromkeys(archs, 10), archs=archs, max_concurrent=2, epoch_seconds={"baseline": 3.0})
    # Nothing measured yet; 30 s each, the FLOPs scale improved: c alone on one core, a then b on the other.
    improved = 10 * 3.0 * models.FORWARD_MFLOPS["improved"] / models.FORWARD_MFLOPS["baseline"]
    assert progress.grid_seconds_left(0.0) == pytest.approx(max(improved, 60.0))
    assert f"ETA {max(improved, 60.0) / 60:.1f} min" in progress.status_line(0.0, 0.0)


def test_non_terminal_status_has_a_line_per_running_training() -> None:
    progress = Progress({"a": 10, "b": 10}, archs={"a": "baseline", "b": "baseline"}, max_concurrent=2)
    for name in ("a", "b"):
        progress.on_trial_start(0, [], trial(name))
    progress.on_trial_result(0, [], trial("a"), {"epoch": 1, "test_acc": 0.25, "status": "running"})
    progress.take({"a": post("a", 1, 40, test_acc=0.25), "b": post("b", 0, 10, rate=20.0)}, wall=1000.0)
    lines = progress.status_lines(progress.start + 60, wall=1000.0)
    assert lines == [
        "status: 0 done, 2 running, 0 pending; epochs reported 1/20; best test_acc 0.2500 (a@1); ETA 1.7 min",
        "  a: epoch 2/10 step 40/100, 320 images/s, test_acc 0.2500, ETA 1.7 min",
        "  b: epoch 1/10 step 10/100, 640 images/s, ETA 1.2 min",
    ]
