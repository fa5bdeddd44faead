"""Images kept on the training's device as uint8, and the per-batch ops done there (no per-step host work)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class DeviceSplit:
    images: Tensor  # uint8 [N, 3, 32, 32]: a quarter of float32's memory, so the whole set stays resident
    labels: Tensor  # int64 [N]

    @classmethod
    def of(cls, split, device: torch.device) -> DeviceSplit:
        """`split` is a `data.Split` (CPU tensors)."""
        return cls(split.images.to(device).contiguous(), split.labels.to(device, torch.int64))

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass(frozen=True)
class ResidentData:
    """A `data.Cifar10`'s three splits placed on one device, once: trainings that share the device (a pack)
    share this instead of each placing its own copy."""

    train: DeviceSplit
    val: DeviceSplit
    test: DeviceSplit
    classes: tuple[str, ...]
    test_ids: list[str]

    @classmethod
    def of(cls, data, device: torch.device) -> ResidentData:
        """`data` is a `data.Cifar10`."""
        train, val, test = (DeviceSplit.of(s, device) for s in (data.train, data.val, data.test))
        return cls(train, val, test, tuple(data.classes), list(data.test.ids))

    @property
    def device(self) -> torch.device:
        return self.train.images.device


class Normalize:
    """uint8 pixels -> the protocol's float input: scale to [0, 1], then (x - mean) / std per channel.

    Same op order as the notebooks' ToTensor + Normalize, so the inputs match theirs to the last bit.
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        channels_last: bool = False,
    ) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: Tensor) -> Tensor:
        x = images.to(dtype=torch.float32, memory_format=self.memory_format)
        return x.div_(255).sub_(self.mean).div_(self.std)


def random_crop_flip(images: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop after zero padding `pad` and random horizontal flip of a uint8 batch, as one gather.

    Equals torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip per image, but batched on the device
    and drawn from `generator` (which must live on the images' device).
    """
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # [B, H+2p, W+2p, C]
    dy = torch.randint(0, 2 * pad + 1, (b, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), device=device, generator=generator)
    flip = torch.rand((b, 1), device=device, generator=generator) < 0.5
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    cols = torch.where(flip, cols.flip(1), cols)  # a flip is the crop's columns read right to left
    batch = torch.arange(b, device=device).view(b, 1, 1)
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [B, C, H, W]
