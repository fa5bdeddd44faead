"""What an epoch's evaluation costs against its training, per architecture, at the paper's sizes (40,000
training, 10,000 validation and 10,000 test images): the eval-mode passes over validation and test, and the
notebooks' train-mode test pass (313 batches of 32) eager against CUDA-graph replays. Issue 3's target:
evaluation under 10% of a training epoch. A measurement, not a test: it prints figures and exits 0.

    .venv/bin/python bench/gpu_eval.py [--device cuda] [--archs baseline improved resnet18]
    .venv/bin/python bench/gpu_eval.py --device cpu --train 320 --eval 320     # smoke mode

Writes $OUT/gpu_eval.json when OUT is set. Synthetic images: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from bench.gpu_steps import synthetic  # noqa: E402
from bench.out import write_report  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.cuda_graph import GraphedStep  # noqa: E402
from grid.train.evaluate import PublishedPass  # noqa: E402
from grid.train.training import Training  # noqa: E402


def timed(fn, device: torch.device) -> tuple[float, object]:
    """Seconds of `fn()`, ended by a device sync; and its result on the host."""
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def measure(arch: str, cifar, device: str) -> dict:
    training = Training(TrainConfig(arch=arch, activation="relu", device=device), cifar)
    dev = training.device
    training.run_epoch()  # warms up: CUDA graphs captured, cuDNN's algorithms picked, the caches filled
    epoch = training.run_epoch()

    row = {
        "epoch_seconds": epoch["epoch_seconds"],
        "eval_seconds_in_epoch": epoch["eval_seconds"],
        "eval_mode_seconds": min(timed(training.eval_mode_totals, dev)[0] for _ in range(3)),
    }
    if training.published is not None:
        eager = PublishedPass(training.model, training._forward, training.test_set, training.published_batches)
        seeds = (11, 12, 13)
        runs = {
            name: [timed(lambda p=p, s=s: p(s).item(), dev) for s in seeds]
            for name, p in (("eager", eager), ("graphed", training.published))
        }
        row |= {f"published_{k}_seconds": min(t for t, _ in v) for k, v in runs.items()}
        row["published_correct"] = {k: [c for _, c in v] for k, v in runs.items()}
        row["published_graphed"] = isinstance(training.published.count, GraphedStep)
    row["eval_share"] = row["eval_seconds_in_epoch"] / row["epoch_seconds"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS))
    p.add_argument("--train", type=int, default=40_000)
    p.add_argument("--eval", type=int, default=10_000, help="validation and test images, each")
    args = p.parse_args()
    cifar = synthetic(args.train, n_eval=args.eval)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}: {args.train} training, {args.eval} + {args.eval} eval images")
    report = {"device": name, "torch": torch.__version__, "train": args.train, "eval": args.eval, "archs": {}}
    for arch in args.archs:
        r = report["archs"][arch] = measure(arch, cifar, args.device)
        line = (
            f"{arch:>9}: epoch {r['epoch_seconds']:.3f}s, its evaluation {r['eval_seconds_in_epoch']:.3f}s "
            f"= {r['eval_share']:.1%} (target < 10%); eval-mode val+test "
            f"{r['eval_mode_seconds']:.3f}s"
        )
        if "published_eager_seconds" in r:
            e, g = r["published_eager_seconds"], r["published_graphed_seconds"]
            line += (
                f"; train-mode test pass eager {e:.3f}s, graphed {g:.3f}s ({e / g:.1f}x, graph used: "
                f"{r['published_graphed']}), correct {r['published_correct']}"
            )
        print(line, flush=True)
    write_report(report, "gpu_eval.json")


if __name__ == "__main__":
    main()
