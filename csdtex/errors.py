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
