"""Ray's costs in the grid, measured side by side in one run on the real shards (not a timed test).

    python bench/bench_grid.py [--data ../shared/data/cifar10-jpeg.tar.gz]

1. fixed cost per training: Tune trial start to trial end, minus the training's own compute (its epochs and
   evaluations), for a 1-epoch training running alone (target <= 8 s);
2. cost per epoch: a training of 100 very short epochs inside the grid vs the same training run by
   `python -m grid.train`, after taking away the fixed cost (target <= 1.05x);
3. concurrency: 4 baseline trainings of 10 epochs, 2 at a time on 2 cores: grid wall time vs half the sum of
   the trainings' own compute (target <= 1.25x).
Run it with nothing else busy on the machine: other processes inflate torch timings several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED_JPEG = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def grid(out: Path, data: str, *args: str) -> tuple[float, pd.DataFrame, dict]:
    """Runs run_grid.py; returns (process wall seconds, history, trial start/end times)."""
    wall = timed([sys.executable, "run_grid.py", "--data", data, "--out", str(out), "--wandb", "disabled", *args])
    return wall, pd.read_parquet(out / "history.parquet"), json.loads((out / "trials.json").read_text())


def own_seconds(history: pd.DataFrame) -> pd.Series:
    """Each training's own compute: its epochs and evaluations."""
    return (history["epoch_seconds"] + history["eval_seconds"]).groupby(history["training_id"]).sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED_JPEG), help="shards, or a raw source prepared once")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import data

    shards = data.resolve_shards(args.data, str(Path.home() / ".cache" / "cifar-grid"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; data {args.data}")

    # 1. Fixed cost: one short training alone.
    one = ["--archs", "baseline", "--activations", "relu", "--max-train-images", "2000", "--max-eval-images", "1000"]
    _, history, trials = grid(tmp / "fixed", shards, *one, "--epochs", "1")
    (tid, times), = trials.items()
    trial = times["end"] - times["start"]
    fixed = trial - own_seconds(history)[tid]
    print(f"1. fixed cost per training: {fixed:.1f} s (trial {trial:.1f} s - own compute "
          f"{own_seconds(history)[tid]:.1f} s); target <= 8 s")

    # 2. Cost per epoch: 100 very short epochs, in the grid and standalone.
    short = ["--max-train-images", "320", "--max-eval-images", "100"]
    _, history, trials = grid(tmp / "epochs", shards, "--archs", "baseline", "--activations", "relu",
                              "--epochs", "100", *short)  # fmt: skip
    (tid, times), = trials.items()
    in_grid = times["end"] - times["start"] - fixed
    alone = timed([sys.executable, "-m", "grid.train", "--arch", "baseline", "--activation", "relu", "--epochs",
                   "100", "--data", shards, "--threads", "1", "--out", str(tmp / "alone"), *short])  # fmt: skip
    print(f"2. 100 short epochs: in the grid {in_grid:.1f} s after the fixed cost, `python -m grid.train` "
          f"{alone:.1f} s (process wall): ratio {in_grid / alone:.3f}; target <= 1.05")

    # 3. Four trainings of 10 epochs, two at a time.
    wall, history, trials = grid(tmp / "four", shards, "--archs", "baseline", "--activations", "relu", "swish",
                                 "--seeds", "0", "1", "--epochs", "10")  # fmt: skip
    half = own_seconds(history).sum() / 2
    span = max(t["end"] for t in trials.values()) - min(t["start"] for t in trials.values())
    print(f"3. 4 trainings x 10 epochs, 2 at a time: run_grid.py wall {wall:.1f} s (trials span {span:.1f} s), "
          f"half the trainings' own compute {half:.1f} s: ratio {wall / half:.3f} (trials only "
          f"{span / half:.3f}); target <= 1.25")
    print(f"outputs in {tmp}")


if __name__ == "__main__":
    main()
