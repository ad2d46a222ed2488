"""How a texture image is looked up by UV: samplers (wrap and filter modes), texture transforms, and the one sampling
function every consumer uses.

glTF viewers look a base-colour texture up in three steps, and csdtex does the same everywhere (``csdtex render``,
previews, :class:`csdtex.field.UVTexture`, baking, edits):

1. the texture transform (glTF ``KHR_texture_transform``; OBJ ``map_Kd -o/-s``) maps the mesh's UV to the texture's
   UV (:class:`TextureTransform`);
2. the sampler's wrap mode per axis (``REPEAT``, ``MIRRORED_REPEAT``, ``CLAMP_TO_EDGE``) folds UVs outside [0, 1]
   back onto the image (:class:`TextureSampler`);
3. the magnification filter (``LINEAR`` = bilinear, ``NEAREST``) reads the texels.

Conventions (those of :mod:`csdtex.mesh`): UV (0, 0) is the bottom-left corner of the image and (1, 1) the top-right;
image row 0 is the top (v = 1). Texel (row r, column c) of an H x W image has its centre at
``u = (c + 0.5) / W, v = 1 - (r + 0.5) / H``. Wrapping acts on texel indices exactly as OpenGL / WebGL do (so
``CLAMP_TO_EDGE`` equals ``grid_sample(padding_mode='border', align_corners=False)``).

Minification filters (mipmaps) are recorded but not modelled: csdtex renders previews supersampled, which averages
texels instead.

Public API: :class:`TextureSampler`, :class:`TextureTransform`, :func:`sample_texture` (the sampling function),
:func:`wrap_uv_triangles` (where the wrap rule puts UV triangles of other integer tiles, for baking and overlap
measures) and :func:`baked_sampler` (the sampler a baked texture is exported with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CLAMP_TO_EDGE",
    "MIRRORED_REPEAT",
    "REPEAT",
    "TextureSampler",
    "TextureTransform",
    "baked_sampler",
    "baked_samplers",
    "sample_texture",
    "wrap_uv_triangles",
]

REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE = "repeat", "mirrored_repeat", "clamp_to_edge"
WRAP_MODES = (REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE)
_GLTF_WRAP = {10497: REPEAT, 33648: MIRRORED_REPEAT, 33071: CLAMP_TO_EDGE}
_GLTF_FILTER = {9728: "nearest", 9729: "linear", 9984: "nearest_mipmap_nearest", 9985: "linear_mipmap_nearest",
                9986: "nearest_mipmap_linear", 9987: "linear_mipmap_linear"}
_UV_RANGE_TOLERANCE = 1e-6
MAX_TILES_PER_AXIS = 64
"""A UV triangle spanning more integer tiles than this along one axis is placed in this many tiles only
(:func:`wrap_uv_triangles`): such triangles come from broken UVs, and every texel is shared anyway."""


@dataclass(frozen=True)
class TextureSampler:
    """How a texture is wrapped and filtered (glTF ``sampler``; OBJ textures repeat).

    Attributes:
        wrap_s: wrap mode along u (image columns): ``'repeat'``, ``'mirrored_repeat'`` or ``'clamp_to_edge'``.
        wrap_t: wrap mode along v (image rows), same values.
        mag_filter: ``'linear'`` (bilinear) or ``'nearest'``; what :func:`sample_texture` uses.
        min_filter: one of glTF's six minification filters in lower case (``'linear_mipmap_linear'``, ...); kept
            for export and reports, not modelled (see the module docstring).

    The default is glTF's default sampler (no ``sampler`` given): repeat in both axes, linear filtering.
    """

    wrap_s: str = REPEAT
    wrap_t: str = REPEAT
    mag_filter: str = "linear"
    min_filter: str = "linear_mipmap_linear"

    def __post_init__(self) -> None:
        for wrap in (self.wrap_s, self.wrap_t):
            if wrap not in WRAP_MODES:
                raise ValueError(f"unknown wrap mode {wrap!r}: use one of {', '.join(WRAP_MODES)}")
        if self.mag_filter not in ("linear", "nearest"):
            raise ValueError(f"unknown magnification filter {self.mag_filter!r}: use 'linear' or 'nearest'")
        if self.min_filter not in _GLTF_FILTER.values():
            raise ValueError(f"unknown minification filter {self.min_filter!r}")

    @classmethod
    def from_gltf(cls, sampler: dict | None) -> "TextureSampler":
        """From a glTF ``samplers[i]`` object (None or ``{}`` = the default sampler); unknown codes fall back to
        the defaults (repeat, linear)."""
        sampler = sampler or {}
        min_filter = _GLTF_FILTER.get(sampler.get("minFilter"), "linear_mipmap_linear")
        mag_filter = _GLTF_FILTER.get(sampler.get("magFilter"), "linear")
        return cls(_GLTF_WRAP.get(sampler.get("wrapS"), REPEAT), _GLTF_WRAP.get(sampler.get("wrapT"), REPEAT),
                   mag_filter if mag_filter in ("linear", "nearest") else "linear", min_filter)

    def to_gltf(self) -> dict:
        """The glTF ``samplers[i]`` object (integer codes)."""
        wrap_code = {name: code for code, name in _GLTF_WRAP.items()}
        filter_code = {name: code for code, name in _GLTF_FILTER.items()}
        return {"magFilter": filter_code[self.mag_filter], "minFilter": filter_code[self.min_filter],
                "wrapS": wrap_code[self.wrap_s], "wrapT": wrap_code[self.wrap_t]}


@dataclass(frozen=True)
class TextureTransform:
    """An affine map from the mesh's UV to the texture's UV, in csdtex's convention ((0, 0) = bottom-left).

    Attributes:
        matrix: 6 floats ``(a, b, c, d, e, f)``: ``u' = a u + b v + c``, ``v' = d u + e v + f``.
        description: what it came from, for messages and ``run.json`` (e.g. ``'KHR_texture_transform offset (0.5,
            0) rotation 0 scale (2, 2)'``).
    """

    matrix: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    description: str = "identity"

    @classmethod
    def from_gltf(cls, offset=(0.0, 0.0), rotation: float = 0.0, scale=(1.0, 1.0)) -> "TextureTransform":
        """From ``KHR_texture_transform`` values, which act on glTF UVs (origin top-left): ``uv' = T R S uv`` with
        ``R = [[cos r, sin r], [-sin r, cos r]]`` (row-major; the rotation direction three.js and the Khronos sample
        viewer use). Converted to csdtex UVs by conjugating with the flip ``(u, v) -> (u, 1 - v)``."""
        ox, oy = (float(x) for x in offset)
        sx, sy = (float(x) for x in scale)
        cos, sin = math.cos(float(rotation)), math.sin(float(rotation))
        gltf = np.array([[cos * sx, sin * sy, ox], [-sin * sx, cos * sy, oy], [0.0, 0.0, 1.0]])
        flip = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 1.0]])
        m = flip @ gltf @ flip
        text = (f"KHR_texture_transform offset ({ox:g}, {oy:g}) rotation {float(rotation):g} "
                f"scale ({sx:g}, {sy:g})")
        return cls(tuple(float(x) for x in m[:2].reshape(-1)), text)

    @classmethod
    def from_obj(cls, offset=(0.0, 0.0), scale=(1.0, 1.0)) -> "TextureTransform":
        """From ``map_Kd -o u v -s u v`` (OBJ UVs are csdtex UVs): ``uv' = scale * uv + offset``."""
        ou, ov = (float(x) for x in offset)
        su, sv = (float(x) for x in scale)
        return cls((su, 0.0, ou, 0.0, sv, ov), f"map_Kd -o {ou:g} {ov:g} -s {su:g} {sv:g}")

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.matrix, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), rtol=0.0, atol=1e-12))

    def to_gltf(self) -> dict | None:
        """The ``KHR_texture_transform`` object (``offset``, ``rotation``, ``scale``; glTF UVs) of this transform,
        the inverse of :meth:`from_gltf`; None for the identity or a shear, which the extension cannot state."""
        if self.is_identity:
            return None
        a, b, c, d, e, f = self.matrix
        if b == 0.0 and d == 0.0:  # offset and scale (OBJ -o / -s): v down, offset_v = 1 - scale_v - o_v
            return {"offset": [float(c), float(1.0 - e - f)], "scale": [float(a), float(e)]}
        flip = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 1.0]])
        gltf = flip @ np.vstack([np.asarray(self.matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]]) @ flip
        scale_u = math.hypot(gltf[0, 0], gltf[1, 0])
        rotation = math.atan2(-gltf[1, 0], gltf[0, 0])
        scale_v = math.copysign(math.hypot(gltf[0, 1], gltf[1, 1]), np.linalg.det(gltf[:2, :2]))

        def tidy(value: float) -> float:  # no -0.0 or 1e-17 in the written file
            return 0.0 if abs(value) < 1e-12 else float(value)

        result: dict = {"offset": [tidy(gltf[0, 2]), tidy(gltf[1, 2])], "scale": [tidy(scale_u), tidy(scale_v)]}
        if tidy(rotation):
            result["rotation"] = tidy(rotation)
        again = TextureTransform.from_gltf(result["offset"], result.get("rotation", 0.0), result["scale"])
        return result if np.allclose(again.matrix, self.matrix, rtol=0.0, atol=1e-9) else None

    def apply(self, uvs):
        """Transform UVs: float Tensor or ndarray [..., 2] -> the same type and shape."""
        a, b, c, d, e, f = self.matrix
        u, v = uvs[..., 0], uvs[..., 1]
        stack = torch.stack if isinstance(uvs, Tensor) else np.stack
        return stack([a * u + b * v + c, d * u + e * v + f], -1)


