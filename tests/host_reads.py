"""Counting host reads without a GPU: a CPU stand-in for ``torch.cuda.set_sync_debug_mode("warn")``.

:class:`HostReadCounter` records every tensor operation, called from Python, that would make the host wait for a
CUDA device: reading values back (``item``, ``tolist``, ``int``/``float``/``bool`` of a tensor, ``cpu``, ``numpy``)
and operations whose output size depends on the values (``nonzero``, boolean-mask indexing, ``masked_select``,
``unique``, ``repeat_interleave`` without ``output_size``). It is approximate: it sees calls made from Python only,
not what a C++ operator does inside; the GPU tests measure the real thing.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

_READS = {"item", "tolist", "__int__", "__float__", "__bool__", "__index__", "cpu", "numpy", "nonzero", "argwhere",
          "masked_select", "unique", "unique_consecutive"}
_INDEXING = {"__getitem__", "__setitem__", "index_put", "index_put_"}


def _has_mask_index(indices) -> bool:
    indices = indices if isinstance(indices, (tuple, list)) else (indices,)
    return any(isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8) for index in indices)


class HostReadCounter(TorchFunctionMode):
    """Context manager; ``names`` lists the host-reading operations called inside it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _READS:
            self.names.append(name)
        elif name in _INDEXING and len(args) > 1 and _has_mask_index(args[1]):
            self.names.append(f"{name}[mask]")
        elif name == "repeat_interleave" and kwargs.get("output_size") is None and (
                len(args) == 1  # torch.repeat_interleave(repeats)
                or any(isinstance(value, torch.Tensor) for value in [*args[1:2], kwargs.get("repeats")])):
            self.names.append(name)
        return func(*args, **kwargs)
