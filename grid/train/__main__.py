"""`python -m grid.train`: one training, outside Ray, printing a line per epoch.

Writes OUT/checkpoint/ (every --checkpoint-every epochs and at the end), OUT/metrics.json and the artifacts
(OUT/submission.csv, OUT/predictions.png). Bad input: one `error: ...` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import models
from grid.atomic import folder_problem, write_json
from grid.train.config import DEVICES, TrainConfig
from grid.train.recipes import RECIPES

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(prog="python -m grid.train", description=__doc__.splitlines()[0])
    p.add_argument("--arch", required=True, choices=list(models.ARCHS))
    p.add_argument("--activation", required=True, choices=list(models.ACTIVATIONS))
    p.add_argument("--epochs", required=True, type=int)
    p.add_argument("--data", required=True, help="shard folder or URI (python -m data.prepare makes one)")
    p.add_argument("--recipe", default="paper", choices=list(RECIPES))
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--device", default="auto", choices=list(DEVICES))
    p.add_argument("--out", default=None, help="output folder (default: runs/train/TRAINING_ID)")
    p.add_argument("--checkpoint-every", default=10, type=int)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if there is one")
    p.add_argument("--val-size", default=10_000, type=int, help="validation images split off the training images")
    p.add_argument("--max-train-images", default=None, type=int)
    p.add_argument("--max-eval-images", default=None, type=int)
    p.add_argument("--threads", default=None, type=int)
    return p.parse_args(argv)


def format_epoch(m: dict[str, float], epochs: int) -> str:
    return (
        f"epoch {m['epoch']:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  "
        f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f}  test acc {m['test_acc']:.4f} "
        f"(as published {m['test_acc_as_published']:.4f})  {m['epoch_seconds']:.1f}s + eval "
        f"{m['eval_seconds']:.1f}s  {m['images_per_second']:,.0f} img/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = TrainConfig(
            arch=args.arch,
            activation=args.activation,
            recipe=args.recipe,
            seed=args.seed,
            epochs=args.epochs,
            device=args.device,
            checkpoint_every=args.checkpoint_every,
            val_size=args.val_size,
            max_train_images=args.max_train_images,
            max_eval_images=args.max_eval_images,
            threads=args.threads,
        )
    except ValueError as e:
        return _fail(str(e))
    out = Path(args.out or Path("runs", "train", cfg.training_id))
    problem = folder_problem(out)
    if problem:  # before a whole epoch is trained and its checkpoint cannot be saved
        return _fail(f"--out {out}: {problem}")

    import data  # after argument checks: bad usage fails fast, before torch's data stack loads
    from grid.train.training import Diverged, Training

    try:
        cifar = data.load(
            args.data,
            val_size=cfg.val_size,
            split_seed=cfg.split_seed,
            max_train_images=cfg.max_train_images,
            max_eval_images=cfg.max_eval_images,
        )
        training = Training(cfg, cifar)
    except (data.DataError, ValueError) as e:
        return _fail(str(e))

    ckpt = out / "checkpoint"
    if args.resume and (ckpt / "state.pt").is_file():
        training.load_checkpoint(ckpt)
        print(f"resumed {cfg.training_id} at epoch {training.epoch} from {ckpt}")
        if training.epoch > cfg.epochs:
            return _fail(f"{ckpt}: checkpoint is at epoch {training.epoch}, past --epochs {cfg.epochs}")
    print(
        f"training {cfg.training_id} on {training.device}: {len(cifar.train.labels):,} train, "
        f"{len(cifar.val.labels):,} val, {len(cifar.test.labels):,} test images -> {out}"
    )

    while training.epoch < cfg.epochs:
        try:
            metrics = training.run_epoch()
        except Diverged as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(format_epoch(metrics, cfg.epochs), flush=True)
        if training.epoch % cfg.checkpoint_every == 0 or training.epoch == cfg.epochs:
            training.save_checkpoint(ckpt)
    write_json(out / "metrics.json", training.history)
    for path in training.write_artifacts(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
