"""Texture representations: what colour a surface point has.

Every representation is a :class:`TextureModel` (a ``torch.nn.Module``) with one call::

    albedo = model(points, uvs, materials)      # float32 [N, 3] in [0, 1]

- ``points``: float32 [N, 3] surface points in the *normalized render space* of :meth:`csdtex.mesh.Mesh.to_render`
  (inside the unit sphere, so inside [-1, 1]^3).
- ``uvs``: float32 [N, 2] texture coordinates in [0, 1], (0, 0) = bottom-left of the texture image (the OBJ
  convention, see :mod:`csdtex.mesh`). Only read by models whose ``uses_uvs`` is True; may be None otherwise.
- ``materials``: int64 or int32 [N] material index in [0, M); None means material 0 for every point.
- The result is the albedo as it will be written to the 8-bit texture: stored textures are treated as
  sRGB-encoded values directly, so no colour-space conversion happens anywhere in this module.

Two models:

- :class:`ImplicitTextureField`: a multi-resolution hash grid (:class:`csdtex.hashgrid.HashGridEncoding`) over the
  normalized surface position, followed by a small MLP and a sigmoid. Independent of UVs, so it paints seam-free;
  the texture image is obtained afterwards by baking (evaluate the field at the surface point of every texel).
- :class:`UVTexture`: an explicit learnable texture image per material, looked up by UV as glTF viewers do
  (texture transform, wrap modes, filter: :func:`csdtex.sampling.sample_texture`).

:func:`query_texture` evaluates either on many points in chunks (baking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from csdtex.hashgrid import HashGridEncoding
from csdtex.sampling import TextureSampler, TextureTransform, sample_texture

__all__ = [
    "TextureModel",
    "FieldConfig",
    "ImplicitTextureField",
    "ResidualField",
    "UVTexture",
    "query_texture",
    "seeded_model",
    "color_logits",
]


# ----------------------------------------------------------------------------------------------------------------------
# Common interface
# ----------------------------------------------------------------------------------------------------------------------


class TextureModel(nn.Module):
    """Base class of texture representations: ``forward(points, uvs, materials) -> albedo``.

    Subclasses set the class attribute ``uses_uvs`` (True when ``uvs`` must be given) and implement :meth:`forward`.
    """

    uses_uvs: ClassVar[bool] = False

    def optimizer_groups(self, learning_rate: float) -> list[dict]:
        """Adam parameter groups: every parameter at ``learning_rate`` (models with parts that should learn at
        other rates override this)."""
        return [{"params": list(self.parameters()), "lr": learning_rate}]

    def forward(self, points: Tensor, uvs: Tensor | None = None, materials: Tensor | None = None) -> Tensor:
        """Albedo of surface points.

        Args:
            points: float32 [N, 3], normalized render space (inside the unit sphere, so in [-1, 1]^3).
            uvs: float32 [N, 2] in [0, 1], (0, 0) = bottom-left of the texture image; required when
                ``uses_uvs`` is True, ignored (may be None) otherwise.
            materials: int64/int32 [N], material index per point; None means material 0 everywhere.
        Returns:
            float32 [N, 3], RGB albedo in [0, 1] (values as written to the 8-bit texture, no colour conversion).
        """
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------------------
# Implicit texture field
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FieldConfig:
    """Hash grid + MLP texture field settings. Defaults follow the released CSD code (docs/design.md)."""

    num_levels: int = 16
    """Levels of the multi-resolution hash grid."""
    features_per_level: int = 2
    """Features stored at each grid vertex, per level."""
    log2_hashmap_size: int = 19
    """Rows of each hashed level's table, as a power of two (2^19 = 524288)."""
    base_resolution: int = 16
    """Cells per axis of the coarsest level, over the normalized bounding cube [-1, 1]^3."""
    max_resolution: int = 2048
    """Cells per axis of the finest level."""
    hidden_dim: int = 64
    """Width of the single hidden layer of the MLP."""

    def validate(self) -> str | None:
        """The first problem of these settings as one line (None when they are usable): whole numbers in the ranges
        the hash grid and MLP can be built with (a 2^40-row table would allocate ~110 GB)."""
        limits = {"num_levels": (1, 32), "features_per_level": (1, 16), "log2_hashmap_size": (8, 26),
                  "base_resolution": (1, 1 << 20), "max_resolution": (1, 1 << 20), "hidden_dim": (1, 1024)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                return f"field.{name} must be a whole number in {low}..{high} (got {value!r})"
        if self.max_resolution < self.base_resolution:
            return (f"field.max_resolution ({self.max_resolution}) must be at least field.base_resolution "
                    f"({self.base_resolution})")
        return None

    @classmethod
    def small(cls) -> "FieldConfig":
        """A CPU-friendly configuration for tests and smoke runs: table 2^16, finest resolution 512."""
        return cls(log2_hashmap_size=16, max_resolution=512)


class ImplicitTextureField(TextureModel):
    """Albedo as a function of the surface position: hash grid -> Linear -> ReLU -> Linear -> sigmoid.

    ``points`` (normalized render space, [-1, 1]^3) are mapped to ``(points + 1) / 2`` and clamped to [0, 1]^3
    before encoding. ``uvs`` and ``materials`` are ignored (``uses_uvs = False``): the field is defined on the
    surface in space, so it has no UV seams.

    Shapes: ``forward(points float32 [N, 3], uvs=None, materials=None) -> float32 [N, 3]`` in (0, 1).
    """

    uses_uvs: ClassVar[bool] = False

    def __init__(self, config: FieldConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FieldConfig()
        c = self.config
        self.encoding = HashGridEncoding(
            num_levels=c.num_levels,
            features_per_level=c.features_per_level,
            log2_hashmap_size=c.log2_hashmap_size,
            base_resolution=c.base_resolution,
            max_resolution=c.max_resolution,
        )
        self.mlp = nn.Sequential(
            nn.Linear(self.encoding.output_dim, c.hidden_dim),
            nn.ReLU(),
            nn.Linear(c.hidden_dim, 3),
        )

    def forward(self, points: Tensor, uvs: Tensor | None = None, materials: Tensor | None = None) -> Tensor:
        """Albedo float32 [N, 3] in (0, 1) at ``points`` float32 [N, 3] in [-1, 1]^3; ``uvs``/``materials`` unused."""
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [N, 3], got {tuple(points.shape)}")
        points01 = ((points + 1.0) * 0.5).clamp(0.0, 1.0)
        return torch.sigmoid(self.mlp(self.encoding(points01)))


class ResidualField(ImplicitTextureField):
    """A colour *change* in logit space as a function of the surface position: the same hash grid and MLP as
    :class:`ImplicitTextureField`, without the output ``sigmoid`` and with the last layer initialised to zero, so it
    starts as exactly 0 everywhere (an edit with zero steps reproduces its input). An edit adds it to the logit of the
    input colour (``sigmoid(logit(c) + r)``), so no colour is ever clamped and every texel keeps a gradient.

    Shapes: ``forward(points float32 [N, 3], uvs=None, materials=None) -> float32 [N, 3]`` (unbounded logits).
    """

    def __init__(self, config: FieldConfig | None = None) -> None:
        super().__init__(config)
        last = self.mlp[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, points: Tensor, uvs: Tensor | None = None, materials: Tensor | None = None) -> Tensor:
        """Logit change float32 [N, 3] at ``points`` float32 [N, 3] in [-1, 1]^3."""
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [N, 3], got {tuple(points.shape)}")
        points01 = ((points + 1.0) * 0.5).clamp(0.0, 1.0)
        return self.mlp(self.encoding(points01))


def seeded_model(seed: int, build: Callable[[], nn.Module], device: torch.device | str) -> nn.Module:
    """``build()`` on ``device``, its parameters drawn from a forked copy of the global RNG seeded with ``seed``: the
    model depends on ``seed`` alone and the global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(device)


# ----------------------------------------------------------------------------------------------------------------------
# Explicit UV texture
# ----------------------------------------------------------------------------------------------------------------------

# Colours are clamped to [eps, 1 - eps] before the logit so that 0 and 255 give finite logits. eps is a quarter of an
# 8-bit level, not half: with half a level, 255 comes back as 254.5, which rounds (half to even) to 254, and 0 as
# 0.4999..., exact halves left to float error. A quarter level rounds back to 0 and 255 with margin.
_COLOR_EPS = 0.25 / 255.0


def color_logits(colors: Tensor) -> Tensor:
    """``logit`` of colours float [...] in [0, 1], clamped to [eps, 1 - eps] first (eps = a quarter of an 8-bit
    level, see above), so 0 and 255 give finite logits whose sigmoid rounds back to the same byte."""
    return torch.logit(colors.clamp(_COLOR_EPS, 1.0 - _COLOR_EPS))


class UVTexture(TextureModel):
    """Explicit learnable texture: one RGB image per material, looked up by UV like a glTF viewer does.

    The parameter ``logits`` is float32 [M, 3, S, S]; the texture colour is ``sigmoid(logits)``, so it stays in
    (0, 1) under any optimizer step. Row 0 of every image is the *top* of the image (v = 1) and column 0 the left
    edge (u = 0), exactly as in a PNG file, so :meth:`to_images` writes what an image viewer shows.

    Sampling is :func:`csdtex.sampling.sample_texture` on the colours (sigmoid first, then interpolation) with each
    material's sampler and texture transform: texel (row r, column c) has its centre at
    ``u = (c + 0.5) / S, v = 1 - (r + 0.5) / S``. Without samplers (the default) UVs outside [0, 1] are clamped to
    the edge texels (``CLAMP_TO_EDGE``, bilinear); pass the input's samplers to repeat or mirror them.

    Shapes: ``forward(points [N, 3] (unused), uvs float32 [N, 2], materials int [N] or None) -> float32 [N, 3]``.
    """

    uses_uvs: ClassVar[bool] = True

    def __init__(
        self,
        num_materials: int,
        size: int,
        init_color: Sequence[float] = (0.5, 0.5, 0.5),
        samplers: Sequence[TextureSampler | None] | None = None,
        transforms: Sequence[TextureTransform | None] | None = None,
    ) -> None:
        """A texture of ``num_materials`` images of ``size`` x ``size`` texels, all ``init_color`` (RGB in [0, 1]).

        ``samplers`` / ``transforms``: one entry (or None) per material; None = clamp to edge / no transform.
        """
        super().__init__()
        if num_materials < 1 or size < 1:
            raise ValueError(f"need num_materials >= 1 and size >= 1, got {num_materials}, {size}")
        color = torch.as_tensor(tuple(init_color), dtype=torch.float32)
        if color.shape != (3,):
            raise ValueError(f"init_color must be 3 numbers, got {init_color!r}")
        self.logits = nn.Parameter(color_logits(color).view(1, 3, 1, 1).repeat(num_materials, 1, size, size))
        self.samplers: list[TextureSampler | None] = _per_material(samplers, num_materials, "samplers")
        self.transforms: list[TextureTransform | None] = _per_material(transforms, num_materials, "transforms")

    @property
    def num_materials(self) -> int:
        return int(self.logits.shape[0])

    @property
    def size(self) -> int:
        return int(self.logits.shape[-1])

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray], size: int | None = None,
                    samplers: Sequence[TextureSampler | None] | None = None,
                    transforms: Sequence[TextureTransform | None] | None = None) -> "UVTexture":
        """A texture initialized from existing images, one per material.

        Args:
            images: uint8 [H, W, 3] arrays (RGB, row 0 = top, i.e. v = 1); [H, W, 4] has its alpha dropped and
                [H, W] is taken as grey.
            size: side S of the learned images. None keeps the images' size when they are all square and equal,
                else uses the largest side. Images of another size are resized with PIL (Lanczos).
        Returns:
            A UVTexture whose :meth:`to_images` gives back the (resized) images within one 8-bit level (exactly,
            when no resizing happened).
        """
        if len(images) == 0:
            raise ValueError("from_images needs at least one image")
        arrays = [_as_rgb_uint8(image) for image in images]
        shapes = {array.shape[:2] for array in arrays}
        if size is None:
            only_shape = next(iter(shapes))
            size = only_shape[0] if len(shapes) == 1 and only_shape[0] == only_shape[1] else max(max(shapes, key=max))
        texture = cls(len(arrays), int(size), samplers=samplers, transforms=transforms)
        stacked = np.stack([_resize_rgb(array, int(size)) for array in arrays])  # [M, S, S, 3] uint8
        colors = torch.from_numpy(stacked).to(torch.float32).div_(255.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            texture.logits.copy_(color_logits(colors))
        return texture

    def colors(self) -> Tensor:
        """The texture images as float [M, 3, S, S] in (0, 1), row 0 = top (differentiable)."""
        return torch.sigmoid(self.logits)

    def to_images(self) -> list[np.ndarray]:
        """The texture images as uint8 [S, S, 3] arrays (row 0 = top, i.e. v = 1), one per material."""
        with torch.no_grad():
            values = (self.colors() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return [np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy()) for image in values]

    def forward(self, points: Tensor | None, uvs: Tensor | None, materials: Tensor | None = None) -> Tensor:
        """Sampled colour float32 [N, 3] in (0, 1) (see the class docstring).

        Args:
            points: unused (may be None).
            uvs: float32 [N, 2], (0, 0) = bottom-left of the image, (1, 1) = top-right.
            materials: int [N] in [0, M), or None for material 0.
        """
        if uvs is None:
            raise ValueError("UVTexture needs uvs (the mesh must have texture coordinates)")
        if uvs.ndim != 2 or uvs.shape[1] != 2:
            raise ValueError(f"uvs must have shape [N, 2], got {tuple(uvs.shape)}")
        colors = self.colors()
        if uvs.shape[0] == 0:
            return colors.new_zeros(0, 3)
        uvs = uvs.to(device=colors.device, dtype=colors.dtype)
        if materials is not None:
            self._check_materials(materials)
        if materials is None or self.num_materials == 1:
            return self._sample(colors, 0, uvs)
        materials = materials.to(device=colors.device, dtype=torch.int64)
        albedo = torch.zeros(uvs.shape[0], 3, dtype=colors.dtype, device=colors.device)
        for material in range(self.num_materials):
            selected = torch.nonzero(materials == material).squeeze(1)
            if selected.numel() > 0:
                albedo = albedo.index_copy(0, selected, self._sample(colors, material, uvs[selected]))
        return albedo

    def _sample(self, colors: Tensor, material: int, uvs: Tensor) -> Tensor:
        """colors [M, 3, S, S], uvs [n, 2] -> [n, 3] with the material's sampler and transform."""
        return sample_texture(colors[material], uvs, self.samplers[material], self.transforms[material])

    def _check_materials(self, materials: Tensor) -> None:
        if materials.numel() == 0:
            return
        lowest, highest = (int(value) for value in torch.aminmax(materials))
        if lowest < 0 or highest >= self.num_materials:
            raise ValueError(f"material indices must lie in [0, {self.num_materials}), got [{lowest}, {highest}]")


def _per_material(values, count: int, what: str) -> list:
    if values is None:
        return [None] * count
    values = list(values)
    if len(values) != count:
        raise ValueError(f"need one entry of {what} per material ({count}), got {len(values)}")
    return values


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"texture images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"texture images must be [H, W, 3] (or [H, W, 4] / [H, W]), got {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def _resize_rgb(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[:2] == (size, size):
        return array
    from PIL import Image

    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.LANCZOS))


# ----------------------------------------------------------------------------------------------------------------------
# Chunked evaluation
# ----------------------------------------------------------------------------------------------------------------------


def query_texture(
    model: TextureModel,
    points: Tensor,
    uvs: Tensor | None = None,
    materials: Tensor | None = None,
    chunk_size: int = 2**18,
) -> Tensor:
    """Evaluate ``model`` on many points, ``chunk_size`` at a time (baking; bounds peak memory).

    Differentiable when grad is enabled (the chunks are concatenated); wrap in ``torch.no_grad()`` for baking.

    Args:
        model: any :class:`TextureModel`.
        points: float32 [N, 3] in normalized render space.
        uvs: float32 [N, 2] in [0, 1] ((0, 0) = bottom-left), required if ``model.uses_uvs``.
        materials: int [N] or None (material 0).
        chunk_size: points per model call.
    Returns:
        float32 [N, 3] albedo in [0, 1] on the model's output device.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if model.uses_uvs and uvs is None:
        raise ValueError(f"{type(model).__name__} needs uvs")
    num_points = points.shape[0]
    if num_points <= chunk_size:
        return model(points, uvs, materials)
    outputs = []
    for start in range(0, num_points, chunk_size):
        stop = min(start + chunk_size, num_points)
        outputs.append(
            model(
                points[start:stop],
                None if uvs is None else uvs[start:stop],
                None if materials is None else materials[start:stop],
            )
        )
    return torch.cat(outputs, dim=0)
