"""One grid run, end to end: plan, train on Ray, collect from storage, write tables, plots and the report."""

from __future__ import annotations

import collections
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

import pandas as pd
import pyarrow.fs as pafs

import data
from data import fs as data_fs
from data.download import default_cache_dir
from data.shards import MANIFEST, MAX_MANIFEST_BYTES
from grid import atomic, settings
from grid.experiment.interrupt import Interrupt
from grid.experiment.plan import PlannedPack, PlannedTraining, packs, plan
from grid.experiment.results import Outcome, fetch_artifacts, frames, read_outcome
from grid.experiment.schedule import Schedule
from grid.experiment.schedule import schedule as plan_schedule
from grid.experiment.spec import GridError, GridSpec
from grid.experiment.worker import Job
from grid.files import GRID_FILE
from grid.report import html as report
from grid.report import tables, verdict
from grid.settings import setting
from grid.train.recipes import RECIPES


@dataclass(frozen=True)
class RunOptions:
    """Where and how a grid runs; none of it changes a number of the results."""

    out: Path = setting(help="output folder (default runs/NAME)")
    data: str | None = setting(
        None,
        help="shard folder or URI (s3://...), or a raw CIFAR-10 source to prepare once "
        "(archive, folder, image-folder tar); default: the official download",
    )
    storage: str | None = setting(None, help="Ray storage for checkpoints: a folder or s3://... (default OUT/storage)")
    address: str | None = setting(None, help="an existing Ray cluster ('auto' inside one); default: a local Ray")
    resume: bool = setting(False, help="continue the interrupted grid --name NAME")
    verbose: bool = setting(False, help="Ray's and Tune's full output")
    cache_dir: str | None = setting(
        None, help="where raw sources are prepared into shards, once (default $CIFAR_GRID_CACHE or ~/.cache/cifar-grid)"
    )
    mps: bool = setting(
        False, help="CUDA MPS for a local Ray on a GPU: the trainings sharing it run their kernels at once (README)"
    )
    wandb: dict = field(default_factory=dict)  # WandbSettings fields; {} or mode "disabled": off
    status_every_s: float = 30.0
    grid_flags: tuple[str, ...] = ()  # GridSpec fields the command line set: --resume refuses any that differ
    live: bool | None = None  # the live progress display; None: when stdout is a terminal


def run(spec: GridSpec, opts: RunOptions) -> int:
    """Runs (or resumes) a grid; returns the exit code: 0 when every cell has a result, else 1; 130 / 143 when
    SIGINT / SIGTERM interrupted it (what finished is written, and the line to continue it is printed)."""
    out = opts.out.resolve()
    resumed_grid = preflight(spec, opts, out)
    spec = resumed_grid or spec
    # Resuming without --data: the data the grid recorded, not the official download.
    source = opts.data if opts.data is not None or resumed_grid is None else resumed_grid.extras.get("data_uri")
    data_uri = data.resolve_shards(source, opts.cache_dir)
    manifest_bytes = _read_manifest(data_uri)
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    if resumed_grid is not None:
        _check_same_data(resumed_grid, out, data_uri, manifest_sha256)
    _check_split(spec, json.loads(manifest_bytes), data_uri)
    plans = plan(spec)
    grouped = packs(plans, spec.pack)
    shares_prefixes = any(len(p.cells) > 1 for p in plans)
    spec = recorded(spec, data_uri, manifest_sha256, shares_prefixes)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / GRID_FILE, spec.to_dict())
    try:
        return _run_grid(spec, opts, out, plans, grouped, data_uri, shares_prefixes)
    except GridError:
        if resumed_grid is None:  # refused once Ray was up (no GPU on the cluster, ...): the name stays free
            _forget_new_run(out, created)
        raise


def _forget_new_run(out: Path, created: bool) -> None:
    """Removes what a new run wrote before any training started: its grid.json, and its folder if empty."""
    (out / GRID_FILE).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()


