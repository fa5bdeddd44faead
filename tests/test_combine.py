"""`python -m grid.report RUN RUN --out DIR`: seeds trained in separate runs combined into one report, refused
where the runs measured different things."""

import json
import re

import pandas as pd
import pytest

from grid.report import __main__ as report_cli
from tests.test_report import make_run


def seed_run(path, seeds_from: int, **spec_changes):
    """A run folder as the grid writes it (tests/test_report.make_run), its seeds moved to start at `seeds_from`."""
    run = make_run(path)
    for name in ("results.parquet", "history.parquet"):
        frame = pd.read_parquet(run / name)
        frame["seed"] += seeds_from
        frame["training_id"] = frame["training_id"].str.replace("-s", f"-x{seeds_from}s")
        frame.to_parquet(run / name)
    for folder in (run / "trainings").iterdir():
        folder.rename(folder.with_name(folder.name.replace("-s", f"-x{seeds_from}s")))
    spec = json.loads((run / "grid.json").read_text())
    spec["seeds"] = [s + seeds_from for s in spec["seeds"]]
    for key, value in spec_changes.items():
        target = spec["extras"] if key in spec["extras"] else spec
        target[key] = value
    (run / "grid.json").write_text(json.dumps(spec))
    return run


def test_runs_of_other_seeds_combine_into_one_report(tmp_path, capsys):
    a, b = seed_run(tmp_path / "a", 0), seed_run(tmp_path / "b", 2)
    out = tmp_path / "all"
    assert report_cli.main([str(a), str(b), "--out", str(out)]) == 0
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(set(results["seed"])) == [0, 1, 2, 3] and len(results) == 12
    spec = json.loads((out / "grid.json").read_text())
    assert spec["seeds"] == [0, 1, 2, 3]
    assert [r["run"] for r in spec["extras"]["combined_from"]] == [str(a), str(b)]
    assert (out / "report.html").is_file() and (out / "tables" / "table_3_1.md").is_file()
    # Each training's figure travels with it; the runs themselves are untouched.
    assert (out / "trainings" / "baseline-relu-x0s0<b>" / "predictions.png").is_file()
    assert not (a / "report.html").exists()
    printed = capsys.readouterr().out
    assert "| 3 |  | 0.3200 ± 0.0000 (2/4 seeds ok) |" in printed  # seeds 1 and 3 diverged at 3 epochs
    assert "**Verdict (paper recipe)" in printed
    # An earlier combination is rebuilt in place.
    assert report_cli.main([str(a), str(b), "--out", str(out)]) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"lr": 0.01}, "another protocol than .*a/grid.json \\(lr: 0.01 against None\\)"),
        ({"max_train_images": 6000}, "another protocol .*max_train_images"),
        ({"data_manifest_sha256": "f" * 64}, "another data .*data_manifest_sha256: ffffffffffffffff against"),
    ],
)
def test_runs_that_measured_other_things_are_refused(tmp_path, capsys, change, reason):
    a, b = seed_run(tmp_path / "a", 0), seed_run(tmp_path / "b", 2, **change)
    assert report_cli.main([str(a), str(b), "--out", str(tmp_path / "all")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(f"error: {tmp_path / 'b' / 'grid.json'}: {reason}", err), err
    assert not (tmp_path / "all").exists()


def test_a_cell_in_two_runs_is_refused(tmp_path, capsys):
    a, b = seed_run(tmp_path / "a", 0), seed_run(tmp_path / "b", 1)  # seed 1 in both
    assert report_cli.main([str(a), str(b), "--out", str(tmp_path / "all")]) == 2
    err = capsys.readouterr().err
    cell = "the cell baseline relu paper seed 1 @ 1"
    assert err == f"error: {b}: {cell} is also in {a}; combine runs of different seeds or cells\n"


@pytest.mark.parametrize("case", ["no_out", "out_is_a_run", "out_is_someone_elses"])
def test_where_the_combination_goes_is_checked(tmp_path, capsys, case):
    a, b = seed_run(tmp_path / "a", 0), seed_run(tmp_path / "b", 2)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    out = {"no_out": [], "out_is_a_run": ["--out", str(a)], "out_is_someone_elses": ["--out", str(other)]}[case]
    assert report_cli.main([str(a), str(b), *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert (other / "notes.txt").read_text() == "keep me" and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
