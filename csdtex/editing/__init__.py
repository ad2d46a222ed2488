"""Text-guided editing of an existing texture into the asset's own UV layout (``csdtex edit`` / :func:`csdtex.edit`).

- :mod:`csdtex.editing.region`: which texels may change (a UV mask, a material selection) and the input checks.
- :mod:`csdtex.editing.texture`: :class:`EditableTexture`, the input texture (learnable) plus a residual field on the
  surface, limited to the editable region.
- :mod:`csdtex.editing.run`: :func:`edit`, the paint pipeline's stages with that texture model and the CSD objective
  whose negative prompt is the source description (plus an optional anchor to the original).
"""

from __future__ import annotations

from csdtex.editing.run import EditResult, edit

__all__ = ["EditResult", "edit"]