def _run_grid(
    spec: GridSpec,
    opts: RunOptions,
    out: Path,
    plans: list[PlannedTraining],
    grouped: list[PlannedPack],
    data_uri: str,
    shares_prefixes: bool,
) -> int:
    """run()'s work once the run folder records the grid: train what is pending, then write the outputs."""
    pack_of = {t.training_id: g for g in grouped for t in g.members}
    storage = opts.storage or str(out / "storage")
    fs, storage_path = data_fs.resolve(storage)
    outcomes = {p.training_id: _read(fs, storage_path, spec, pack_of[p.training_id], p) for p in plans}
    pending = [p for p in plans if not outcomes[p.training_id].finished(p)]
    skipped = len(plans) - len(pending)
    pending_packs = [g for g in grouped if any(m in pending for m in g.members)]
    print(
        f"grid {spec.name!r}: {spec.cells} cells from {len(plans)} trainings; {len(pending)} to train"
        + (f", {skipped} already finished (not rerun)" if skipped else "")
        + (f"; in {len(pending_packs)} packs of at most {spec.pack}" if spec.pack > 1 else ""),
        flush=True,
    )
    if shares_prefixes:
        print(
            "note: constant learning rate, so each k-epoch cell is read from the first k epochs of one longer "
            "training with the same seed (see --dry-run)",
            flush=True,
        )

    resumed = {p.training_id: len(outcomes[p.training_id].history) for p in pending}
    done = {p.training_id: p.config.epochs if p not in pending else resumed[p.training_id] for p in plans}
    schedule = plan_schedule(spec, pending_packs, done, opts.address)
    if pending:
        print(schedule.describe(), flush=True)
    interrupt = Interrupt()
    try:
        with interrupt.catching():
            failures, trial_times = (
                _train(spec, opts, schedule, done, data_uri, fs, storage, storage_path, interrupt)
                if pending
                else ({}, {})
            )
    except KeyboardInterrupt:  # a second signal: stop at once, Ray already shut down on the way out
        print(f"interrupted: continue with {resume_command(spec, opts)}", flush=True)
        return interrupt.exit_code
    for p in plans:
        pack = pack_of[p.training_id]
        outcome = _read(fs, storage_path, spec, pack, p)
        if pack.pack_id in failures and not outcome.finished(p):
            outcome.status, outcome.error = "failed", failures[pack.pack_id]
        outcomes[p.training_id] = outcome
        fetch_artifacts(fs, outcome, out / "trainings" / p.training_id)
    _record_trial_times(out, trial_times, grouped, outcomes)
    in_packs = {t: g.pack_id for t, g in pack_of.items() if len(g.members) > 1}
    fell_back = [o.wandb_fallback for o in outcomes.values() if o.wandb_fallback]
    if opts.wandb and fell_back:
        print(fallback_line(fell_back, len(plans), out / "wandb"), flush=True)
    code, results = _write_outputs(spec, plans, outcomes, out, in_packs, quiet=interrupt.requested)
    if interrupt.requested:
        print(f"interrupted: continue with {resume_command(spec, opts)}", flush=True)
        return interrupt.exit_code
    found = verdict.verdict(results, spec.to_dict())
    if opts.wandb and opts.wandb.get("mode") != "disabled":
        print("\n".join(_wandb_epilogue(opts, spec, out, found, offline_runs=bool(fell_back))))
    print("\n" + verdict.to_markdown(found), end="")  # the last lines printed
    return code


def fallback_line(reasons: list[str], trainings: int, folder: Path) -> str:
    """One line for the grid's output: how many runs went offline though online was asked, and why."""
    counts = collections.Counter(reasons)
    why, _ = counts.most_common(1)[0]
    others = f"; {len(counts) - 1} other reason(s) in the workers' logs" if len(counts) > 1 else ""
    return (
        f"W&B: {len(reasons)} of {trainings} trainings could not log online ({why}{others}); "
        f"their runs were logged offline in {folder}"
    )


def recorded(spec: GridSpec, data_uri: str, manifest_sha256: str, prefix_sharing: bool) -> GridSpec:
    """The spec as grid.json records it: with what the report shows under `extras`."""
    extras = {
        **spec.extras,
        "data_uri": data_uri,
        "data_manifest_sha256": manifest_sha256,
        "code_version": code_version(),
        "prefix_sharing": prefix_sharing,
        "recipe_settings": dataclasses.asdict(RECIPES[spec.recipe]),  # for the report, which has no torch
    }
    return GridSpec.from_dict({**spec.to_dict(), "extras": extras})


