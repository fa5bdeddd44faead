"""The one prepared script for a lent GPU (issue 8): steps/s per architecture (eager vs CUDA graph), then the
paper grid through run_grid.py, with wall time, the trainings' own time and the GPU's utilisation.

    python bench/gpu_grid.py --data SHARDS_OR_SOURCE [--budget 420] [--epochs 10 20]
    python bench/gpu_grid.py --data SHARDS --device cpu --smoke         # proves the script runs, on a CPU

It keeps to --budget seconds in all: after the step benchmark it estimates the whole paper grid from the
measured graph steps/s and, if that would not fit in what is left, runs the first 20 epochs of all 9
trainings instead (the issue's fallback); a watchdog interrupts the grid at the deadline and the figures are
then read from the checkpoints written so far. Everything measured goes to $OUT (at most 8 files: the device
tool returns no more): gpu_steps.json, gpu_grid.json, results.csv, tables.md, history.parquet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # grid.experiment.results, for an interrupted grid

STEPS_PER_PAPER_EPOCH = math.ceil(40_000 / 32)
ACTIVATIONS = 3
AT_ONCE = 4  # the grid's default on one GPU: 1 / its default GPU fraction (0.25)
RAY_START_SECONDS = 60  # Ray, the first trainings' processes, the data's preparation; measured 15-30 s on CPUs


class GpuSampler(threading.Thread):
    """Samples nvidia-smi's utilization.gpu every second while the grid runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                self.samples.extend(float(v) for v in out.split())
            except (OSError, ValueError, subprocess.SubprocessError):
                return  # no nvidia-smi (a CPU smoke run)


def estimate_grid_seconds(steps: dict, max_epochs: int, at_once: int) -> float:
    """The paper grid's wall time on the GPU, estimated from the step benchmark. Per training: epochs x (steps at
    the graph's rate + evaluation scaled from the benchmark's eval set to 20,000 images, x1.5 for the
    published-style pass). Sharing the GPU, the grid takes at least the longest training, the trainings'
    time / how many run at once, and the GPU's busy time summed over all of them."""
    seconds, busy = [], []
    for row in steps["archs"].values():
        rate = row.get("graph_steps_per_second") or row["eager_steps_per_second"]
        evaluation = row["eval_seconds"] * 20_000 / (2 * steps["eval_images"]) * 1.5
        seconds += [max_epochs * (STEPS_PER_PAPER_EPOCH / rate + evaluation)] * ACTIVATIONS
        busy += [row.get("gpu_busy") or 1.0] * ACTIVATIONS
    gpu_time = sum(s * b for s, b in zip(seconds, busy, strict=True))
    return max(max(seconds), sum(seconds) / at_once, gpu_time)


def run_with_deadline(cmd: list[str], deadline: float) -> tuple[int, bool]:
    """Runs `cmd`; at the deadline interrupts it (SIGINT: Tune stops and keeps its checkpoints), then kills it."""
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), False
    except subprocess.TimeoutExpired:
        print("gpu_grid: deadline reached, interrupting the grid", flush=True)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(timeout=20), True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(), True


