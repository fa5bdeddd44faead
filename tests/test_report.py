"""Atomic writes, plots, report.html (self-contained, escaped) and the `python -m grid.report` CLI."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from grid import atomic
from grid.experiment.run import code_version, recorded
from grid.experiment.spec import GridSpec
from grid.report import __main__ as report_cli
from grid.report import html as report
from grid.report import plots

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


MANIFEST = b'{"splits": {"train": 50000, "test": 10000}}'


def grid_json(name: str, trainings: int, epochs: int) -> dict:
    """grid.json as `run_grid.py` writes it (grid.experiment.run.recorded); `name` set afterwards, as a
    hand-edited file could hold a name GridSpec refuses."""
    spec = GridSpec(
        name="smoke",
        archs=("baseline",),
        activations=("relu",),
        epochs=tuple(range(1, epochs + 1)),
        seeds=tuple(range(trainings)),
    )
    sha256 = hashlib.sha256(MANIFEST).hexdigest()
    return {**recorded(spec, "/data/shards", sha256, prefix_sharing=True).to_dict(), "name": name}


def make_run(run_dir: Path, name: str = "smoke", trainings: int = 2, epochs: int = 3) -> Path:
    """A run folder as the grid writes it: baseline/relu over `trainings` seeds, one training per seed filling
    every epoch cell; seed 1's last cell diverged; training 0 has a predictions figure."""
    results, history = [], []
    for seed in range(trainings):
        tid = f"baseline-relu-s{seed}<b>"
        for e in range(1, epochs + 1):
            history.append(
                {
                    "training_id": tid,
                    "arch": "baseline",
                    "activation": "relu",
                    "recipe": "paper",
                    "seed": seed,
                    "epoch": e,
                    "train_loss": 2.0 / e,
                    "train_acc": 0.3 * e,
                    "val_loss": 1.5 + 0.01 * e,
                    "val_acc": 0.3,
                    "test_acc": 0.3,
                    "test_acc_as_published": 0.29,
                    "lr": 0.001,
                    "epoch_seconds": 1.0,
                    "eval_seconds": 0.1,
                    "images_per_second": 1000.0,
                }
            )
            diverged = seed == 1 and e == epochs
            results.append(
                {
                    "arch": "baseline",
                    "activation": "relu",
                    "recipe": "paper",
                    "seed": seed,
                    "epochs": e,
                    "test_acc": float("nan") if diverged else 0.3 + 0.01 * e,
                    "test_acc_as_published": float("nan") if diverged else 0.29 + 0.01 * e,
                    "val_acc": 0.3,
                    "train_loss": 2.0 / e,
                    "val_loss": 1.5,
                    "training_id": tid,
                    "status": "diverged" if diverged else "ok",
                    "seconds": float(e),
                    "error": "<img src=x onerror=alert(2)>" if diverged else "",
                }
            )
    run_dir.mkdir(parents=True)
    pd.DataFrame(results).to_parquet(run_dir / "results.parquet")
    pd.DataFrame(history).to_parquet(run_dir / "history.parquet")
    spec = grid_json(name, trainings, epochs)
    (run_dir / "grid.json").write_text(json.dumps(spec))
    figure = run_dir / "trainings" / "baseline-relu-s0<b>" / "predictions.png"
    figure.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(figure)
    return run_dir


# ---- atomic writes ----------------------------------------------------------------------------------------


