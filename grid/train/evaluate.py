"""Evaluation passes. Each returns device tensors (sums, counts); the caller syncs once for all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grid.train.cuda_graph import GraphedStep
from grid.train.device_data import DeviceSplit

EVAL_BATCH = 500  # large batches keep evaluation a small part of an epoch
# On the CPU, glibc maps every allocation over 32 MiB afresh and faults its pages in again on each batch, so
# evaluation batches keep activations below this (docs/design.md, "Measured choices").
CPU_ACTIVATION_BYTES = 24 * 2**20
PUBLISHED_BATCH = 32  # the notebooks' test loader
Forward = Callable[[Tensor], Tensor]  # uint8 images -> logits


def eval_batch_size(forward: Forward, model: nn.Module, image: Tensor) -> int:
    """EVAL_BATCH; on the CPU, fewer where an activation of that many images would exceed CPU_ACTIVATION_BYTES.
    `image`: one uint8 image [1, 3, H, W] on the device, which `forward` takes through `model`."""
    if image.device.type != "cpu":
        return EVAL_BATCH
    return max(1, min(EVAL_BATCH, CPU_ACTIVATION_BYTES // largest_activation_bytes(forward, model, image)))


def largest_activation_bytes(forward: Forward, model: nn.Module, image: Tensor) -> int:
    """The largest output of any module of `model` in an eval-mode `forward(image)` (which draws no RNG and
    changes no state); the model's mode is restored."""
    sizes = [image.nelement() * 4]  # the normalised float32 input

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.nelement() * output.element_size())

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with _model_state_restored(model), torch.inference_mode():
            model.eval()
            forward(image)
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)


@torch.inference_mode()
def loss_and_correct(forward: Forward, split: DeviceSplit, batch: int = EVAL_BATCH) -> Tensor:
    """[cross-entropy sum, correct count] over `split`, float64, on the device; caller sets the mode."""
    totals = torch.zeros(2, dtype=torch.float64, device=split.labels.device)
    for start in range(0, len(split), batch):
        logits = forward(split.images[start : start + batch]).float()
        labels = split.labels[start : start + batch]
        totals[0] += F.cross_entropy(logits, labels, reduction="sum")
        totals[1] += (logits.argmax(1) == labels).sum()
    return totals


@torch.inference_mode()
def predictions(forward: Forward, images: Tensor, batch: int = EVAL_BATCH) -> Tensor:
    return torch.cat([forward(images[s : s + batch]).argmax(1) for s in range(0, images.shape[0], batch)])


def depends_on_mode(model: nn.Module) -> bool:
    """Whether train mode computes a different function than eval mode: dropout, or a norm layer that uses
    batch statistics in training. Without such layers the notebooks' train-mode pass over the test set gives
    the eval-mode predictions, so the training reuses those instead of a second pass."""
    modal = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
    return any(isinstance(m, modal) for m in model.modules())


class PublishedPass:
    """Correct predictions the notebooks' way: train mode (dropout on, BatchNorm on batch statistics), over
    `batches` of indices (32 each, in a fixed mixed order). Leaves no trace: the model's mode and buffers
    (BatchNorm running stats, num_batches_tracked) are restored, and dropout draws from RNG state seeded with
    the call's `seed` and forked away, so the training's RNG stream is neither consumed nor consulted.

    `graphed` (CUDA only): each full batch is a CUDA-graph replay: eager, the 313 batches of 32 are thousands
    of small kernel launches that cost more than the eval-mode passes (README, "How long it takes"). Dropout
    draws from the default CUDA generator, which graphs handle, so a replay consumes the seeded stream as an
    eager batch would.
    """

    def __init__(
        self, model: nn.Module, forward: Forward, split: DeviceSplit, batches: Sequence[Tensor], graphed: bool = False
    ) -> None:
        self.model, self.forward, self.split, self.batches = model, forward, split, batches
        self.device = split.labels.device
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)  # outlives a captured graph
        self.count: Callable[[Tensor], None] = self._count
        if graphed:
            self.count = GraphedStep(self._count, PUBLISHED_BATCH, self.device)

    def __call__(self, seed: int) -> Tensor:
        """The number of correct test predictions, a device tensor (no host sync)."""
        self.correct.zero_()
        with _model_state_restored(self.model), _rng_forked(self.device, seed), torch.no_grad():
            self.model.train()
            for indices in self.batches:
                self.count(indices)
        return self.correct.clone()

    def _count(self, indices: Tensor) -> None:
        logits = self.forward(self.split.images[indices])
        self.correct += (logits.argmax(1) == self.split.labels[indices]).sum()


@contextlib.contextmanager
def _model_state_restored(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    saved = [(b, b.clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        model.train(was_training)


@contextlib.contextmanager
def _rng_forked(device: torch.device, seed: int) -> Iterator[None]:
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
