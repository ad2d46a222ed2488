"""csdtex: paint textures onto existing meshes from a text prompt with Classifier Score Distillation.

Public API (imported lazily, so ``import csdtex`` is cheap)::

    csdtex.paint(mesh, prompt, config) -> PaintResult     # csdtex.painting.paint
    csdtex.edit(mesh, prompt, source, config) -> EditResult # csdtex.editing.edit
    csdtex.PaintConfig, csdtex.EditConfig                   # csdtex.config
    csdtex.load_mesh(path) -> Mesh                          # csdtex.mesh.load_mesh
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "paint", "PaintConfig", "PaintResult", "edit", "EditConfig", "EditResult", "load_mesh", "Mesh",
           "CsdtexError"]

_LAZY = {
    "paint": ("csdtex.painting", "paint"),
    "PaintResult": ("csdtex.painting", "PaintResult"),
    "PaintConfig": ("csdtex.config", "PaintConfig"),
    "edit": ("csdtex.editing", "edit"),
    "EditResult": ("csdtex.editing", "EditResult"),
    "EditConfig": ("csdtex.config", "EditConfig"),
    "load_mesh": ("csdtex.mesh", "load_mesh"),
    "Mesh": ("csdtex.mesh", "Mesh"),
    "CsdtexError": ("csdtex.errors", "CsdtexError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'csdtex' has no attribute {name!r}")
