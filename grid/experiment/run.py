"""One grid run, end to end: plan, train on Ray, collect from storage, write tables, plots and the report."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import data
import models
from data import fs as data_fs
from grid import atomic
from grid.experiment.interrupt import Interrupt
from grid.experiment.plan import PlannedTraining, plan
from grid.experiment.results import Outcome, fetch_artifacts, frames, read_outcome
from grid.experiment.spec import GridError, GridSpec
from grid.experiment.worker import Job
from grid.report import html as report
from grid.report import tables
from grid.train.recipes import RECIPES

GRID_FILE = "grid.json"


@dataclass(frozen=True)
class RunOptions:
    out: Path
    data: str | None  # shard folder/URI, raw source, or None for the official download
    storage: str | None = None  # Ray storage (folder or s3://...); default OUT/storage
    address: str | None = None
    resume: bool = False
    verbose: bool = False
    cache_dir: str = str(Path.home() / ".cache" / "cifar-grid")
    wandb: dict = field(default_factory=dict)  # WandbSettings fields; {} or mode "disabled": off
    status_every_s: float = 30.0
    mps: bool = False  # CUDA MPS around a local Ray (grid.experiment.mps)
    live: bool | None = None  # the live progress display; None: when stdout is a terminal


def run(spec: GridSpec, opts: RunOptions) -> int:
    """Runs (or resumes) a grid; returns the exit code: 0 when every cell has a result, else 1; 130 / 143 when
    SIGINT / SIGTERM interrupted it (what finished is written, and the line to continue it is printed)."""
    out = opts.out.resolve()
    if not opts.address:
        _check_local_cpus(spec)
    if opts.mps and (opts.address or spec.device == "cpu"):
        raise GridError(
            "--mps starts CUDA MPS on this machine for a local Ray with a GPU: not with --address "
            "(start it on each GPU node) nor with --device cpu"
        )
    spec = _open_run_folder(spec, opts, out)
    # --resume without --data: the shards the grid ran on (so that the interrupted line's command is whole).
    source = opts.data if opts.data or not opts.resume else spec.extras.get("data_uri")
    data_uri = data.resolve_shards(source, opts.cache_dir)
    manifest_bytes = _read_manifest(data_uri)
    _check_split(spec, json.loads(manifest_bytes), data_uri)
    plans = plan(spec)
    shares_prefixes = any(len(p.cells) > 1 for p in plans)
    extras = {
        **spec.extras,
        "data_uri": data_uri,
        "data_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "code_version": code_version(),
        "prefix_sharing": shares_prefixes,
        "recipe_settings": dataclasses.asdict(RECIPES[spec.recipe]),  # for the report, which has no torch
    }
    spec = GridSpec.from_dict({**spec.to_dict(), "extras": extras})
    atomic.write_json(out / GRID_FILE, spec.to_dict())

    storage = opts.storage or str(out / "storage")
    fs, storage_path = data_fs.resolve(storage)
    outcomes = {p.training_id: read_outcome(fs, _train_dir(storage_path, spec, p)) for p in plans}
    pending = [p for p in plans if not outcomes[p.training_id].finished(p)]
    skipped = len(plans) - len(pending)
    print(
        f"grid {spec.name!r}: {spec.cells} cells from {len(plans)} trainings; {len(pending)} to train"
        + (f", {skipped} already finished (not rerun)" if skipped else ""),
        flush=True,
    )
    if shares_prefixes:
        print(
            "note: constant learning rate, so each k-epoch cell is read from the first k epochs of one longer "
            "training with the same seed (see --dry-run)",
            flush=True,
        )

    resumed = {p.training_id: len(outcomes[p.training_id].history) for p in pending}
    interrupt = Interrupt()
    try:
        with interrupt.catching():
            failures, trial_times = (
                _train(spec, opts, pending, resumed, data_uri, fs, storage, storage_path, interrupt)
                if pending
                else ({}, {})
            )
    except KeyboardInterrupt:  # a second signal: stop at once, Ray already shut down on the way out
        print(f"interrupted: continue with {resume_command(spec, opts)}", flush=True)
        return interrupt.exit_code
    _record_trial_times(out, trial_times)
    for p in plans:
        outcome = read_outcome(fs, _train_dir(storage_path, spec, p))
        if p.training_id in failures and not outcome.finished(p):
            outcome.status, outcome.error = "failed", failures[p.training_id]
        outcomes[p.training_id] = outcome
        fetch_artifacts(fs, outcome, out / "trainings" / p.training_id)
    code = _write_outputs(spec, plans, outcomes, out, quiet=interrupt.requested)
    if opts.wandb and pending:
        _print_wandb_sync(opts, out)
    if interrupt.requested:
        print(f"interrupted: continue with {resume_command(spec, opts)}", flush=True)
        return interrupt.exit_code
    return code


def resume_command(spec: GridSpec, opts: RunOptions) -> str:
    """This tool's command that continues the grid (never Ray's API)."""
    where = f"--name {spec.name}"
    if opts.out.resolve() != (Path("runs") / spec.name).resolve():
        where = f"--out {opts.out}"
    wandb = opts.wandb.get("mode") if opts.wandb and opts.wandb.get("mode") != "auto" else None
    extra = [f"--{k} {v}" for k, v in (("storage", opts.storage), ("address", opts.address), ("wandb", wandb)) if v]
    return " ".join(["python run_grid.py --resume", where, *extra])


def _open_run_folder(spec: GridSpec, opts: RunOptions, out: Path) -> GridSpec:
    """A new run never touches an old one's state; --resume continues the grid recorded in the folder."""
    grid_file = out / GRID_FILE
    if opts.resume:
        if not grid_file.is_file():
            raise GridError(f"{grid_file}: no grid to resume there (start it without --resume)")
        return GridSpec.from_dict(json.loads(grid_file.read_text()))
    if out.exists() and any(out.iterdir()):
        raise GridError(
            f"{out}: a run is already there; continue it with --resume --name {out.name}, "
            "or choose another --name / --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    return spec


def costliest_first(pending: list[PlannedTraining], resumed: dict[str, int]) -> list[PlannedTraining]:
    """Tune starts trials in this order: the longest first, so that short ones fill the grid's end (on a shared
    GPU, a resnet18 started last would run alone for minutes). Cost: epochs left x forward FLOPs per image."""

    def cost(p: PlannedTraining) -> float:
        return (p.config.epochs - resumed.get(p.training_id, 0)) * models.FORWARD_MFLOPS.get(p.config.arch, 1.0)

    return sorted(pending, key=lambda p: (-cost(p), p.training_id))


def _train(
    spec: GridSpec,
    opts: RunOptions,
    pending: list[PlannedTraining],
    resumed: dict[str, int],
    data_uri: str,
    fs,
    storage: str,
    storage_path: str,
    interrupt: Interrupt,
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Runs the pending trainings on Ray (`resumed`: epochs each already has in storage); returns
    ({training_id: one-line reason} for the trials that failed, {training_id: [trial start, trial end]} in
    wall-clock seconds)."""
    from grid.experiment import mps
    from grid.experiment.tune import start_ray

    sharing = mps.daemon() if opts.mps else contextlib.nullcontext({})
    with sharing as mps_env:
        start_ray(opts.address, opts.verbose, mps_env)
        interrupt.install()  # over the SIGTERM handler ray.init installed
        remote_fs = _remote_storage_fs(storage, storage_path, fs)
        return _run_trials(spec, opts, pending, resumed, data_uri, remote_fs, storage_path, interrupt)


def _remote_storage_fs(storage: str, storage_path: str, fs):
    """The filesystem to hand Ray for remote storage (None: a local folder, which Ray resolves itself)."""
    return None if storage == storage_path or not storage.startswith(("s3:", "gs:", "hdfs:")) else fs


def _run_trials(
    spec: GridSpec,
    opts: RunOptions,
    pending: list[PlannedTraining],
    resumed: dict[str, int],
    data_uri: str,
    remote_fs,
    storage_path: str,
    interrupt: Interrupt,
):
    """_train's work once Ray is up; returns what _train returns."""
    import ray

    from grid.experiment.board import start_board
    from grid.experiment.interrupt import StopOnInterrupt
    from grid.experiment.progress import Progress
    from grid.experiment.tune import plan_resources, run_tune

    progress = None
    try:
        resources = plan_resources(spec, len(pending), autoscaling=bool(opts.address))
        print(
            f"ray: {resources.max_concurrent} trainings at a time, {resources.workers} worker(s) x "
            f"{resources.cpus_per_worker} CPU"
            + (f", {resources.gpu_per_training:g} GPU per training" if resources.gpu_per_training else ""),
            flush=True,
        )
        attempt = time.strftime("%Y%m%d-%H%M%S")
        board = f"cifar-grid-progress.{spec.name}.{attempt}"
        board_actor = start_board(board)  # the board lives as long as this handle
        trials = [
            _trial(spec, opts, p, data_uri, resources, remote_fs, storage_path, board)
            for p in costliest_first(pending, resumed)
        ]
        progress = Progress(
            {p.training_id: p.config.epochs for p in pending},
            every_s=opts.status_every_s,
            resumed_from=resumed,
            archs={p.training_id: p.config.arch for p in pending},
            board=board_actor,
            max_concurrent=resources.max_concurrent,
            live=sys.stdout.isatty() if opts.live is None else opts.live,
        )
        results = run_tune(
            trials,
            experiment=f"{spec.name}.tune-{attempt}",
            storage_path=storage_path,
            storage_filesystem=remote_fs,
            max_concurrent=resources.max_concurrent,
            callbacks=[progress],
            verbose=opts.verbose,
            stop=StopOnInterrupt(interrupt),
        )
        failures = {}
        for r in results:
            if r.error is not None:
                lines = [ln for ln in str(r.error).strip().splitlines() if ln.strip()]
                failures[r.config["training"]] = lines[-1] if lines else type(r.error).__name__
            elif (r.metrics or {}).get("status") == "failed":  # the worker's own one-line reason (bad data)
                failures[r.config["training"]] = r.metrics.get("error", "")
        return failures, progress.trial_seconds
    finally:
        if progress is not None:
            progress.close()
        ray.shutdown()


def _trial(
    spec: GridSpec,
    opts: RunOptions,
    p: PlannedTraining,
    data_uri: str,
    resources,
    remote_fs,
    storage_path: str,
    board: str,
) -> dict:
    wandb = dict(opts.wandb)
    if wandb:
        from grid.wandb_settings import WandbSettings, resolved_mode

        # Decided here, once: a worker on another node may not see this machine's API key.
        wandb["dir"] = wandb.get("dir") or str(opts.out.resolve() / "wandb")
        wandb["mode"] = resolved_mode(WandbSettings(**wandb))
    job = Job(
        train=p.config.to_dict(),
        cells=p.cells,
        data_uri=data_uri,
        grid_name=spec.name,
        wandb=wandb,
        wandb_config={"code_version": spec.extras.get("code_version", "")},
        progress_board=board,
    )
    return {
        "training_id": p.training_id,
        "job": job.to_dict(),
        "resources": resources,
        "train_run_name": _train_run_name(spec, p),
        "storage_path": storage_path,
        "storage_filesystem": remote_fs,
        "max_failures": spec.max_failures,
    }


def _train_run_name(spec: GridSpec, p: PlannedTraining) -> str:
    return f"{spec.name}.{p.training_id}"  # unique per training and grid, also in a shared cluster's dashboard


def _train_dir(storage_path: str, spec: GridSpec, p: PlannedTraining) -> str:
    return posixpath.join(storage_path, _train_run_name(spec, p))


def _write_outputs(
    spec: GridSpec, plans: list[PlannedTraining], outcomes: dict[str, Outcome], out: Path, *, quiet: bool = False
) -> int:
    """Writes results, history, tables, plots and the report; prints the tables and what failed unless `quiet`
    (an interrupted grid: its missing cells are not failures). Returns 0 when every cell has a result, else 1."""
    results, history = frames(plans, outcomes)
    atomic.write_parquet(out / "results.parquet", results)
    atomic.write_csv(out / "results.csv", results)
    if not history.empty:
        atomic.write_parquet(out / "history.parquet", history)
    report_path = report.build(out, results, history if not history.empty else None, spec.to_dict())
    missing = results[~results["status"].isin(["ok", "diverged"])]
    if quiet:
        print(f"\n{len(results) - len(missing)} of {len(results)} cells have a result; report: {report_path}")
        return 1 if len(missing) else 0
    print()
    print(tables.tables_markdown(results))
    bad = {
        (p.training_id, outcomes[p.training_id].status, outcomes[p.training_id].error)
        for p in plans
        if outcomes[p.training_id].status not in ("ok",)
    }
    if bad:
        print("\ntrainings that did not finish cleanly:")
        for training_id, status, error in sorted(bad):
            print(f"  {training_id}: {status}: {error or 'no reason recorded'}")
    print(f"\nresults: {out / 'results.parquet'} (and .csv), history: {out / 'history.parquet'}")
    print(f"tables: {out / 'tables'}/, plots: {out / 'plots'}/, per training: {out / 'trainings'}/")
    print(f"report: {report_path}")
    if len(missing):
        print(f"{len(missing)} of {len(results)} cells have no result", file=sys.stderr)
    return 1 if len(missing) else 0


def _record_trial_times(out: Path, times: dict[str, list[float]]) -> None:
    """trials.json: each training's Tune trial start and end (the grid benchmark's fixed-cost figures)."""
    path = out / "trials.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded.update({name: {"start": start, "end": end} for name, (start, end) in times.items()})
    atomic.write_json(path, recorded)


def _print_wandb_sync(opts: RunOptions, out: Path) -> None:
    from grid.wandb_settings import WandbSettings, sync_command

    command = sync_command(WandbSettings(**{**opts.wandb, "dir": Path(opts.wandb.get("dir") or out / "wandb")}))
    if command:
        print(f"W&B ran offline; to upload the runs: {command}")


def _check_local_cpus(spec: GridSpec) -> None:
    cpus = os.cpu_count() or 1
    if spec.workers * spec.cpus_per_worker > cpus:
        raise GridError(
            f"{spec.workers} workers x {spec.cpus_per_worker} CPUs per training need "
            f"{spec.workers * spec.cpus_per_worker} CPUs but this machine has {cpus}"
        )


def _read_manifest(data_uri: str) -> bytes:
    fs, path = data_fs.resolve(data_uri)
    with fs.open_input_stream(posixpath.join(path, "manifest.json")) as f:
        return f.read()


def _check_split(spec: GridSpec, manifest: dict, data_uri: str) -> None:
    train_rows = manifest.get("splits", {}).get("train", 0)
    if train_rows and spec.val_size >= train_rows:
        raise GridError(f"{data_uri}: --val-size {spec.val_size} leaves no training images of {train_rows}")


def code_version() -> str:
    """The git commit of the project's code (with -dirty when it has uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
