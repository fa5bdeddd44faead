"""The Ray Train worker loop: one pack of trainings (often a pack of one), resumable from Ray Train's checkpoints.

Ray reporting is kept off the per-epoch path: `ray.train.report` waits for the controller to take the
previous report (it polls every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S), so a report per sub-second GPU epoch
would throttle training. The worker reports, with a checkpoint, only at the grid's epoch cells, every
`checkpoint_every` epochs, when a member diverges and at the end, and at most every `min_report_interval_s`.
Every epoch's metrics travel inside each checkpoint (metrics.json): that file, not Tune's history, is the
source of the results.

Checkpoint layout: a pack of one keeps a training's files at the checkpoint's top (an unpacked grid's layout);
a larger pack's checkpoint holds one sub-folder per member, `<training_id>/`, each as a training alone has it.
"""

from __future__ import annotations

import time

_MODULE_START = time.time()  # the worker process imports this module (and torch) before the loop starts

import contextlib  # noqa: E402 - after the stamp above, on purpose
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

import data  # noqa: E402
from grid.files import METRICS_FILE, STATUS_FILE  # noqa: E402
from grid.report import published  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.training import Diverged, Training  # noqa: E402

FINISHED = ("ok", "diverged")  # a member in one of these states is never trained again


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, as plain data (it crosses Ray's object store)."""

    trainings: tuple[dict[str, Any], ...]  # per member: {"train": TrainConfig.to_dict(), "cells": [...]}
    data_uri: str
    grid_name: str
    pack_id: str = ""  # the Tune trial's name: a pack's id, or a single training's id
    wandb: dict[str, Any] = field(default_factory=dict)  # WandbSettings fields; {} disables W&B
    wandb_config: dict[str, Any] = field(default_factory=dict)  # extra run config: code version, manifest
    min_report_interval_s: float = 2.0
    fit_started: float = 0.0  # when the trial driver called TorchTrainer.fit() (wall clock), for the start-up
    progress_board: str = ""  # the named actor live progress goes to (grid.experiment.board); "" for none
    progress_every_s: float = 2.0  # at most one progress post per this many seconds

    @property
    def configs(self) -> list[TrainConfig]:
        return [TrainConfig.from_dict(t["train"]) for t in self.trainings]

    @property
    def cells(self) -> list[tuple[int, ...]]:
        return [tuple(t["cells"]) for t in self.trainings]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**{**d, "trainings": tuple(d["trainings"])})


class _Solo:
    """One training behind the Pack API: a pack of one is exactly a training alone, DDP ranks included."""

    def __init__(self, training: Training) -> None:
        self.members, self.active = [training], [0]

    def run_epoch(self, on_step: Callable[[int], None] | None = None) -> dict[int, dict[str, float] | Diverged]:
        training = self.members[0]
        try:
            result: dict[str, float] | Diverged = training.run_epoch(on_step)
        except Diverged as e:
            result = e
        if isinstance(result, Diverged) or training.epoch >= training.cfg.epochs:
            self.active.clear()
        return {0: result}

    def save_checkpoint(self, index: int, folder) -> Path:
        return self.members[index].save_checkpoint(folder)

    def load_checkpoint(self, index: int, folder) -> None:
        self.members[index].load_checkpoint(folder)
        if self.members[index].epoch >= self.members[index].cfg.epochs:
            self.active.clear()

    def write_artifacts(self, index: int, folder) -> list[Path]:
        return self.members[index].write_artifacts(folder)


