"""Horizontal fusion: K models of one architecture trained as one, so a step is one chain of K-times-wider
kernels instead of K chains of small ones (the HFTA idea, here through torch.func).

The members' parameters are stacked ([K, ...] each) and the architecture is called through vmap: convolutions
become grouped convolutions, linear layers batched matrix products, BatchNorm per member (its statistics are
per channel). Each member keeps its own activation: every activation module is replaced by one that selects,
per member, among the activations present (exact: the others' values and gradients are dropped, not mixed in).
SGD over the stacked tensors is elementwise, so it is each member's SGD. Numbers equal the members trained
apart up to float rounding (grouped and plain convolutions sum in other orders); dropout masks are drawn per
member (randomness="different") but not from the members' own streams.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

import models
from grid.train.cuda_graph import GraphedStep
from models.activations import ACTIVATION_TYPES


class SelectedActivation(nn.Module):
    """`fns[code]`(x), with `code` a buffer: stacked, each member under vmap sees its own."""

    def __init__(self, fns: Sequence[nn.Module]) -> None:
        super().__init__()
        self.fns = list(fns)  # stateless activation modules, kept out of the module tree (no state to stack)
        self.register_buffer("code", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        out = self.fns[-1](x)
        for k in range(len(self.fns) - 2, -1, -1):
            out = torch.where(self.code == k, self.fns[k](x), out)
        return out


class FusedModels:
    """`members` (same architecture, any activations) as one vmapped model over stacked copies of their
    parameters and buffers, with one optimizer over the stacked parameters. The members' own modules are
    left alone until `to_members` writes the fused state back into them."""

    def __init__(self, members: Sequence[nn.Module], activations: Sequence[str]) -> None:
        present = [a for a in models.ACTIVATIONS if a in set(activations)]
        fns = [models.ACTIVATIONS[a]() for a in present]
        base = copy.deepcopy(members[0])
        names = []
        for parent_name, parent in base.named_modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, ACTIVATION_TYPES):
                    setattr(parent, name, SelectedActivation(fns))
                    names.append(f"{parent_name}.{name}" if parent_name else name)
        self.base = base.to("meta")
        self.members = list(members)
        self.params, self.buffers = stack_module_state(self.members)
        device = next(iter(self.params.values())).device
        codes = torch.tensor([present.index(a) for a in activations], device=device)
        self.buffers.update({f"{name}.code": codes for name in names})

    def __len__(self) -> int:
        return len(self.members)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def __call__(self, x: Tensor) -> Tensor:
        """x: [K, B, ...], member k's batch at k; returns [K, B, classes]."""
        return vmap(self._one, randomness="different")(self.params, self.buffers, x)

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def to_members(self, optimizer: torch.optim.Optimizer | None = None, member_optimizers=None) -> None:
        """Copies the fused parameters and buffers (and momentum buffers, given both optimizers) back."""
        with torch.no_grad():
            for k, member in enumerate(self.members):
                for name, p in member.named_parameters():
                    p.copy_(self.params[name][k])
                for name, b in member.named_buffers():
                    b.copy_(self.buffers[name][k])
        if optimizer is None:
            return
        for k, (member, member_opt) in enumerate(zip(self.members, member_optimizers, strict=True)):
            for name, p in member.named_parameters():
                buf = optimizer.state.get(self.params[name], {}).get("momentum_buffer")
                if buf is not None:
                    member_opt.state[p]["momentum_buffer"] = buf[k].clone()

    def load_momentum(self, optimizer: torch.optim.Optimizer, member_optimizers) -> None:
        """Stacks the members' momentum buffers into `optimizer` (over `self.params`), where all have one."""
        for name, stacked in self.params.items():
            bufs = []
            for member, member_opt in zip(self.members, member_optimizers, strict=True):
                p = dict(member.named_parameters())[name]
                bufs.append(member_opt.state.get(p, {}).get("momentum_buffer"))
            if all(b is not None for b in bufs):
                optimizer.state[stacked]["momentum_buffer"] = torch.stack(bufs)


def fused_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Each member's mean cross-entropy: logits [K, B, C], labels [K, B] -> [K]."""
    per_image = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none", label_smoothing=label_smoothing)
    return per_image.mean(1)


class FusedStep:
    """The packed trainings' training step as one fused step: their batches (one row of indices each) through
    `FusedModels`, one optimizer step, each member's loss sum and correct count accumulated in a row of
    the pack's own. `finish_epoch` writes it all back into the members (weights, momentum, metrics), so
    their evaluation, checkpoints and artifacts work as alone. Constant-lr recipes without augmentation only."""

    def __init__(self, trainings: Sequence, graphed: bool) -> None:
        first = trainings[0]
        if first.scheduler is not None or first.recipe.augment:
            raise ValueError(f"pack method 'fused' needs a constant lr and no augmentation, not {first.recipe.name!r}")
        self.trainings = list(trainings)
        self.fused = FusedModels([t.model for t in trainings], [t.cfg.activation for t in trainings])
        self.optimizer = first.recipe.optimizer(self.fused.params.values(), first.cfg.effective_lr)
        self.fused.load_momentum(self.optimizer, [t.optimizer for t in trainings])
        self.first, k = first, len(trainings)
        self.loss_sums = torch.zeros(k, dtype=torch.float64, device=first.device)
        self.correct = torch.zeros(k, dtype=torch.int64, device=first.device)
        self.call = self._step
        if graphed and first.device.type == "cuda":
            self.call = GraphedStep(self._step, first.batch_size, first.device, leading=(k,))

    def __call__(self, indices: Tensor) -> None:
        """`indices`: [members, batch], member k's batch of the shared training images at row k."""
        self.call(indices)

    def _step(self, indices: Tensor) -> None:
        first = self.first
        images, labels = first.train_set.images[indices], first.train_set.labels[indices]
        x = first.normalize(images.flatten(0, 1)).unflatten(0, images.shape[:2])
        with first._autocast():
            logits = self.fused(x)
            loss = fused_loss(logits.float(), labels, first.loss_fn.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # member k's parameters get the gradient of member k's loss only
        self.optimizer.step()
        self.loss_sums += loss.detach() * labels.shape[1]
        self.correct += (logits.argmax(2) == labels).sum(1)

    def begin_epoch(self) -> None:
        self.fused.train(True)
        self.loss_sums.zero_()
        self.correct.zero_()

    def finish_epoch(self) -> None:
        """The members' weights, buffers, momentum and epoch sums, from the fused state."""
        self.fused.to_members(self.optimizer, [t.optimizer for t in self.trainings])
        for k, t in enumerate(self.trainings):
            t._loss_sum.copy_(self.loss_sums[k])
            t._correct.copy_(self.correct[k])
