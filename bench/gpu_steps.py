"""Training steps per second of each architecture at batch 32 (`paper` recipe), eager against a CUDA-graph
replay, and whether the graph trains to the same numbers. Ends within 5 minutes on one GPU.

    .venv/bin/python bench/gpu_steps.py [--device cuda] [--steps 500] [--archs baseline improved resnet18]
    .venv/bin/python bench/gpu_steps.py --device cpu --steps 5      # smoke mode: eager only

Writes $OUT/gpu_steps.json when OUT is set. Synthetic images: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
import models  # noqa: E402
from bench.out import write_report  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.training import Training  # noqa: E402

BATCH = 32


def synthetic(n_train: int, n_eval: int = 1000) -> data.Cifar10:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> data.Split:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        return data.Split(images, torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(n)])

    return data.Cifar10(split(n_train), split(n_eval), split(n_eval), data.CLASSES, "0" * 64, "synthetic")


def measure(arch: str, cifar: data.Cifar10, device: str, graph: bool) -> dict:
    """Two epochs of `steps` steps: the first warms up (and captures), the second is timed."""
    training = Training(TrainConfig(arch=arch, activation="relu", device=device), cifar, cuda_graph=graph)
    first = training.run_epoch()
    second = training.run_epoch()
    weights = torch.cat([p.detach().flatten().float().cpu() for p in training.model.parameters()])
    steps_per_second = training.steps_per_epoch / second["epoch_seconds"]
    busy = gpu_busy(training, steps_per_second) if training.use_cuda_graph else None
    return {
        "graph": training.use_cuda_graph,
        "gpu_busy": busy,
        "steps_per_second": steps_per_second,
        "eval_seconds": second["eval_seconds"],
        "train_loss": [first["train_loss"], second["train_loss"]],
        "weights": weights,
    }


def gpu_busy(training: Training, steps_per_second: float, replays: int = 200) -> float:
    """The share of a training's time the GPU is busy: the captured step replayed back to back (the GPU's own
    time per step, or the launch's if that is longer) x the training loop's steps/s. Several trainings can
    share the GPU about 1/busy ways before they slow each other down: what the grid's GPU fraction is for."""
    graph = training._graphed.graph
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return min(1.0, start.elapsed_time(end) / 1000 / replays * steps_per_second)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS))
    args = p.parse_args()
    cifar = synthetic(args.steps * BATCH, n_eval=min(1000, args.steps * BATCH))
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}: {args.steps} steps of batch {BATCH} per timed epoch")

    report = {
        "device": name,
        "torch": torch.__version__,
        "steps": args.steps,
        "batch": BATCH,
        "eval_images": len(cifar.val),
        "archs": {},
    }
    started = time.perf_counter()
    for arch in args.archs:
        eager = measure(arch, cifar, args.device, graph=False)
        row = {"eager_steps_per_second": eager["steps_per_second"], "eval_seconds": eager["eval_seconds"]}
        line = f"{arch:>9}: eager {eager['steps_per_second']:8.1f} steps/s"
        if args.device == "cuda":
            graphed = measure(arch, cifar, args.device, graph=True)
            assert graphed["graph"], f"{arch}: the CUDA graph was not used"
            loss_diff = max(
                abs(a - b) / abs(b) for a, b in zip(graphed["train_loss"], eager["train_loss"], strict=True)
            )
            weight_diff = (graphed["weights"] - eager["weights"]).abs().max().item()
            speedup = graphed["steps_per_second"] / eager["steps_per_second"]
            busy = graphed["gpu_busy"]
            row |= {
                "graph_steps_per_second": graphed["steps_per_second"],
                "speedup": speedup,
                "gpu_busy": busy,
                "suggested_gpu_fraction": max(0.125, math.ceil(busy * 8) / 8),
                "train_loss_max_rel_diff": loss_diff,
                "weights_max_abs_diff": weight_diff,
            }
            line += (
                f"  graph {graphed['steps_per_second']:8.1f} steps/s ({speedup:.2f}x, GPU busy {busy:.0%})  "
                f"graph vs eager: train loss rel diff {loss_diff:.1e}, weights max diff {weight_diff:.1e}"
            )
        print(line, flush=True)
        report["archs"][arch] = row
    report["seconds"] = time.perf_counter() - started
    write_report(report, "gpu_steps.json")


if __name__ == "__main__":
    main()
