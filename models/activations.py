"""Activation registry: name -> factory of a fresh activation module."""

from collections.abc import Callable

from torch import nn

ActivationFactory = Callable[[], nn.Module]

ACTIVATIONS: dict[str, ActivationFactory] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.01),  # the paper's slope (PyTorch's default)
    "swish": nn.SiLU,  # x * sigmoid(x)
}

# Every module type some registered factory builds: what `swap_activations` replaces.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple({type(make()) for make in ACTIVATIONS.values()})


def swap_activations(model: nn.Module, make: ActivationFactory) -> nn.Module:
    """Replace, in place, every activation module in `model`'s tree by a fresh `make()`; returns `model`.

    A module reused at several call sites (torchvision's BasicBlock calls `self.relu` twice) is one
    attribute, so one replacement covers all its uses.
    """
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATION_TYPES):
                setattr(parent, name, make())
    return model
