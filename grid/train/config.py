"""`TrainConfig`: one training's typed, validated, serialisable configuration."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import models
from grid.train.recipes import RECIPES, Recipe

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    activation: str
    recipe: str = "paper"
    seed: int = 0
    epochs: int = 10
    batch_size: int | None = None  # None: the recipe's
    lr: float | None = None  # None: the recipe's
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    checkpoint_every: int = 10
    val_size: int = 10_000
    split_seed: int = 0
    max_train_images: int | None = None
    max_eval_images: int | None = None
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default

    def __post_init__(self) -> None:
        _check_choice("arch", self.arch, models.ARCHS)
        _check_choice("activation", self.activation, models.ACTIVATIONS)
        _check_choice("recipe", self.recipe, RECIPES)
        _check_choice("device", self.device, DEVICES)
        for name, low in _INT_RANGES.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError(f"--{name.replace('_', '-')} must be an integer of at least {low}, not {value!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive finite number, not {self.lr!r}")

    @property
    def recipe_spec(self) -> Recipe:
        return RECIPES[self.recipe]

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or self.recipe_spec.batch_size

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.recipe_spec.lr

    @property
    def training_id(self) -> str:
        """Names what is trained, not where or how fast: equal ids train the same, so checkpoints are shared.

        `-e{epochs}` only when the recipe depends on the total epochs: otherwise a k-epoch training is a
        prefix of an N-epoch one and both share a folder. Overrides of the defaults get a suffix each.
        """
        parts = [self.arch, self.activation, self.recipe, f"s{self.seed}"]
        if self.recipe_spec.depends_on_total_epochs:
            parts.append(f"e{self.epochs}")
        for field, tag in (
            ("batch_size", "b"),
            ("lr", "lr"),
            ("val_size", "val"),
            ("split_seed", "split"),
            ("max_train_images", "ntrain"),
            ("max_eval_images", "neval"),
        ):
            value = getattr(self, field)
            if value != _DEFAULTS[field]:
                parts.append(f"{tag}{value:g}" if isinstance(value, float) else f"{tag}{value}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


# The smallest value of each integer setting (None, where allowed, means the recipe's or the data's own).
_INT_RANGES = {
    "epochs": 1,
    "checkpoint_every": 1,
    "batch_size": 1,
    "threads": 1,
    "val_size": 1,
    "max_train_images": 1,
    "max_eval_images": 1,
    "seed": 0,
    "split_seed": 0,
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
