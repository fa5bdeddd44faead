"""The grid's plan and its validation: no Ray needed."""

import pytest

from grid.cli import main
from grid.experiment.plan import packs, plan
from grid.experiment.spec import PRESETS, GridError, GridSpec
from grid.report import published


def test_paper_grid_is_90_cells_from_9_trainings_of_100_epochs():
    spec = GridSpec(name="paper")
    trainings = plan(spec)
    assert spec.cells == 90
    assert len(trainings) == 9
    assert {t.config.epochs for t in trainings} == {100}
    assert all(t.cells == tuple(range(10, 101, 10)) for t in trainings)
    assert len({t.training_id for t in trainings}) == 9


def test_recipe_that_schedules_on_total_epochs_gets_one_training_per_cell():
    spec = GridSpec(name="m", archs=("baseline",), activations=("relu",), epochs=(10, 20, 30), recipe="modern")
    trainings = plan(spec)
    assert [(t.config.epochs, t.cells) for t in trainings] == [(10, (10,)), (20, (20,)), (30, (30,))]
    assert len({t.training_id for t in trainings}) == 3


def test_seeds_multiply_trainings():
    spec = GridSpec(name="s", archs=("baseline",), activations=("relu", "swish"), epochs=(5, 10), seeds=(0, 1, 2))
    assert spec.cells == 12
    assert len(plan(spec)) == 6


def test_dry_run_prints_cells_and_trainings(capsys):
    assert main(["--dry-run", "--name", "p"]) == 0
    out = capsys.readouterr().out
    assert "90 cells" in out and "9 trainings" in out
    assert "900 epochs" in out and "4050 epochs saved" in out
    assert out.count("100 epochs -> cells at 10, 20, 30, 40, 50, 60, 70, 80, 90, 100") == 9


@pytest.mark.parametrize(
    "args, message",
    [
        (["--archs", "vgg"], "--archs: unknown 'vgg'; choose from baseline, improved, resnet18"),
        (["--activations", "tanh"], "choose from relu, leaky_relu, swish"),
        (["--recipe", "adam"], "--recipe: invalid choice: 'adam' (choose from 'paper', 'modern')"),
        (["--epochs", "0"], "--epochs: must be at least 1, not 0"),
        (["--epochs", ","], "--epochs: give at least one value"),
        (["--archs", ","], "--archs: give at least one value"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial: must be at most 1, not 1.5"),
        (["--workers", "2", "--gpus-per-trial", "0.25"], "at least 0.5"),
        (["--name", "../x"], "invalid grid name"),
        (["--pack", "0"], "--pack: must be at least 1, not 0"),
        (["--pack", "3", "--workers", "2"], "--pack > 1 with --workers > 1"),
    ],
)
def test_invalid_grids_are_refused_before_ray_starts(args, message, capsys):
    assert main(["--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1  # one line


def test_resume_needs_a_name(capsys):
    assert main(["--resume"]) == 2
    assert "--resume needs the --name" in capsys.readouterr().err


def test_spec_round_trips_through_json_types():
    spec = GridSpec(name="x", epochs=(1, 2), seeds=(3,), extras={"a": 1})
    assert GridSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(GridError):
        GridSpec(name="x", seeds=())


def test_packs_group_trainings_of_one_recipe_and_epoch_count():
    spec = GridSpec(name="p", archs=("baseline", "resnet18"), activations=("relu", "swish"), seeds=(0, 1, 2))
    grouped = packs(plan(spec), 3)
    assert [len(g.members) for g in grouped] == [3, 3, 3, 3]
    assert all(len({m.config.arch for m in g.members}) == 1 for g in grouped)  # archs mix only where they must
    assert sorted(t for g in grouped for t in g.training_ids) == sorted(p.training_id for p in plan(spec))
    assert len({g.pack_id for g in grouped}) == 4 and all(g.pack_id.startswith("pack") for g in grouped)
    assert grouped == packs(plan(spec), 3)  # the same packs each time: --resume finds them again
    # Balanced sizes, never more than asked; a pack of one keeps the training's own id (the unpacked layout).
    assert [len(g.members) for g in packs(plan(spec), 5)] == [4, 4, 4]
    assert [g.pack_id for g in packs(plan(spec), 1)] == [p.training_id for p in plan(spec)]
    # A recipe that schedules on the total epochs: trainings of different lengths never share a pack.
    modern = GridSpec(name="m", archs=("baseline",), activations=("relu", "swish"), epochs=(1, 2), recipe="modern")
    assert all(len({m.config.epochs for m in g.members}) == 1 for g in packs(plan(modern), 4))


def test_a_trial_per_training_unless_packs_are_asked_for():
    # Packs sized by the machine stranded a core on the CPU (one pack ran its members' hours alone) and have never
    # run on a GPU: by default each training is its own trial, scheduled costliest first.
    assert GridSpec(name="d").pack == 1
    assert len(packs(plan(GridSpec(name="d")), GridSpec(name="d").pack)) == 9


def test_published_preset_trains_exactly_what_the_paper_publishes():
    spec = GridSpec(name="pub", **PRESETS["published"])
    trainings = plan(spec)
    assert spec.seeds == (0, 1, 2)
    assert sorted({(t.config.arch, t.config.activation, t.config.epochs, t.cells) for t in trainings}) == sorted(
        [("baseline", a, 100, tuple(range(10, 101, 10))) for a in ("relu", "leaky_relu", "swish")]
        + [("improved", "relu", 100, tuple(range(10, 101, 10))), ("resnet18", "relu", 10, (10,))]
    )
    assert len(trainings) == 15 and spec.cells == 3 * 41
    cells = {(t.config.arch, t.config.activation, e) for t in trainings for e in t.cells}
    assert all((p.arch, p.activation, p.epochs) in cells for p in published.PUBLISHED)


def test_published_preset_gives_every_finding_its_cells():
    import pandas as pd

    from grid.report import verdict

    spec = GridSpec(name="pub", **{**PRESETS["published"], "seeds": (0,)})
    rows = [
        dict(arch=t.config.arch, activation=t.config.activation, recipe="paper", seed=0, epochs=e, status="ok")
        | dict(test_acc=0.5, test_acc_as_published=0.5, training_id=t.training_id)
        for t in plan(spec)
        for e in t.cells
    ]
    found = verdict.verdict(pd.DataFrame(rows), spec.to_dict())
    assert [f.status for f in found.findings if f.status == verdict.ABSENT] == []


def test_a_selection_within_the_axes_given():
    spec = GridSpec(name="s", select="published", archs=("resnet18", "improved"), seeds=(1,))
    assert [(t.training_id, t.cells) for t in plan(spec)] == [
        ("resnet18-relu-paper-s1", (10,)),
        ("improved-relu-paper-s1", tuple(range(10, 101, 10))),
    ]
    with pytest.raises(GridError, match="--select published: none of its cells"):
        GridSpec(name="s", select="published", archs=("resnet18",), activations=("swish",))


def test_dry_run_shows_the_packs(capsys):
    assert main(["--dry-run", "--name", "p", "--pack", "3", "--seeds", "0", "1", "2", "--archs", "baseline"]) == 0
    out = capsys.readouterr().out
    assert "3 trials (packs of at most 3 trainings" in out
    assert "baseline-relu-paper-s0, baseline-relu-paper-s1, baseline-relu-paper-s2" in out
