"""How long a training takes on this machine, measured rather than guessed: a real `Training` of the config's
architecture and recipe runs two short epochs on random images of CIFAR-10's shape, and the second epoch's
training steps and evaluation are scaled to the real split sizes. About 1-3 s per architecture on a 2-core CPU.

The grid orders its trainings costliest first by these figures and simulates its schedule with them (the ETA of
`--dry-run` and of a run's start), until the trainings' own step rates replace them (grid.experiment.eta).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from grid.train.config import TrainConfig

CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
STEPS = 16  # timed training steps per architecture (after an epoch of warm-up)
EVAL_IMAGES = 96  # per evaluation split: three of the notebooks' test batches of 32


@dataclass(frozen=True)
class EpochCost:
    """Seconds of one epoch of a training on this machine: its training steps and its evaluation."""

    train_s: float
    eval_s: float

    @property
    def seconds(self) -> float:
        return self.train_s + self.eval_s


def split_sizes(cfg: TrainConfig) -> tuple[int, float]:
    """(training images, mean images of the two evaluation splits) the config trains and evaluates on."""
    cap = cfg.max_eval_images or CIFAR_TRAIN
    train = min(CIFAR_TRAIN - cfg.val_size, cfg.max_train_images or CIFAR_TRAIN)
    return train, (min(cfg.val_size, cap) + min(CIFAR_TEST, cap)) / 2


def epoch_cost(cfg: TrainConfig, device: str = "cpu") -> EpochCost:
    """One epoch of `cfg` on `device`, measured with the real training code (the torch thread count is the
    config's, and is restored after)."""
    import data  # the splits' types only: nothing is read
    from grid.train.training import Training

    batch = cfg.effective_batch_size
    # The recipe's own lr: speed does not depend on it, and a grid's --lr 1e30 must not diverge the probe.
    probe = dataclasses.replace(cfg, epochs=2, device=device, lr=None)
    generator = torch.Generator().manual_seed(0)

    def split(n: int, prefix: str) -> data.Split:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        return data.Split(images, labels, [f"{prefix}{i}" for i in range(n)])

    fake = data.Cifar10(
        split(STEPS * batch, "t"), split(EVAL_IMAGES, "v"), split(EVAL_IMAGES, "e"), data.CLASSES, "", "estimate"
    )
    threads = torch.get_num_threads()
    try:
        training = Training(probe, fake)
        training.run_epoch()  # warm-up: allocator, kernels chosen, CUDA graphs captured
        measured = training.run_epoch()
    finally:
        torch.set_num_threads(threads)
    train_images, eval_images = split_sizes(cfg)
    steps = math.ceil(train_images / batch)
    return EpochCost(
        train_s=measured["epoch_seconds"] * steps / STEPS,
        eval_s=measured["eval_seconds"] * eval_images / EVAL_IMAGES,
    )
