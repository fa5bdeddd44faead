"""`python -m grid.train`: one training, outside Ray, printing a line per epoch.

Writes OUT/checkpoint/ (every --checkpoint-every epochs and at the end), OUT/metrics.json and the artifacts
(OUT/submission.csv, OUT/predictions.png). Bad input: one `error: ...` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grid import settings
from grid.atomic import folder_problem, write_json
from grid.files import METRICS_FILE, STATE_FILE
from grid.train.config import TrainConfig, TrainSettings

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of TrainConfig's fields (grid.settings), and where the data and the outputs are."""
    p = settings.Parser(prog="python -m grid.train", description=__doc__.splitlines()[0])
    settings.add_flags(
        p, TrainConfig, ["arch", "activation", "epochs", "seed"], required=("arch", "activation", "epochs")
    )
    p.add_argument("--data", required=True, help="shard folder or URI (python -m data.prepare makes one)")
    p.add_argument("--out", default=None, help="output folder (default: runs/train/TRAINING_ID)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if there is one")
    settings.add_flags(p, TrainSettings)
    settings.add_flags(p, TrainConfig, ["threads"])
    return p.parse_args(argv)


def format_epoch(m: dict[str, float], epochs: int) -> str:
    return (
        f"epoch {m['epoch']:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  "
        f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f}  test acc {m['test_acc']:.4f} "
        f"(as published {m['test_acc_as_published']:.4f})  {m['epoch_seconds']:.1f}s + eval "
        f"{m['eval_seconds']:.1f}s  {m['images_per_second']:,.0f} img/s"
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        cfg = TrainConfig(**settings.given(args, TrainConfig))
    except ValueError as e:
        return _fail(str(e))
    out = Path(args.out or Path("runs", "train", cfg.training_id))
    problem = folder_problem(out)
    if problem:  # before a whole epoch is trained and its checkpoint cannot be saved
        return _fail(f"--out {out}: {problem}")

    import data  # after argument checks: bad usage fails fast, before torch's data stack loads
    from grid.train.training import Diverged, Training

    try:
        cifar = cfg.load_data(args.data)
        training = Training(cfg, cifar)
    except (data.DataError, ValueError) as e:
        return _fail(str(e))

    ckpt = out / "checkpoint"
    if args.resume and (ckpt / STATE_FILE).is_file():
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
    write_json(out / METRICS_FILE, training.history)
    for path in training.write_artifacts(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
