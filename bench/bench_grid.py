"""Ray's costs in the grid, measured side by side in one run on the real shards (not a timed test).

    python bench/bench_grid.py [--data ../shared/data/cifar10-jpeg.tar.gz] [--repeats 2]

0. Ray's own floor: a TorchTrainer.fit() of a function that does nothing, with the project's Ray settings;
1. fixed cost per training: Tune trial start to trial end, minus the training's own compute (its epochs and
   evaluations), for a 1-epoch training running alone (target <= 8 s), and what it adds to Ray's floor;
2. cost per epoch: a training of 100 very short epochs inside the grid vs the same training run by
   `python -m grid.train`: the wall-clock span from the end of epoch 1 to the end of epoch 100 (each epoch's
   `finished_at`), so start-up is left out of both (target <= 1.05x);
3. concurrency: 4 baseline trainings of 10 epochs, 2 at a time on 2 cores: grid wall time vs half the sum of
   the trainings' own compute (target <= 1.25x);
4. packs: Ray's fixed cost per training (the trials' spans minus the trainings' own compute, over the
   trainings) for 3 one-epoch trainings with --pack 1 and --pack 3 (target: packs of 3 at most half of packs
   of 1), and the start-up's parts, trial start to first epoch, from trials.json;
5. the CPU's default pack: the smoke preset with --pack 1, 2 and 3, wall time of each.
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
# As data.download.shared_jpeg_copy (this script runs without the repository on sys.path).
SHARED_JPEG = Path(os.environ.get("CIFAR_GRID_SHARED_DATA") or ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")


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


TRIVIAL_FIT = """
import statistics, sys, time
from grid.experiment.tune import start_ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
start_ray(None, verbose=False)
seconds = []
for i in range(int(sys.argv[1])):
    start = time.perf_counter()
    TorchTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=1),
                 run_config=RunConfig(name=f"trivial-{i}", storage_path=sys.argv[2])).fit()
    seconds.append(time.perf_counter() - start)
print(min(seconds), statistics.median(seconds))
"""


def trivial_fit(repeats: int, storage: Path) -> tuple[float, float]:
    """(best, median) seconds of a TorchTrainer.fit() that trains nothing, in a Ray of its own."""
    out = subprocess.run(
        [sys.executable, "-c", TRIVIAL_FIT, str(repeats), str(storage)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def epoch_span(history: pd.DataFrame) -> float:
    """Wall seconds from the end of the first epoch to the end of the last."""
    return float(history["finished_at"].max() - history["finished_at"].min())


def ray_floor(tmp: Path, repeats: int) -> float:
    """0. Ray's own cost for a training that does nothing; returns the median."""
    best, median = trivial_fit(repeats, tmp / "trivial")
    print(f"0. Ray's floor, a TorchTrainer.fit() that does nothing: best {best:.1f} s, median {median:.1f} s")
    return median


def fixed_cost(tmp: Path, shards: str, repeats: int, floor: float | None) -> float:
    """1. One short training alone: trial span minus its own compute; returns the best of `repeats`."""
    one = ["--archs", "baseline", "--activations", "relu", "--max-train-images", "2000", "--max-eval-images", "1000"]
    costs = []
    for i in range(repeats):
        _, history, trials = grid(tmp / f"fixed{i}", shards, *one, "--epochs", "1")
        ((tid, times),) = trials.items()
        trial, own = times["end"] - times["start"], own_seconds(history)[tid]
        costs.append(trial - own)
        above = f"; {trial - own - floor:+.1f} s on Ray's floor" if floor is not None else ""
        print(
            f"1. fixed cost per training: {trial - own:.1f} s (trial {trial:.1f} s - own compute {own:.1f} s); "
            f"target <= 8 s{above}"
        )
    return min(costs)


def per_epoch(tmp: Path, shards: str, fixed: float) -> None:
    """2. 100 very short epochs, in the grid and standalone: the spans between their first and last epochs."""
    short = ["--max-train-images", "320", "--max-eval-images", "100"]
    _, in_grid, trials = grid(
        tmp / "epochs", shards, "--archs", "baseline", "--activations", "relu", "--epochs", "100", *short
    )
    ((tid, times),) = trials.items()
    alone_wall = timed(
        [
            sys.executable,
            "-m",
            "grid.train",
            "--arch",
            "baseline",
            "--activation",
            "relu",
            "--epochs",
            "100",
            "--data",
            shards,
            "--threads",
            "1",
            "--out",
            str(tmp / "alone"),
            *short,
        ]
    )
    alone = pd.DataFrame(json.loads((tmp / "alone" / "metrics.json").read_text()))
    trial = times["end"] - times["start"]
    print(
        f"2. 100 short epochs, end of epoch 1 to end of epoch 100: in the grid {epoch_span(in_grid):.2f} s, "
        f"`python -m grid.train` {epoch_span(alone):.2f} s: ratio {epoch_span(in_grid) / epoch_span(alone):.3f}; "
        f"target <= 1.05 (whole trial {trial:.1f} s = fixed cost {fixed:.1f} s + {trial - fixed:.1f} s; "
        f"standalone process {alone_wall:.1f} s)"
    )


