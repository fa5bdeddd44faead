"""`GridSpec`: what a grid trains (the axes) and with what resources, validated before Ray starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import models
from grid.train.recipes import RECIPES

PAPER_EPOCHS = tuple(range(10, 101, 10))


class GridError(ValueError):
    """An invalid grid: refused before Ray starts, with a one-line message listing the valid choices."""


@dataclass(frozen=True)
class GridSpec:
    name: str
    archs: tuple[str, ...] = ("baseline", "improved", "resnet18")
    activations: tuple[str, ...] = ("relu", "leaky_relu", "swish")
    epochs: tuple[int, ...] = PAPER_EPOCHS
    seeds: tuple[int, ...] = (0,)
    recipe: str = "paper"
    lr: float | None = None  # None: the recipe's (an override, e.g. to provoke divergence in fault tests)
    batch_size: int | None = None
    val_size: int = 10_000  # validation images taken from the 50,000 training images (the paper's split)
    max_train_images: int | None = None
    max_eval_images: int | None = None
    workers: int = 1  # Ray Train workers (DDP ranks) per training
    cpus_per_worker: int = 1
    gpus_per_trial: float | None = None  # None: the default fraction per architecture when GPUs exist
    device: str = "auto"
    checkpoint_every: int = 10
    max_failures: int = 2  # Ray Train restarts of a training after a worker dies
    pack: int | None = None  # the most trainings one trial trains at once; None: per device (plan.default_pack)
    extras: dict[str, Any] = field(default_factory=dict)  # free-form: data uri, manifest sha, code version

    def __post_init__(self) -> None:
        _check_axis("arch", self.archs, models.ARCHS)
        _check_axis("activation", self.activations, models.ACTIVATIONS)
        if self.recipe not in RECIPES:
            raise GridError(f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if not self.epochs:
            raise GridError("the epochs axis is empty; give at least one epoch count, e.g. --epochs 10")
        if not self.seeds:
            raise GridError("the seeds axis is empty; give at least one seed, e.g. --seeds 0")
        bad = [e for e in self.epochs if not isinstance(e, int) or e <= 0]
        if bad:
            raise GridError(f"epochs must be positive integers, got {bad}")
        if self.val_size < 1:
            raise GridError(f"--val-size must be at least 1, got {self.val_size}")
        if self.workers < 1 or self.cpus_per_worker < 1:
            raise GridError("--workers and --cpus-per-worker must be at least 1")
        if self.pack is not None and (not isinstance(self.pack, int) or self.pack < 1):
            raise GridError(f"--pack must be a positive integer, got {self.pack!r}")
        if self.workers > 1 and (self.pack or 1) > 1:
            raise GridError("--pack > 1 with --workers > 1: a pack trains on one worker; use --pack 1 for DDP")
        if self.gpus_per_trial is not None:
            if not 0 <= self.gpus_per_trial <= 1:
                raise GridError(f"--gpus-per-trial must be in [0, 1], got {self.gpus_per_trial}")
            if self.workers > 1 and 0 < self.gpus_per_trial < 0.5:
                # Ray issue 48012: fractional GPUs below 0.5 across several DDP workers can land two ranks
                # of one training on the same GPU share and deadlock NCCL.
                raise GridError("with --workers > 1, --gpus-per-trial must be at least 0.5 (Ray issue 48012)")
        if not self.name or any(c in self.name for c in "/\\") or self.name in (".", ".."):
            raise GridError(f"invalid grid name {self.name!r}: use a plain folder name")

    @property
    def cells(self) -> int:
        return len(self.archs) * len(self.activations) * len(self.epochs) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**d)


def _check_axis(name: str, values: tuple[str, ...], registry) -> None:
    if not values:
        raise GridError(f"the {name} axis is empty; choose from {', '.join(registry)}")
    unknown = [v for v in values if v not in registry]
    if unknown:
        raise GridError(f"unknown {name} {', '.join(map(repr, unknown))}; choose from {', '.join(registry)}")


# A grid that finishes within 3 minutes on a 2-core CPU: the cheapest architecture, every activation,
# a stratified subset of the data, and epoch cells that still exercise prefix sharing.
SMOKE = dict(
    archs=("baseline",),
    activations=("relu", "leaky_relu", "swish"),
    epochs=(1, 2, 3),
    max_train_images=6000,
    max_eval_images=1000,
    checkpoint_every=1,
)
PRESETS: dict[str, dict[str, Any]] = {"paper": {}, "smoke": SMOKE}
