"""The CPU's epoch time and the grid's schedule, side by side in one run. A measurement, not a test.

    .venv/bin/python bench/bench_schedule.py [--threads 1] [--steps 40] [--slots 2]

1. Each architecture's training step (the grid's `Training`, random images of CIFAR-10's shape) against its
   floor: the bare loop of the same model, optimizer and batch size over one float batch already in memory;
   an epoch's training time at that step (1,250 steps of 32) and its evaluation's share (grid.train.estimate).
2. The schedule the grid runs (costliest first onto --slots places) of the paper grid and of the `published`
   preset, from the epoch times of 1: its simulated wall time against the ideal (total work / places).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from grid.experiment.plan import packs, plan  # noqa: E402
from grid.experiment.schedule import Schedule, makespan  # noqa: E402
from grid.experiment.spec import PRESETS, GridSpec  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.estimate import epoch_cost  # noqa: E402


def floor_step(arch: str, steps: int) -> float:
    """Seconds per step of the bare loop (best of 3 rounds), in the layout the grid trains `arch` in."""
    torch.manual_seed(0)
    layout = torch.channels_last if models.CPU_CHANNELS_LAST[arch] else torch.contiguous_format
    model = models.build(arch, "relu").to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, foreach=True)
    x, y = torch.randn(32, 3, 32, 32).contiguous(memory_format=layout), torch.randint(0, 10, (32,))
    loss_fn, best = nn.CrossEntropyLoss(), float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads per training (the grid's 1 CPU each)")
    p.add_argument("--steps", type=int, default=40, help="bare-loop steps per round (resnet18 takes a quarter)")
    p.add_argument("--slots", type=int, default=2, help="trainings at once (this machine's cores)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    per_epoch = {}
    print(f"1. an epoch of 40,000 images at batch 32, {args.threads} thread(s)")
    print(f"{'arch':10} {'step':>9} {'floor':>9} {'ratio':>6} {'train s':>8} {'eval s':>7} {'eval share':>10}")
    for arch in models.ARCHS:
        cost = epoch_cost(TrainConfig(arch=arch, activation="relu", threads=args.threads))
        floor = floor_step(arch, max(4, args.steps // (4 if arch == "resnet18" else 1)))
        step = cost.train_s / 1250
        per_epoch[arch] = cost.seconds
        print(
            f"{arch:10} {step * 1e3:7.2f}ms {floor * 1e3:7.2f}ms {step / floor:6.2f} {cost.train_s:8.1f} "
            f"{cost.eval_s:7.1f} {cost.eval_s / cost.seconds:9.0%}"
        )
    print(f"\n2. the schedule, costliest first onto {args.slots} places (epoch times from 1)")
    for preset in ("paper", "published"):
        spec = GridSpec(name=preset, **PRESETS[preset])
        grouped = packs(plan(spec), 1)
        costs = {g.pack_id: g.epochs * per_epoch[g.members[0].config.arch] for g in grouped}
        order = sorted(grouped, key=lambda g: -costs[g.pack_id])
        s = Schedule(order, costs, args.slots, per_epoch)
        worst = makespan([], [costs[g.pack_id] for g in order[::-1]], args.slots)
        print(
            f"{preset:10} {len(grouped):2} trainings: {s.seconds / 3600:5.2f} h against the ideal "
            f"{s.ideal / 3600:5.2f} h ({s.seconds / s.ideal:.3f}x; cheapest first would take {worst / s.ideal:.3f}x)"
        )


if __name__ == "__main__":
    main()
