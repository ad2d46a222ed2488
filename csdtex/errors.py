"""User-facing errors.

Every problem caused by the user's input (a bad file, a bad option, a missing model, no GPU, ...) is raised as a
:class:`CsdtexError` whose message is one line saying what is wrong and what to do. The CLI prints that line and
exits with a non-zero code, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

T = TypeVar("T")


class CsdtexError(Exception):
    """A problem with the user's input or environment; ``str(err)`` is a one-line explanation with a remedy."""

    exit_code: int = 2


class MeshError(CsdtexError):
    """The mesh file is missing, unreadable, unsupported or geometrically unusable."""


class ConfigError(CsdtexError):
    """An option or configuration value is invalid."""


class DeviceError(CsdtexError):
    """The requested compute device or backend is not available (no CUDA, nvdiffrast missing, out of memory)."""


class ModelError(CsdtexError):
    """A diffusion prior could not be found or loaded."""


class NumericalError(CsdtexError, RuntimeError):
    """The optimization's numbers became NaN or infinite (an overflowing half-precision prior, or options so
    extreme that the step overflows); the message says which remedy fits."""


class UnpaintedTextureError(CsdtexError):
    """Nothing could be painted: no texel of the texture gets a surface sample (UVs without area, or smaller than a
    texel); the texture would be the flat fill colour everywhere, so nothing is written."""


class GpuOutOfMemoryError(DeviceError):
    """The GPU ran out of memory during a paint or edit run; the message names the options that use less."""

    exit_code = 3


def out_of_memory_message(error: BaseException | None = None, *, low_vram: bool | None = None,
                          texture_option: bool = True) -> str:
    """The remedy line for a GPU out-of-memory ``error`` (without the ``"error: "`` prefix).

    Args:
        error: the library's out-of-memory exception; its "Tried to allocate X" and "total capacity of Y" figures
            are quoted when present.
        low_vram: whether the run already used ``--low-vram`` (True: name only the smaller settings); None when
            unknown (outside a run: name ``--low-vram`` as the first remedy of paint, edit and batch).
        texture_option: name ``--texture-size`` too (paint and batch; an edit keeps the input's texture size).
    """
    figures = ""
    if error is not None:
        text = str(error)
        wanted = re.search(r"[Tt]ried to allocate ([0-9.]+ [KMGT]?i?B)", text)
        total = re.search(r"total capacity of ([0-9.]+ [KMGT]?i?B)", text)
        if wanted:
            figures = f" (an allocation of {wanted.group(1)} failed" + (f" on a {total.group(1)} GPU" if total else "")
            figures += ")"
    smaller = "--views-per-step (e.g. 2)" + (" or --texture-size" if texture_option else "")
    if low_vram:
        return (f"the GPU ran out of memory even with --low-vram{figures}: lower {smaller}, close other programs "
                "using the GPU, or use --device cpu")
    command = "rerun" if low_vram is False else "rerun paint / edit / batch"
    return f"the GPU ran out of memory{figures}: {command} with --low-vram (slower, same result), or lower {smaller}"


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's GPU out-of-memory exceptions (``torch.OutOfMemoryError``, also reachable as
    ``torch.cuda.OutOfMemoryError``), recognised by type name so that this module does not import torch."""
    return any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__)


def call_with_gpu_memory_errors(function: Callable[[], T], *, low_vram: bool, texture_option: bool = True) -> T:
    """``function()``, with a GPU out-of-memory error it raises turned into a one-line :class:`GpuOutOfMemoryError`
    that names the option to use (:func:`out_of_memory_message`). The new error is raised after the original one is
    handled, so it carries neither it nor its traceback: the GPU tensors the failed run's frames held are freed at
    once (a batch worker goes on with its next asset; an interactive session does not keep them)."""
    try:
        return function()
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        message = out_of_memory_message(error, low_vram=low_vram, texture_option=texture_option)
    raise GpuOutOfMemoryError(message)


def one_line(error: BaseException, limit: int = 240) -> str:
    """The first non-empty line of ``error``'s message, shortened to ``limit`` characters, for embedding a caught
    library exception into a one-line :class:`CsdtexError` message; the exception's type name when it has no text."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_message(error: BaseException) -> tuple[str, int] | None:
    """The one line (``"error: ..."``) and exit code the command line shows for ``error``, or None for a bug.

    Covers :class:`CsdtexError` (its own message and ``exit_code``; paint and edit turn a GPU out-of-memory error
    into :class:`GpuOutOfMemoryError`), :class:`MemoryError` and any other GPU out-of-memory error (recognised by
    type name, so torch is not imported here; the line names ``--low-vram``). ``csdtex paint`` and ``csdtex batch``
    share it, so a failed asset in a batch records exactly the line the single-asset command prints.
    KeyboardInterrupt and other exceptions give None.
    """
    if isinstance(error, CsdtexError):
        return f"error: {error}", error.exit_code
    if is_out_of_memory(error):
        return f"error: {out_of_memory_message(error)}", 3
    if isinstance(error, MemoryError):
        return "error: out of memory: lower --texture-size or --views-per-step, or close other programs", 3
    return None
