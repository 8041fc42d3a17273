"""CUDA graphs for a frozen encoder: one graph replay instead of ~1,000 kernel launches.

EfficientNet-b7 at 600 px costs about 40 ms per call on an H200 whether the batch holds 1 image
or 4 (docs/PERFORMANCE.md, GPU figures): the time goes to Python launching its kernels one by
one while holding the GIL, which also stalls every request thread. A captured graph replays the
whole forward with one launch. Graphs have fixed shapes, so a batch is padded up to the nearest
bucket size (1, 2, 3, 4, 6, 8, 12, 16, ...); the padding rows cost GPU time, which is cheap next
to the launches it saves. Graphs are captured lazily, once per bucket, and share one memory pool
(they never run at the same time). A capture that fails falls back to the eager forward for good.

Off by default (`ImageEncoderConfig.cuda_graphs`, `MOVIEREC_CUDA_GRAPHS`) until bench/gpu.sh has
measured it and tests/model/test_cuda_graphs.py has passed on a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger("movierec.cuda_graphs")


def graph_buckets(max_batch: int) -> list[int]:
    """Batch sizes that get a graph: powers of two and 1.5x steps between them, up to and
    including `max_batch`, so padding wastes at most a third of a batch."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    sizes = {max_batch}
    step = 1
    while step < max_batch:
        sizes.update(s for s in (step, step * 3 // 2) if s <= max_batch)
        step *= 2
    return sorted(sizes)


def bucket_for(n: int, buckets: list[int]) -> int:
    """The smallest bucket holding n rows."""
    for size in buckets:
        if size >= n:
            return size
    raise ValueError(f"batch of {n} is larger than the largest graph ({buckets[-1]})")


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: torch.Tensor
    outputs: torch.Tensor


class GraphedForward:
    """`fn(x)` for x of shape (n, *sample_shape), n <= max_batch, replayed from CUDA graphs.

    `fn` must be a pure function of its input on the GPU (no host syncs, no data-dependent
    shapes); the encoder's eval-mode forward with normalisation inside is. Inference only: the
    graphs are captured and replayed under `torch.inference_mode()`."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        sample_shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        max_batch: int,
    ) -> None:
        if device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.fn, self.sample_shape, self.dtype, self.device = fn, sample_shape, dtype, device
        self.buckets = graph_buckets(max_batch)
        self._graphs: dict[int, _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle()
        self.failed = False  # a capture failed: eager from then on

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed or len(x) > self.buckets[-1]:
            return self.fn(x)
        size = bucket_for(len(x), self.buckets)
        graph = self._graphs.get(size) or self._capture(size)
        if graph is None:
            return self.fn(x)
        graph.inputs[: len(x)].copy_(x, non_blocking=True)
        graph.inputs[len(x) :].zero_()  # padding rows: any valid input will do
        graph.graph.replay()
        return graph.outputs[: len(x)].clone()

    def capture_all(self) -> None:
        """Capture every bucket now (at start-up), so no request pays for a capture."""
        for size in self.buckets:
            if self.failed:
                return
            if size not in self._graphs:
                self._capture(size)

    @torch.inference_mode()
    def _capture(self, size: int) -> _Graph | None:
        inputs = torch.zeros((size, *self.sample_shape), dtype=self.dtype, device=self.device)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: cuDNN picks its kernels outside the capture
                for _ in range(2):
                    self.fn(inputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                outputs = self.fn(inputs)
        except Exception:  # noqa: BLE001 - any capture problem: serve eagerly, never fail
            log.warning("CUDA graph capture failed for batch %d; using eager", size, exc_info=True)
            self.failed = True
            return None
        captured = _Graph(graph, inputs, outputs)
        self._graphs[size] = captured
        return captured
