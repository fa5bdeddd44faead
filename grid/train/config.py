"""`TrainSettings` (how every training of a grid trains) and `TrainConfig` (one training): typed, validated,
serialisable, and the one source of their command-line flags (grid.settings)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import models
from grid import settings
from grid.settings import setting, validate
from grid.train.recipes import RECIPES, Recipe

if TYPE_CHECKING:
    import data

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """What a grid's trainings share; `GridSpec` and `TrainConfig` both extend it, so each is declared once."""

    recipe: str = setting("paper", help="the training recipe (paper: the paper's protocol exactly)", choices=RECIPES)
    lr: float | None = setting(None, help="override the recipe's learning rate", positive=True, id_tag="lr")
    batch_size: int | None = setting(None, help="override the recipe's batch size", min=1, id_tag="b")
    val_size: int = setting(10_000, help="validation images split off the 50,000 training images", min=1, id_tag="val")
    split_seed: int = setting(0, help="seed of the train/validation split (0: the paper's)", min=0, id_tag="split")
    max_train_images: int | None = setting(
        None, help="a seeded class-stratified subset of the train split", min=1, id_tag="ntrain"
    )
    max_eval_images: int | None = setting(
        None, help="a seeded class-stratified subset of val and test", min=1, id_tag="neval"
    )
    device: str = setting("auto", help="auto: CUDA when present, else the CPU", choices=DEVICES)
    checkpoint_every: int = setting(10, help="epochs between checkpoints (and at every epoch cell)", min=1)

    def __post_init__(self) -> None:
        validate(self, self._error)

    _error = ValueError  # GridSpec raises its own GridError

    def load_data(self, uri: str) -> data.Cifar10:
        """CIFAR-10 from the shards at `uri` as these settings train on it (split, subsets)."""
        import data  # not at import time: configs are checked before torch's data stack loads

        return data.load(
            uri,
            val_size=self.val_size,
            split_seed=self.split_seed,
            max_train_images=self.max_train_images,
            max_eval_images=self.max_eval_images,
        )


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainSettings):
    arch: str = setting(help="the architecture", choices=lambda: models.ARCHS)
    activation: str = setting(help="the activation in every layer", choices=lambda: models.ACTIVATIONS)
    seed: int = setting(0, help="seed of the initial weights, shuffles and dropout", min=0)
    epochs: int = setting(10, help="epochs to train", min=1)
    threads: int | None = setting(None, help="torch threads (default: torch's)", min=1)

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
        for f in dataclasses.fields(TrainSettings):
            tag, value = settings.of(f).id_tag, getattr(self, f.name)
            if tag and value != f.default:
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
