"""Architecture registry and `build`: a new architecture or activation is one entry."""

from collections.abc import Callable

from torch import nn

from models.activations import ACTIVATIONS, ActivationFactory
from models.baseline import baseline
from models.improved import improved
from models.resnet import resnet18

ARCHS: dict[str, Callable[[ActivationFactory], nn.Module]] = {
    "baseline": baseline,
    "improved": improved,
    "resnet18": resnet18,
}

# Forward FLOPs per 32x32 image (torch.utils.flop_counter, eval mode; a test keeps them true): the grid
# starts its costliest trainings first, so that the short ones fill the end instead of one long one.
FORWARD_MFLOPS: dict[str, float] = {"baseline": 1.30, "improved": 23.0, "resnet18": 74.0}


def build(arch: str, activation: str) -> nn.Module:
    """A freshly initialised `arch` whose every activation is `activation` (uses the global torch RNG)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    return ARCHS[arch](ACTIVATIONS[activation])
