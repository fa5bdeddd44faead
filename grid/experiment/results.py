"""Results from storage: each training's latest checkpoint holds its whole per-epoch history.

Tune rewrites a resumed trial's history with only its post-restore rows, and a Train V2 Result keeps metrics
only of retained checkpoints; the history inside the latest checkpoint (metrics.json) is complete either way,
so it is the one source of the results tables.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from grid.experiment.plan import PlannedTraining
from grid.files import ARTIFACTS, METRICS_FILE, STATUS_FILE

FINISHED = ("ok", "diverged")
# The per-epoch metrics each results row (cell) carries from its training's history at that epoch.
CELL_METRICS = (
    "test_acc",
    "test_acc_as_published",
    "val_acc",
    "train_loss",
    "val_loss",
)  # a training in one of these states is never rerun


@dataclass
class Outcome:
    """What storage (and, for failures, Tune) says about one training."""

    status: str = "missing"  # ok | diverged | failed | running | missing
    error: str = ""
    history: list[dict] = field(default_factory=list)
    checkpoint: str | None = None  # path of the latest checkpoint in the storage filesystem
    runs: list[dict] = field(default_factory=list)  # each (re)start: the node it ran on, the epoch it began at
    wandb_fallback: str = ""  # why the training's W&B run went offline though online was asked ("" if not)

    def finished(self, planned: PlannedTraining) -> bool:
        done = self.status == "diverged" or len(self.history) >= planned.config.epochs
        return self.status in FINISHED and done


def read_outcome(fs: pafs.FileSystem, train_dir: str, member: str | None = None) -> Outcome:
    """The latest `epoch_NNNN` checkpoint under a Train run folder, or a `missing` outcome. `member`: the
    training's id when the run is a pack's, whose checkpoints hold a sub-folder per member."""
    infos = fs.get_file_info(pafs.FileSelector(train_dir, allow_not_found=True))
    checkpoints = sorted(
        i.path for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("epoch_")
    )
    for latest in reversed(checkpoints):
        latest = posixpath.join(latest, member) if member else latest
        try:
            status = json.loads(_read(fs, posixpath.join(latest, STATUS_FILE)))
            history = json.loads(_read(fs, posixpath.join(latest, METRICS_FILE)))
        except FileNotFoundError:  # still uploading (or a worker died mid-upload): the one before is whole
            continue
        runs, fallback = status.get("runs", []), status.get("wandb_fallback", "")
        return Outcome(status["status"], status.get("error", ""), history, latest, runs, fallback)
    return Outcome()


def fetch_artifacts(fs: pafs.FileSystem, outcome: Outcome, dest: Path) -> list[Path]:
    """Copy the final checkpoint's submission.csv and 12-image figure into the run folder."""
    if outcome.checkpoint is None:
        return []
    copied = []
    for name in ARTIFACTS:
        src = posixpath.join(outcome.checkpoint, name)
        if fs.get_file_info(src).type == pafs.FileType.File:
            dest.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(_read(fs, src))
            copied.append(dest / name)
    return copied


def cell_rows(planned: PlannedTraining, outcome: Outcome, pack: str = "") -> list[dict]:
    """One results row per grid cell this training fills; `pack`: the pack it trained in ("" alone)."""
    cfg, history = planned.config, outcome.history
    rows = []
    for epochs in planned.cells:
        row = {
            "arch": cfg.arch,
            "activation": cfg.activation,
            "recipe": cfg.recipe,
            "seed": cfg.seed,
            "epochs": epochs,
            "training_id": cfg.training_id,
            "pack": pack,
        }
        if epochs <= len(history):
            h = history[epochs - 1]
            seconds = sum(e["epoch_seconds"] + e["eval_seconds"] for e in history[:epochs])
            row.update(
                {k: h[k] for k in CELL_METRICS},
                status="ok",
                seconds=seconds,
                error="",
            )
        else:
            status = outcome.status if outcome.status in ("diverged", "failed") else "missing"
            error = outcome.error or ("training did not reach this epoch" if status == "missing" else "")
            row.update(
                dict.fromkeys((*CELL_METRICS, "seconds"), math.nan),
                status=status,
                error=error,
            )
        rows.append(row)
    return rows


def history_rows(planned: PlannedTraining, outcome: Outcome, pack: str = "") -> list[dict]:
    cfg = planned.config
    ident = {
        "training_id": cfg.training_id,
        "pack": pack,
        "arch": cfg.arch,
        "activation": cfg.activation,
        "recipe": cfg.recipe,
        "seed": cfg.seed,
    }
    return [{**ident, **h} for h in outcome.history]


def frames(
    plans: list[PlannedTraining], outcomes: dict[str, Outcome], packs: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results: one row per cell, history: one row per training epoch); `packs`: training id -> its pack's id,
    for the trainings that trained in a pack of more than one."""
    packs = packs or {}
    results = [r for p in plans for r in cell_rows(p, outcomes[p.training_id], packs.get(p.training_id, ""))]
    history = [r for p in plans for r in history_rows(p, outcomes[p.training_id], packs.get(p.training_id, ""))]
    results_df = pd.DataFrame(results).sort_values(["arch", "activation", "recipe", "seed", "epochs"])
    return results_df.reset_index(drop=True), pd.DataFrame(history)


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()
