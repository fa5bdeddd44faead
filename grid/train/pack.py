"""A pack: several trainings sharing the resident data and one device, advanced together.

This minimal version advances the members in turn, one epoch each. Each member draws its initial weights and
dropout masks from torch's global generators, so a member's own global RNG state is installed around all it
does and saved after: its numbers equal the same training alone, bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from grid.train.config import TrainConfig
from grid.train.training import Diverged, Training, resolve_device


class Pack:
    """Several trainings sharing the resident data and one device, advanced together."""

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        data,
        device: torch.device | str | None = None,
        *,
        method: str = "auto",  # how members' steps share the device; this version runs them in turn
    ) -> None:
        if not configs:
            raise ValueError("a pack needs at least one training")
        if len({(c.recipe, c.epochs) for c in configs}) > 1:
            raise ValueError("a pack's members share one recipe and one epoch count")
        self.device = resolve_device(configs[0].device) if device is None else torch.device(device)
        self.method = method
        self._rng: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.members: list[Training] = []
        for cfg in configs:
            with self._own_rng(None):
                self.members.append(Training(cfg, data, self.device))
                self._rng.append(self._captured())
        self.active: list[int] = list(range(len(self.members)))

    def run_epoch(self, on_step: Callable[[int], None] | None = None) -> dict[int, dict[str, float] | Diverged]:
        """Advances every active member whose epoch < cfg.epochs by one epoch; returns {member index: its
        epoch's metrics, or the Diverged it raised}. A diverged member leaves `active`. (`on_step` is not
        called by this version: members run their epochs in turn.)"""
        results: dict[int, dict[str, float] | Diverged] = {}
        for i in list(self.active):
            member = self.members[i]
            if member.epoch >= member.cfg.epochs:
                continue
            with self._own_rng(i):
                try:
                    results[i] = member.run_epoch()
                except Diverged as e:
                    results[i] = e
            if isinstance(results[i], Diverged) or member.epoch >= member.cfg.epochs:
                self.active.remove(i)
        return results

    def save_checkpoint(self, index: int, folder: str | os.PathLike[str]) -> Path:
        with self._own_rng(index):
            return self.members[index].save_checkpoint(folder)

    def load_checkpoint(self, index: int, folder: str | os.PathLike[str]) -> None:
        with self._own_rng(index):
            member = self.members[index]
            member.load_checkpoint(folder)
        if member.epoch >= member.cfg.epochs and index in self.active:
            self.active.remove(index)

    def write_artifacts(self, index: int, folder: str | os.PathLike[str]) -> list[Path]:
        with self._own_rng(index):
            return self.members[index].write_artifacts(folder)

    # ---- each member's global random streams ----------------------------------------------------------

    def _captured(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _install(self, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    @contextlib.contextmanager
    def _own_rng(self, index: int | None) -> Iterator[None]:
        """Member `index`'s global RNG state installed for the block and saved after it (None: a member being
        built, which seeds its own); the caller's state is put back either way."""
        outer = self._captured()
        if index is not None:
            self._install(self._rng[index])
        try:
            yield
        finally:
            if index is not None:
                self._rng[index] = self._captured()
            self._install(outer)
