"""A pack: several trainings sharing the resident data and one device, advanced together.

Every member is a whole `Training` (its own config, history, checkpoints, artifacts) and draws its initial
weights, shuffles and dropout masks from its own streams, so it trains exactly as it would alone: torch's
global RNG (the CPU one, and on CUDA the device's default generator) is the member's own while the pack works
for it, and is put back after. On the CPU a pack is bit for bit its members trained alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from grid.train.config import TrainConfig
from grid.train.device_data import ResidentData
from grid.train.fusion import FusedStep
from grid.train.training import Diverged, Training, resolve_device

# interleave: one step of each member in turn, one stream. epochs: one whole epoch of each member in turn.
# streams (CUDA): interleaved, each member on its own CUDA stream (and graph), so their steps overlap.
# fused: one architecture, the members as one horizontally fused model (fusion.py); float rounding apart.
METHODS = ("interleave", "epochs", "streams", "fused")
CPU_METHOD = "interleave"  # measured (README): as fast as "epochs" within a shared CPU's noise; fused slower
# Unmeasured: the GPU study sets these from bench/gpu_packs.py on a lent GPU.
DEFAULT_METHOD = {"baseline": "streams", "improved": "streams", "resnet18": "streams"}
# What the members share, so must agree on: the data (and its split), the recipe, the steps and epochs, the
# process's torch threads.
SHARED_FIELDS = (
    "recipe",
    "epochs",
    "batch_size",
    "val_size",
    "split_seed",
    "max_train_images",
    "max_eval_images",
    "threads",
)


def check_packable(configs: Sequence[TrainConfig]) -> None:
    """ValueError unless `configs` (one or more, distinct trainings) can train together in one pack."""
    if not configs:
        raise ValueError("a pack needs at least one training")
    for name in (*SHARED_FIELDS, "device"):
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"a pack's trainings must share {name}, not {sorted(values, key=str)}")
    ids = [c.training_id for c in configs]
    if len(set(ids)) < len(ids):
        raise ValueError(f"a pack holds each training once: {ids}")


def resolve_method(method: str, configs: Sequence[TrainConfig], device: torch.device) -> str:
    if method == "auto":
        if device.type != "cuda":
            return CPU_METHOD
        archs = {c.arch for c in configs}
        return DEFAULT_METHOD[archs.pop()] if len(archs) == 1 else "streams"
    if method not in METHODS:
        raise ValueError(f"unknown pack method {method!r}; choose from auto, {', '.join(METHODS)}")
    if method == "streams" and device.type != "cuda":
        raise ValueError("pack method 'streams' needs a CUDA device")
    if method == "fused" and len({c.arch for c in configs}) > 1:
        raise ValueError("pack method 'fused' needs one architecture")
    recipe = configs[0].recipe_spec
    if method == "fused" and (recipe.schedule != "constant" or recipe.augment):
        raise ValueError(f"pack method 'fused' needs a constant lr and no augmentation, not recipe {recipe.name!r}")
    return method


class MemberRng:
    """One member's own share of torch's global RNG, installed around everything done for the member.

    The CPU state is a saved copy (swapped in and out); on CUDA the member has a generator state of its own
    that the device's default generator points at while installed (graphsafe_set_state). CUDA graphs
    captured while it is installed register that state, so the member's replays draw from it and advance it,
    whichever member's graph ran before."""

    def __init__(self, device: torch.device) -> None:
        self.cpu = torch.get_rng_state()  # overwritten when the member seeds its weights
        self.cuda_generator = None
        if device.type == "cuda":
            torch.cuda.init()
            index = device.index if device.index is not None else torch.cuda.current_device()
            self.cuda_generator = torch.cuda.default_generators[index]
            self.cuda = self.cuda_generator.clone_state()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        outer_cpu = torch.get_rng_state()
        torch.set_rng_state(self.cpu)
        outer_cuda = None
        if self.cuda_generator is not None:
            outer_cuda = self.cuda_generator.graphsafe_get_state()
            self.cuda_generator.graphsafe_set_state(self.cuda)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(outer_cpu)
            if outer_cuda is not None:
                self.cuda_generator.graphsafe_set_state(outer_cuda)


