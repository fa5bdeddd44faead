"""The Improve notebook's model: three conv blocks and a dropout MLP head (1,276,234 parameters)."""

from torch import nn

from models.activations import ActivationFactory
from models.registry import Architecture


def _conv_block(c_in: int, c_out: int, act: ActivationFactory) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), act(), nn.MaxPool2d(2)]


def improved(act: ActivationFactory) -> nn.Module:
    return nn.Sequential(
        *_conv_block(3, 32, act),
        *_conv_block(32, 64, act),
        *_conv_block(64, 128, act),
        nn.Flatten(),
        nn.Linear(128 * 4 * 4, 512),
        act(),
        nn.Dropout(0.5),
        nn.Linear(512, 256),
        act(),
        nn.Linear(256, 10),
    )


ARCHITECTURE = Architecture("improved", improved, forward_mflops=23.0, cpu_channels_last=True)