def resume_command(spec: GridSpec, opts: RunOptions) -> str:
    """This tool's command that continues the grid (never Ray's API)."""
    where = f"--name {spec.name}"
    if opts.out.resolve() != (Path("runs") / spec.name).resolve():
        where = f"--out {opts.out}"
    wandb = opts.wandb.get("mode") if opts.wandb and opts.wandb.get("mode") != "auto" else None
    extra = [f"--{k} {v}" for k, v in (("storage", opts.storage), ("address", opts.address), ("wandb", wandb)) if v]
    return " ".join(["python run_grid.py --resume", where, *extra])


def preflight(spec: GridSpec, opts: RunOptions, out: Path) -> GridSpec | None:
    """Every check that needs the filesystem or the machine, before anything is started or written (Ray, the
    run folder, a cache lock); GridError or DataError in one line. Returns the recorded grid with --resume."""
    if not opts.address:
        _check_local_cpus(spec)
    if opts.mps and (opts.address or spec.device == "cpu"):
        raise GridError(
            "--mps starts CUDA MPS on this machine for a local Ray with a GPU: not with --address "
            "(start it on each GPU node) nor with --device cpu"
        )
    problem = atomic.folder_problem(out)
    if problem:
        raise GridError(f"--out {out}: {problem}")
    resumed = _recorded_grid(spec, opts, out) if opts.resume else _check_new_run_folder(out)
    if not opts.address and (resumed or spec).device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise GridError("--device cuda: this machine has no CUDA GPU that torch can use (a cluster: --address)")
    _check_storage(opts.storage or str(out / "storage"))
    _check_data(opts.data, opts.cache_dir)
    return resumed


def _check_new_run_folder(out: Path) -> None:
    """A new run never touches an old one's files."""
    if not (out.is_dir() and any(out.iterdir())):
        return None
    if (out / GRID_FILE).is_file():
        raise GridError(f"--out {out}: a run is already there; continue it with --resume --out {out}")
    raise GridError(f"--out {out}: not empty and holds no grid; choose another --name / --out")


def _recorded_grid(spec: GridSpec, opts: RunOptions, out: Path) -> GridSpec:
    """The grid in OUT/grid.json, which --resume continues; refused when the command line asks for another."""
    grid_file = out / GRID_FILE
    if not grid_file.is_file():
        raise GridError(f"--resume: {grid_file}: no grid to resume there (start it without --resume)")
    try:
        recorded = GridSpec.from_dict({"pack": 1, **json.loads(grid_file.read_text())})  # before packs: unpacked
    except (ValueError, TypeError) as e:
        raise GridError(f"--resume: {grid_file}: not a grid this code reads ({' '.join(str(e).split())})") from None
    differ = [
        f"{settings.flag(GridSpec, name)} {settings.shown_value(getattr(spec, name))} "
        f"(recorded: {settings.shown_value(getattr(recorded, name))})"
        for name in opts.grid_flags
        if _comparable(getattr(spec, name)) != _comparable(getattr(recorded, name))
    ]
    if differ:
        raise GridError(f"--resume: {grid_file} records another grid: {'; '.join(differ)}; drop those flags")
    return recorded


def _comparable(value):
    return sorted(value) if isinstance(value, tuple) else value  # axes are sets: order does not matter


def _check_storage(storage: str) -> None:
    if not data_fs.is_uri(storage):
        problem = atomic.folder_problem(storage)
        if problem:
            raise GridError(f"--storage {storage}: {problem}")
        return
    try:
        fs, path = data_fs.resolve(storage)
        info = fs.get_file_info(path)
        bucket = fs.get_file_info(path.split("/", 1)[0]) if isinstance(fs, pafs.S3FileSystem) else None
    except data.DataError as e:
        raise GridError(f"--storage {e}") from None
    except (OSError, ValueError) as e:  # pyarrow's errors: unknown bucket, no endpoint, refused credentials
        raise GridError(f"--storage {storage}: {data_fs.describe(e)}") from None
    if info.type == pafs.FileType.File:
        raise GridError(f"--storage {storage}: exists and is not a folder")
    if bucket is not None and bucket.type == pafs.FileType.NotFound:
        raise GridError(f"--storage {storage}: the bucket {bucket.path} does not exist")


