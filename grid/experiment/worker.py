"""The Ray Train worker loop: one training, resumable from Ray Train's checkpoints.

Ray reporting is kept off the per-epoch path: `ray.train.report` waits for the controller to take the
previous report (it polls every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S), so a report per sub-second GPU epoch
would throttle training. The worker reports, with a checkpoint, only at the grid's epoch cells, every
`checkpoint_every` epochs and at the end, and at most every `min_report_interval_s`. Every epoch's metrics
travel inside each checkpoint (metrics.json): that file, not Tune's history, is the source of the results.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import data
from grid.train.config import TrainConfig
from grid.train.training import Diverged, Training

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, as plain data (it crosses Ray's object store)."""

    train: dict[str, Any]  # TrainConfig.to_dict()
    cells: tuple[int, ...]
    data_uri: str
    grid_name: str
    wandb: dict[str, Any] = field(default_factory=dict)  # WandbSettings fields; {} disables W&B
    wandb_config: dict[str, Any] = field(default_factory=dict)  # extra run config: code version, manifest
    min_report_interval_s: float = 2.0
    progress_board: str = ""  # the named actor live progress goes to (grid.experiment.board); "" for none
    progress_every_s: float = 2.0  # at most one progress post per this many seconds

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.train)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**{**d, "cells": tuple(d["cells"])})


def train_loop(job_dict: dict[str, Any]) -> None:
    """`train_loop_per_worker` of the grid's TorchTrainer."""
    import ray
    import ray.train
    import ray.train.torch

    job = Job.from_dict(job_dict)
    cfg = job.config
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # exactly the CPUs this worker reserved
    device = ray.train.torch.get_device() if cfg.device != "cpu" else torch.device("cpu")

    try:
        cifar = data.load(
            job.data_uri,
            val_size=cfg.val_size,
            split_seed=cfg.split_seed,
            max_train_images=cfg.max_train_images,
            max_eval_images=cfg.max_eval_images,
        )
    except data.DataError as e:  # deterministic: retrying cannot help, so fail the training with the reason
        ray.train.report({"status": "failed", "error": str(e), "epoch": 0})
        return

    training = Training(cfg, cifar, device, rank=rank, world_size=world)
    previous = _restore(training, ray.train.get_checkpoint())
    if previous.get("status") in ("ok", "diverged"):
        ray.train.report({"status": previous["status"], "epoch": training.epoch})
        return

    run = _start_wandb(job, training, cifar, rank, logged_epoch=previous.get("wandb_epoch", 0))
    # Where the training ran, across restarts: the multi-node tests check it moved when a node died.
    here = {"node_id": ray.get_runtime_context().get_node_id(), "from_epoch": training.epoch, "world_size": world}
    runs = [*previous.get("runs", []), here]
    reporter = _Reporter(job, training, rank, runs, run)
    steps = _step_reporter(job, training, rank)
    while training.epoch < cfg.epochs:
        try:
            metrics = training.run_epoch(steps)
            if steps is not None:
                steps.epoch_done()
        except Diverged as e:
            reporter.report("diverged", error=str(e))
            run.finish(summary=_summary(training, job.cells), files=[], exit_code=1)  # shows as failed in W&B
            return
        run.log_epoch(metrics)
        reporter.maybe_report()
    # W&B copies the artifacts when the run finishes; until then they live in a folder of our own.
    with tempfile.TemporaryDirectory(prefix="cifar-grid-artifacts-") as keep:
        files = reporter.report("ok", keep_artifacts_in=Path(keep))
        run.finish(summary=_summary(training, job.cells), files=files)


def _step_reporter(job: Job, training: Training, rank: int):
    """Rank 0's live progress poster, or None (no board, another rank, or the board is gone)."""
    from grid.experiment.board import StepReporter, board

    if rank != 0 or not job.progress_board:
        return None
    try:
        found = board(job.progress_board)
    except ValueError:  # progress is a nicety: a training never fails for want of it
        return None
    return StepReporter(found, training, every_s=job.progress_every_s)


