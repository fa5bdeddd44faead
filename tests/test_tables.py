"""The table builders on hand-made results, checked against exact expected values."""

import math

import pandas as pd
import pytest

from grid.report import published, tables


def cell(arch, act, epochs, ours, ev, *, seed=0, status="ok", recipe="paper", tid=None, error=""):
    return {
        "arch": arch,
        "activation": act,
        "recipe": recipe,
        "seed": seed,
        "epochs": epochs,
        "test_acc": ev,
        "test_acc_as_published": ours,
        "val_acc": 0.5,
        "train_loss": 1.0,
        "val_loss": 1.5,
        "training_id": tid or f"{arch}-{act}-{recipe}-s{seed}",
        "status": status,
        "seconds": 10.0 * epochs,
        "error": error,
    }


def frame(*cells):
    return pd.DataFrame(list(cells))


def row(table, epochs):
    """The display row of one epoch count, as a dict column -> text."""
    d = table.display
    return d[d["epochs"] == str(epochs)].iloc[0].to_dict()


# ---- published values -------------------------------------------------------------------------------------


def test_published_values_and_notes():
    assert published.value("baseline", "relu", 100) == 0.5797
    assert published.value("baseline", "leaky_relu", 10) == 0.61
    assert published.value("baseline", "swish", 100) == 0.5985
    assert published.value("improved", "relu", 10) == pytest.approx(0.7088 - 0.0232)
    assert published.value("improved", "relu", 100) == 0.7509
    assert published.value("resnet18", "relu", 10) == 0.7088
    assert math.isnan(published.value("baseline", "relu", 30))  # figure only: no number to compare with
    assert len(published.as_frame()) == 6
    # The notebook run without an epoch count is a note, never a row.
    assert 0.5853 not in set(published.as_frame()["accuracy"])
    assert any("0.5853" in n for n in published.notes_for("baseline", "leaky_relu"))
    assert any("30 epochs" in n and "figure" in n for n in published.notes_for("baseline", "relu"))
    assert any("0.0232" in n for n in published.notes_for("improved", "relu"))


# ---- paper tables -----------------------------------------------------------------------------------------


def test_table_3_1_single_seed_exact():
    res = frame(cell("baseline", "relu", 10, 0.55, 0.56), cell("baseline", "relu", 100, 0.5897, 0.60))
    t = tables.paper_table(res, tables.PAPER_TABLES[0])
    assert list(t.display.columns) == ["epochs", "relu: published", "relu: ours", "relu: diff", "relu: eval"]
    assert row(t, 100) == {
        "epochs": "100",
        "relu: published": "0.5797",
        "relu: ours": "0.5897",
        "relu: diff": "+0.0100",
        "relu: eval": "0.6000",
    }
    assert row(t, 10) == {
        "epochs": "10",
        "relu: published": "",
        "relu: ours": "0.5500",
        "relu: diff": "",
        "relu: eval": "0.5600",
    }
    data = t.data.set_index("epochs")
    assert data.loc[100, "baseline/relu: diff"] == pytest.approx(0.0100)
    assert data.loc[100, "baseline/relu: published"] == 0.5797
    assert math.isnan(data.loc[100, "baseline/relu: ours_std"])  # one seed: no std
    assert any("epochs 10, 100 read from training `baseline-relu-paper-s0`" in n for n in t.notes)


def test_two_seeds_mean_and_std():
    res = frame(cell("improved", "relu", 10, 0.68, 0.70, seed=0), cell("improved", "relu", 10, 0.70, 0.72, seed=1))
    t = tables.paper_table(res, tables.PAPER_TABLES[2])
    # mean 0.69, std (ddof=1) = sqrt(2 * 0.01^2 / 1) = 0.0141; diff = 0.69 - 0.6856
    assert row(t, 10) == {
        "epochs": "10",
        "relu: published": "0.6856",
        "relu: ours": "0.6900 ± 0.0141",
        "relu: diff": "+0.0044",
        "relu: eval": "0.7100 ± 0.0141",
    }
    data = t.data.set_index("epochs")
    assert data.loc[10, "improved/relu: ours_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert data.loc[10, "improved/relu: seeds"] == 2
    # 100 epochs is published but was not run: the row is there, saying so.
    assert row(t, 100)["relu: published"] == "0.7509"
    assert row(t, 100)["relu: ours"] == "not run"


def test_diverged_and_partial_cells_show_status():
    res = frame(
        cell("baseline", "swish", 100, math.nan, math.nan, status="diverged", error="loss is nan at step 9"),
        cell("baseline", "leaky_relu", 10, 0.50, 0.52, seed=0),
        cell("baseline", "leaky_relu", 10, math.nan, math.nan, seed=1, status="failed", error="OOM"),
    )
    t = tables.paper_table(res, tables.PAPER_TABLES[1])
    r100, r10 = row(t, 100), row(t, 10)
    assert (r100["swish: ours"], r100["swish: eval"], r100["swish: diff"]) == ("diverged", "diverged", "")
    assert r100["swish: published"] == "0.5985"
    assert r10["leaky_relu: ours"] == "0.5000 (1/2 seeds ok)"  # mean over the ok seed only
    assert r10["leaky_relu: eval"] == "0.5200"
    assert r10["leaky_relu: diff"] == "-0.1100"
    data = t.data.set_index("epochs")
    assert data.loc[100, "baseline/swish: status"] == "diverged"
    assert math.isnan(data.loc[100, "baseline/swish: ours"])
    assert data.loc[10, "baseline/leaky_relu: status"] == "partial"
    assert any("swish @ epochs 100: seed 0 diverged: loss is nan at step 9" in n for n in t.notes)
    assert any("leaky_relu @ epochs 10: seed 1 failed: OOM" in n for n in t.notes)


def test_table_3_2_columns_follow_the_grid():
    res = frame(cell("baseline", "leaky_relu", 10, 0.6, 0.6), cell("baseline", "relu", 10, 0.5, 0.5))
    t = tables.paper_table(res, tables.PAPER_TABLES[1])
    labels = [c.split(":")[0] for c in t.display.columns[1::4]]
    assert labels == ["leaky_relu", "relu"]  # swish absent: no empty column, a note instead
    assert "baseline swish: not in this grid" in t.notes
    # relu only (the comparison column) does not make Table 3-2
    assert tables.paper_table(frame(cell("baseline", "relu", 10, 0.5, 0.5)), tables.PAPER_TABLES[1]) is None


def test_partial_grid_omits_tables_and_writes_the_rest(tmp_path):
    stale = tmp_path / "tables" / "table_3_1.md"
    stale.parent.mkdir()
    stale.write_text("an earlier grid's table")
    res = frame(cell("resnet18", "relu", 1, 0.40, 0.42), cell("resnet18", "relu", 2, 0.45, 0.47))
    built = tables.build_tables(res)
    assert [k for k, v in built.items() if v is None] == ["table_3_1", "table_3_2", "table_3_3"]
    assert list(built["table_3_4"].display["epochs"]) == ["1", "2", "10"]  # 10: the published row
    assert row(built["table_3_4"], 10)["relu: ours"] == "not run"
    md = tables.tables_markdown(res)
    assert md.count("not in this grid") == 3 and "### Table 3-4: ResNet-18" in md
    assert md.index("Table 3-1") < md.index("Table 3-2") < md.index("Table 3-3") < md.index("Table 3-4")
    tables.write_tables(res, tmp_path)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "full_grid.csv",
        "full_grid.md",
        "table_3_4.csv",
        "table_3_4.md",
    ]


