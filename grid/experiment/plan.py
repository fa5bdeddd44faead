"""From grid cells to trainings.

With a constant learning rate (the `paper` recipe), a k-epoch training is exactly the first k epochs of an
N-epoch training with the same seed (tests/test_training.py proves it bit for bit on the CPU). So the grid
trains each (arch, activation, recipe, seed) once, to the longest epoch count, and reads every epochs-cell
from that training's per-epoch results. A recipe whose schedule depends on the total epochs gets one
training per cell instead.

Packs: trainings of one recipe and epoch count are grouped, at most `spec.pack` to a pack, so that one trial
trains them together on its device (grid.train.pack) and pays Ray's start-up once for all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from dataclasses import dataclass

import models
from grid.experiment.spec import GridSpec
from grid.train.config import TrainConfig, TrainSettings
from grid.train.recipes import RECIPES


@dataclass(frozen=True)
class PlannedTraining:
    config: TrainConfig
    cells: tuple[int, ...]  # the grid's epoch counts this training's per-epoch results fill

    @property
    def training_id(self) -> str:
        return self.config.training_id


@dataclass(frozen=True)
class PlannedPack:
    """Trainings one trial trains together. `pack_id` names its Tune trial and Ray Train run within the grid: a
    single training's own id (the layout of an unpacked grid), else `packNN-<digest of its members' ids>`."""

    pack_id: str
    members: tuple[PlannedTraining, ...]

    @property
    def epochs(self) -> int:
        return self.members[0].config.epochs

    @property
    def training_ids(self) -> tuple[str, ...]:
        return tuple(m.training_id for m in self.members)


def plan(spec: GridSpec) -> list[PlannedTraining]:
    share_prefixes = not RECIPES[spec.recipe].depends_on_total_epochs
    epochs = sorted(set(spec.epochs))
    shared = {f.name: getattr(spec, f.name) for f in dataclasses.fields(TrainSettings)}
    trainings = []
    for arch, activation, seed in itertools.product(spec.archs, spec.activations, spec.seeds):
        cells = [e for e in epochs if spec.selected(arch, activation, e)]
        if not cells:
            continue
        groups = [tuple(cells)] if share_prefixes else [(e,) for e in cells]
        for cells in groups:
            config = TrainConfig(
                **shared,
                arch=arch,
                activation=activation,
                seed=seed,
                epochs=max(cells),
                threads=spec.cpus_per_worker,
            )
            trainings.append(PlannedTraining(config, cells))
    return trainings


def packs(trainings: list[PlannedTraining], size: int) -> list[PlannedPack]:
    """Groups trainings of one recipe and epoch count into packs of at most `size`, of balanced sizes; within a
    group the members are ordered by architecture, so that a pack mixes architectures only where it must."""
    groups: dict[tuple[str, int], list[PlannedTraining]] = {}
    for t in trainings:
        groups.setdefault((t.config.recipe, t.config.epochs), []).append(t)
    result: list[PlannedPack] = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda t: (list(models.ARCHS).index(t.config.arch), t.training_id))
        count = math.ceil(len(members) / size)
        for k in range(count):
            chunk = tuple(members[len(members) * k // count : len(members) * (k + 1) // count])
            result.append(PlannedPack(_pack_id(len(result), chunk), chunk))
    return result


def _pack_id(index: int, members: tuple[PlannedTraining, ...]) -> str:
    if len(members) == 1:
        return members[0].training_id
    digest = hashlib.sha256("\0".join(m.training_id for m in members).encode()).hexdigest()[:8]
    return f"pack{index:02d}-{digest}"


def describe(spec: GridSpec, trainings: list[PlannedTraining], grouped: list[PlannedPack] | None = None) -> str:
    """The --dry-run text: cells, the trainings that fill them, and the epochs prefix sharing saves."""
    trained = sum(t.config.epochs for t in trainings)
    naive = sum(sum(t.cells) for t in trainings)  # a training per cell
    product = (
        f"{len(spec.archs)} archs x {len(spec.activations)} activations x {len(spec.epochs)} epoch counts x "
        f"{len(spec.seeds)} seeds"
    )
    of = product if spec.select == "all" else f"the {spec.select!r} selection of {product}"
    lines = [
        f"grid {spec.name!r}: {spec.cells} cells = {of}, recipe {spec.recipe!r}",
        f"{len(trainings)} trainings, {trained} epochs in all (one training per cell would take {naive}; "
        f"{naive - trained} epochs saved)",
    ]
    if RECIPES[spec.recipe].depends_on_total_epochs:
        lines.append(f"recipe {spec.recipe!r} schedules on the total epochs: one training per cell, no sharing")
    else:
        lines.append(
            "constant learning rate: each k-epoch cell is read from the first k epochs of one "
            "longer training with the same seed"
        )
    for t in trainings:
        cells = ", ".join(map(str, t.cells))
        lines.append(f"  {t.training_id:<40} {t.config.epochs:>4} epochs -> cells at {cells}")
    if grouped is not None:
        largest = max(len(p.members) for p in grouped)
        lines.append(f"{len(grouped)} trials (packs of at most {largest} trainings trained together on one device):")
        lines += [f"  {p.pack_id:<40} {', '.join(p.training_ids)}" for p in grouped]
    return "\n".join(lines)
