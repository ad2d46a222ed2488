"""Alpha cut-outs: how much of a surface sample a material lets through, as glTF viewers decide it.

A material with ``alphaMode`` MASK or BLEND (glTF; an OBJ ``map_d``) hides part of its triangles: leaves on quads,
fences, decals. Viewers sample the alpha with the base colour's sampler and texture transform, then

- MASK: draw the sample fully where ``alpha >= alphaCutoff`` and not at all elsewhere;
- BLEND: mix it over whatever lies behind with weight ``alpha``.

:class:`Cutouts` holds the alpha images of a mesh's cut-out materials and answers that weight per surface sample;
:func:`csdtex.render.views.render_views` peels the layers behind the samples that do not cover their pixel fully.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csdtex.sampling import TextureSampler, TextureTransform, sample_texture

CUTOUT_MODES = ("MASK", "BLEND")


@dataclass
class MaterialCutout:
    """The alpha of one material.

    Attributes:
        alpha: float32 [1, H, W] coverage in [0, 1], row 0 = top of the image (v = 1), as the texture it belongs to.
        mode: ``"MASK"`` or ``"BLEND"`` (see the module docstring).
        cutoff: the MASK threshold in [0, 1] (glTF ``alphaCutoff``); unused by BLEND.
        sampler: wrap and filter modes of the material's texture (None: repeat, linear, as input textures).
        transform: the material's texture transform, or None (identity).
    """

    alpha: torch.Tensor
    mode: str
    cutoff: float = 0.5
    sampler: TextureSampler | None = None
    transform: TextureTransform | None = None

    def __post_init__(self) -> None:
        if self.mode not in CUTOUT_MODES:
            raise ValueError(f"cut-out mode must be one of {CUTOUT_MODES}, got {self.mode!r}")
        if self.alpha.dim() != 3 or self.alpha.shape[0] != 1:
            raise ValueError(f"alpha must be [1, H, W], got {tuple(self.alpha.shape)}")

    def coverage(self, uvs: torch.Tensor) -> torch.Tensor:
        """float32 [N] in [0, 1]: the share of each sample at ``uvs`` float [N, 2] that is drawn (MASK: 0 or 1)."""
        alpha = sample_texture(self.alpha, uvs, self.sampler or TextureSampler(), self.transform)[:, 0]
        if self.mode == "MASK":
            return (alpha >= self.cutoff).to(torch.float32)
        return alpha.clamp(0.0, 1.0).to(torch.float32)


@dataclass
class Cutouts:
    """The cut-out materials of a mesh: ``per_material[m]`` is material m's :class:`MaterialCutout`, or None for an
    opaque material. Made by :meth:`csdtex.mesh.Mesh.to_render`; None there when every material is opaque."""

    per_material: list[MaterialCutout | None]

    def coverage(self, uvs: torch.Tensor, materials: torch.Tensor) -> torch.Tensor:
        """float32 [N] in [0, 1]: how much of each surface sample is drawn (1 for opaque materials).

        Args:
            uvs: float [N, 2] texture coordinates of the samples (mesh UVs, (0, 0) = bottom-left).
            materials: int [N] material index of each sample.
        """
        coverage = torch.ones(uvs.shape[0], dtype=torch.float32, device=uvs.device)
        for index, cut in enumerate(self.per_material):
            if cut is not None:  # every sample is looked up (no host-side selection); few materials cut out
                coverage = torch.where(materials == index, cut.coverage(uvs).to(uvs.device), coverage)
        return coverage
