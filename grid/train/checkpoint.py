"""Checkpoint folder layout and RNG capture: `state.pt` holds all a training needs to continue exactly,
`metrics.json` the per-epoch history (the same list as `state.pt`'s, readable without torch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from grid.atomic import atomic_open, write_json
from grid.files import METRICS_FILE, STATE_FILE


def save(folder: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Writes both files atomically: a crash leaves the previous checkpoint whole."""
    folder = Path(folder)
    with atomic_open(folder / STATE_FILE, "wb") as f:
        torch.save(state, f)
    write_json(folder / METRICS_FILE, state["history"])
    return folder


def load(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    # weights_only: tensors, containers and primitives only, never arbitrary pickled code.
    return torch.load(path, map_location="cpu", weights_only=True)


def capture_rng(device: torch.device, generators: dict[str, torch.Generator | None]) -> dict[str, Any]:
    """Every RNG state the training consumes: its own generators, torch's global CPU one, and CUDA's."""
    state: dict[str, Any] = {name: g.get_state() if g is not None else None for name, g in generators.items()}
    state["torch_cpu"] = torch.get_rng_state()
    state["cuda"] = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return state


def restore_rng(state: dict[str, Any], device: torch.device, generators: dict[str, torch.Generator | None]) -> None:
    for name, g in generators.items():
        if g is not None:
            g.set_state(state[name])
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
