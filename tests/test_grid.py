"""The grid end to end on a real local Ray: synthetic shards, offline W&B, every output file."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from grid.cli import main
from grid.experiment.wandb_run import run_id
from grid.train import checkpoint as checkpoint_state
from grid.train.config import TrainConfig
from tests import chromium
from tests.ray_helpers import reference_history, without_timings
from tests.wandb_files import read_history

GRID = ["--archs", "baseline", "--activations", "relu", "swish", "--epochs", "1", "2", "--val-size", "100"]


def artifact_folders() -> set[Path]:
    """The folders where workers keep artifact copies for W&B until a run finishes."""
    return set(Path(tempfile.gettempdir()).glob("cifar-grid-artifacts-*"))


FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def smoke_run(grid_shards, tmp_path_factory) -> tuple[int, Path, str]:
    """The grid with an API key set and no route to W&B (a closed loopback port): every run falls back to
    offline. Returns (exit code, run folder, what the grid printed)."""
    out = tmp_path_factory.mktemp("runs") / "smoke"
    before = artifact_folders()
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(printed):
        env.setenv("WANDB_API_KEY", FAKE_KEY)
        env.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
        env.setenv("WANDB_CONFIG_DIR", str(out.parent / "wandb-config"))
        code = main([*GRID, "--data", grid_shards, "--out", str(out), "--wandb", "auto"])
    assert artifact_folders() <= before, "a worker left its artifact copies behind"
    return code, out, printed.getvalue()


def test_grid_writes_every_output(smoke_run):
    code, out, _ = smoke_run
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
    _, out, _ = smoke_run
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 and set(results["status"]) == {"ok"}
    assert results.groupby("activation")["training_id"].nunique().eq(1).all()
    assert results[["test_acc", "test_acc_as_published", "val_acc", "train_loss", "val_loss"]].notna().all().all()


def test_results_equal_each_trainings_own_metrics(smoke_run):
    _, out, _ = smoke_run
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
    _, out, _ = smoke_run
    history = pd.read_parquet(out / "history.parquet")
    for training_id, rows in history.groupby("training_id"):
        logged = read_history(out / "wandb", run_id("smoke", training_id))
        assert list(logged["epoch"]) == list(rows["epoch"])
        for key in ("train_loss", "val_acc", "test_acc", "test_acc_as_published"):
            assert list(logged[key]) == list(rows[key]), key


def test_no_route_to_wandb_keeps_every_epoch_offline_and_says_so(smoke_run):
    """Each training's run went offline with its id; wandb's own reader finds every epoch; the grid said so
    once and printed the sync command; the verdict is last."""
    code, out, printed = smoke_run
    assert code == 0
    history = pd.read_parquet(out / "history.parquet")
    wandb_cli = Path(sys.executable).with_name("wandb")
    for training_id, rows in history.groupby("training_id"):
        rid = run_id("smoke", training_id)
        (folder,) = (out / "wandb").glob(f"offline-run-*-{rid}")
        inspect = [wandb_cli, "leet", "inspect", "--json", folder / f"run-{rid}.wandb"]
        done = subprocess.run(inspect, capture_output=True, text=True, timeout=60, check=True)
        logged = [r["history"]["item"] for r in map(json.loads, done.stdout.splitlines()) if r.get("type") == "history"]
        assert [r["epoch"] for r in logged] == list(rows["epoch"])
        assert [r["val_acc"] for r in logged] == list(rows["val_acc"])
    lines = printed.splitlines()
    (said,) = [ln for ln in lines if ln.startswith("W&B: ") and "could not log online" in ln]
    assert said.startswith("W&B: 2 of 2 trainings could not log online (") and "other reason" not in said
    assert FAKE_KEY not in printed
    assert f"to upload the runs: wandb sync --project cifar-grid {out / 'wandb'}" in printed
    assert (out / "wandb_report.json").is_file()  # the report waits for `push` after the sync
    assert list((out / "wandb").glob(f"offline-run-*-{run_id('smoke', 'grid-results')}"))  # the results run
    verdict_at = max(i for i, ln in enumerate(lines) if ln.startswith("**Verdict (paper recipe): "))
    assert verdict_at > max(i for i, ln in enumerate(lines) if "wandb sync" in ln)
    assert lines[-1].startswith("- ")  # the findings and caveats close the output


def test_report_loads_in_chromium(smoke_run, tmp_path):
    """The real run's report.html in headless Chromium: no script error, every image decodes; and the probe
    does see a broken image and a throwing script (a control, so that the check can fail)."""
    _, out, _ = smoke_run
    found = chromium.probe(out / "report.html")
    assert found["errors"] == []
    alts = [alt for alt, _, _ in found["images"]]
    assert alts[:2] == ["verdict", "accuracy"] and "losses" in alts and len(alts) == 5  # + 2 predictions figures
    assert all(w > 0 and h > 0 for _, w, h in found["images"]), found["images"]
    broken = tmp_path / "broken.html"
    html = (out / "report.html").read_text()
    broken.write_text(
        html.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1) + "<script>x(</script>"
    )
    found = chromium.probe(broken)
    assert found["errors"] and [w for _, w, _ in found["images"]].count(0) == 1


def test_a_new_run_never_overwrites_an_old_one(smoke_run, grid_shards, capsys):
    _, out, _ = smoke_run
    before = (out / "results.parquet").read_bytes()
    assert main([*GRID, "--data", grid_shards, "--out", str(out)]) == 2
    assert "a run is already there" in capsys.readouterr().err
    assert (out / "results.parquet").read_bytes() == before


def test_resume_of_a_finished_grid_trains_nothing(smoke_run, grid_shards, capsys):
    _, out, _ = smoke_run
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