def _check_data(source: str | None, cache_dir: str | None) -> None:
    """Data that cannot be read is refused here; a raw source is read (and checked) when it is prepared."""
    if source is not None and data_fs.is_uri(source):
        try:
            _read_manifest(source)
        except data.DataError as e:
            raise data.DataError(f"--data {e}") from None
        return
    if source is not None and not Path(source).expanduser().exists():
        raise data.DataError(f"--data {source}: does not exist")
    if source is None or not Path(source, MANIFEST).is_file():  # a raw source, prepared in cache_dir
        problem = atomic.folder_problem(Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
        if problem:
            raise GridError(f"--cache-dir {cache_dir}: {problem}")


def _check_same_data(recorded: GridSpec, out: Path, data_uri: str, manifest_sha256: str) -> None:
    """Every result of a resumed grid must come from one data set: the manifest it recorded."""
    before = recorded.extras.get("data_manifest_sha256")
    if before and before != manifest_sha256:
        raise GridError(
            f"--data: {data_fs.join(data_uri, MANIFEST)} (sha256 {manifest_sha256[:16]}) is not the data "
            f"{out / GRID_FILE} was trained on ({data_fs.join(recorded.extras.get('data_uri', '?'), MANIFEST)}, "
            f"sha256 {before[:16]}); resume with that --data"
        )


def _train(
    spec: GridSpec,
    opts: RunOptions,
    schedule: Schedule,
    done: dict[str, int],
    data_uri: str,
    fs,
    storage: str,
    storage_path: str,
    interrupt: Interrupt,
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Runs the scheduled packs on Ray (`done`: epochs each training already has in storage); returns
    ({pack_id: one-line reason} for the trials that failed, {pack_id: [trial start, trial end]} in wall-clock
    seconds)."""
    from grid.experiment import mps
    from grid.experiment.tune import start_ray

    sharing = mps.daemon() if opts.mps else contextlib.nullcontext({})
    with sharing as mps_env:
        start_ray(opts.address, opts.verbose, mps_env)
        interrupt.install()  # over the SIGTERM handler ray.init installed
        remote_fs = _remote_storage_fs(storage, storage_path, fs)
        return _run_trials(spec, opts, schedule, done, data_uri, remote_fs, storage_path, interrupt)


def _remote_storage_fs(storage: str, storage_path: str, fs):
    """The filesystem to hand Ray for remote storage (None: a local folder, which Ray resolves itself)."""
    return None if storage == storage_path or not storage.startswith(("s3:", "gs:", "hdfs:")) else fs


def _run_trials(
    spec: GridSpec,
    opts: RunOptions,
    schedule: Schedule,
    done: dict[str, int],
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
    pending = schedule.order
    try:
        resources = plan_resources(spec, len(pending), autoscaling=bool(opts.address))
        unit = "trainings" if spec.pack == 1 else "packs"
        print(
            f"ray: {resources.max_concurrent} {unit} at a time, {resources.workers} worker(s) x "
            f"{resources.cpus_per_worker} CPU"
            + (f", {resources.gpu_per_training:g} GPU per trial" if resources.gpu_per_training else ""),
            flush=True,
        )
        attempt = time.strftime("%Y%m%d-%H%M%S")
        board = f"cifar-grid-progress.{spec.name}.{attempt}"
        board_actor = start_board(board)  # the board lives as long as this handle
        trials = [_trial(spec, opts, g, data_uri, resources, remote_fs, storage_path, board) for g in pending]
        # Progress counts a trial's epochs: a pack's members advance together, so its epoch is theirs.
        progress = Progress(
            {p.training_id: p.config.epochs for g in pending for p in g.members},
            every_s=opts.status_every_s,
            resumed_from={p.training_id: done[p.training_id] for g in pending for p in g.members},
            archs={p.training_id: p.config.arch for g in pending for p in g.members},
            members={g.pack_id: [p.training_id for p in g.members] for g in pending},
            board=board_actor,
            max_concurrent=resources.max_concurrent,
            epoch_seconds=schedule.measured,
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
    g: PlannedPack,
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
        trainings=tuple({"train": p.config.to_dict(), "cells": list(p.cells)} for p in g.members),
        data_uri=data_uri,
        grid_name=spec.name,
        pack_id=g.pack_id,
        wandb=wandb,
        wandb_config={"code_version": spec.extras.get("code_version", "")},
        progress_board=board,
    )
    return {
        "trial": g.pack_id,
        "job": job.to_dict(),
        "resources": resources,
        "train_run_name": _train_run_name(spec, g),
        "storage_path": storage_path,
        "storage_filesystem": remote_fs,
        "max_failures": spec.max_failures,
    }


def _train_run_name(spec: GridSpec, g: PlannedPack) -> str:
    return f"{spec.name}.{g.pack_id}"  # unique per pack and grid, also in a shared cluster's dashboard


def _read(fs, storage_path: str, spec: GridSpec, g: PlannedPack, p: PlannedTraining) -> Outcome:
    """A training's outcome from its pack's Train run (a pack of one: the training's own run)."""
    member = p.training_id if len(g.members) > 1 else None
    return read_outcome(fs, posixpath.join(storage_path, _train_run_name(spec, g)), member)


def _write_outputs(
    spec: GridSpec,
    plans: list[PlannedTraining],
    outcomes: dict[str, Outcome],
    out: Path,
    in_packs: dict[str, str],
    *,
    quiet: bool = False,
) -> tuple[int, pd.DataFrame]:
    """Writes results, history, tables, plots and the report; prints the tables and what failed unless `quiet`
    (an interrupted grid: its missing cells are not failures). Returns (0 when every cell has a result, else 1;
    the results)."""
    results, history = frames(plans, outcomes, in_packs)
    atomic.write_parquet(out / "results.parquet", results)
    atomic.write_csv(out / "results.csv", results)
    if not history.empty:
        atomic.write_parquet(out / "history.parquet", history)
    report_path = report.build(out, results, history if not history.empty else None, spec.to_dict())
    missing = results[~results["status"].isin(["ok", "diverged"])]
    if quiet:
        print(f"\n{len(results) - len(missing)} of {len(results)} cells have a result; report: {report_path}")
        return (1 if len(missing) else 0), results
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
    history_note = f", history: {out / 'history.parquet'}" if not history.empty else " (no training recorded an epoch)"
    print(f"\nresults: {out / 'results.parquet'} (and .csv){history_note}")
    print(f"tables: {out / 'tables'}/, plots: {out / 'plots'}/, per training: {out / 'trainings'}/")
    print(f"report: {report_path}")
    if len(missing):
        print(f"{len(missing)} of {len(results)} cells have no result", file=sys.stderr)
    return (1 if len(missing) else 0), results


def _record_trial_times(
    out: Path, times: dict[str, list[float]], grouped: list[PlannedPack], outcomes: dict[str, Outcome]
) -> None:
    """trials.json: per training, its Tune trial's start and end, its pack, and the start-up's parts of the
    trial's last (re)start (wall-clock stamps; the grid benchmarks' fixed-cost figures)."""
    path = out / "trials.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    for g in grouped:
        if g.pack_id not in times:
            continue
        start, end = times[g.pack_id]
        for t in g.training_ids:
            runs = outcomes[t].runs
            startup = {"trial": start, **(runs[-1].get("startup", {}) if runs else {})}
            pack = g.pack_id if len(g.members) > 1 else ""
            recorded[t] = {"start": start, "end": end, "pack": pack, "startup": startup}
    atomic.write_json(path, recorded)


def _wandb_epilogue(opts: RunOptions, spec: GridSpec, out: Path, found, offline_runs: bool) -> list[str]:
    from grid.experiment.wandb_results import end_of_grid
    from grid.wandb_settings import WandbSettings

    settings = WandbSettings(**{**opts.wandb, "dir": Path(opts.wandb.get("dir") or out / "wandb")})
    return end_of_grid(settings, spec.name, out, found, offline_runs)


def _check_local_cpus(spec: GridSpec) -> None:
    cpus = os.cpu_count() or 1
    if spec.workers * spec.cpus_per_worker > cpus:
        raise GridError(
            f"--workers {spec.workers} x --cpus-per-worker {spec.cpus_per_worker}: a training needs "
            f"{spec.workers * spec.cpus_per_worker} CPUs but this machine has {cpus}"
        )


def _read_manifest(data_uri: str) -> bytes:
    fs, path = data_fs.resolve(data_uri)
    where = data_fs.join(data_uri, MANIFEST)
    return data_fs.read_bytes(fs, posixpath.join(path, MANIFEST), where, MAX_MANIFEST_BYTES).to_pybytes()


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
