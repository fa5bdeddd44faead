"""Time left, from the step throughput the trainings measure (their live progress posts, grid.experiment.board).

A running training's time left is its steps left at its own measured rate plus an evaluation per epoch
left; a training not yet measured takes the seconds per epoch measured for its architecture (scaled by
forward FLOPs from another architecture when its own has none yet). Everything counts what is left only, so
a resumed grid's ETA is right from its first figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import models


def seconds_left(update: Mapping[str, Any], now: float) -> float | None:
    """A training's time left from its latest post (None before it has a rate); `now`: wall clock."""
    rate = update.get("steps_per_second")
    if not rate:
        return None
    epochs_left = update["epochs"] - update["epoch"]
    steps_left = epochs_left * update["steps_per_epoch"] - update["step"]
    left = steps_left / rate + epochs_left * (update.get("eval_seconds") or 0.0)
    return max(0.0, left - max(0.0, now - update["time"]))  # the post is a moment old


def epoch_seconds(update: Mapping[str, Any]) -> float | None:
    """Seconds per epoch (training steps and evaluation) measured by one training's post."""
    rate = update.get("steps_per_second")
    return update["steps_per_epoch"] / rate + (update.get("eval_seconds") or 0.0) if rate else None


def per_arch(by_arch: Mapping[str, float], arch: str) -> float | None:
    """Seconds per epoch for `arch`: measured, else scaled by forward FLOPs from a measured architecture."""
    if arch in by_arch:
        return by_arch[arch]
    for other, seconds in by_arch.items():
        if other in models.FORWARD_MFLOPS and arch in models.FORWARD_MFLOPS:
            return seconds * models.FORWARD_MFLOPS[arch] / models.FORWARD_MFLOPS[other]
    return None
