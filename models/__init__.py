"""Model zoo of the paper: `build(arch, activation)` over the `ARCHS` and `ACTIVATIONS` registries."""

from models.activations import ACTIVATIONS, swap_activations
from models.registry import ARCHS, CPU_CHANNELS_LAST, FORWARD_MFLOPS, build

__all__ = ["ACTIVATIONS", "ARCHS", "CPU_CHANNELS_LAST", "FORWARD_MFLOPS", "build", "swap_activations"]
