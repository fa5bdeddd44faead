"""The paper's first model (LeNet-style, 62,006 parameters)."""

from torch import nn

from models.activations import ActivationFactory
from models.registry import Architecture


def baseline(act: ActivationFactory) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 5),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        act(),
        nn.Linear(120, 84),
        act(),
        nn.Linear(84, 10),
    )


ARCHITECTURE = Architecture("baseline", baseline, forward_mflops=1.30, cpu_channels_last=True)
