"""A training step captured once as a CUDA graph and replayed: at batch 32 a step is a few hundred small
kernels, so eager CUDA spends its time launching them; a replay launches them all at once.

The captured step reads its batch through a static index tensor (images and labels are resident on the GPU),
so a replay needs one device-to-device copy of 32 indices. Captured state (parameters, gradients, momentum
buffers, metric accumulators) must never be reallocated after capture: whoever replaces it (loading a
checkpoint) drops this object and builds a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Eager steps before capture, as CUDA graphs need: they create the lazily allocated state (SGD's momentum
# buffers, cuBLAS workspaces, autograd's caches). They are real training steps, so nothing is undone after.
WARMUP_STEPS = 3


class GraphedStep:
    def __init__(
        self, step: Callable[[Tensor], None], batch_size: int, device: torch.device, leading: tuple[int, ...] = ()
    ) -> None:
        """`step(indices)` must do a whole training step (zero_grad(set_to_none=True) first) on `device`
        without host syncs, accumulating its metrics in place into tensors that outlive it. `indices` are
        [*leading, batch_size] (a fused pack's step takes one row of indices per member)."""
        self.step = step
        self.batch_size = batch_size
        self.device = device
        self.static_indices = torch.zeros((*leading, batch_size), dtype=torch.int64, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmup_left = WARMUP_STEPS

    def __call__(self, indices: Tensor) -> None:
        if indices.shape[-1] != self.batch_size:  # the epoch's last, partial batch
            self.step(indices)
            return
        if self.graph is None:
            if self.warmup_left > 0:
                self._eager_on_side_stream(indices)
                self.warmup_left -= 1
                return
            self._capture()
        self.static_indices.copy_(indices)
        self.graph.replay()

    def _eager_on_side_stream(self, indices: Tensor) -> None:
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            self.step(indices)
        main.wait_stream(side)

    def _capture(self) -> None:
        # Capture records kernels without running them: no training happens here. SGD keeps no step counter,
        # so unlike Adam it needs no capturable=True; its float lr is baked in (constant-lr recipes only).
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads of the process (loggers, Ray) may touch CUDA meanwhile.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.step(self.static_indices)
        self.graph = graph
