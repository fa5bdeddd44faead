"""torchvision's ImageNet ResNet-18 with 10 outputs, as the ResNet notebook used it (11,181,642 params)."""

from torch import nn
from torchvision.models import resnet18 as tv_resnet18

from models.activations import ActivationFactory, swap_activations


def resnet18(act: ActivationFactory) -> nn.Module:
    return swap_activations(tv_resnet18(num_classes=10), act)
