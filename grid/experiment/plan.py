"""From grid cells to trainings.

With a constant learning rate (the `paper` recipe), a k-epoch training is exactly the first k epochs of an
N-epoch training with the same seed (tests/test_training.py proves it bit for bit on the CPU). So the grid
trains each (arch, activation, recipe, seed) once, to the longest epoch count, and reads every epochs-cell
from that training's per-epoch results. A recipe whose schedule depends on the total epochs gets one
training per cell instead.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

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


def plan(spec: GridSpec) -> list[PlannedTraining]:
    share_prefixes = not RECIPES[spec.recipe].depends_on_total_epochs
    epochs = sorted(set(spec.epochs))
    shared = {f.name: getattr(spec, f.name) for f in dataclasses.fields(TrainSettings)}
    trainings = []
    for arch, activation, seed in itertools.product(spec.archs, spec.activations, spec.seeds):
        groups = [tuple(epochs)] if share_prefixes else [(e,) for e in epochs]
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


def describe(spec: GridSpec, trainings: list[PlannedTraining]) -> str:
    """The --dry-run text: cells, the trainings that fill them, and the epochs prefix sharing saves."""
    trained = sum(t.config.epochs for t in trainings)
    naive = len(spec.archs) * len(spec.activations) * len(spec.seeds) * sum(spec.epochs)
    lines = [
        f"grid {spec.name!r}: {spec.cells} cells = {len(spec.archs)} archs x {len(spec.activations)} "
        f"activations x {len(spec.epochs)} epoch counts x {len(spec.seeds)} seeds, recipe {spec.recipe!r}",
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
    return "\n".join(lines)
