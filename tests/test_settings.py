"""Settings declared once: the flags, defaults, validation and grid.json of the typed configs (grid.settings)."""

import dataclasses

import pytest

from grid import cli, settings
from grid.experiment.plan import plan
from grid.experiment.run import RunOptions
from grid.experiment.spec import PRESETS, GridError, GridSpec
from grid.train import __main__ as train_cli
from grid.train.config import TrainConfig, TrainSettings
from grid.wandb_settings import WandbSettings

# The flags README's "Options" section names: generated from fields, their spelling must not drift.
GRID_FLAGS = """--preset --archs --activations --epochs --seeds --select --recipe --lr --batch-size --max-train-images
--max-eval-images --val-size --split-seed --checkpoint-every --data --name --out --storage --address --resume
--dry-run --workers --cpus-per-worker --pack --gpus-per-trial --mps --device --max-failures --verbose --cache-dir
--wandb --wandb-project --wandb-entity""".split()
TRAIN_FLAGS = """--arch --activation --epochs --data --recipe --seed --device --out --checkpoint-every --resume
--max-train-images --max-eval-images --threads --val-size --lr --batch-size --split-seed""".split()


def flags_of(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}


def test_the_grid_cli_has_every_flag_and_only_those():
    assert flags_of(cli.parser()) == set(GRID_FLAGS)


def test_the_train_cli_has_every_flag_and_only_those():
    parser = settings.Parser(prog="x")
    settings.add_flags(parser, TrainConfig)
    assert {f for f in TRAIN_FLAGS if f not in ("--data", "--out", "--resume")} == flags_of(parser)
    args = train_cli.parse_args(["--arch", "baseline", "--activation", "relu", "--epochs", "2", "--data", "d"])
    assert TrainConfig(**settings.given(args, TrainConfig)) == TrainConfig(arch="baseline", activation="relu", epochs=2)


def test_every_shared_setting_reaches_each_training_unchanged():
    """No field is copied by hand: every TrainSettings field of the grid lands in each planned TrainConfig."""
    spec = GridSpec(
        name="g",
        archs=("baseline",),
        activations=("relu",),
        epochs=(1,),
        lr=0.5,
        batch_size=16,
        val_size=200,
        split_seed=3,
        max_train_images=64,
        max_eval_images=32,
        device="cpu",
        checkpoint_every=2,
    )
    (trained,) = plan(spec)
    for f in dataclasses.fields(TrainSettings):
        assert getattr(trained.config, f.name) == getattr(spec, f.name), f.name


def test_a_flag_left_out_keeps_the_preset_and_a_given_one_wins():
    args = cli.parser().parse_args(["--preset", "smoke", "--epochs", "1,2", "--seeds", "0", "1"])
    spec = cli.build_spec(args, "g")
    assert spec.epochs == (1, 2) and spec.seeds == (0, 1)
    assert spec.max_train_images == PRESETS["smoke"]["max_train_images"]
    assert spec.workers == GridSpec(name="g").workers  # a resource left out: the dataclass default


def test_grid_json_round_trips_every_field():
    spec = GridSpec(name="g", seeds=(0, 1), lr=0.01, extras={"code_version": "abc"})
    assert GridSpec.from_dict(spec.to_dict()) == spec
    assert {f.name for f in dataclasses.fields(GridSpec)} <= set(spec.to_dict())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seeds": (0, 0)}, "--seeds: 0 given twice"),
        ({"archs": ("baseline", "baseline")}, "--archs: 'baseline' given twice"),
        ({"archs": ()}, "--archs: give at least one value"),
        ({"archs": ("vgg",)}, "--archs: unknown 'vgg'; choose from baseline, improved, resnet18"),
        ({"epochs": (0,)}, "--epochs: must be at least 1, not 0"),
        ({"val_size": 0}, "--val-size: must be at least 1, not 0"),
        ({"lr": float("nan")}, "--lr: must be a finite number, not nan"),
        ({"lr": float("inf")}, "--lr: must be a finite number, not inf"),
        ({"lr": -1.0}, "--lr: must be positive, not -1.0"),
        ({"gpus_per_trial": 1.5}, "--gpus-per-trial: must be at most 1, not 1.5"),
        ({"max_failures": -1}, "--max-failures: must be at least 0, not -1"),
        ({"recipe": "fast"}, "--recipe: unknown 'fast'; choose from paper, modern"),
        ({"epochs": (2.5,)}, "--epochs: 2.5 is not a whole number"),
    ],
)
def test_validation_names_the_flag(fields, message):
    with pytest.raises(GridError) as e:
        GridSpec(name="g", **fields)
    assert str(e.value).startswith(message)


def test_the_training_config_refuses_with_its_flags_too():
    with pytest.raises(ValueError, match=r"^--threads: must be at least 1, not 0$"):
        TrainConfig(arch="baseline", activation="relu", threads=0)


def test_help_shows_the_dataclass_defaults():
    text = " ".join(cli.parser().format_help().split())  # argparse wraps lines
    assert "(default cifar-grid)" in text and "(default 10 20 30 40 50 60 70 80 90 100)" in text
    assert RunOptions.__dataclass_fields__["cache_dir"].default is None  # the one default lives in data.download
    assert WandbSettings().mode == "auto"
