"""Packs through the real grid (a local Ray, synthetic shards): a grid trained in packs gives every cell the
same grid gives unpacked, bit for bit on the CPU; a diverging member leaves its pack while the others go on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from grid.cli import build_spec, main, parser
from grid.experiment.plan import plan
from grid.experiment.wandb_run import run_id
from tests.ray_helpers import TIMINGS, checkpoint_status, reference_history, without_timings
from tests.wandb_files import read_history

# 6 trainings: 2 packs of 3, each mixing activations and seeds.
GRID = ["--archs", "baseline", "--activations", "relu", "leaky_relu", "swish", "--seeds", "0", "1"]
GRID += ["--epochs", "1", "2", "--val-size", "100"]
# lr 3 on these synthetic pixels: leaky_relu's loss is NaN in epoch 1, swish's in epoch 2, relu's stays finite.
DIVERGING = ["--archs", "baseline", "--activations", "relu", "leaky_relu", "swish", "--lr", "3"]
DIVERGING += ["--epochs", "1", "2", "3", "--val-size", "100", "--pack", "3", "--wandb", "disabled"]


@pytest.fixture(scope="module")
def runs(grid_shards, tmp_path_factory) -> dict[int, tuple[int, object]]:
    """The same grid with --pack 3 (W&B offline) and --pack 1: {pack: (exit code, run folder)}."""
    root = tmp_path_factory.mktemp("packs")
    done = {}
    for pack, wandb in ((3, "offline"), (1, "disabled")):
        out = root / f"pack{pack}"
        done[pack] = main([*GRID, "--pack", str(pack), "--data", grid_shards, "--out", str(out), "--wandb", wandb]), out
    return done


def test_packed_grid_gives_every_cell_of_the_unpacked_one_bit_for_bit(runs):
    (code3, packed), (code1, alone) = runs[3], runs[1]
    assert code3 == code1 == 0
    got, want = (pd.read_parquet(o / "results.parquet") for o in (packed, alone))
    assert len(got) == 12 and set(got["status"]) == {"ok"}
    assert got.drop(columns=["seconds", "pack"]).equals(want.drop(columns=["seconds", "pack"]))
    history = [pd.read_parquet(o / "history.parquet").drop(columns=[*TIMINGS, "pack"]) for o in (packed, alone)]
    assert len(history[0]) == 12 and history[0].equals(history[1])


def test_packed_run_folder_says_which_pack_each_training_ran_in(runs):
    _, out = runs[3]
    results = pd.read_parquet(out / "results.parquet")
    assert results.groupby("pack")["training_id"].nunique().tolist() == [3, 3]
    trials = json.loads((out / "trials.json").read_text())
    assert set(trials) == set(results["training_id"]) and {t["pack"] for t in trials.values()} == set(results["pack"])
    for t in trials.values():  # the start-up's parts, in the order they happen
        s = t["startup"]
        assert s["trial"] <= s["fit"] <= s["loop"] <= s["data"] <= s["built"] <= s["first_epoch"] <= t["end"]
    assert set(pd.read_parquet(runs[1][1] / "results.parquet")["pack"]) == {""}  # unpacked: no pack
    for training_id in results["training_id"].unique():  # every member keeps its own files
        assert (out / "trainings" / training_id / "submission.csv").is_file()
        assert (out / "trainings" / training_id / "predictions.png").is_file()
        assert checkpoint_status(out / "storage", training_id)["status"] == "ok"


def test_each_member_has_its_own_wandb_run(runs):
    _, out = runs[3]
    history = pd.read_parquet(out / "history.parquet")
    for training_id, rows in history.groupby("training_id"):
        logged = read_history(out / "wandb", run_id(out.name, training_id))
        assert list(logged["epoch"]) == list(rows["epoch"])
        for key in ("train_loss", "val_acc", "test_acc"):
            assert list(logged[key]) == list(rows[key]), key


def test_resume_of_a_finished_packed_grid_trains_nothing(runs, grid_shards, capsys):
    _, out = runs[3]
    checkpoints = sorted(p.name for p in (out / "storage").glob("*/epoch_*"))
    assert main(["--resume", "--out", str(out), "--data", grid_shards, "--wandb", "disabled"]) == 0
    assert "0 to train, 6 already finished (not rerun)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "storage").glob("*/epoch_*")) == checkpoints


def test_a_diverging_member_leaves_its_pack_and_the_others_go_on(grid_shards, tmp_path, faults):
    out = tmp_path / "diverging"
    assert main([*DIVERGING, "--data", grid_shards, "--out", str(out)]) == 0  # diverged cells are results
    results = pd.read_parquet(out / "results.parquet")
    status = results.set_index(["activation", "epochs"])["status"].to_dict()
    assert status == {
        **{("leaky_relu", e): "diverged" for e in (1, 2, 3)},
        ("swish", 1): "ok",
        **{("swish", e): "diverged" for e in (2, 3)},
        **{("relu", e): "ok" for e in (1, 2, 3)},
    }
    assert results["pack"].nunique() == 1 and results["pack"].iloc[0].startswith("pack")
    history = pd.read_parquet(out / "history.parquet")
    for planned in plan(build_spec(parser().parse_args(DIVERGING), out.name)):
        stored = checkpoint_status(out / "storage", planned.training_id)
        reference = without_timings(reference_history(planned.config, grid_shards, stop_at_divergence=True))
        rows = history[history["training_id"] == planned.training_id].drop(columns=["training_id", "pack"])
        got = without_timings(rows.drop(columns=["arch", "activation", "recipe", "seed"]).to_dict("records"))
        assert got == reference, planned.training_id
        assert stored["status"] == ("ok" if planned.config.activation == "relu" else "diverged")
    faults.record(survived=True, pack=True)