def test_empty_results_do_not_crash(tmp_path):
    res = frame(cell("baseline", "relu", 10, 0.5, 0.5)).iloc[:0]
    built = tables.build_tables(res)
    assert all(built[s.name] is None for s in tables.PAPER_TABLES)
    assert built["full_grid"].display.empty
    tables.write_tables(res, tmp_path)
    assert (tmp_path / "tables" / "full_grid.md").is_file()


def test_several_recipes_get_their_own_columns():
    res = frame(cell("resnet18", "relu", 10, 0.70, 0.71), cell("resnet18", "relu", 10, 0.80, 0.81, recipe="modern"))
    t = tables.paper_table(res, tables.PAPER_TABLES[3])
    assert row(t, 10)["relu [paper]: ours"] == "0.7000"
    assert row(t, 10)["relu [modern]: ours"] == "0.8000"
    assert "resnet18/relu[modern]: ours" in t.data.columns


def test_missing_required_columns_raise():
    with pytest.raises(ValueError, match="missing columns test_acc_as_published"):
        tables.cell_stats(frame(cell("baseline", "relu", 10, 0.5, 0.5)).drop(columns="test_acc_as_published"))


# ---- full grid and output ---------------------------------------------------------------------------------


def test_full_grid_every_cell_with_its_training():
    res = frame(
        *[cell("baseline", a, e, 0.5, 0.51, seed=s) for a in ("relu", "gelu") for e in (10, 20) for s in (0, 1)]
    )
    t = tables.full_grid_table(res)
    assert len(t.display) == 4  # arch x activation x epochs, beyond the paper's models (gelu)
    first = t.display.iloc[0].to_dict()
    assert first["activation"] == "gelu" and first["epochs"] == "10"
    assert first["seeds"] == "2/2"
    assert first["ours"] == "0.5000 ± 0.0000"
    assert first["training"] == "baseline-gelu-paper-s0, baseline-gelu-paper-s1"
    relu100 = tables.full_grid_table(frame(cell("baseline", "relu", 100, 0.6, 0.6))).display.iloc[0]
    assert (relu100["published"], relu100["diff"]) == ("0.5797", "+0.0203")


def test_markdown_and_csv_written(tmp_path):
    res = frame(cell("baseline", "relu", 100, 0.5897, 0.60, tid="weird|id"))
    paths = tables.write_tables(res, tmp_path)
    assert {p.name for p in paths} == {"table_3_1.md", "table_3_1.csv", "full_grid.md", "full_grid.csv"}
    md = (tmp_path / "tables" / "table_3_1.md").read_text()
    assert "| epochs | relu: published | relu: ours | relu: diff | relu: eval |" in md
    assert "| 100 | 0.5797 | 0.5897 | +0.0100 | 0.6000 |" in md
    assert "weird\\|id" in md  # a pipe in an id must not split the Markdown row
    csv = pd.read_csv(tmp_path / "tables" / "table_3_1.csv")
    assert csv.loc[0, "baseline/relu: ours"] == pytest.approx(0.5897)
    assert csv.loc[0, "baseline/relu: diff"] == pytest.approx(0.01)
    full = pd.read_csv(tmp_path / "tables" / "full_grid.csv")
    assert full.loc[0, "training"] == "weird|id" and full.loc[0, "status"] == "ok"
    assert [p.name for p in (tmp_path / "tables").iterdir() if p.name.startswith(".")] == []  # no temp files


@pytest.mark.parametrize(
    ("epochs", "text"),
    [
        (list(range(10, 101, 10)), "10-100 every 10"),
        ([1, 2, 3], "1-3"),
        ([10, 100], "10, 100"),
        ([5, 1, 3], "1-5 every 2"),
        ([1, 2, 4], "1, 2, 4"),
    ],
)
def test_epochs_text(epochs, text):
    assert tables.epochs_text(epochs) == text
