"""User-facing errors.

Every problem caused by the user's input (a bad file, a bad option, a missing model, no GPU, ...) is raised as a
:class:`CsdtexError` whose message is one line saying what is wrong and what to do. The CLI prints that line and
exits with a non-zero code, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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


def one_line(error: BaseException, limit: int = 240) -> str:
    """The first non-empty line of ``error``'s message, shortened to ``limit`` characters, for embedding a caught
    library exception into a one-line :class:`CsdtexError` message; the exception's type name when it has no text."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_message(error: BaseException) -> tuple[str, int] | None:
    """The one line (``"error: ..."``) and exit code the command line shows for ``error``, or None for a bug.

    Covers :class:`CsdtexError` (its own message and ``exit_code``), :class:`MemoryError` and CUDA out-of-memory
    errors (recognised by type name, so torch is not imported here). ``csdtex paint`` and ``csdtex batch`` share it,
    so a failed asset in a batch records exactly the line the single-asset command prints. KeyboardInterrupt and
    other exceptions give None.
    """
    if isinstance(error, CsdtexError):
        return f"error: {error}", error.exit_code
    if isinstance(error, MemoryError):
        return "error: out of memory: lower --texture-size, --resolution or the number of views", 3
    if type(error).__name__ == "OutOfMemoryError":
        return ("error: the GPU ran out of memory: lower --views-per-step, --resolution or --texture-size, "
                "or use --device cpu"), 3
    return None
