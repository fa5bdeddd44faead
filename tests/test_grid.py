"""The grid end to end on a real local Ray: synthetic shards, offline W&B, every output file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from grid.cli import main
from grid.experiment.wandb_run import run_id
from grid.train import checkpoint as checkpoint_state
from grid.train.config import TrainConfig
from tests.ray_helpers import reference_history, without_timings
from tests.wandb_files import read_history

GRID = ["--archs", "baseline", "--activations", "relu", "swish", "--epochs", "1", "2", "--val-size", "100"]


def artifact_folders() -> set[Path]:
    """The folders where workers keep artifact copies for W&B until a run finishes."""
    return set(Path(tempfile.gettempdir()).glob("cifar-grid-artifacts-*"))


@pytest.fixture(scope="module")
def smoke_run(grid_shards, tmp_path_factory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("runs") / "smoke"
    before = artifact_folders()
    code = main([*GRID, "--data", grid_shards, "--out", str(out), "--wandb", "offline"])
    assert artifact_folders() <= before, "a worker left its artifact copies behind"
    return code, out


def test_grid_writes_every_output(smoke_run):
    code, out = smoke_run
    assert code == 0
    for name in (
        "grid.json",
        "results.parquet",
        "results.csv",
        "history.parquet",
        "report.html",
        "tables/table_3_1.md",
        "tables/table_3_1.csv",
        "tables/table_3_2.md",
        "tables/full_grid.md",
        "plots/accuracy.png",
        "plots/losses.png",
    ):
        assert (out / name).is_file(), name
    for training in ("baseline-relu-paper-s0-val100", "baseline-swish-paper-s0-val100"):
        submission = pd.read_csv(out / "trainings" / training / "submission.csv")
        assert list(submission.columns) == ["id", "label"] and len(submission) == 100
        assert (out / "trainings" / training / "predictions.png").is_file()
    assert not list(out.rglob("*.tmp*")), "no temp files left behind"


def test_cells_come_from_one_training_per_activation(smoke_run):
    _, out = smoke_run
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 and set(results["status"]) == {"ok"}
    assert results.groupby("activation")["training_id"].nunique().eq(1).all()
    assert results[["test_acc", "test_acc_as_published", "val_acc", "train_loss", "val_loss"]].notna().all().all()


def test_results_equal_each_trainings_own_metrics(smoke_run):
    _, out = smoke_run
    results = pd.read_parquet(out / "results.parquet")
    for training_id, cells in results.groupby("training_id"):
        checkpoint = max((out / "storage").glob(f"smoke.{training_id}/epoch_*"))
        history = json.loads((checkpoint / "metrics.json").read_text())
        for row in cells.itertuples():
            epoch = history[row.epochs - 1]
            assert epoch["epoch"] == row.epochs
            assert (row.test_acc, row.test_acc_as_published, row.val_acc) == (
                epoch["test_acc"],
                epoch["test_acc_as_published"],
                epoch["val_acc"],
            )


def test_wandb_offline_run_per_training_matches_history(smoke_run):
    _, out = smoke_run
    history = pd.read_parquet(out / "history.parquet")
    for training_id, rows in history.groupby("training_id"):
        logged = read_history(out / "wandb", run_id("smoke", training_id))
        assert list(logged["epoch"]) == list(rows["epoch"])
        for key in ("train_loss", "val_acc", "test_acc", "test_acc_as_published"):
            assert list(logged[key]) == list(rows[key]), key


def test_a_new_run_never_overwrites_an_old_one(smoke_run, grid_shards, capsys):
    _, out = smoke_run
    before = (out / "results.parquet").read_bytes()
    assert main([*GRID, "--data", grid_shards, "--out", str(out)]) == 2
    assert "a run is already there" in capsys.readouterr().err
    assert (out / "results.parquet").read_bytes() == before


def test_resume_of_a_finished_grid_trains_nothing(smoke_run, grid_shards, capsys):
    _, out = smoke_run
    checkpoints = sorted(p.name for p in (out / "storage").glob("*/epoch_*"))
    assert main(["--resume", "--out", str(out), "--data", grid_shards, "--wandb", "disabled"]) == 0
    printed = capsys.readouterr().out
    assert "0 to train, 2 already finished (not rerun)" in printed
    assert sorted(p.name for p in (out / "storage").glob("*/epoch_*")) == checkpoints


def test_ddp_training_through_ray_matches_one_process(grid_shards, tmp_path):
    """--workers 2: one training on two Ray Train workers (gloo ranks), each on half of every global batch.
    Its metrics equal the same training in one process up to float rounding (the DDP unit test's bound)."""
    out = tmp_path / "ddp"
    # 160 training images: whole batches of 32, so DDP drops no last partial batch and the step counts agree.
    args = [
        "--archs",
        "baseline",
        "--activations",
        "relu",
        "--epochs",
        "2",
        "--val-size",
        "100",
        "--workers",
        "2",
        "--max-train-images",
        "160",
    ]
    assert main([*args, "--data", grid_shards, "--out", str(out), "--wandb", "disabled"]) == 0
    (training_id,) = pd.read_parquet(out / "results.parquet")["training_id"].unique()
    checkpoint = max((out / "storage").glob(f"ddp.{training_id}/epoch_*"))
    assert [r["world_size"] for r in json.loads((checkpoint / "status.json").read_text())["runs"]] == [2]

    cfg = TrainConfig.from_dict(checkpoint_state.load(checkpoint)["config"])
    assert cfg.threads == 1
    single = reference_history(cfg, grid_shards)
    got = json.loads((checkpoint / "metrics.json").read_text())
    for mine, want in zip(without_timings(got), without_timings(single), strict=True):
        assert all(mine[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6) for k in mine), (mine, want)