def _wrap_index(index: Tensor, size: int, mode: str) -> Tensor:
    """Integer texel indices (any range) -> indices in [0, size) by the wrap mode (as OpenGL does)."""
    if mode == REPEAT:
        return torch.remainder(index, size)
    if mode == MIRRORED_REPEAT:
        folded = torch.remainder(index, 2 * size)
        return torch.where(folded < size, folded, 2 * size - 1 - folded)
    return index.clamp(0, size - 1)


def sample_texture(image: Tensor, uvs: Tensor, sampler: TextureSampler | None = None,
                   transform: TextureTransform | None = None) -> Tensor:
    """Look ``image`` up at ``uvs`` as a glTF viewer does: transform, then wrap, then filter (module docstring).

    Args:
        image: float [C, H, W] or [1, C, H, W], row 0 = top of the image (v = 1); any C. Differentiable.
        uvs: float [N, 2] mesh UVs, (0, 0) = bottom-left, any range (outside [0, 1] the wrap mode applies).
        sampler: wrap and filter modes; None = ``TextureSampler(CLAMP_TO_EDGE, CLAMP_TO_EDGE)`` with linear
            filtering, csdtex's historical behaviour (border clamping).
        transform: applied to ``uvs`` first; None = identity.
    Returns:
        float [N, C] in ``image``'s dtype and device (bilinear: each value a convex combination of 4 texels).
    """
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"sample_texture takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got {tuple(image.shape)}")
    if uvs.dim() != 2 or uvs.shape[-1] != 2:
        raise ValueError(f"uvs must be [N, 2], got {tuple(uvs.shape)}")
    sampler = sampler or TextureSampler(CLAMP_TO_EDGE, CLAMP_TO_EDGE, "linear")
    channels, height, width = image.shape
    uvs = uvs.to(device=image.device, dtype=torch.float32 if image.dtype in (torch.float16, torch.bfloat16)
                 else image.dtype)
    if transform is not None and not transform.is_identity:
        uvs = transform.apply(uvs)
    x = uvs[:, 0] * width  # texel units from the left edge
    y = (1.0 - uvs[:, 1]) * height  # texel units from the top edge
    flat = image.reshape(channels, height * width)
    if sampler.mag_filter == "nearest":
        column = _wrap_index(torch.floor(x).long(), width, sampler.wrap_s)
        row = _wrap_index(torch.floor(y).long(), height, sampler.wrap_t)
        return flat[:, row * width + column].transpose(0, 1)
    x, y = x - 0.5, y - 0.5  # texel centres at integers
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).to(image.dtype).unsqueeze(0), (y - y0).to(image.dtype).unsqueeze(0)
    x0, y0 = x0.long(), y0.long()
    c0, c1 = _wrap_index(x0, width, sampler.wrap_s), _wrap_index(x0 + 1, width, sampler.wrap_s)
    r0, r1 = _wrap_index(y0, height, sampler.wrap_t), _wrap_index(y0 + 1, height, sampler.wrap_t)
    top = flat[:, r0 * width + c0] * (1 - fx) + flat[:, r0 * width + c1] * fx
    bottom = flat[:, r1 * width + c0] * (1 - fx) + flat[:, r1 * width + c1] * fx
    return (top * (1 - fy) + bottom * fy).transpose(0, 1)


