"""The grid's plan and its validation: no Ray needed."""

import pytest

from grid.cli import main
from grid.experiment.plan import plan
from grid.experiment.spec import GridError, GridSpec


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


def test_costliest_trainings_start_first():
    """resnet18 (74 MFLOPs/image) before improved (23) before baseline (1.3); a resumed training counts only the
    epochs it has left."""
    from grid.experiment.run import costliest_first

    trainings = plan(
        GridSpec(name="t", archs=("baseline", "improved", "resnet18"), activations=("relu",), epochs=(10, 20))
    )
    ids = [p.training_id for p in costliest_first(trainings, {})]
    assert [i.split("-")[0] for i in ids] == ["resnet18", "improved", "baseline"]
    improved = next(i for i in ids if i.startswith("improved"))
    assert costliest_first(trainings, {improved: 19})[-1].training_id == improved  # 1 epoch x 23 < 20 x 1.3
