"""Architecture registry and `build`. A new architecture is one file: `models/<name>.py` defining
`ARCHITECTURE = Architecture(...)`; a new activation is one entry of `models.activations.ACTIVATIONS`."""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from models.activations import ACTIVATIONS, ActivationFactory


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[ActivationFactory], nn.Module]  # a freshly initialised model from the global torch RNG
    # Forward FLOPs per 32x32 image (torch.utils.flop_counter, eval mode; a test keeps it true): the grid
    # starts its costliest trainings first, so that the short ones fill the end instead of one long one.
    forward_mflops: float
    # Trains faster on the CPU in channels_last memory format (docs/design.md, "Measured choices"); the numbers
    # are the same function of the data either way, so this is speed only.
    cpu_channels_last: bool = False


def _discover() -> dict[str, Architecture]:
    """Every module of this package that defines ARCHITECTURE, in module-name order."""
    found: dict[str, Architecture] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        arch = getattr(importlib.import_module(f"models.{info.name}"), "ARCHITECTURE", None)
        if isinstance(arch, Architecture):
            found[arch.name] = arch
    return found


_ARCHITECTURES = _discover()
ARCHS: dict[str, Callable[[ActivationFactory], nn.Module]] = {n: a.build for n, a in _ARCHITECTURES.items()}
FORWARD_MFLOPS: dict[str, float] = {n: a.forward_mflops for n, a in _ARCHITECTURES.items()}
CPU_CHANNELS_LAST: dict[str, bool] = {n: a.cpu_channels_last for n, a in _ARCHITECTURES.items()}


def build(arch: str, activation: str) -> nn.Module:
    """A freshly initialised `arch` whose every activation is `activation` (uses the global torch RNG)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    return ARCHS[arch](ACTIVATIONS[activation])
