"""Data-layer speed: prepare the shared JPEG copy, then load its shards warm, against a plain read.

    .venv/bin/python bench/bench_data.py [--source TAR] [--shards DIR] [--repeats 5]

Targets (2-core machine): prepare <= 60 s; load of all 60,000 images <= 1 s warm; shard bytes <= 5% above
the raw pixels. A measurement, not a test: it prints figures and exits 0.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.download import shared_jpeg_copy  # noqa: E402
from data.shards import MANIFEST  # noqa: E402

SHARED_JPEG = str(shared_jpeg_copy())  # $CIFAR_GRID_SHARED_DATA, else ../shared/data/cifar10-jpeg.tar.gz


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the decode workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def plain_read(files: list[Path]) -> int:
    return sum(len(path.read_bytes()) for path in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=SHARED_JPEG, help="what to prepare (default: the shared JPEG copy)")
    parser.add_argument("--shards", help="load these shards instead of preparing --source")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        shards = Path(args.shards) if args.shards else Path(tmp, "shards")
        print(f"machine   {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work shares them)")
        if not args.shards:
            cpu_before, start = cpu_seconds(), time.perf_counter()
            manifest = data.prepare(args.source, shards)
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_before
            rows = sum(manifest["splits"].values())
            print(
                f"prepare   {os.path.basename(args.source)}: {rows:,} images in {seconds:.1f} s "
                f"(target <= 60 s), {cpu:.1f} CPU-s with the decode workers"
            )
        files = sorted(p for p in shards.iterdir() if p.name != MANIFEST)
        loaded = data.load(shards)  # warms the page cache
        images = len(loaded.train) + len(loaded.val) + len(loaded.test)
        raw_pixels = images * 3072
        shard_bytes = sum(p.stat().st_size for p in files)
        print(
            f"size      {shard_bytes:,} shard bytes for {raw_pixels:,} pixel bytes: "
            f"{100 * (shard_bytes / raw_pixels - 1):+.2f}% (target <= +5%)"
        )

        read_s, _ = best_of(args.repeats, lambda: plain_read(files))
        pixels = np.frombuffer(files[0].read_bytes(), np.uint8)
        copy_s, _ = best_of(args.repeats, lambda: [pixels.copy() for _ in range(len(files))])
        cpu_before = cpu_seconds()
        load_s, loaded = best_of(args.repeats, lambda: data.load(shards))
        load_cpu = (cpu_seconds() - cpu_before) / args.repeats
        print(
            f"load      {images:,} images in {load_s:.3f} s warm (best of {args.repeats}; target <= 1 s), "
            f"{load_cpu:.3f} CPU-s each = {load_s / read_s:.1f}x a plain read of the files ({read_s:.3f} s), "
            f"{load_s / copy_s:.1f}x a memory copy ({copy_s:.3f} s)"
        )


if __name__ == "__main__":
    main()
