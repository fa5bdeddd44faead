"""The fault suite: each test injects a fault and checks it is survived with no result lost.

The session summary prints `faults: injected N, survived N, results lost 0` (tests/conftest.py). The two
faults that need a long real grid (a worker killed mid-epoch, run_grid.py killed mid-grid) are in
tests/test_faults_slow.py, marked slow.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

import data
from grid.cli import main
from grid.report import html as report
from grid.train.config import TrainConfig
from grid.train.training import Training
from tests.fixtures_data import add_tar_member, synthetic, write_official

TINY = ["--archs", "baseline", "--epochs", "1", "2", "--val-size", "100", "--wandb", "disabled"]


def test_diverging_trainings_stop_with_status_diverged_and_the_grid_goes_on(grid_shards, tmp_path, faults):
    # On random synthetic pixels lr 10 only kills the ReLUs (a finite loss); 1e30 overflows to inf/NaN at once.
    out = tmp_path / "run"
    code = main([*TINY, "--activations", "relu", "swish", "--lr", "1e30", "--data", grid_shards, "--out", str(out)])
    results = pd.read_parquet(out / "results.parquet")
    assert code == 0  # diverged cells are results, not missing ones
    assert set(results["status"]) == {"diverged"} and len(results) == 4
    assert "diverged" in (out / "tables" / "table_3_1.md").read_text()
    assert "diverged" in (out / "report.html").read_text()
    for checkpoint in (out / "storage").glob("*/epoch_*"):
        assert int(checkpoint.name.split("_")[1]) <= 1  # stopped at once, not trained on to epoch 2
    faults.record(survived=True)


def test_a_corrupt_shard_fails_its_trainings_with_the_shard_named(grid_shards, tmp_path, capsys, faults):
    shards = tmp_path / "shards"
    shutil.copytree(grid_shards, shards)
    victim = shards / "train-0.parquet"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    out = tmp_path / "run"
    code = main([*TINY, "--activations", "relu", "--data", str(shards), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1  # cells are missing
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["status"]) == {"failed"}
    assert results["error"].str.contains("train-0.parquet").all()
    assert "trainings that did not finish cleanly" in printed and "train-0.parquet" in printed
    assert "history.parquet" not in printed and not (out / "history.parquet").exists()  # no epoch, no history
    faults.record(survived=True)


def test_invalid_grids_are_refused_before_ray_starts(grid_shards, tmp_path, capsys, faults):
    cases = [
        ["--archs", "vgg"],
        ["--activations", "tanh"],
        ["--recipe", "adam"],
        ["--epochs", "-1"],
        ["--seeds", ","],
        ["--gpus-per-trial", "2"],
        ["--workers", str((os.cpu_count() or 1) + 1)],
    ]
    for args in cases:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        assert main([*TINY, "--data", grid_shards, "--out", str(out), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert not (out / "storage").exists()  # nothing ran
        faults.record(survived=True)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused(tmp_path, faults):
    source = write_official(tmp_path / "src", synthetic(n_train=20, n_test=10))
    marker = tmp_path / "pwned"
    (source / "data_batch_3").write_bytes(pickle.dumps({b"data": _RunsCode(marker)}, protocol=2))
    with pytest.raises(data.DataError, match="data_batch_3"):
        data.prepare(str(source), str(tmp_path / "out"))
    assert not marker.exists() and not (tmp_path / "out" / "manifest.json").exists()
    faults.record(survived=True)


@pytest.mark.parametrize(
    "name, kind, linkname",
    [
        ("/tmp/evil.png", tarfile.REGTYPE, ""),
        ("cifar/../../evil.png", tarfile.REGTYPE, ""),
        ("cifar/train/cat/link.png", tarfile.SYMTYPE, "/etc/passwd"),
        ("cifar/train/cat/hard.png", tarfile.LNKTYPE, "/etc/passwd"),
    ],
)
def test_a_hostile_tar_is_refused_and_writes_nothing_outside(tmp_path, name, kind, linkname, faults):
    archive = add_tar_member(tmp_path / "evil.tar", name, kind=kind, linkname=linkname)
    out = tmp_path / "inside" / "out"
    with pytest.raises(data.DataError, match="evil.tar"):
        data.prepare(str(archive), str(out))
    assert not Path("/tmp/evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert not out.exists() or not any(out.iterdir())
    faults.record(survived=True)


def test_html_in_a_grid_name_is_escaped_in_the_report(tmp_path, faults):
    name = '<img src=x onerror="alert(1)">'
    rows = [
        {
            "arch": "baseline",
            "activation": "relu",
            "recipe": "paper",
            "seed": 0,
            "epochs": 1,
            "test_acc": 0.5,
            "test_acc_as_published": 0.49,
            "val_acc": 0.5,
            "train_loss": 1.0,
            "val_loss": 1.1,
            "training_id": "<script>x()</script>",
            "status": "failed",
            "seconds": 1.0,
            "error": "<b>boom</b>",
        }
    ]
    html = report.render_html(tmp_path, pd.DataFrame(rows), {"name": name}, [])
    assert "<img src=x" not in html and "<script>x()" not in html and "<b>boom" not in html
    assert "&lt;img src=x" in html
    faults.record(survived=True)


def test_a_checkpoint_carrying_code_is_refused(tmp_path, faults):
    cifar = _tiny_cifar()
    training = Training(TrainConfig(arch="baseline", activation="relu", val_size=10), cifar, "cpu")
    marker = tmp_path / "pwned"
    torch.save({"model": _RunsCode(marker)}, tmp_path / "state.pt")  # torch.save pickles the payload
    with pytest.raises(pickle.UnpicklingError):
        training.load_checkpoint(tmp_path)  # torch.load(weights_only=True) refuses the global
    assert not marker.exists()
    faults.record(survived=True)


def test_killing_a_results_write_never_leaves_a_truncated_file(tmp_path, faults):
    target = tmp_path / "results.parquet"
    old = pd.DataFrame({"x": range(10)})
    old.to_parquet(target)
    before = target.read_bytes()
    script = (
        f"import pandas as pd, numpy as np\nfrom grid import atomic\n"
        f"df = pd.DataFrame({{'x': np.random.rand(40_000_000)}})\n"
        f"atomic.write_parquet({str(target)!r}, df)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    # Kill it while it writes: wait until its temp file exists.
    for _ in range(600):
        if any(p.name != target.name for p in tmp_path.iterdir()) or proc.poll() is not None:
            break
        subprocess.run(["sleep", "0.05"])
    proc.kill()
    proc.wait()
    after = target.read_bytes()
    assert after == before or pd.read_parquet(target)["x"].size == 40_000_000  # old whole, or new whole
    faults.record(survived=True)


def _tiny_cifar() -> data.Cifar10:
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    split = data.Split(images, labels, [f"train/{k:05d}" for k in range(40)])
    return data.Cifar10(split, split, split, tuple(data.CLASSES), "0" * 64, "memory")