def histories(run: Path) -> pd.DataFrame:
    """Per-epoch rows: the grid's history.parquet, or (an interrupted grid) each training's newest checkpoint."""
    if (run / "history.parquet").exists():
        return pd.read_parquet(run / "history.parquet")
    import pyarrow.fs

    from grid.experiment.results import read_outcome

    frames = []
    for train_dir in sorted((run / "storage").glob("*")):
        # A pack's checkpoints hold a sub-folder per member (grid/experiment/worker.py).
        latest = sorted(train_dir.glob("epoch_*"))[-1:] if ".pack" in train_dir.name else []
        members = [d.name for d in latest[0].iterdir() if d.is_dir()] if latest else [None]
        for member in members:
            outcome = read_outcome(pyarrow.fs.LocalFileSystem(), str(train_dir), member)
            if outcome.history:
                training_id = member or train_dir.name.split(".", 1)[-1]
                frames.append(pd.DataFrame(outcome.history).assign(training_id=training_id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fixed_seconds(run: Path, history: pd.DataFrame) -> dict:
    """Per training, Ray's part: trial start to first epoch start, and last epoch end to trial end (trials.json)."""
    path = run / "trials.json"
    if not path.exists():
        return {}
    trials = json.loads(path.read_text())
    spans = history.assign(start=history["finished_at"] - history["epoch_seconds"] - history["eval_seconds"])
    spans = spans.groupby("training_id").agg(start=("start", "min"), end=("finished_at", "max"))
    figures = {}
    for training_id, row in spans.iterrows():
        if training_id in trials:
            figures[training_id] = [
                round(row["start"] - trials[training_id]["start"], 1),
                round(trials[training_id]["end"] - row["end"], 1),
            ]
    return {"trial_start_to_first_epoch_and_last_epoch_to_trial_end_seconds": figures}


def grid_figures(history: pd.DataFrame, steps: dict, wall: float) -> dict:
    if history.empty:
        return {"trainings": 0}
    history = history.assign(arch=history["training_id"].str.split("-").str[0])
    own = history["epoch_seconds"] + history["eval_seconds"]
    per_arch = history.groupby("arch")["images_per_second"].median() / 32
    floors = {a: r.get("graph_steps_per_second") or r["eager_steps_per_second"] for a, r in steps["archs"].items()}
    span = history["finished_at"].max() - (history["finished_at"] - own).min()
    return {
        "trainings": int(history["training_id"].nunique()),
        "epochs_trained": len(history),
        "trainings_own_seconds": round(float(own.sum()), 1),
        "first_epoch_start_to_last_epoch_end_seconds": round(float(span), 1),
        "own_seconds_over_wall": round(float(own.sum()) / wall, 2),
        "steps_per_second_in_grid": per_arch.round(1).to_dict(),
        "floor_over_grid_steps_per_second": {a: round(floors[a] / v, 2) for a, v in per_arch.items() if a in floors},
        "eval_seconds_median": history.groupby("arch")["eval_seconds"].median().round(3).to_dict(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="shards, or a raw CIFAR-10 source prepared once")
    p.add_argument(
        "--epochs",
        nargs="+",
        help="the grid's epoch cells (default: the paper's 10..100, or 10 20 "
        "when the estimate says the budget is too short)",
    )
    p.add_argument("--budget", type=float, default=420, help="seconds for the whole script")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--mps", action="store_true", help="run the grid with run_grid.py --mps")
    p.add_argument("--smoke", action="store_true", help="tiny: 5 steps, 1 epoch, baseline only, a data subset")
    args = p.parse_args()
    deadline = time.monotonic() + args.budget
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-grid-"))
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"device": args.device, "budget_seconds": args.budget, "mps": args.mps}

    def save() -> None:  # after every stage: a run stopped by the device's time limit still returns its figures
        (out / "gpu_grid.json").write_text(json.dumps(figures, indent=2) + "\n")

    cmd = [sys.executable, "bench/gpu_steps.py", "--device", args.device]
    cmd += ["--steps", "5", "--archs", "baseline"] if args.smoke else []
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OUT": str(out)}, timeout=args.budget / 2)
    figures["steps_seconds"] = round(time.perf_counter() - start, 1)
    steps = json.loads((out / "gpu_steps.json").read_text())

    epochs = args.epochs or [str(e) for e in range(10, 101, 10)]
    estimate = 1.3 * estimate_grid_seconds(steps, 100, AT_ONCE) + RAY_START_SECONDS
    left = deadline - time.monotonic()
    if args.smoke:
        epochs = ["1"]
    elif not args.epochs and estimate > left:
        epochs = ["10", "20"]
        print(
            f"gpu_grid: the whole grid would take about {estimate:.0f} s and {left:.0f} s are left: running "
            f"its first 20 epochs (all 9 trainings)",
            flush=True,
        )
    figures.update(grid_epochs=[int(e) for e in epochs], estimate_full_grid_seconds=round(estimate))
    save()

    run = Path(tempfile.mkdtemp(prefix="gpu-grid-run-")) / "run"  # not under $OUT: it holds hundreds of files
    grid = [
        sys.executable,
        "run_grid.py",
        "--data",
        args.data,
        "--out",
        str(run),
        "--wandb",
        "disabled",
        "--device",
        args.device,
        "--epochs",
        *epochs,
    ] + (["--mps"] if args.mps else [])
    if args.smoke:
        grid += [
            "--archs",
            "baseline",
            "--activations",
            "relu",
            "--max-train-images",
            "500",
            "--max-eval-images",
            "200",
        ]
    sampler = GpuSampler()
    sampler.start()
    start = time.perf_counter()
    code, interrupted = run_with_deadline(grid, deadline - 15)
    wall = time.perf_counter() - start
    sampler.stop.set()
    utilisation = sum(sampler.samples) / len(sampler.samples) if sampler.samples else None
    figures.update(
        grid_exit_code=code,
        grid_interrupted=interrupted,
        grid_wall_seconds=round(wall, 1),
        gpu_utilisation_mean=utilisation and round(utilisation, 1),
    )
    history = histories(run)
    figures.update(grid_figures(history, steps, wall))
    if not history.empty:
        figures.update(fixed_seconds(run, history))
    save()
    if not history.empty:
        history.to_parquet(out / "history.parquet")
    for name in ("results.csv",):
        if (run / name).exists():
            shutil.copy(run / name, out / name)
    tables = sorted((run / "tables").glob("*.md")) if (run / "tables").exists() else []
    if tables:
        (out / "tables.md").write_text("\n\n".join(f"## {t.stem}\n\n{t.read_text()}" for t in tables))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
