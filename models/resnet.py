"""torchvision's ImageNet ResNet-18 with 10 outputs, as the ResNet notebook used it (11,181,642 params)."""

from torch import nn

from models.activations import ActivationFactory, swap_activations
from models.registry import Architecture


def resnet18(act: ActivationFactory) -> nn.Module:
    # Imported here: torchvision.models pulls in torch._dynamo, seconds that every Ray worker of a baseline
    # or improved training would otherwise pay for nothing (docs/design.md, "Measured choices").
    from torchvision.models import resnet18 as tv_resnet18

    return swap_activations(tv_resnet18(num_classes=10), act)


ARCHITECTURE = Architecture("resnet18", resnet18, forward_mflops=74.0)