class _Reporter:
    def __init__(self, job: Job, training: Training, rank: int, runs: list[dict], wandb_run) -> None:
        self.job, self.training, self.rank, self.runs, self.wandb_run = job, training, rank, runs, wandb_run
        self.last = 0.0

    def maybe_report(self) -> None:
        epoch = self.training.epoch
        due = epoch in self.job.cells or epoch % self.training.cfg.checkpoint_every == 0
        if due and epoch < self.training.cfg.epochs and time.monotonic() - self.last >= self.job.min_report_interval_s:
            self.report("running")

    def report(self, status: str, *, error: str = "", keep_artifacts_in: Path | None = None) -> list[Path]:
        """Report the latest epoch to Ray Train with a checkpoint (rank 0 writes it; every rank reports).
        With `keep_artifacts_in`, the checkpoint also holds the training's artifacts, and copies of them are
        kept there (returned) for W&B: the checkpoint's own folder disappears when this returns."""
        import ray.train

        self.last = time.monotonic()
        epoch = self.training.epoch
        last = self.training.history[-1] if self.training.history else {}
        metrics = {
            "status": status,
            "error": error,
            "epoch": epoch,
            **{k: last[k] for k in ("test_acc", "test_acc_as_published", "val_acc") if k in last},
        }
        if self.rank != 0:
            ray.train.report(metrics)
            return []
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            self.training.save_checkpoint(folder)
            files = self.training.write_artifacts(folder) if keep_artifacts_in else []
            # wandb_epoch: the epochs the W&B run holds, so that a resumed training logs only the rest.
            status_doc = {
                "status": status,
                "error": error,
                "epoch": epoch,
                "cells": list(self.job.cells),
                "runs": self.runs,
                "wandb_epoch": self.wandb_run.logged_epoch,
            }
            (folder / STATUS_FILE).write_text(json.dumps(status_doc))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch_{epoch:04d}")
            return _copy_into(files, keep_artifacts_in) if keep_artifacts_in else []


def _restore(training: Training, checkpoint) -> dict[str, Any]:
    """Loads the latest checkpoint into `training`; returns its status document ({} when starting fresh)."""
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        status = json.loads((Path(folder) / STATUS_FILE).read_text())
        training.load_checkpoint(Path(folder))
    return status


def _start_wandb(job: Job, training: Training, cifar: data.Cifar10, rank: int, logged_epoch: int):
    from grid.experiment.wandb_run import WandbRun
    from grid.wandb_settings import WandbSettings

    if rank != 0 or not job.wandb or job.wandb.get("mode") == "disabled":
        return WandbRun()  # a no-op run
    cfg = training.cfg
    settings = WandbSettings(**job.wandb)
    config = {
        **cfg.to_dict(),
        **job.wandb_config,
        "grid": job.grid_name,
        "training_id": cfg.training_id,
        "cells": list(job.cells),
        "data_manifest_sha256": cifar.manifest_sha256,
    }
    return WandbRun.start(
        settings,
        training_id=cfg.training_id,
        name=f"{cfg.arch}-{cfg.activation}-{cfg.recipe}-{cfg.seed}",
        group=job.grid_name,
        config=config,
        tags=[cfg.arch, cfg.activation, cfg.recipe, f"seed{cfg.seed}"],
        run_dir=Path(settings.dir or "."),
        history=training.history,
        logged_epoch=logged_epoch,
    )


def _summary(training: Training, cells: tuple[int, ...]) -> dict[str, float]:
    history = training.history
    summary: dict[str, float] = {}
    if history:
        summary["best_val_acc"] = max(h["val_acc"] for h in history)
    for e in cells:
        if e <= len(history):
            summary[f"test_acc@{e}"] = history[e - 1]["test_acc"]
            summary[f"test_acc_as_published@{e}"] = history[e - 1]["test_acc_as_published"]
    return summary


def _copy_into(files: list[Path], folder: Path) -> list[Path]:
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    return [folder / f.name for f in files]