def _axis_copies(lo: np.ndarray, hi: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """First tile index and number of tiles each triangle covers along one axis (1 tile, index 0, for clamping)."""
    if mode == CLAMP_TO_EDGE:
        return np.zeros(len(lo), dtype=np.int64), np.ones(len(lo), dtype=np.int64)
    first = np.floor(lo).astype(np.int64)
    last = np.maximum(np.ceil(hi).astype(np.int64) - 1, first)  # a corner exactly on a tile border stays in its tile
    return first, np.minimum(last - first + 1, MAX_TILES_PER_AXIS)


def _fold(values: np.ndarray, tile: np.ndarray, mode: str) -> np.ndarray:
    """Coordinates of one axis moved from tile ``tile`` into tile 0 (mirrored for odd tiles of MIRRORED_REPEAT)."""
    if mode == CLAMP_TO_EDGE:
        return values
    local = values - tile[:, None]
    if mode == MIRRORED_REPEAT:
        local = np.where((tile % 2 == 1)[:, None], 1.0 - local, local)
    return local


def wrap_uv_triangles(triangles: np.ndarray, sampler: TextureSampler | None) -> tuple[np.ndarray, np.ndarray]:
    """Place UV triangles of every integer tile into the image's tile [0, 1]² by the sampler's wrap rule.

    A triangle that lies in tile (i, j) is moved by (-i, -j) (REPEAT) or moved and mirrored in odd tiles
    (MIRRORED_REPEAT), so rasterizing the result over [0, 1]² finds the texels a viewer reads for it. A triangle that
    straddles tile borders gets one copy per tile it touches; each copy's part inside [0, 1]² is the part of the
    triangle in that tile (the rest is clipped by the rasterizer). CLAMP_TO_EDGE leaves an axis unchanged: the part
    outside [0, 1] reads the edge texels and paints nothing of its own. Barycentric coordinates are the same in a copy
    as in the original, so a texel found in a copy maps back to the original face's surface point.

    Args:
        triangles: float [F, 3, 2] UV triangles, (0, 0) = bottom-left, any range.
        sampler: wrap modes (None = clamp to edge in both axes: no change).
    Returns:
        ``(copies float64 [K, 3, 2], source int64 [K])``: the placed triangles and the index (into ``triangles``) of
        the triangle each copy comes from; K >= F when no axis clamps (at most :data:`MAX_TILES_PER_AXIS` copies
        per axis and triangle).
    """
    triangles = np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 2)
    if sampler is None:
        return triangles.copy(), np.arange(len(triangles), dtype=np.int64)
    lo, hi = triangles.min(axis=1), triangles.max(axis=1)
    first_u, count_u = _axis_copies(lo[:, 0], hi[:, 0], sampler.wrap_s)
    first_v, count_v = _axis_copies(lo[:, 1], hi[:, 1], sampler.wrap_t)
    per_triangle = count_u * count_v
    source = np.repeat(np.arange(len(triangles), dtype=np.int64), per_triangle)
    local = np.arange(int(per_triangle.sum()), dtype=np.int64) - np.repeat(np.cumsum(per_triangle) - per_triangle,
                                                                          per_triangle)
    tile_u = first_u[source] + local % count_u[source]
    tile_v = first_v[source] + local // count_u[source]
    copies = triangles[source].copy()
    copies[:, :, 0] = _fold(copies[:, :, 0], tile_u, sampler.wrap_s)
    copies[:, :, 1] = _fold(copies[:, :, 1], tile_v, sampler.wrap_t)
    return copies, source