def train_loop(job_dict: dict[str, Any]) -> None:
    """`train_loop_per_worker` of the grid's TorchTrainer."""
    import ray
    import ray.train
    import ray.train.torch

    # Wall-clock stamps of the start-up's parts: the worker process's creation (after Ray Train's controller,
    # placement group and actor scheduling), this module's import (Ray's worker boot, torch), the loop's start.
    startup = {"process": _process_started(), "worker_import": _MODULE_START, "loop": time.time()}
    job = Job.from_dict(job_dict)
    configs = job.configs
    cfg = configs[0]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if cfg.device != "cpu" else torch.device("cpu")

    try:
        cifar = cfg.load_data(job.data_uri)
    except data.DataError as e:  # deterministic: retrying cannot help, so fail the training with the reason
        ray.train.report({"status": "failed", "error": str(e), "epoch": 0})
        return
    startup["data"] = time.time()

    members = _Members(job, configs, rank, world)
    members.restore(ray.train.get_checkpoint(), cifar, device, startup)
    if not members.pack.active:
        ray.train.report({"status": members.pack_status(), "epoch": members.epoch()})
        return

    here = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "from_epoch": members.epoch(),
        "world_size": world,
        "pack": job.pack_id,
        "startup": {**startup, "fit": job.fit_started},
    }
    members.add_run(here)
    members.start_wandb(cifar)
    reporter = _Reporter(job, members)
    steps = _StepReporters(job, members.pack, rank)
    while members.pack.active:
        running = list(members.pack.active)
        diverged = members.record(members.pack.run_epoch(steps.on_step(running)))
        steps.epoch_done(running)
        here["startup"].setdefault("first_epoch", time.time())
        if diverged and members.pack.active:  # the others go on: keep the divergence in a checkpoint now
            reporter.report()
        reporter.maybe_report()
    # W&B copies the artifacts when the run finishes; until then they live in a folder of our own.
    with tempfile.TemporaryDirectory(prefix="cifar-grid-artifacts-") as keep:
        files = reporter.report(keep_artifacts_in=Path(keep))
        members.finish_wandb(files)


class _Members:
    """A pack's trainings as the grid sees them: the live ones in `pack` and those that finished in an earlier
    run of this trial (carried: their checkpoint files, copied into every later checkpoint)."""

    def __init__(self, job: Job, configs: list[TrainConfig], rank: int, world: int) -> None:
        self.job, self.configs, self.rank, self.world = job, configs, rank, world
        self.ids = [c.training_id for c in configs]
        self.cells = dict(zip(self.ids, job.cells, strict=True))
        self.carried: dict[str, dict[str, bytes]] = {}  # training id -> {file name: bytes}
        self.status: dict[str, tuple[str, str]] = {}  # training id -> (status, error) of live members
        self.runs: dict[str, list[dict]] = {}
        self.wandb: dict[str, Any] = {}
        self.pack: Any = None
        self.index: dict[str, int] = {}  # training id -> index in pack

    def folder(self, root: Path, training_id: str) -> Path:
        return root if len(self.ids) == 1 else root / training_id

    def restore(self, checkpoint, cifar: data.Cifar10, device: torch.device, startup: dict[str, float]) -> None:
        """Builds the pack of the members still to train and loads each from the latest checkpoint."""
        with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(None) as root:
            docs = {t: _status_doc(self.folder(Path(root), t)) if root else {} for t in self.ids}
            for t in self.ids:
                self.runs[t] = docs[t].get("runs", [])
                if docs[t].get("status") in FINISHED:
                    self.carried[t] = _files(self.folder(Path(root), t))
            live = [c for c in self.configs if c.training_id not in self.carried]
            self.pack = self._build(live, cifar, device)
            startup["built"] = time.time()
            for i, c in enumerate(live):
                self.index[c.training_id] = i
                self.status[c.training_id] = ("running", "")
                if docs[c.training_id]:
                    self.pack.load_checkpoint(i, self.folder(Path(root), c.training_id))
            self.logged = {t: docs[t].get("wandb_epoch", 0) for t in self.ids}
            self.fallback = {t: docs[t].get("wandb_fallback", "") for t in self.ids}
        startup["restored"] = time.time()

    def _build(self, live: list[TrainConfig], cifar: data.Cifar10, device: torch.device):
        if not live:
            return _Empty()
        if len(self.ids) == 1:
            return _Solo(Training(live[0], cifar, device, rank=self.rank, world_size=self.world))
        from grid.train.pack import Pack

        return Pack(live, cifar, device)

    def epoch(self) -> int:
        live = [m.epoch for m in getattr(self.pack, "members", [])]
        carried = [len(json.loads(f.get(METRICS_FILE, b"[]"))) for f in self.carried.values()]
        return max([*live, *carried, 0])

    def record(self, results: dict[int, dict[str, float] | Diverged]) -> bool:
        """Logs an epoch's results; returns whether a member diverged."""
        diverged = False
        for i, result in results.items():
            t = self.pack.members[i].cfg.training_id
            if isinstance(result, Diverged):
                diverged = True
                self.status[t] = ("diverged", str(result))
                self.wandb[t].finish(summary=self.summary(t), files=[], exit_code=1)  # shows as failed
            else:
                self.wandb[t].log_epoch(result)
                if self.pack.members[i].epoch >= self.pack.members[i].cfg.epochs:
                    self.status[t] = ("ok", "")
        return diverged

    def pack_status(self) -> str:
        states = [s for s, _ in self.status.values()] + [_carried_status(f) for f in self.carried.values()]
        if "running" in states:
            return "running"
        return "ok" if "ok" in states else "diverged"

    def add_run(self, here: dict[str, Any]) -> None:
        """Where the live members run, across restarts: the multi-node tests check it moved when a node died."""
        for t in self.index:
            self.runs[t] = [*self.runs[t], here]

    def start_wandb(self, cifar: data.Cifar10) -> None:
        for t, i in self.index.items():
            self.wandb[t] = _start_wandb(
                self.job, self.pack.members[i], self.cells[t], cifar, self.rank, self.logged[t], self.fallback[t]
            )

    def finish_wandb(self, files: dict[str, list[Path]]) -> None:
        for t in self.index:
            if self.status[t][0] == "ok":
                self.wandb[t].finish(summary=self.summary(t), files=files.get(t, []))

    def summary(self, t: str) -> dict[str, float]:
        return _summary(self.pack.members[self.index[t]], self.cells[t])


