"""How well trainings share one GPU: the summed steps/s of N graph-replayed `paper` trainings running at once
in N processes, against one alone; with and without CUDA MPS (which lets kernels of several processes run
on the GPU at the same time instead of taking turns).

    python bench/gpu_share.py [--archs baseline improved resnet18] [--procs 1 4] [--mps]

At batch 32 one training keeps the GPU busy ~100% of the time with kernels too small to fill it: without MPS
the processes' kernels take turns, so sharing adds little; this measures what the grid's GPU fractions buy.
Writes $OUT/gpu_share.json when OUT is set.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.out import write_report  # noqa: E402
from grid import mps  # noqa: E402
from grid.experiment.spec import GridError  # noqa: E402

STEPS = {"baseline": 3000, "improved": 2000, "resnet18": 800}  # about 1.5 s alone on an H100


def worker(arch: str, steps: int, device: str, cudnn_benchmark: bool, barrier, results) -> None:
    import torch

    torch.backends.cudnn.benchmark = cudnn_benchmark
    from bench.gpu_steps import synthetic
    from grid.train.config import TrainConfig
    from grid.train.training import Training

    training = Training(TrainConfig(arch=arch, activation="relu", device=device), synthetic(steps * 32, n_eval=32))
    training._train_epoch()  # warm-up and capture
    if device == "cuda":
        torch.cuda.synchronize()
    barrier.wait()
    start = time.perf_counter()
    training._train_epoch()  # ends with a host sync
    results.put((start, time.perf_counter(), steps))


def concurrent_steps_per_second(arch: str, procs: int, steps: int, device: str, cudnn_benchmark: bool) -> float:
    """Summed steps/s of `procs` trainings started together: all steps / (last end - common start)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    args = (arch, steps, device, cudnn_benchmark, barrier, results)
    workers = [ctx.Process(target=worker, args=args) for _ in range(procs)]
    for w in workers:
        w.start()
    spans = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
    return sum(s for _, _, s in spans) / (max(e for _, e, _ in spans) - min(b for b, _, _ in spans))


def measure(mode: str, args: argparse.Namespace, archs: dict) -> None:
    for arch in args.archs:
        steps = max(2, int(STEPS[arch] * args.scale))
        for n in args.procs:
            rate = concurrent_steps_per_second(arch, n, steps, args.device, args.cudnn_benchmark)
            archs.setdefault(arch, {})[f"{mode}_{n}"] = rate
            alone = archs[arch].get("plain_1", rate)
            print(
                f"{mode:>5} {arch:>9} x{n}: {rate:8.1f} steps/s summed ({rate / alone:.2f}x one alone without MPS)",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(STEPS))
    p.add_argument("--procs", nargs="+", type=int, default=[1, 4])
    p.add_argument("--mps", action="store_true", help="also measure under CUDA MPS")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms (not the default)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the steps (a CPU smoke run: 0.01)")
    args = p.parse_args()
    report: dict = {"procs": args.procs, "cudnn_benchmark": args.cudnn_benchmark, "archs": {}}
    modes = ["plain", "mps"] if args.mps else ["plain"]
    for mode in modes:
        # grid.experiment.mps.daemon sets the MPS pipe folder in os.environ: the spawned workers inherit it.
        sharing = mps.daemon() if mode == "mps" else contextlib.nullcontext()
        try:
            with sharing:
                measure(mode, args, report["archs"])
        except GridError as e:  # MPS could not start: the plain figures still count
            print(f"MPS could not start: {e}", flush=True)
    write_report(report, "gpu_share_cudnn_benchmark.json" if args.cudnn_benchmark else "gpu_share.json")


if __name__ == "__main__":
    main()
