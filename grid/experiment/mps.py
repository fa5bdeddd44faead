"""CUDA MPS around a local grid, so that the trainings sharing a GPU run their kernels at the same time.

At batch 32 a graph-replayed training keeps the GPU busy with kernels far too small to fill it; without MPS
the processes sharing a GPU take turns (measured: README, "How long it takes").

The daemon gets private pipe and log folders: only the processes given its environment (this grid's Ray and
its workers) connect to it; every other CUDA program on the machine goes on as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from grid.experiment.spec import GridError
from grid.experiment.tune import set_temporarily

CONTROL = "nvidia-cuda-mps-control"


@contextlib.contextmanager
def daemon() -> Iterator[dict[str, str]]:
    """Starts an MPS control daemon for the `with` block; yields the environment its clients need (also set in
    os.environ meanwhile, so that a Ray started inside inherits it)."""
    binary = shutil.which(CONTROL)
    if binary is None:
        raise GridError(f"--mps: {CONTROL} is not on PATH (it comes with the NVIDIA driver)")
    root = tempfile.mkdtemp(prefix="cifar-grid-mps-")
    env = {"CUDA_MPS_PIPE_DIRECTORY": os.path.join(root, "pipe"), "CUDA_MPS_LOG_DIRECTORY": os.path.join(root, "log")}
    for folder in env.values():
        os.makedirs(folder)
    started = subprocess.run([binary, "-d"], env={**os.environ, **env}, capture_output=True, text=True, timeout=30)
    if started.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        reason = (started.stderr or started.stdout).strip().splitlines() or [f"exit code {started.returncode}"]
        raise GridError(f"--mps: {CONTROL} -d failed: {reason[-1]}")
    try:
        with set_temporarily(env):
            yield env
    finally:
        # `quit` stops the daemon and its server once their clients are gone (Ray's workers are by now).
        subprocess.run(
            [binary], input="quit\n", env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False
        )
        shutil.rmtree(root, ignore_errors=True)
