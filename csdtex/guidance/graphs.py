"""CUDA-graph replay of a frozen network's forward pass, one graph per input shape.

A score-distillation step calls the frozen UNet once on a small batch (4 views x 2 or 3 conditions), which is
launch-bound on a fast GPU: hundreds of small kernels whose launch costs more than their arithmetic. Capturing the
forward pass once per input shape and replaying it removes that overhead with identical arithmetic (the same
kernels run on the same data); ``benchmarks/speed.py`` measures the gain.

Inputs are copied into static buffers before each replay and the output is cloned after it, so callers see ordinary
tensors. All graphs of one :class:`GraphedForward` share one memory pool: they replay one at a time, and each keeps
only its own static output alive between replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

WARMUP_CALLS = 3


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor


class GraphedForward:
    """``function(*inputs) -> tensor`` replayed from a CUDA graph captured per (shape, dtype) of the inputs.

    Args:
        function: a pure function of its tensor inputs (no host synchronization, no data-dependent control flow),
            e.g. ``lambda x, t, e: unet(x, t, encoder_hidden_states=e, return_dict=False)[0]``; run without gradients.

    The first call with a new input signature runs ``function`` eagerly :data:`WARMUP_CALLS` times on a side stream
    (cuDNN / cuBLAS choose their algorithms there) and then captures it; later calls copy the inputs in, replay, and
    return a clone of the output. After a capture the caching allocator's unused blocks are returned to the driver
    (``torch.cuda.empty_cache``): the warm-up's blocks belong to the side stream, which never runs again, so they
    would otherwise stay reserved for the whole run (about the UNet's activation peak: an estimated 0.8 GiB for SD at
    12 samples).
    """

    def __init__(self, function: Callable[..., torch.Tensor]) -> None:
        self.function = function
        self._graphs: dict[tuple, _Graph] = {}
        self._pool = None

    @property
    def num_graphs(self) -> int:
        """How many input signatures have been captured."""
        return len(self._graphs)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(inputs)
        for static, value in zip(entry.inputs, inputs):
            static.copy_(value)
        entry.graph.replay()
        return entry.output.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        static = tuple(x.detach().clone() for x in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.function(*static)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            output = self.function(*static)
        torch.cuda.empty_cache()  # the side stream's warm-up blocks (the graph's own pool is kept)
        return _Graph(graph=graph, inputs=static, output=output)