def test_atomic_writes_replace_and_leave_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic.write_text(p, "one")
    atomic.write_text(p, "two")
    assert p.read_text() == "two"
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic.write_json(tmp_path / "j.json", {"a": [1, 2]})
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    atomic.write_parquet(tmp_path / "d.parquet", df)
    atomic.write_csv(tmp_path / "d.csv", df)
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2]}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), df, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), df, check_dtype=False)
    assert sorted(os.listdir(tmp_path)) == ["b.bin", "d.csv", "d.parquet", "j.json", "sub"]
    assert os.listdir(tmp_path / "sub") == ["f.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_writes_keep_the_old_file(tmp_path):
    p = tmp_path / "f.json"
    atomic.write_json(p, {"old": True})
    with pytest.raises(RuntimeError), atomic.atomic_open(p, "w", encoding="utf-8") as f:
        f.write('{"new": ')
        raise RuntimeError("killed mid-write")
    with pytest.raises(TypeError):
        atomic.write_json(p, {"x": object()})
    bad = pd.DataFrame({"x": [1, "two", 3.0]})  # pyarrow cannot type this column: fails inside to_parquet
    with pytest.raises(Exception, match="(?i)conver|type"):
        atomic.write_parquet(tmp_path / "f.json", bad)
    assert json.loads(p.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["f.json"]


def test_killed_process_never_leaves_a_partial_file(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("old")
    code = (
        f"import os, signal\nfrom grid import atomic\n"
        f"with atomic.atomic_open({str(p)!r}, 'w', encoding='utf-8') as f:\n"
        f"    f.write('x' * 1_000_000); f.flush()\n"
        f"    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9
    assert p.read_text() == "old"  # the half-written data is only ever in the temp file


# ---- plots ------------------------------------------------------------------------------------------------


def test_plots_are_pngs_and_paged(tmp_path):
    run = make_run(tmp_path / "run", trainings=13)
    results, history, _ = report.load_run(run)
    paths = plots.write_plots(results, history, run)
    assert [p.name for p in paths] == ["verdict.png", "accuracy.png", "losses.png", "losses_2.png"]  # 12 a page
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)
    paths = plots.write_plots(results, history[history["seed"] < 2], run)
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["accuracy.png", "losses.png", "verdict.png"]


# ---- report.html ------------------------------------------------------------------------------------------


def test_report_is_self_contained_and_escaped(tmp_path):
    run = make_run(tmp_path / "run", name=EVIL)
    html = report.build(run).read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html  # the error message
    assert "<b>" not in html and "baseline-relu-s0&lt;b&gt;" in html  # training ids
    assert "<link" not in html and "url(" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 4  # verdict, accuracy, losses, the training's predictions figure
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(PNG_MAGIC) for s in sources)
    for text in (
        "Table 3-1",
        "Full grid",
        hashlib.sha256(MANIFEST).hexdigest(),  # recorded under grid.json's extras, as run_grid.py writes it
        code_version(),
        "lr 0.001",
        "momentum 0.9",
        "batch size 32",
        "no augmentation",
        "40,000 train / 10,000 validation",
        "test_acc_as_published",
        "Failed cells",
        "diverged",
        "first k epochs",
    ):
        assert text in html, text
    assert "not recorded" not in html
    assert html.index("Verdict (paper recipe)") < html.index("Table 3-1") < html.index("Configuration")
    assert ">null<" not in html and ">None<" not in html  # no rows of empty settings
    for name in ("Table 3-2", "Table 3-3", "Table 3-4"):
        assert re.search(name + r" \(.*?\): not in this grid", html)
    assert (run / "tables" / "table_3_1.md").is_file() and (run / "plots" / "accuracy.png").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def test_report_without_history_or_spec(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "history.parquet").unlink()
    (run / "grid.json").unlink()
    html = report.build(run).read_text()
    assert "<h1>cifar-grid: run</h1>" in html  # the folder's name stands in for the grid's
    assert len(re.findall(r'src="data:image/png', html)) == 3  # verdict, accuracy, predictions; no loss plot
    assert "not recorded" in html  # manifest checksum and code version


# ---- CLI --------------------------------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "grid.report", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_rebuilds_a_run_dir(tmp_path):
    run = make_run(tmp_path / "run")
    proc = run_cli(run)
    assert proc.returncode == 0, proc.stderr
    assert "### Table 3-1: baseline CNN, ReLU" in proc.stdout
    assert "| 3 |  | 0.3200 (1/2 seeds ok) |  | 0.3300 |" in proc.stdout
    assert (run / "report.html").is_file()
    assert {p.name for p in (run / "tables").iterdir()} == {
        "table_3_1.md",
        "table_3_1.csv",
        "full_grid.md",
        "full_grid.csv",
    }
    assert {p.name for p in (run / "plots").iterdir()} == {"verdict.png", "accuracy.png", "losses.png"}


def test_cli_bad_run_dir_exits_2(tmp_path):
    proc = run_cli(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {tmp_path / 'results.parquet'}: ")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("damage", ["corrupt", "columns", "grid_json"])
def test_cli_unreadable_inputs_exit_2(tmp_path, capsys, damage):
    run = make_run(tmp_path / "run")
    if damage == "corrupt":
        (run / "results.parquet").write_bytes(b"PAR1 not really")
    elif damage == "columns":
        pd.read_parquet(run / "results.parquet").drop(columns="status").to_parquet(run / "results.parquet")
    else:
        (run / "grid.json").write_text("{not json")
    assert report_cli.main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert ("grid.json" if damage == "grid_json" else "results.parquet") in err
    assert not (run / "report.html").exists()


def test_cli_wandb_calls_publish(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path / "run")
    calls = []
    fake = types.ModuleType("grid.report.wandb_report")
    fake.publish = lambda run_dir, project, entity: calls.append((run_dir, project, entity)) or "https://wandb/x"
    monkeypatch.setitem(sys.modules, "grid.report.wandb_report", fake)
    assert report_cli.main([str(run), "--wandb", "--wandb-project", "p", "--wandb-entity", "e"]) == 0
    assert calls == [(run, "p", "e")]
    assert capsys.readouterr().out.rstrip().endswith("https://wandb/x")
    calls.clear()
    assert report_cli.main([str(run)]) == 0
    assert calls == []  # no --wandb, no publishing
    assert report_cli.main([str(run), "--wandb-project", "p"]) == 2
    assert capsys.readouterr().err == "error: --wandb-project / --wandb-entity need --wandb\n"
