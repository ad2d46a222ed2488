"""The texture model of an edit: the input texture (learnable) plus a residual field, inside the editable region.

For material ``m`` with input texture ``O_m`` (float [3, H, W] in [0, 1]), editable weights ``M_m`` ([H, W] in
[0, 1], :class:`~csdtex.editing.region.EditRegion`) and learnable texels ``L_m = sigmoid(logits_m)`` initialised to
``O_m``, the colour of a surface point ``p`` with texture coordinate ``uv`` is::

    E_m     = O_m + M_m * (L_m - O_m)                          (texel values; = O_m wherever M_m = 0)
    colour  = sigmoid(logit(bilinear(E_m, uv)) + bilinear(M_m, uv) * R(p))

where ``bilinear`` is :func:`csdtex.sampling.sample_texture` with the material's own sampler (wrap and filter modes,
as glTF viewers read the input), ``logit`` clamps its argument to [1/1020, 1 - 1/1020] (a quarter of an 8-bit level,
so 0 and 255 round back to themselves), and ``R`` is a :class:`~csdtex.field.ResidualField` on the surface: a change
of the colour's logit, 0 at the start, continuous across UV seams (an edit stays coherent where charts meet). In logit
space no colour is clamped, so no texel loses its gradient by saturating (with an additive change clamped to [0, 1],
texels pushed past 0 or 1 stop receiving a gradient and freeze as saturated blotches). Baking writes
``sigmoid(logit(E_m) + M_m * R(p_texel))`` at every texel of the input texture's own size; texels with ``M_m = 0``
keep their input bytes exactly.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from csdtex.field import FieldConfig, ResidualField, TextureModel, color_logits
from csdtex.sampling import TextureSampler, sample_texture


class EditableTexture(TextureModel):
    """See the module docstring.

    Args:
        images: uint8 [H_m, W_m, 3] per material (row 0 = top, v = 1), the input textures (a small flat image for a
            material without texture).
        weights: float32 [H_m, W_m] in [0, 1] per material, the editable region at each texture's size.
        field: the residual field's hash-grid configuration.
        samplers: per material, the :class:`~csdtex.sampling.TextureSampler` to read its texture with (None =
            clamp-to-edge bilinear).
        texel_learning_rate_scale: the texels' learning rate relative to the residual field's (the texels are
            many and independent, so at the field's rate they pick up per-texel noise from single views).

    Shapes: ``forward(points float32 [N, 3], uvs float32 [N, 2], materials int [N] or None) -> float32 [N, 3]`` in
    [0, 1]; ``uvs`` (0, 0) = bottom-left of the image, sampled bilinearly with border clamping like
    :class:`~csdtex.field.UVTexture`.
    """

    uses_uvs: ClassVar[bool] = True

    def __init__(self, images: Sequence[np.ndarray], weights: Sequence[np.ndarray], field: FieldConfig,
                 samplers: Sequence[TextureSampler | None] | None = None,
                 texel_learning_rate_scale: float = 1.0) -> None:
        super().__init__()
        self.texel_learning_rate_scale = float(texel_learning_rate_scale)
        self.samplers = list(samplers) if samplers is not None else [None] * len(images)
        if len(images) != len(weights) or not images:
            raise ValueError(f"need one weight map per image, got {len(images)} images and {len(weights)} maps")
        self.num_materials = len(images)
        self.logits = nn.ParameterList()
        for index, (image, weight) in enumerate(zip(images, weights)):
            if image.shape[:2] != weight.shape:
                raise ValueError(f"material {index}: weights {weight.shape} do not match the image {image.shape[:2]}")
            original = torch.from_numpy(np.array(image[..., :3], dtype=np.float32)).div(255.0).permute(2, 0, 1)
            self.register_buffer(f"original_{index}", original[None], persistent=False)
            self.register_buffer(f"weight_{index}", torch.from_numpy(weight.astype(np.float32))[None, None],
                                 persistent=False)
            self.logits.append(nn.Parameter(color_logits(original)[None]))
        self.residual = ResidualField(field)

    def optimizer_groups(self, learning_rate: float) -> list[dict]:
        """The residual field at ``learning_rate``, the texels at ``learning_rate * texel_learning_rate_scale``."""
        return [{"params": list(self.residual.parameters()), "lr": learning_rate},
                {"params": list(self.logits.parameters()), "lr": learning_rate * self.texel_learning_rate_scale}]

    def original(self, material: int) -> Tensor:
        """float32 [1, 3, H, W] input texture of ``material`` in [0, 1]."""
        return getattr(self, f"original_{material}")

    def weight(self, material: int) -> Tensor:
        """float32 [1, 1, H, W] editable weights of ``material``."""
        return getattr(self, f"weight_{material}")

    def texels(self, material: int) -> Tensor:
        """``E_m``: float32 [1, 3, H, W] texel values of ``material`` (differentiable)."""
        original, weight = self.original(material), self.weight(material)
        return original + weight * (torch.sigmoid(self.logits[material]) - original)

    def forward(self, points: Tensor, uvs: Tensor | None, materials: Tensor | None = None) -> Tensor:
        return self._colors(points, uvs, materials, edited=True)

    def original_colors(self, points: Tensor, uvs: Tensor | None, materials: Tensor | None = None) -> Tensor:
        """The input texture's colour at the same samples (no edit, no gradient): float32 [N, 3] in [0, 1]."""
        with torch.no_grad():
            return self._colors(points, uvs, materials, edited=False)

    def _colors(self, points: Tensor, uvs: Tensor | None, materials: Tensor | None, edited: bool) -> Tensor:
        if uvs is None:
            raise ValueError("EditableTexture needs uvs (the mesh's own texture coordinates)")
        uvs = uvs.float()
        residual = self.residual(points) if edited else None
        if materials is None or self.num_materials == 1:
            return self._material_colors(0, uvs, residual, edited)
        materials = materials.long()
        colors = uvs.new_zeros(uvs.shape[0], 3)
        for material in range(self.num_materials):
            selected = torch.nonzero(materials == material).squeeze(1)
            if selected.numel():
                part = self._material_colors(material, uvs[selected],
                                             None if residual is None else residual[selected], edited)
                colors = colors.index_copy(0, selected, part)
        return colors

    def _material_colors(self, material: int, uvs: Tensor, residual: Tensor | None, edited: bool) -> Tensor:
        sampler = self.samplers[material]
        if not edited:
            return sample_texture(self.original(material), uvs, sampler)
        color = sample_texture(self.texels(material), uvs, sampler)
        weight = sample_texture(self.weight(material), uvs, sampler)
        return apply_logit_change(color, weight * residual)


def apply_logit_change(colors: Tensor, logit_change: Tensor) -> Tensor:
    """``sigmoid(logit(colors) + logit_change)``: colours float32 [..., 3] in [0, 1] changed by float32 [..., 3]
    logits (broadcasting); the colours are clamped to [eps, 1 - eps] (a quarter of an 8-bit level) before the logit,
    so a zero change returns every colour within a quarter level (the same byte after rounding)."""
    return torch.sigmoid(color_logits(colors) + logit_change)


class OriginalTextureView(TextureModel):
    """The input texture of an :class:`EditableTexture`, as a texture model of its own (for rendering the anchor's
    reference views and "before" previews)."""

    uses_uvs: ClassVar[bool] = True

    def __init__(self, texture: EditableTexture) -> None:
        super().__init__()
        self._texture = [texture]  # not a submodule: its parameters belong to the edit

    def forward(self, points: Tensor, uvs: Tensor | None, materials: Tensor | None = None) -> Tensor:
        return self._texture[0].original_colors(points, uvs, materials)