class Pack:
    """Several trainings sharing the resident data and one device, advanced together."""

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        data,
        device: torch.device | str | None = None,
        *,
        method: str = "auto",
    ) -> None:
        """`data`: a `data.Cifar10` (placed on the device once here) or a `ResidentData`. `device` None: the
        configs' `device`. `method`: one of METHODS, or "auto" (the CPU's, or DEFAULT_METHOD per arch)."""
        check_packable(configs)
        self.device = resolve_device(configs[0].device) if device is None else torch.device(device)
        self.method = resolve_method(method, configs, self.device)
        self.resident = data if isinstance(data, ResidentData) else ResidentData.of(data, self.device)
        self._rngs = [MemberRng(self.device) for _ in configs]
        self._streams: list[torch.cuda.Stream | None] = [None] * len(configs)
        if self.method == "streams":
            self._streams = [torch.cuda.Stream(self.device) for _ in configs]
            for stream in self._streams:
                stream.wait_stream(torch.cuda.current_stream(self.device))  # the resident data is placed
        self.members: list[Training] = []
        for index, cfg in enumerate(configs):
            with self._as_member(index):
                self.members.append(Training(cfg, self.resident, self.device))
        self.diverged: dict[int, Diverged] = {}
        self._fused: tuple[tuple[int, ...], FusedStep] | None = None  # for which members

    @property
    def active(self) -> list[int]:
        """Indices of the members still training (not finished, not diverged)."""
        return [i for i, m in enumerate(self.members) if i not in self.diverged and m.epoch < m.cfg.epochs]

    @contextlib.contextmanager
    def _as_member(self, index: int) -> Iterator[None]:
        stream = self._streams[index]
        with self._rngs[index].installed(), torch.cuda.stream(stream) if stream else contextlib.nullcontext():
            yield

    # ---- training -------------------------------------------------------------------------------------------

    def run_epoch(self, on_step: Callable[[int], None] | None = None) -> dict[int, dict[str, float] | Diverged]:
        """Advances every active member whose epoch < cfg.epochs by one epoch; returns {member index: its epoch's
        metrics, or the Diverged it raised}. A diverged member leaves `active`; the others go on.
        on_step(step): called from the host after each step common to the members (no device sync)."""
        running = self.active
        if not running:
            return {}
        if self.method == "epochs":
            return self._epochs_in_turn(running, on_step)
        if self.method == "fused":
            return self._steps_fused(running, on_step)
        return self._steps_interleaved(running, on_step)

    def _steps_interleaved(self, running: list[int], on_step: Callable[[int], None] | None) -> dict:
        batches: dict[int, tuple[Tensor, ...]] = {}
        for i in running:
            with self._as_member(i):
                batches[i] = self.members[i].begin_epoch()
        # Equal counts: the members share the training images and the batch size.
        for step in range(len(batches[running[0]])):
            for i in running:
                with self._as_member(i):
                    self.members[i].train_step(batches[i][step])
            if on_step is not None:
                on_step(step + 1)
        return self._end_epochs(running)

    def _epochs_in_turn(self, running: list[int], on_step: Callable[[int], None] | None) -> dict:
        results = {}
        for i in running:
            hook = on_step if i == running[-1] else None  # a step is common once the last member took it
            results[i] = self._end_epoch(i, functools.partial(self.members[i].run_epoch, hook))
        return results

    def _end_epochs(self, running: list[int]) -> dict:
        # Every member's training part ends before any evaluates: each epoch_seconds is the pack's training.
        for i in running:
            with self._as_member(i):
                self.members[i].sync_epoch()
        return {i: self._end_epoch(i, self.members[i].end_epoch) for i in running}

    def _steps_fused(self, running: list[int], on_step: Callable[[int], None] | None) -> dict:
        if self._fused is None or self._fused[0] != tuple(running):  # rebuilt from the members' state
            self._fused = (tuple(running), FusedStep([self.members[i] for i in running], graphed=True))
        fused = self._fused[1]
        batches = []
        for i in running:
            with self._as_member(i):
                batches.append(self.members[i].begin_epoch())
        fused.begin_epoch()
        # The fused dropout masks draw from the first member's stream: saved and restored with its checkpoint.
        with self._as_member(running[0]):
            for step, rows in enumerate(zip(*batches, strict=True), start=1):
                fused(torch.stack(rows))
                if on_step is not None:
                    on_step(step)
        fused.finish_epoch()
        return self._end_epochs(running)

    def _end_epoch(self, index: int, finish: Callable[[], dict[str, float]]) -> dict[str, float] | Diverged:
        with self._as_member(index):
            try:
                return finish()
            except Diverged as e:
                self.diverged[index] = e
                return e

    # ---- checkpoints and artifacts, per member ----------------------------------------------------------------

    def save_checkpoint(self, index: int, folder: str | os.PathLike[str]) -> Path:
        """Member `index`'s checkpoint, with its own RNG streams."""
        with self._as_member(index):
            return self.members[index].save_checkpoint(folder)

    def load_checkpoint(self, index: int, folder: str | os.PathLike[str]) -> None:
        """Restores member `index` exactly (its RNG streams too); it rejoins the pack if it had diverged."""
        with self._as_member(index):
            self.members[index].load_checkpoint(folder)
        self.diverged.pop(index, None)
        self._fused = None  # its stacked state is the members' as they were

    def write_artifacts(self, index: int, folder: str | os.PathLike[str]) -> list[Path]:
        with self._as_member(index):
            return self.members[index].write_artifacts(folder)
