"""torchvision's ImageNet ResNet-18 with 10 outputs, as the ResNet notebook used it (11,181,642 params)."""

from torch import nn

from models.activations import ActivationFactory, swap_activations


def resnet18(act: ActivationFactory) -> nn.Module:
    # Imported here: torchvision.models pulls in torch._dynamo (2-3 s on a small CPU), which every Ray
    # worker of a baseline or improved training would otherwise pay for nothing.
    from torchvision.models import resnet18 as tv_resnet18

    return swap_activations(tv_resnet18(num_classes=10), act)