def concurrency(tmp: Path, shards: str) -> None:
    """3. Four trainings of 10 epochs, two at a time."""
    wall, history, trials = grid(
        tmp / "four",
        shards,
        "--archs",
        "baseline",
        "--activations",
        "relu",
        "swish",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "10",
    )
    half = own_seconds(history).sum() / 2
    span = max(t["end"] for t in trials.values()) - min(t["start"] for t in trials.values())
    print(
        f"3. 4 trainings x 10 epochs, 2 at a time: run_grid.py wall {wall:.1f} s (trials span {span:.1f} s), "
        f"half the trainings' own compute {half:.1f} s: ratio {wall / half:.3f} (trials only "
        f"{span / half:.3f}); target <= 1.25"
    )


STARTUP_PARTS = (
    ("trial", "fit", "trial driver up to TorchTrainer.fit()"),
    ("fit", "process", "Ray Train controller, placement group, worker actor"),
    ("process", "worker_import", "worker process boot (ray, torch)"),
    ("worker_import", "loop", "Ray Train's worker setup"),
    ("loop", "data", "data load"),
    ("data", "built", "models and optimizers built"),
    ("built", "first_epoch", "restore, W&B start and the first epoch"),
)


def startup_parts(trials: dict) -> str:
    """The start-up's parts, averaged over the trials (one line)."""
    starts = {json.dumps(t["startup"], sort_keys=True): t["startup"] for t in trials.values()}.values()
    parts = []
    for a, b, what in STARTUP_PARTS:
        seconds = [s[b] - s[a] for s in starts if s.get(a) and s.get(b)]
        if seconds:
            parts.append(f"{what} {sum(seconds) / len(seconds):.1f} s")
    return "; ".join(parts)


def packs(tmp: Path, shards: str, floor: float | None) -> None:
    """4. Ray's fixed cost per training, 3 trainings of one epoch, in packs of 1 and of 3."""
    three = ["--archs", "baseline", "--max-train-images", "2000", "--max-eval-images", "1000", "--epochs", "1"]
    per_training = {}
    for pack in (1, 3):
        wall, history, trials = grid(tmp / f"pack{pack}", shards, *three, "--pack", str(pack))
        spans = {(t["start"], t["end"]) for t in trials.values()}
        fixed = sum(end - start for start, end in spans) - own_seconds(history).sum()
        per_training[pack] = fixed / len(trials)
        print(
            f"4. --pack {pack}: {len(spans)} trial(s), run_grid.py wall {wall:.1f} s, Ray's fixed cost per training "
            f"{per_training[pack]:.1f} s; start-up: {startup_parts(trials)}"
        )
    floor_note = f"; a bare TorchTrainer.fit() {floor:.1f} s" if floor is not None else ""
    print(
        f"4. fixed cost per training, packs of 3 / packs of 1: {per_training[3] / per_training[1]:.2f} "
        f"(target <= 0.5){floor_note}"
    )


def default_pack(tmp: Path, shards: str) -> None:
    """5. The smoke preset through the grid with packs of 1, 2 and 3."""
    walls = {p: grid(tmp / f"smoke{p}", shards, "--preset", "smoke", "--pack", str(p))[0] for p in (1, 2, 3)}
    print("5. smoke preset wall: " + ", ".join(f"--pack {p} {w:.1f} s" for p, w in walls.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED_JPEG), help="shards, or a raw source prepared once")
    p.add_argument("--repeats", type=int, default=2, help="runs of the fixed-cost measurements")
    p.add_argument("--parts", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5], help="which measurements to run")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import data

    shards = data.resolve_shards(args.data, str(Path.home() / ".cache" / "cifar-grid"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; data {args.data}")
    floor = ray_floor(tmp, args.repeats + 1) if 0 in args.parts else None
    if {1, 2} & set(args.parts):
        fixed = fixed_cost(tmp, shards, args.repeats, floor)
    if 2 in args.parts:
        per_epoch(tmp, shards, fixed)
    if 3 in args.parts:
        concurrency(tmp, shards)
    if 4 in args.parts:
        packs(tmp, shards, floor)
    if 5 in args.parts:
        default_pack(tmp, shards)
    print(f"outputs in {tmp}")


if __name__ == "__main__":
    main()
