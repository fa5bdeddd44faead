"""models/: the paper's architectures, their parameter counts, and the activation swap."""

import functools

import pytest
import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18

import models

PARAMS = {"baseline": 62_006, "improved": 1_276_234, "resnet18": 11_181_642}
ACTIVATION_TYPE = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "swish": nn.SiLU}


@functools.cache
def built(arch: str, activation: str) -> nn.Module:
    """Each model built once (resnet18's init is slow on a busy CPU); tests only read them."""
    torch.manual_seed(0)
    return models.build(arch, activation).eval()


def activations_in(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Tanh))]


@pytest.mark.parametrize("arch", sorted(PARAMS))
@pytest.mark.parametrize("activation", sorted(ACTIVATION_TYPE))
def test_parameter_counts_and_logits(arch: str, activation: str) -> None:
    model = built(arch, activation)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("arch", sorted(PARAMS))
@pytest.mark.parametrize("activation", ["leaky_relu", "swish"])
def test_every_activation_is_swapped(arch: str, activation: str) -> None:
    relu_count = len(activations_in(built(arch, "relu")))
    found = activations_in(built(arch, activation))
    assert relu_count > 0 and len(found) == relu_count
    assert all(type(m) is ACTIVATION_TYPE[activation] for m in found), "an nn.ReLU (or other) survived"
    if activation == "leaky_relu":
        assert all(m.negative_slope == 0.01 for m in found)


def test_swapped_activation_is_used_in_forward() -> None:
    """resnet18 calls its activation modules (torchvision's BasicBlock reuses `self.relu`): the swap must reach
    every call site, so the logits change with the activation while the weights stay the same."""
    relu, swish = built("resnet18", "relu"), built("resnet18", "swish")
    x = torch.randn(2, 3, 32, 32)
    weights = zip(relu.state_dict().values(), swish.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)
    with torch.no_grad():
        assert not torch.allclose(relu(x), swish(x))


def test_resnet18_is_torchvisions() -> None:
    ours = built("resnet18", "relu").state_dict()
    theirs = tv_resnet18(num_classes=10).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="baseline, improved, resnet18"):
        models.build("vgg", "relu")
    with pytest.raises(ValueError, match="relu, leaky_relu, swish"):
        models.build("baseline", "gelu")


def test_a_new_activation_is_one_registry_entry(monkeypatch) -> None:
    monkeypatch.setitem(models.ACTIVATIONS, "gelu", nn.GELU)
    found = activations_in(models.build("resnet18", "gelu"))
    assert found and all(type(m) is nn.GELU for m in found)


@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_forward_flops_table_is_measured(arch: str) -> None:
    """The grid orders trainings by FORWARD_MFLOPS: it must be each model's real cost, and every arch has one."""
    from torch.utils.flop_counter import FlopCounterMode

    model = models.build(arch, "relu").eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    assert models.FORWARD_MFLOPS[arch] == pytest.approx(counter.get_total_flops() / 1e6, rel=0.01)
