"""Bad input to the grid's CLIs (run_grid.py, python -m grid.train, python -m grid.report): exit status 2, one
`error:` line naming the flag or file and the problem, nothing started (no Ray) and nothing written or changed.

Each case counts in the fault suite's summary (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from grid.cli import main
from grid.report.__main__ import main as report_main
from grid.train.__main__ import main as train_main
from tests.conftest import _synthetic_shards

REPO = Path(__file__).resolve().parents[1]
TINY = ["--archs", "baseline", "--activations", "relu", "--epochs", "1", "--val-size", "100", "--wandb", "disabled"]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under `roots`: path -> sha256 (or 'dir'); {} for a root that does not exist."""
    seen = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            seen[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def refused(cli, argv: list[str], capsys, pattern: str, *watched: Path) -> str:
    """`cli(argv)` exits 2 with one `error: ...` line containing `pattern`, no Ray, and `watched` unchanged."""
    before = snapshot(*watched)
    assert cli(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert pattern in err, err
    assert not ray.is_initialized()
    assert snapshot(*watched) == before
    return err.strip()


@pytest.fixture(scope="module")
def finished_run(grid_shards, tmp_path_factory) -> Path:
    """A real one-training grid, finished: what --resume and a reused --out are refused against."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*TINY, "--data", grid_shards, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def other_shards(tmp_path_factory) -> str:
    """Other data: synthetic shards with another seed, so another manifest."""
    return _synthetic_shards(tmp_path_factory, "other-data", 400, 100, seed=5)


def _grid(tmp_path: Path, grid_shards: str, *args: str) -> list[str]:
    return [*TINY, "--data", grid_shards, "--cache-dir", str(tmp_path / "cache"), *args]


@pytest.mark.parametrize(
    "args, line",
    [
        (["--seeds", "0", "0"], "error: --seeds: 0 given twice (a grid's axis is a set)"),
        (["--archs", "baseline", "baseline"], "error: --archs: 'baseline' given twice (a grid's axis is a set)"),
        (["--epochs", "1,2", "1"], "error: --epochs: 1 given twice (a grid's axis is a set)"),
        (["--max-train-images", "-1"], "error: --max-train-images: must be at least 1, not -1"),
        (["--max-eval-images", "0"], "error: --max-eval-images: must be at least 1, not 0"),
        (["--max-failures", "-1"], "error: --max-failures: must be at least 0, not -1"),
        (["--cpus-per-worker", "0"], "error: --cpus-per-worker: must be at least 1, not 0"),
        (["--seeds", "-1"], "error: --seeds: must be at least 0, not -1"),
        (["--lr", "nan"], "error: --lr: must be a finite number, not nan"),
        (["--lr", "0"], "error: --lr: must be positive, not 0.0"),
    ],
)
def test_grid_values_out_of_range_or_repeated_are_refused(args, line, grid_shards, tmp_path, capsys, faults):
    out = tmp_path / "run"
    assert refused(main, [*_grid(tmp_path, grid_shards, *args), "--out", str(out)], capsys, line, tmp_path) == line
    assert not out.exists()
    faults.record(survived=True)


def test_an_out_that_is_a_file_or_inside_one_is_refused(grid_shards, tmp_path, capsys, faults):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for out, line in (
        (afile, f"error: --out {afile}: exists and is not a folder"),
        (afile / "run", f"error: --out {afile / 'run'}: is inside {afile}, which exists and is not a folder"),
    ):
        assert refused(main, [*_grid(tmp_path, grid_shards), "--out", str(out)], capsys, line, tmp_path) == line
        faults.record(survived=True)


def test_a_non_empty_out_without_a_grid_is_refused_without_suggesting_resume(grid_shards, tmp_path, capsys, faults):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    line = f"error: --out {out}: not empty and holds no grid; choose another --name / --out"
    assert refused(main, [*_grid(tmp_path, grid_shards), "--out", str(out)], capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_an_out_with_a_grid_suggests_the_resume_that_works(finished_run, grid_shards, tmp_path, capsys, faults):
    line = f"error: --out {finished_run}: a run is already there; continue it with --resume --out {finished_run}"
    args = [*_grid(tmp_path, grid_shards), "--out", str(finished_run)]
    assert refused(main, args, capsys, line, finished_run) == line
    assert main([*_grid(tmp_path, grid_shards), "--resume", "--out", str(finished_run)]) == 0  # as suggested
    assert "0 to train, 1 already finished" in capsys.readouterr().out
    faults.record(survived=True)


def test_resume_with_other_grid_flags_is_refused_naming_them(finished_run, grid_shards, tmp_path, capsys, faults):
    args = [*_grid(tmp_path, grid_shards, "--epochs", "1", "2", "--archs", "baseline", "improved")]
    line = (
        f"error: --resume: {finished_run / 'grid.json'} records another grid: --archs baseline improved "
        "(recorded: baseline); --epochs 1 2 (recorded: 1); drop those flags"
    )
    assert refused(main, [*args, "--resume", "--out", str(finished_run)], capsys, line, finished_run) == line
    faults.record(survived=True)


def test_resume_with_other_data_is_refused_naming_both_manifests(
    finished_run, grid_shards, other_shards, tmp_path, capsys, faults
):
    recorded = json.loads((finished_run / "grid.json").read_text())["extras"]["data_manifest_sha256"]
    other = hashlib.sha256(Path(other_shards, "manifest.json").read_bytes()).hexdigest()
    line = (
        f"error: --data: {other_shards}/manifest.json (sha256 {other[:16]}) is not the data "
        f"{finished_run / 'grid.json'} was trained on ({grid_shards}/manifest.json, sha256 {recorded[:16]}); "
        "resume with that --data"
    )
    args = [*TINY, "--data", other_shards, "--resume", "--out", str(finished_run)]
    assert refused(main, args, capsys, line, finished_run) == line
    faults.record(survived=True)


def test_resume_where_there_is_no_grid_is_refused(grid_shards, tmp_path, capsys, faults):
    out = tmp_path / "never"
    line = f"error: --resume: {out / 'grid.json'}: no grid to resume there (start it without --resume)"
    assert refused(main, [*_grid(tmp_path, grid_shards), "--resume", "--out", str(out)], capsys, line, tmp_path) == line
    faults.record(survived=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is valid here")
def test_device_cuda_without_cuda_is_refused_before_ray(grid_shards, tmp_path, capsys, faults):
    out = tmp_path / "run"
    line = "error: --device cuda: this machine has no CUDA GPU that torch can use (a cluster: --address)"
    args = [*_grid(tmp_path, grid_shards, "--device", "cuda"), "--out", str(out)]
    assert refused(main, args, capsys, line, tmp_path) == line
    assert main([*_grid(tmp_path, grid_shards, "--dry-run"), "--out", str(out)]) == 0  # the name is free
    faults.record(survived=True)


def test_a_late_refusal_leaves_the_name_free(grid_shards, tmp_path, capsys, faults, monkeypatch):
    """--mps can only fail once its daemon starts (after grid.json is written): the new run's files go again."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no nvidia-cuda-mps-control
    out = tmp_path / "run"
    line = "error: --mps: nvidia-cuda-mps-control is not on PATH"
    args = [*_grid(tmp_path, grid_shards, "--mps"), "--out", str(out)]
    assert refused(main, args, capsys, line, tmp_path).startswith(line)
    assert not out.exists()
    faults.record(survived=True)


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked / "storage"
    return Path("/sys/cifar-grid-storage")  # root writes anywhere but into sysfs


def test_a_storage_that_cannot_be_written_is_refused(grid_shards, tmp_path, capsys, faults):
    storage = _unwritable(tmp_path)
    if storage.parent == Path("/sys") and not Path("/sys").is_dir():
        pytest.skip("no unwritable folder on this machine: running as root without /sys")
    out = tmp_path / "run"
    args = [*_grid(tmp_path, grid_shards, "--storage", str(storage)), "--out", str(out)]
    err = refused(main, args, capsys, f"error: --storage {storage}: cannot be created in {storage.parent}", tmp_path)
    assert not out.exists(), err
    faults.record(survived=True)


def test_a_storage_that_is_a_file_is_refused(grid_shards, tmp_path, capsys, faults):
    afile = tmp_path / "storage.txt"
    afile.write_text("mine")
    line = f"error: --storage {afile}: exists and is not a folder"
    args = [*_grid(tmp_path, grid_shards, "--storage", str(afile)), "--out", str(tmp_path / "run")]
    assert refused(main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_s3_data_or_storage_that_cannot_be_reached_is_refused(grid_shards, tmp_path, capsys, faults, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    out = tmp_path / "run"
    for args, start in (
        (["--data", "s3://nobucket/shards"], "error: --data s3://nobucket/shards/manifest.json: "),
        (["--storage", "s3://nobucket/runs"], "error: --storage s3://nobucket/runs: "),
    ):
        err = refused(main, [*_grid(tmp_path, grid_shards), *args, "--out", str(out)], capsys, start, tmp_path)
        assert err.startswith(start) and "connect" in err, err
        faults.record(survived=True)


def test_s3_data_that_is_not_there_is_refused(s3_bucket, grid_shards, tmp_path, capsys, faults):
    uri = f"s3://{s3_bucket.name}/no-shards"
    line = f"error: --data {uri}/manifest.json: not found"
    args = [*_grid(tmp_path, grid_shards), "--data", uri, "--out", str(tmp_path / "run")]
    assert refused(main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_s3_storage_in_a_bucket_that_does_not_exist_is_refused(s3_bucket, grid_shards, tmp_path, capsys, faults):
    storage = f"s3://{s3_bucket.name}-gone/runs"
    line = f"error: --storage {storage}: the bucket {s3_bucket.name}-gone does not exist"
    args = [*_grid(tmp_path, grid_shards), "--storage", storage, "--out", str(tmp_path / "run")]
    assert refused(main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_a_cache_dir_that_is_a_file_is_refused_before_preparing(tmp_path, capsys, faults):
    afile = tmp_path / "cache.txt"
    afile.write_text("mine")
    source = tmp_path / "cifar-10-batches-py"
    source.mkdir()
    line = f"error: --cache-dir {afile}: exists and is not a folder"
    args = [*TINY, "--data", str(source), "--cache-dir", str(afile), "--out", str(tmp_path / "run")]
    assert refused(main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_local_data_that_is_not_there_is_refused(tmp_path, capsys, faults):
    missing = tmp_path / "cifar.tar.gz"
    line = f"error: --data {missing}: does not exist"
    args = [*TINY, "--data", str(missing), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")]
    assert refused(main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_run_grid_exits_2_through_the_real_script(grid_shards, tmp_path, faults):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_grid.py"), *TINY, "--data", grid_shards, "--out", str(afile)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr == f"error: --out {afile}: exists and is not a folder\n", proc.stderr
    assert afile.read_text() == "mine"
    faults.record(survived=True)


# --- python -m grid.train ----------------------------------------------------------------------------------

TRAIN = ["--arch", "baseline", "--activation", "relu", "--epochs", "1", "--threads", "1"]


def test_train_out_that_is_a_file_is_refused_before_training(grid_shards, tmp_path, capsys, faults):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    line = f"error: --out {afile}: exists and is not a folder"
    args = [*TRAIN, "--data", grid_shards, "--val-size", "100", "--out", str(afile)]
    assert refused(train_main, args, capsys, line, tmp_path) == line
    faults.record(survived=True)


@pytest.mark.parametrize(
    "args, line",
    [
        (["--val-size", "0"], "error: --val-size: must be at least 1, not 0"),
        (["--seed", "-3"], "error: --seed: must be at least 0, not -3"),
        (["--max-train-images", "-1"], "error: --max-train-images: must be at least 1, not -1"),
        (["--checkpoint-every", "0"], "error: --checkpoint-every: must be at least 1, not 0"),
    ],
)
def test_train_numbers_out_of_range_are_refused(args, line, grid_shards, tmp_path, capsys, faults):
    argv = [*TRAIN, "--data", grid_shards, "--out", str(tmp_path / "t"), *args]
    assert refused(train_main, argv, capsys, line, tmp_path) == line
    faults.record(survived=True)


def test_train_val_size_flag_makes_a_small_data_set_usable(grid_shards, tmp_path, capsys):
    assert train_main([*TRAIN, "--data", grid_shards, "--out", str(tmp_path / "t")]) == 2
    assert "val_size=10000 is outside 0..400" in capsys.readouterr().err
    assert train_main([*TRAIN, "--data", grid_shards, "--val-size", "100", "--out", str(tmp_path / "t")]) == 0
    assert len(json.loads((tmp_path / "t" / "metrics.json").read_text())) == 1


# --- python -m grid.report ---------------------------------------------------------------------------------


def test_report_on_results_with_text_in_number_columns_is_refused(finished_run, tmp_path, capsys, faults):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    results = pd.read_parquet(run / "results.parquet")
    results["test_acc"] = results["test_acc"].map(lambda v: f"{v:.0%}")  # as a spreadsheet might save it
    results.to_parquet(run / "results.parquet")
    before = snapshot(run)
    err = refused(report_main, [str(run)], capsys, "columns that must hold numbers do not: test_acc", run)
    assert err.startswith(f"error: {run / 'results.parquet'}: ") and snapshot(run) == before
    faults.record(survived=True)
