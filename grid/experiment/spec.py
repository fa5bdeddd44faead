"""`GridSpec`: what a grid trains (the axes) and with what resources, validated before Ray starts."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import models
from grid.settings import setting
from grid.train.config import TrainSettings

PAPER_EPOCHS = tuple(range(10, 101, 10))
AXIS = {"unique": True, "nonempty": True}  # an axis is a non-empty set of values


@dataclass(frozen=True)
class Part:
    """A product of axis values: the cells of a selection that is not one product of the grid's axes."""

    archs: tuple[str, ...]
    activations: tuple[str, ...]
    epochs: tuple[int, ...]

    def __contains__(self, cell: tuple[str, str, int]) -> bool:
        arch, activation, epochs = cell
        return arch in self.archs and activation in self.activations and epochs in self.epochs


# Which cells of the axes a grid trains (--select). `published`: those the paper publishes a value or a finding
# for (grid/report/published.py, grid/report/verdict.py; tests/test_plan.py keeps the two in step): the
# baseline's sweeps with every activation (Tables 3-1/3-2, "peaks early", "leaky_relu early"), improved relu's
# sweep to 100 (Table 3-3, "keeps rising") and resnet18 relu at 10 epochs (Table 3-4).
SELECTIONS: dict[str, tuple[Part, ...] | None] = {
    "all": None,
    "published": (
        Part(("baseline",), ("relu", "leaky_relu", "swish"), PAPER_EPOCHS),
        Part(("improved",), ("relu",), PAPER_EPOCHS),
        Part(("resnet18",), ("relu",), (10,)),
    ),
}


class GridError(ValueError):
    """An invalid grid: refused before Ray starts, with a one-line message listing the valid choices."""


@dataclass(frozen=True, kw_only=True)
class GridSpec(TrainSettings):
    """The axes (arch x activation x epochs x seed) over the `TrainSettings` every training shares, and the
    resources each training gets; grid.json records it."""

    name: str = setting(help="the run's name (default: PRESET-TIMESTAMP, or the --out folder's name)")
    archs: tuple[str, ...] = setting(
        ("baseline", "improved", "resnet18"), help="architectures", choices=lambda: models.ARCHS, **AXIS
    )
    activations: tuple[str, ...] = setting(
        ("relu", "leaky_relu", "swish"), help="activations", choices=lambda: models.ACTIVATIONS, **AXIS
    )
    epochs: tuple[int, ...] = setting(PAPER_EPOCHS, help="epoch counts (the cells), e.g. 10 20 30", min=1, **AXIS)
    seeds: tuple[int, ...] = setting((0,), help="seeds, e.g. 0 1 2", min=0, **AXIS)
    select: str = setting(
        "all",
        help="which cells of the axes: all, or those the paper publishes a value or finding for",
        choices=SELECTIONS,
    )
    workers: int = setting(1, help="Ray Train workers (DDP ranks) per training", min=1)
    cpus_per_worker: int = setting(1, help="CPUs (and torch threads) per worker", min=1)
    gpus_per_trial: float | None = setting(
        None, help="GPU share per training (default: per architecture, grid.experiment.tune)", min=0, max=1
    )
    max_failures: int = setting(2, help="restarts of a training whose worker died", min=0)
    pack: int = setting(
        1,
        help="the most trainings one trial trains together on its device (default 1: a trial per training, "
        "costliest first onto each free core or GPU share; larger packs pay Ray's start-up once, README)",
        min=1,
    )
    extras: dict[str, Any] = field(default_factory=dict)  # recorded by the run: data uri, manifest sha, code version

    _error = GridError

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gpus_per_trial is not None and self.workers > 1 and 0 < self.gpus_per_trial < 0.5:
            # Ray issue 48012: fractional GPUs below 0.5 across several DDP workers can land two ranks of one
            # training on the same GPU share and deadlock NCCL.
            raise GridError("with --workers > 1, --gpus-per-trial must be at least 0.5 (Ray issue 48012)")
        if self.workers > 1 and self.pack > 1:
            raise GridError("--pack > 1 with --workers > 1: a pack trains on one worker; use --pack 1 for DDP")
        if not self.name or any(c in self.name for c in "/\\") or self.name in (".", ".."):
            raise GridError(f"invalid grid name {self.name!r}: use a plain folder name")
        if not self.cells:
            raise GridError(f"--select {self.select}: none of its cells is in the axes given")

    def selected(self, arch: str, activation: str, epochs: int) -> bool:
        parts = SELECTIONS[self.select]
        return parts is None or any((arch, activation, epochs) in part for part in parts)

    @property
    def cells(self) -> int:
        product = itertools.product(self.archs, self.activations, self.epochs)
        return sum(self.selected(*cell) for cell in product) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**d)


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
# Every value and finding the paper publishes, over three seeds: 5 trainings a seed instead of the paper grid's 9.
PUBLISHED = dict(select="published", seeds=(0, 1, 2))
PRESETS: dict[str, dict[str, Any]] = {"paper": {}, "smoke": SMOKE, "published": PUBLISHED}
