"""csdtex: paint textures onto existing meshes from a text prompt with Classifier Score Distillation.

The package imports nothing heavy at import time; submodules are loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_mesh", "Mesh", "CsdtexError"]


def __getattr__(name: str):
    if name in ("load_mesh", "Mesh"):
        from csdtex import mesh

        return getattr(mesh, name)
    if name == "CsdtexError":
        from csdtex.errors import CsdtexError

        return CsdtexError
    raise AttributeError(f"module 'csdtex' has no attribute {name!r}")
