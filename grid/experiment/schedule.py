"""The order the grid starts its trials in, and how long that order takes.

Tune starts the trials in the order given, each as soon as one of `slots` places (cores, or GPU shares) is
free: list scheduling. Costliest first (longest processing time first) keeps every place busy to the end,
within 4/3 of the best possible schedule, and here within a few percent of the ideal (total work / places)
once the grid has more long trainings than places (`python bench/bench_schedule.py`). The costs are the
trainings' epochs left x their architecture's seconds per epoch, measured on this machine
(grid.train.estimate) where the trainings run on its CPU; elsewhere forward FLOPs rank them, and the time is
known once the trainings report their step rates (grid.experiment.eta).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from dataclasses import dataclass

import models
from grid.experiment.plan import PlannedPack, PlannedTraining
from grid.experiment.spec import GridSpec


def makespan(running: Sequence[float], waiting: Sequence[float], slots: int) -> float:
    """When the last training ends: the `running` ones after their seconds left, each `waiting` one (in the
    order given) started on the first place to free up."""
    ends = list(running) + [0.0] * max(0, slots - len(running))
    heapq.heapify(ends)
    for seconds in waiting:
        heapq.heappush(ends, heapq.heappop(ends) + seconds)
    return max(ends, default=0.0)


@dataclass(frozen=True)
class Schedule:
    order: list[PlannedPack]  # the order Tune starts them in
    cost: dict[str, float]  # pack id -> its seconds left (in FLOPs units where `measured` is empty)
    slots: int
    measured: dict[str, float]  # arch -> seconds per epoch on this machine; empty when not measured here

    @property
    def seconds(self) -> float | None:
        """The schedule's wall time; None when the costs are not measured seconds."""
        return makespan([], [self.cost[p.pack_id] for p in self.order], self.slots) if self.measured else None

    @property
    def ideal(self) -> float:
        """The total work spread evenly over every place: no schedule does better."""
        return sum(self.cost.values()) / self.slots

    def describe(self) -> str:
        """One line: the schedule and, where measured, its estimated time."""
        unit = "training" if all(len(p.members) == 1 for p in self.order) else "trial"
        head = f"schedule: {len(self.order)} {unit}s, {self.slots} at a time, costliest first"
        if self.seconds is None:
            return head + "; time: known once the first trainings report their step rates"
        per_epoch = ", ".join(f"{arch} {s:.0f} s" for arch, s in self.measured.items())
        return (
            f"{head}; estimated {_hours(self.seconds)} on this machine (ideal {_hours(self.ideal)} = total work / "
            f"{self.slots}; an epoch measured here: {per_epoch})"
        )


def schedule(spec: GridSpec, pending: list[PlannedPack], done: dict[str, int], address: str | None) -> Schedule:
    """The pending packs, costliest first (`done`: epochs each training already has). A local grid on the CPU
    times an epoch of each architecture here first (a few seconds); a GPU or a cluster (`address`) ranks them by
    forward FLOPs, and its places are Ray's to count."""
    from grid.train.training import resolve_device

    on_cpu = not address and resolve_device(spec.device).type == "cpu"
    slots = max(1, (os.cpu_count() or 1) // (spec.workers * spec.cpus_per_worker)) if on_cpu else 1
    measured = _epoch_seconds(pending) if on_cpu else {}
    per_epoch = measured or models.FORWARD_MFLOPS

    def cost(p: PlannedTraining) -> float:
        return (p.config.epochs - done.get(p.training_id, 0)) * per_epoch.get(p.config.arch, 1.0)

    costs = {g.pack_id: sum(cost(p) for p in g.members) for g in pending}
    order = sorted(pending, key=lambda g: (-costs[g.pack_id], g.pack_id))
    return Schedule(order, costs, slots, measured)


def _epoch_seconds(pending: list[PlannedPack]) -> dict[str, float]:
    """Seconds per epoch of each architecture in `pending`, measured on this machine's CPU."""
    from grid.train.estimate import epoch_cost

    first: dict[str, PlannedTraining] = {}
    for g in pending:
        for p in g.members:
            first.setdefault(p.config.arch, p)
    return {arch: epoch_cost(p.config, device="cpu").seconds for arch, p in first.items()}


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
