"""Training recipes: everything about *how* a model is trained, apart from the model and the data.

`paper` is the paper's protocol exactly; `modern` is a stronger recipe beside it, never replacing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR

# The protocol's per-channel normalisation of [0, 1] pixels (the notebooks' transforms.Normalize).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


@dataclass(frozen=True)
class Recipe:
    name: str
    batch_size: int
    lr: float  # the constant lr, or OneCycle's peak lr
    momentum: float
    nesterov: bool = False
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    schedule: str = "constant"  # "constant" | "onecycle" (stepped once per optimizer step)
    augment: bool = False  # random crop (zero padding 4) and horizontal flip, on the device
    bf16_autocast: bool = False  # CUDA only
    channels_last: bool = False  # CUDA only (the CPU's layout is the architecture's: models.CPU_CHANNELS_LAST)
    mean: tuple[float, float, float] = CIFAR_MEAN
    std: tuple[float, float, float] = CIFAR_STD

    @property
    def depends_on_total_epochs(self) -> bool:
        """True when a k-epoch run is NOT the prefix of an N-epoch run with the same seed."""
        return self.schedule != "constant"

    def optimizer(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.SGD:
        # foreach: one multi-tensor kernel per update instead of a Python loop over parameters.
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            foreach=True,
        )

    def scheduler(self, optimizer: torch.optim.Optimizer, lr: float, total_steps: int) -> LRScheduler | None:
        if self.schedule == "constant":
            return None
        if self.schedule == "onecycle":
            return OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.25)
        raise ValueError(f"recipe {self.name!r}: unknown schedule {self.schedule!r}")


RECIPES: dict[str, Recipe] = {
    # SGD lr 0.001 momentum 0.9, batch 32, cross-entropy, no augmentation, no schedule, no weight decay.
    "paper": Recipe(name="paper", batch_size=32, lr=0.001, momentum=0.9),
    "modern": Recipe(
        name="modern",
        batch_size=256,
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        label_smoothing=0.1,
        schedule="onecycle",
        augment=True,
        bf16_autocast=True,
        channels_last=True,
    ),
}
