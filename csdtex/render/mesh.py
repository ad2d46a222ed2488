"""The mesh the renderer draws: tensors on one device, normalized into the unit sphere.

Made by :meth:`csdtex.mesh.Mesh.to_render`; consumed by :mod:`csdtex.render.views`, :mod:`csdtex.bake`,
:mod:`csdtex.preview` and :mod:`csdtex.tinyprior.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csdtex.render.cutouts import Cutouts

__all__ = ["RenderMesh"]


@dataclass
class RenderMesh:
    """A mesh as tensors on one device, normalized into the unit sphere, for rasterization and shading.

    Attributes:
        positions: float32 [V, 3], ``(vertices - center) * scale`` (see :meth:`csdtex.mesh.Mesh.normalization`);
            right-handed, +Y up, inside the unit sphere.
        faces: int32 [F, 3].
        normals: float32 [V, 3] unit vertex normals, area-weighted over faces sharing a *position* (so normals are
            smooth across UV seams and duplicated vertices).
        uvs: float32 [T, 2], (0, 0) = bottom-left of the texture image; a single dummy row when the mesh has no UVs.
        uv_faces: int32 [F, 3]; rows of -1 for faces without UVs.
        face_materials: int32 [F].
        num_materials: number of materials (texture images) of the mesh.
        colors: float32 [V, 3] per-vertex RGB in [0, 1] multiplied into the texture colour by
            :func:`csdtex.render.views.render_views` (glTF ``COLOR_0``), or None (the default; painting never sets it).
        corner_normals: float32 [F, 3, 3] unit shading normal of every face corner, from the mesh file (glTF
            ``NORMAL``, OBJ ``vn``: hard edges and custom normals, so that renders shade as viewers do), or None: then
            ``normals`` is interpolated.
        cutouts: the alpha of materials with cut-outs (glTF ``alphaMode`` MASK / BLEND, OBJ ``map_d``), which
            :func:`csdtex.render.views.render_views` honours as viewers do, or None when every material is opaque.
    """

    positions: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    face_materials: torch.Tensor
    num_materials: int
    colors: torch.Tensor | None = None
    corner_normals: torch.Tensor | None = None
    cutouts: Cutouts | None = None

    @property
    def device(self) -> torch.device:
        return self.positions.device