def baked_sampler(sampler: TextureSampler | None, uvs: np.ndarray) -> TextureSampler:
    """The sampler a texture baked for these UVs is exported with, and the wrap rule the bake places charts by.

    Per axis: ``CLAMP_TO_EDGE`` when the UVs lie in [0, 1] along it (baked atlases: repeating would bleed texels of
    the opposite image edge into charts that touch the border under bilinear/mipmap filtering); otherwise the input
    texture's wrap mode (``REPEAT`` when the material had no sampler: glTF's default and OBJ's behaviour), so charts
    in other integer tiles land where a viewer looks for them. Filters: linear, trilinear minification.

    Args:
        sampler: the input material's sampler, or None.
        uvs: float [T, 2] UVs of the material's faces (corners), (0, 0) = bottom-left.
    """
    uvs = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
    source = sampler or TextureSampler()

    def axis(values: np.ndarray, mode: str) -> str:
        inside = len(values) == 0 or bool(((values >= -_UV_RANGE_TOLERANCE) & (values <= 1.0 + _UV_RANGE_TOLERANCE))
                                          .all())
        return CLAMP_TO_EDGE if inside else mode

    return TextureSampler(axis(uvs[:, 0], source.wrap_s), axis(uvs[:, 1], source.wrap_t), "linear",
                          "linear_mipmap_linear")


def baked_samplers(mesh) -> list[TextureSampler]:
    """:func:`baked_sampler` for every material of a :class:`~csdtex.mesh.Mesh` (over the UVs of its faces), in
    material order: the wrap rule a bake of ``mesh`` uses and the samplers its exported GLB carries.

    Args:
        mesh: a mesh with ``materials``, ``uvs`` float [T, 2], ``uv_faces`` int [F, 3] (rows of -1 allowed) and
            ``face_materials`` int [F].
    """
    samplers = []
    for index, material in enumerate(mesh.materials):
        if mesh.uvs is None or mesh.uv_faces is None:
            corners = np.zeros((0, 2))
        else:
            rows = mesh.uv_faces[(mesh.face_materials == index) & (mesh.uv_faces >= 0).all(axis=1)]
            corners = mesh.uvs[rows.reshape(-1)]
        samplers.append(baked_sampler(material.sampler, corners))
    return samplers
