"""The grid's compact progress lines: state changes and the periodic status with its ETA."""

from __future__ import annotations

from types import SimpleNamespace

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