class _StepReporters:
    """Rank 0's live progress posts (grid.experiment.board), one poster per member; none without a board."""

    def __init__(self, job: Job, pack: Any, rank: int) -> None:
        self.posters: dict[int, Any] = {}
        if rank != 0 or not job.progress_board:
            return
        from grid.experiment.board import StepReporter, board

        try:
            found = board(job.progress_board)
        except ValueError:  # progress is a nicety: a training never fails for want of it
            return
        self.posters = {i: StepReporter(found, m, every_s=job.progress_every_s) for i, m in enumerate(pack.members)}

    def on_step(self, running: list[int]) -> Callable[[int], None] | None:
        posters = [self.posters[i] for i in running if i in self.posters]
        if not posters:
            return None

        def post(step: int) -> None:
            for poster in posters:
                poster(step)

        return post

    def epoch_done(self, running: list[int]) -> None:
        for i in running:
            if i in self.posters:
                self.posters[i].epoch_done()


class _Empty:
    members: list[Training] = []
    active: list[int] = []


def _process_started() -> float:
    """This process's creation time (wall clock) from /proc; 0.0 where there is no /proc."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(ln for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


def _status_doc(folder: Path) -> dict[str, Any]:
    path = folder / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


def _carried_status(files: dict[str, bytes]) -> str:
    return json.loads(files[STATUS_FILE])["status"]


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
    def __init__(self, job: Job, members: _Members) -> None:
        self.job, self.members = job, members
        self.last = 0.0
        self.reported = -1  # the epoch of the last checkpoint: one checkpoint folder per epoch

    def maybe_report(self) -> None:
        epoch, pack = self.members.epoch(), self.members.pack
        cfg = self.members.configs[0]
        due = any(epoch in c for c in self.members.cells.values()) or epoch % cfg.checkpoint_every == 0
        recent = time.monotonic() - self.last < self.job.min_report_interval_s
        if due and pack.active and not recent and epoch != self.reported:
            self.report()

    def report(self, *, keep_artifacts_in: Path | None = None) -> dict[str, list[Path]]:
        """Report the latest epoch to Ray Train with a checkpoint of every member (rank 0 writes it; every rank
        reports). With `keep_artifacts_in`, the checkpoint also holds the finished members' artifacts, and
        copies of them are kept there for W&B (returned per training id): the checkpoint's own folder
        disappears when this returns."""
        import ray.train

        self.last = time.monotonic()
        m = self.members
        self.reported = m.epoch()
        metrics = {"status": m.pack_status(), "error": "", "epoch": m.epoch(), **self._best()}
        if len(m.ids) == 1 and m.status:
            metrics["error"] = next(iter(m.status.values()))[1]
        if m.rank != 0:
            ray.train.report(metrics)
            return {}
        kept: dict[str, list[Path]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for t in m.ids:
                folder = m.folder(Path(tmp), t)
                folder.mkdir(exist_ok=True)
                if t in m.carried:
                    for name, raw in m.carried[t].items():
                        (folder / name).write_bytes(raw)
                    continue
                files = self._save(t, folder, artifacts=keep_artifacts_in is not None)
                if files and keep_artifacts_in is not None:
                    kept[t] = _copy_into(files, keep_artifacts_in / t)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch_{m.epoch():04d}")
        return kept

    def _save(self, t: str, folder: Path, *, artifacts: bool) -> list[Path]:
        m = self.members
        i = m.index[t]
        m.pack.save_checkpoint(i, folder)
        status, error = m.status[t]
        files = m.pack.write_artifacts(i, folder) if artifacts and status == "ok" else []
        # wandb_epoch: the epochs the W&B run holds, so that a resumed training logs only the rest.
        doc = {
            "status": status,
            "error": error,
            "epoch": m.pack.members[i].epoch,
            "cells": list(m.cells[t]),
            "runs": m.runs[t],
            "pack": self.job.pack_id if len(m.ids) > 1 else "",
            "members": m.ids,
            "wandb_epoch": m.wandb[t].logged_epoch if t in m.wandb else m.logged[t],
            # why its run is offline though online was asked
            "wandb_fallback": m.wandb[t].fallback if t in m.wandb else m.fallback[t],
        }
        (folder / STATUS_FILE).write_text(json.dumps(doc))
        return files

    def _best(self) -> dict[str, float]:
        """The pack's best test accuracy this epoch, for Tune's progress lines."""
        last = [m.history[-1] for m in self.members.pack.members if m.history]
        if not last:
            return {}
        best = max(last, key=lambda h: h["test_acc"])
        return {k: best[k] for k in ("test_acc", "test_acc_as_published", "val_acc") if k in best}


def _start_wandb(
    job: Job,
    training: Training,
    cells: tuple[int, ...],
    cifar: data.Cifar10,
    rank: int,
    logged_epoch: int,
    fallback: str,
):
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
        "cells": list(cells),
        "pack": job.pack_id,
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
        fallback=fallback,
    )


def _summary(training: Training, cells: tuple[int, ...]) -> dict[str, float]:
    history = training.history
    summary: dict[str, float] = {}
    if history:
        summary["best_val_acc"] = max(h["val_acc"] for h in history)
    cfg = training.cfg
    for e in cells:
        if e <= len(history):
            summary[f"test_acc@{e}"] = history[e - 1]["test_acc"]
            summary[f"test_acc_as_published@{e}"] = history[e - 1]["test_acc_as_published"]
            paper = published.lookup(cfg.arch, cfg.activation, e) if cfg.recipe == "paper" else None
            if paper:  # beside our cell, the value the paper published for it
                summary[f"published@{e}"] = paper.accuracy
    return summary


def _copy_into(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    return [folder / f.name for f in files]
