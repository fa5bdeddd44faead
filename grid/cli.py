"""`python run_grid.py`: the paper's grid (or any other) on Ray, with its tables beside the published ones."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import models
from grid.experiment.spec import PRESETS, GridError, GridSpec
from grid.train.recipes import RECIPES


def _list(kind):
    """Axis values: space- or comma-separated (`--epochs 10 20` or `--epochs 10,20`)."""

    def parse(text: str):
        return [kind(v) for v in text.split(",") if v]

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python run_grid.py", description=__doc__)
    axes = p.add_argument_group("the grid")
    axes.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="paper: the paper's 90 cells; smoke: a 3-minute CPU grid on a data subset",
    )
    axes.add_argument("--archs", nargs="+", type=_list(str), help=f"from {', '.join(models.ARCHS)}")
    axes.add_argument("--activations", nargs="+", type=_list(str), help=f"from {', '.join(models.ACTIVATIONS)}")
    axes.add_argument("--epochs", nargs="+", type=_list(int), help="epoch counts (cells), e.g. 10 20 30")
    axes.add_argument("--seeds", nargs="+", type=_list(int), help="seeds, e.g. 0 1 2")
    axes.add_argument("--recipe", help=f"from {', '.join(RECIPES)} (default paper)")
    axes.add_argument("--lr", type=float, help="override the recipe's learning rate")
    axes.add_argument("--max-train-images", type=int, help="a seeded class-stratified subset of the train split")
    axes.add_argument("--val-size", type=int, help="validation images split off the training images (10000)")
    axes.add_argument("--max-eval-images", type=int, help="a seeded class-stratified subset of val and test")
    run = p.add_argument_group("where and how")
    run.add_argument(
        "--data",
        help="shard folder or URI (s3://...), or a raw CIFAR-10 source to prepare once "
        "(archive, folder, image-folder tar); default: the official download",
    )
    run.add_argument("--name", help="the run's name (default: PRESET-TIMESTAMP)")
    run.add_argument("--out", type=Path, help="output folder (default runs/NAME)")
    run.add_argument("--storage", help="Ray storage for checkpoints: a folder or s3://... (default OUT/storage)")
    run.add_argument("--address", help="an existing Ray cluster ('auto' inside one); default: a local Ray")
    run.add_argument("--resume", action="store_true", help="continue the interrupted grid --name NAME")
    run.add_argument("--dry-run", action="store_true", help="print the cells and trainings; start nothing")
    run.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP ranks) per training")
    run.add_argument("--cpus-per-worker", type=int, default=1)
    run.add_argument(
        "--pack", type=int, help="the most trainings one trial trains at once on its device (default: per device)"
    )
    run.add_argument("--gpus-per-trial", type=float, help="GPU share per training (default: per architecture)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run.add_argument(
        "--mps",
        action="store_true",
        help="CUDA MPS for a local Ray on a GPU: the trainings sharing it run their kernels at once "
        "(measured: 1.8-2.6x the summed steps/s of 4 trainings on one GPU)",
    )
    run.add_argument("--max-failures", type=int, default=2, help="restarts of a training whose worker died")
    run.add_argument(
        "--cache-dir",
        default=str(Path.home() / ".cache" / "cifar-grid"),
        help="where raw sources are prepared into shards (once)",
    )
    run.add_argument("--verbose", action="store_true", help="Ray's and Tune's full output")
    wb = p.add_argument_group("Weights & Biases")
    wb.add_argument(
        "--wandb",
        choices=("auto", "online", "offline", "disabled"),
        default="auto",
        help="auto: online when an API key is configured, else offline into OUT/wandb",
    )
    wb.add_argument("--wandb-project", default="cifar-grid")
    wb.add_argument("--wandb-entity")
    return p


def _flat(values):
    return None if values is None else tuple(v for group in values for v in group)


def build_spec(args: argparse.Namespace, name: str) -> GridSpec:
    fields = dict(PRESETS[args.preset])
    for key in ("archs", "activations", "epochs", "seeds"):
        if getattr(args, key) is not None:
            fields[key] = _flat(getattr(args, key))
    for key in ("recipe", "lr", "val_size", "max_train_images", "max_eval_images", "gpus_per_trial", "pack"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    return GridSpec(
        name=name,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        device=args.device,
        max_failures=args.max_failures,
        **fields,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.resume and not (args.name or args.out):
        print("error: --resume needs the --name (or --out) of the grid to continue", file=sys.stderr)
        return 2
    name = args.name or (args.out.name if args.out else f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        spec = build_spec(args, name)
        from grid.experiment.plan import default_pack, describe, packs, plan

        if args.dry_run:
            trainings = plan(spec)
            size = default_pack(spec, len(trainings), cluster=bool(args.address))
            print(describe(spec, trainings, packs(trainings, size)))
            return 0
        from grid.experiment.run import RunOptions, run

        wandb = {"mode": args.wandb, "project": args.wandb_project, "entity": args.wandb_entity}
        opts = RunOptions(
            out=args.out or Path("runs") / name,
            data=args.data,
            storage=args.storage,
            address=args.address,
            resume=args.resume,
            verbose=args.verbose,
            cache_dir=args.cache_dir,
            wandb=wandb,
            mps=args.mps,
        )
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
