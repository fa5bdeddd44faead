"""`python run_grid.py`: the paper's grid (or any other) on Ray, with its tables beside the published ones."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from grid import settings
from grid.experiment.run import RunOptions
from grid.experiment.spec import PRESETS, GridError, GridSpec
from grid.train.config import TrainSettings
from grid.wandb_settings import WandbSettings

SHARED = {f.name for f in dataclasses.fields(TrainSettings)}
# The axes first, then what every training shares, then the resources (in "where and how").
GRID_FLAGS = sorted((f.name for f in dataclasses.fields(GridSpec) if settings.of(f)), key=lambda n: n in SHARED)
W_FLAGS = [f for f in dataclasses.fields(WandbSettings) if settings.of(f)]
RESOURCE_FLAGS = ("workers", "cpus_per_worker", "pack", "gpus_per_trial", "device", "max_failures")


def parser() -> argparse.ArgumentParser:
    """Every flag but --preset and --dry-run comes from a field of GridSpec, RunOptions or WandbSettings."""
    p = settings.Parser(prog="python run_grid.py", description=__doc__)
    axes = p.add_argument_group("the grid")
    axes.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="paper: the paper's 90 cells; published: the cells of every value and finding the paper publishes, "
        "seeds 0 1 2; smoke: a 3-minute CPU grid on a data subset",
    )
    settings.add_flags(axes, GridSpec, [n for n in GRID_FLAGS if n not in RESOURCE_FLAGS and n != "name"])
    run = p.add_argument_group("where and how")
    settings.add_flags(run, GridSpec, ["name"])
    settings.add_flags(run, RunOptions)
    run.add_argument("--dry-run", action="store_true", help="print the cells and trainings; start nothing")
    settings.add_flags(run, GridSpec, RESOURCE_FLAGS)
    settings.add_flags(p.add_argument_group("Weights & Biases"), WandbSettings)
    return p


def grid_fields(args: argparse.Namespace) -> dict:
    """The GridSpec fields the command line sets: its preset's, then the flags given (not --name)."""
    return {**PRESETS[args.preset], **{k: v for k, v in settings.given(args, GridSpec).items() if k != "name"}}


def build_spec(args: argparse.Namespace, name: str) -> GridSpec:
    """The preset's grid, with what the command line gave over it."""
    return GridSpec(**grid_fields(args), name=name)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except settings.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    given = settings.given(args, RunOptions)
    named = getattr(args, "name", None)
    if given.get("resume") and not (named or given.get("out")):
        print("error: --resume needs the --name (or --out) of the grid to continue", file=sys.stderr)
        return 2
    out = given.pop("out", None)
    name = named or (out.name if out else f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        spec = build_spec(args, name)
        from grid.experiment.plan import describe, packs, plan

        if args.dry_run:
            trainings = plan(spec)
            from grid.experiment.schedule import schedule

            grouped = packs(trainings, spec.pack)
            print(describe(spec, trainings, grouped if spec.pack > 1 else None))
            print(schedule(spec, grouped, {}, given.get("address")).describe())
            return 0
        from grid.experiment.run import run

        wandb = {f.name: getattr(WandbSettings(**settings.given(args, WandbSettings)), f.name) for f in W_FLAGS}
        opts = RunOptions(**given, out=out or Path("runs") / name, wandb=wandb, grid_flags=tuple(grid_fields(args)))
        return run(spec, opts)
    except (GridError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # DataError and friends: one line, no traceback
        from data import DataError

        if isinstance(e, DataError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
