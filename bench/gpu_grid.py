"""The one prepared script for a lent GPU (issue 8): steps/s per architecture (eager vs CUDA graph), then the
paper grid through run_grid.py, with wall time, the trainings' own time and the GPU's utilisation.

    python bench/gpu_grid.py --data SHARDS_OR_SOURCE [--epochs 10 20]   # default: the paper's 10..100
    python bench/gpu_grid.py --data SHARDS --device cpu --smoke         # proves the script runs, on a CPU

Everything it measures goes to $OUT/gpu_grid.json (and the grid's run folder to $OUT/run) when OUT is set.
Budget: gpu_steps.py ends within 5 minutes; pass --epochs 10 20 to run only the first 20 epochs of all 9
trainings when the whole grid cannot finish in the time left.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


class GpuSampler(threading.Thread):
    """Samples nvidia-smi's utilisation.gpu every second while the grid runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout  # fmt: skip
                self.samples.extend(float(v) for v in out.split())
            except (OSError, ValueError, subprocess.SubprocessError):
                return  # no nvidia-smi (a CPU smoke run)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="shards, or a raw CIFAR-10 source prepared once")
    p.add_argument("--epochs", nargs="+", default=[str(e) for e in range(10, 101, 10)])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--smoke", action="store_true", help="tiny: 5 steps, 1 epoch, baseline only, a data subset")
    args = p.parse_args()
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-grid-"))
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"device": args.device}

    steps = [sys.executable, "bench/gpu_steps.py", "--device", args.device]
    steps += ["--steps", "5", "--archs", "baseline"] if args.smoke else []
    start = time.perf_counter()
    subprocess.run(steps, cwd=ROOT, check=True, env={**os.environ, "OUT": str(out)})
    figures["steps_seconds"] = time.perf_counter() - start

    grid = [sys.executable, "run_grid.py", "--data", args.data, "--out", str(out / "run"), "--wandb", "disabled",
            "--device", args.device, "--epochs", *args.epochs]  # fmt: skip
    if args.smoke:
        grid += ["--archs", "baseline", "--activations", "relu", "--epochs", "1", "--max-train-images", "500",
                 "--max-eval-images", "200"]  # fmt: skip
    sampler = GpuSampler()
    sampler.start()
    start = time.perf_counter()
    code = subprocess.run(grid, cwd=ROOT).returncode
    figures["grid_wall_seconds"] = time.perf_counter() - start
    sampler.stop.set()
    history = pd.read_parquet(out / "run" / "history.parquet")
    own = history["epoch_seconds"] + history["eval_seconds"]
    steps_per_second = history.groupby("training_id")["images_per_second"].median() / 32
    utilisation = sum(sampler.samples) / len(sampler.samples) if sampler.samples else None
    figures.update(grid_exit_code=code, trainings=int(history["training_id"].nunique()), epochs=len(history),
                   trainings_own_seconds=float(own.sum()), steps_per_second_in_grid=steps_per_second.round(1).to_dict(),
                   gpu_utilisation_mean=utilisation)  # fmt: skip
    (out / "gpu_grid.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
