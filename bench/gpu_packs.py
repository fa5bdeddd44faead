"""Training steps per second of packs (grid/train/pack.py): packs of 1, 3 and 9 trainings of each architecture
(`paper` recipe, batch 32; activations and seeds differing) with each pack method, summed over the members and
per member; next to them, the same trainings trained one after the other alone. Ends within 9 minutes on
one GPU at the defaults (--budget stops starting new measurements).

    .venv/bin/python bench/gpu_packs.py [--steps 200] [--sizes 1 3 9] [--methods streams interleave fused]
    .venv/bin/python bench/gpu_packs.py --device cpu --steps 3 --sizes 1 3 --archs baseline   # smoke mode
    .venv/bin/python bench/gpu_packs.py --device cpu --data /tmp/cg/shards --archs baseline --sizes 3 \\
        --methods interleave epochs fused --rounds 3    # the CPU measurement (real images)

Each measurement trains two epochs of --steps steps: the first warms up (and captures graphs), the second's
training part is timed (from the epoch's start to the device sync after its last step). Writes
$OUT/gpu_packs.json when OUT is set. Synthetic images unless --data: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
import models  # noqa: E402
from bench.gpu_steps import BATCH, synthetic  # noqa: E402
from bench.out import write_report  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.pack import Pack  # noqa: E402
from grid.train.training import Training  # noqa: E402

ACTIVATIONS = list(models.ACTIVATIONS)


def pack_configs(arch: str, size: int, device: str) -> list[TrainConfig]:
    """`size` distinct trainings: the activations in turn, a new seed every len(ACTIVATIONS)."""
    return [
        TrainConfig(arch, ACTIVATIONS[k % len(ACTIVATIONS)], seed=k // len(ACTIVATIONS), device=device)
        for k in range(size)
    ]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_epoch(run_epoch, steps: int, device: str) -> tuple[float, float]:
    """(training seconds, whole epoch seconds) of `run_epoch(on_step)`."""
    marks: dict[str, float] = {}

    def on_step(step: int) -> None:
        if step == steps:
            sync(device)  # a measurement's sync, after the last step: the numbers are not touched
            marks["trained"] = time.perf_counter()

    sync(device)
    start = time.perf_counter()
    run_epoch(on_step)
    sync(device)
    return marks["trained"] - start, time.perf_counter() - start


def measure_pack(configs: list[TrainConfig], cifar, method: str, device: str) -> dict:
    pack = Pack(configs, cifar, device, method=method)
    steps = pack.members[0].steps_per_epoch
    pack.run_epoch()  # warm-up and capture
    trained, epoch = timed_epoch(pack.run_epoch, steps, device)
    per_member = steps / trained
    return {
        "method": pack.method,
        "per_member_steps_per_second": per_member,
        "summed_steps_per_second": per_member * len(configs),
        "epoch_seconds": epoch,
    }


def measure_alone(configs: list[TrainConfig], cifar, device: str) -> dict:
    """The same trainings one after the other, each alone (each places its own copy of the data)."""
    trained = epoch = 0.0
    for cfg in configs:
        training = Training(cfg, cifar, device)
        training.run_epoch()
        t, e = timed_epoch(training.run_epoch, training.steps_per_epoch, device)
        trained, epoch = trained + t, epoch + e
    steps = len(configs) * training.steps_per_epoch
    return {"method": "alone", "summed_steps_per_second": steps / trained, "epoch_seconds": epoch}


def load_data(args) -> data.Cifar10:
    n_train, n_eval = args.steps * BATCH, args.eval_images
    if args.data:
        return data.load(args.data, max_train_images=n_train, max_eval_images=n_eval)
    return synthetic(n_train, n_eval=n_eval)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--steps", type=int, default=200, help="steps per epoch")
    p.add_argument("--eval-images", type=int, default=1000, help="validation and test images each")
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS))
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 3, 9])
    p.add_argument("--methods", nargs="+", default=None, help="default: streams interleave fused (CPU: no streams)")
    p.add_argument("--rounds", type=int, default=1, help="repeat each measurement, keep the fastest")
    p.add_argument("--data", help="shards to take the images from (default: synthetic)")
    p.add_argument("--budget", type=float, default=480, help="seconds; no new measurement starts after")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: CUDA is not available")
    methods = args.methods or (["streams", "interleave", "fused"] if args.device == "cuda" else ["interleave", "fused"])
    cifar = load_data(args)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}: {args.steps} steps of batch {BATCH} per timed epoch", flush=True)

    report = {"device": name, "torch": torch.__version__, "steps": args.steps, "batch": BATCH, "archs": {}}
    report["data"] = args.data or "synthetic"
    started = time.perf_counter()
    for arch in args.archs:
        rows = report["archs"].setdefault(arch, {})
        for size in args.sizes:
            configs = pack_configs(arch, size, args.device)
            best: dict[str, dict] = {}
            for done in range(args.rounds):  # rounds interleave the methods: a busy spell slows all of them
                for method in ["alone", *methods]:
                    if time.perf_counter() - started > args.budget:
                        print(f"budget of {args.budget:.0f} s spent: stopping", flush=True)
                        report["stopped_by_budget"] = True
                        return finish(report, started)
                    if method == "alone":
                        row = measure_alone(configs, cifar, args.device)
                    else:
                        row = measure_pack(configs, cifar, method, args.device)
                    if method not in best or row["summed_steps_per_second"] > best[method]["summed_steps_per_second"]:
                        best[method] = row
                    rows[str(size)] = best
                report.setdefault("rounds_done", {})[f"{arch} x{size}"] = done + 1
            for method, row in best.items():
                line = f"{arch:>9} x{size}: {method:>10} {row['summed_steps_per_second']:8.1f} steps/s summed"
                if "per_member_steps_per_second" in row:
                    line += f", {row['per_member_steps_per_second']:7.1f} per member"
                ratio = row["summed_steps_per_second"] / best["alone"]["summed_steps_per_second"]
                print(f"{line} ({ratio:.2f}x the trainings alone in turn)", flush=True)
    finish(report, started)


def finish(report: dict, started: float) -> None:
    report["seconds"] = time.perf_counter() - started
    write_report(report, "gpu_packs.json")


if __name__ == "__main__":
    main()
