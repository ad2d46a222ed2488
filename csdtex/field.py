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

- :class:`ImplicitTextureField`: a multi-resolution hash grid (:class:`HashGridEncoding`, Instant-NGP) over the
  normalized surface position, followed by a small MLP and a sigmoid. Independent of UVs, so it paints seam-free;
  the texture image is obtained afterwards by baking (evaluate the field at the surface point of every texel).
- :class:`UVTexture`: an explicit learnable texture image per material, sampled bilinearly by UV.

:func:`query_texture` evaluates either on many points in chunks (baking).

The hash encoding has a functional core, :func:`hash_grid_encode`, written in plain PyTorch (the same code runs on
CPU and CUDA). Its backward pass recomputes the corner indices instead of storing them, so training memory does not
grow with the number of levels times eight corners per point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "TextureModel",
    "HashGridEncoding",
    "hash_grid_encode",
    "hash_grid_level_resolutions",
    "FieldConfig",
    "ImplicitTextureField",
    "UVTexture",
    "query_texture",
]

#: Spatial hash primes of Instant-NGP (Müller et al. 2022), one per axis x, y, z.
HASH_PRIMES: tuple[int, int, int] = (1, 2654435761, 805459861)


# ----------------------------------------------------------------------------------------------------------------------
# Common interface
# ----------------------------------------------------------------------------------------------------------------------


class TextureModel(nn.Module):
    """Base class of texture representations: ``forward(points, uvs, materials) -> albedo``.

    Subclasses set the class attribute ``uses_uvs`` (True when ``uvs`` must be given) and implement :meth:`forward`.
    """

    uses_uvs: ClassVar[bool] = False

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
# Multi-resolution hash encoding
# ----------------------------------------------------------------------------------------------------------------------


def hash_grid_level_resolutions(
    num_levels: int, base_resolution: int, max_resolution: int
) -> list[int]:
    """Grid resolution of every level: ``floor(base * b**l)`` with ``b = exp((ln max - ln base) / (L - 1))``.

    Level ``l`` has ``resolution + 1`` vertices per axis (cells of size ``1 / resolution`` over [0, 1]). A relative
    guard of 1e-9 keeps round-off from turning ``max_resolution`` into ``max_resolution - 1`` on the last level.

    Returns:
        ``num_levels`` non-decreasing ints, the first ``base_resolution``, the last ``max_resolution``.
    """
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    if not 1 <= base_resolution <= max_resolution:
        raise ValueError(f"need 1 <= base_resolution <= max_resolution, got {base_resolution}, {max_resolution}")
    if num_levels == 1:
        return [int(base_resolution)]
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (num_levels - 1))
    return [int(math.floor(base_resolution * growth**level * (1.0 + 1e-9))) for level in range(num_levels)]


def _corner_indices_and_weights(
    points01: Tensor,
    level_resolutions: Tensor,
    level_offsets: Tensor,
    num_dense_levels: int,
    hashmap_size: int,
) -> tuple[Tensor, Tensor]:
    """Table rows and trilinear weights of the 8 cell corners around every point, on every level at once.

    Args:
        points01: [n, 3] floating, in [0, 1].
        level_resolutions, level_offsets: int64 [L] on the points' device.
        num_dense_levels: the first ``num_dense_levels`` levels use dense indexing, the rest are hashed.
        hashmap_size: rows of every hashed level, a power of two.
    Returns:
        (indices int64 [n, L, 8] into the concatenated table, weights [n, L, 8] of the points' dtype, summing to 1).
        Corner ``c = 4 i + 2 j + k`` is the vertex ``lower + (i, j, k)`` (x slowest, z fastest).
    """
    n, num_levels = points01.shape[0], level_resolutions.shape[0]
    device, dtype = points01.device, points01.dtype
    resolution = level_resolutions.view(1, num_levels, 1)  # [1, L, 1]
    scaled = points01.unsqueeze(1) * resolution.to(dtype)  # [n, L, 3]
    # Cell of every point; a point at coordinate 1 belongs to the last cell (with weight 1 on its upper corner).
    lower_float = torch.minimum(scaled.floor(), (resolution - 1).to(dtype)).clamp_(min=0.0)
    frac = scaled.sub_(lower_float)  # [n, L, 3] in [0, 1]
    lower = lower_float.to(torch.int64)  # exact: resolutions are far below 2^24

    # Per axis, the weights of the lower and upper corner: (1 - f, f) = f * (-1, 1) + (1, 0).
    axis_weights = torch.addcmul(
        torch.tensor([1.0, 0.0], dtype=dtype, device=device), frac.unsqueeze(-1),
        torch.tensor([-1.0, 1.0], dtype=dtype, device=device),
    )  # [n, L, 3, 2]
    wx, wy, wz = axis_weights[:, :, 0], axis_weights[:, :, 1], axis_weights[:, :, 2]
    weights = (wx[:, :, :, None, None] * wy[:, :, None, :, None] * wz[:, :, None, None, :]).view(n, num_levels, 8)

    indices = torch.empty(n, num_levels, 8, dtype=torch.int64, device=device)
    dense_levels = num_dense_levels
    if dense_levels > 0:
        # Dense, collision-free: row = x + y * (res + 1) + z * (res + 1)^2.
        side = resolution[:, :dense_levels] + 1  # [1, D, 1]
        strides = torch.cat([torch.ones_like(side), side, side * side], dim=2)  # [1, D, 3]
        cell_rows = (lower[:, :dense_levels] * strides).sum(dim=-1, keepdim=True)  # [n, D, 1]
        corner_bits = torch.tensor(
            [[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int64, device=device
        )  # [8, 3]
        corner_rows = (corner_bits.unsqueeze(0) * strides.view(dense_levels, 1, 3)).sum(dim=-1)  # [D, 8]
        corner_rows += level_offsets[:dense_levels].view(dense_levels, 1)
        torch.add(cell_rows, corner_rows.unsqueeze(0), out=indices[:, :dense_levels])
    if dense_levels < num_levels:
        # Hashed: (x * p0) XOR (y * p1) XOR (z * p2) mod table size. Products stay below 2^52 for resolutions up to
        # 2^20, so int64 is exact, and the low bits kept by the power-of-two modulo equal Instant-NGP's uint32 hash.
        # The modulo distributes over XOR, so it is applied per axis before the 8 corners are formed, and a hashed
        # level's offset (a multiple of the table size T) is XOR-ed into the x term: (h mod T) XOR offset equals
        # (h mod T) + offset.
        hashed_levels = num_levels - dense_levels
        primes = torch.tensor(HASH_PRIMES, dtype=torch.int64, device=device)
        prime_steps = torch.stack([torch.zeros_like(primes), primes], dim=-1)  # [3, 2]: (0, p) per axis
        hashed_axes = (lower[:, dense_levels:] * primes).unsqueeze(-1) + prime_steps  # [n, H, 3, 2]
        hashed_axes &= hashmap_size - 1
        hashed_axes[:, :, 0] ^= level_offsets[dense_levels:].view(1, hashed_levels, 1)
        hx, hy, hz = hashed_axes[:, :, 0], hashed_axes[:, :, 1], hashed_axes[:, :, 2]
        hashed = indices[:, dense_levels:].view(n, hashed_levels, 2, 2, 2)
        torch.bitwise_xor((hx[:, :, :, None] ^ hy[:, :, None, :]).unsqueeze(-1), hz[:, :, None, None, :], out=hashed)
    return indices, weights


class _HashGridFunction(torch.autograd.Function):
    """Chunked forward; backward recomputes indices/weights per chunk so only the points are kept for it."""

    @staticmethod
    def forward(ctx, points01, table, level_resolutions, level_offsets, num_dense_levels, hashmap_size, chunk):
        num_points, num_levels, num_features = points01.shape[0], level_resolutions.shape[0], table.shape[1]
        output = torch.empty(num_points, num_levels, num_features, dtype=table.dtype, device=table.device)
        for start in range(0, num_points, chunk):
            stop = min(start + chunk, num_points)
            indices, weights = _corner_indices_and_weights(
                points01[start:stop], level_resolutions, level_offsets, num_dense_levels, hashmap_size
            )
            corner_features = table.index_select(0, indices.view(-1)).view(stop - start, num_levels, 8, num_features)
            corner_features.mul_(weights.unsqueeze(-1))
            torch.sum(corner_features, dim=2, out=output[start:stop])
        ctx.save_for_backward(points01, level_resolutions, level_offsets)
        ctx.settings = (num_dense_levels, hashmap_size, chunk, table.shape)
        return output.view(num_points, num_levels * num_features)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        if not ctx.needs_input_grad[1]:
            return (None,) * 7
        points01, level_resolutions, level_offsets = ctx.saved_tensors
        num_dense_levels, hashmap_size, chunk, table_shape = ctx.settings
        num_levels, num_features = level_resolutions.shape[0], table_shape[1]
        grad_table = torch.zeros(table_shape, dtype=grad_output.dtype, device=grad_output.device)
        for start in range(0, points01.shape[0], chunk):
            stop = min(start + chunk, points01.shape[0])
            indices, weights = _corner_indices_and_weights(
                points01[start:stop], level_resolutions, level_offsets, num_dense_levels, hashmap_size
            )
            grad_chunk = grad_output[start:stop].reshape(stop - start, num_levels, 1, num_features)
            grad_corners = grad_chunk * weights.unsqueeze(-1).to(grad_output.dtype)  # [n, L, 8, F]
            grad_table.index_add_(0, indices.view(-1), grad_corners.view(-1, num_features))
        return None, grad_table, None, None, None, None, None


def hash_grid_encode(
    points01: Tensor,
    table: Tensor,
    level_resolutions: Tensor,
    level_offsets: Tensor,
    num_dense_levels: int,
    hashmap_size: int,
    points_per_chunk: int = 2**16,
) -> Tensor:
    """Functional multi-resolution hash encoding (pure PyTorch; CPU and CUDA).

    Args:
        points01: floating [N, 3] in [0, 1]^3 (values outside are clamped, NaN is read as 0). Receives no gradient.
        table: floating [E, F], the concatenated feature tables of all levels; its dtype is the output dtype.
        level_resolutions: int64 [L], cells per axis of every level, non-decreasing, at most 2^20.
        level_offsets: int64 [L], first table row of every level; those of hashed levels must be multiples of
            ``hashmap_size`` (:class:`HashGridEncoding` stores the hashed levels first).
        num_dense_levels: the first ``num_dense_levels`` levels are indexed densely (``(res + 1)^3`` rows each),
            the others by spatial hash.
        hashmap_size: rows of every hashed level, a power of two.
        points_per_chunk: points processed at once; bounds the temporaries (see :class:`HashGridEncoding`).
    Returns:
        [N, L * F] of ``table.dtype``, level-major (features of level 0 first). Trilinear interpolation of the 8
        corners of the cell around each point, per level. Differentiable with respect to ``table`` (first order).
    """
    if points01.ndim != 2 or points01.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {tuple(points01.shape)}")
    if hashmap_size < 1 or hashmap_size & (hashmap_size - 1):
        raise ValueError(f"hashmap_size must be a power of two, got {hashmap_size}")
    # NaN would become an out-of-range row (a device-side assert on CUDA), so it is mapped to 0 first.
    points01 = points01.detach().to(table.dtype).nan_to_num(0.0, 1.0, 0.0).clamp(0.0, 1.0).contiguous()
    return _HashGridFunction.apply(
        points01, table, level_resolutions, level_offsets, int(num_dense_levels), int(hashmap_size),
        int(points_per_chunk),
    )


class HashGridEncoding(nn.Module):
    """Multi-resolution hash encoding of Instant-NGP (Müller et al. 2022) in plain PyTorch.

    Level ``l`` is a grid of ``res_l`` cells per axis over [0, 1]^3 (``res_l`` from
    :func:`hash_grid_level_resolutions`) with a feature vector of ``features_per_level`` numbers at every vertex.
    Coarse levels with ``(res_l + 1)^3 <= 2**log2_hashmap_size`` vertices store every vertex (dense, no collisions);
    finer levels map vertices into ``2**log2_hashmap_size`` rows with the hash
    ``(x * 1) ^ (y * 2654435761) ^ (z * 805459861) mod 2**log2_hashmap_size`` (index math in int64).
    A point's encoding is, per level, the trilinear interpolation of its cell's 8 corner features.

    Parameters: ``table``, float32 [E, F], all levels concatenated, initialized uniform(-1e-4, 1e-4). Layout: the
    hashed levels first (level ``D + h`` at row ``h * 2**log2_hashmap_size``), then the dense ones; use
    :meth:`level_table` rather than computing offsets. Bookkeeping (non-persistent buffers, so the state dict holds
    only ``table``): ``level_offsets`` int64 [L] first row of every level, ``level_sizes`` int64 [L] its row count.
    Plain attributes: ``level_resolutions`` and ``level_is_dense`` (lists of L), ``num_dense_levels`` (D, the dense
    levels are always the coarsest ones), ``hashmap_size``, ``output_dim`` (L * F).

    Memory and speed: points are processed ``points_per_chunk`` at a time, all levels vectorized into one gather.
    The temporaries are about 3.5 KB per point of the chunk for 16 levels x 2 features (int64 corner indices and
    weights, [n, L, 8] each, plus the gathered features), on top of the float32 output (128 B per point). Autograd
    keeps only the points (12 B each): the backward pass recomputes indices and weights chunk by chunk and
    scatter-adds into a dense table gradient (the table's size). Measured for 1M points, default configuration:
    CUDA (H200) chunk 2^18: forward 7.3 ms, forward + backward 17 ms, peak +1.6 GiB allocated (chunk 2^16:
    13 / 27 ms, +0.5 GiB; chunk 2^20: 6.8 / 14 ms, +3.5 GiB); CPU chunk 2^16: peak RSS about +0.6 GB for the
    forward pass and +0.85 GB for forward + backward (both including the 128 MB output, and its gradient).

    Args:
        num_levels: L.
        features_per_level: F.
        log2_hashmap_size: rows of each hashed level's table, as a power of two.
        base_resolution: cells per axis of the coarsest level.
        max_resolution: cells per axis of the finest level.
        points_per_chunk: points processed at once (peak memory vs. kernel-launch overhead); None picks 2^18 on
            CUDA and 2^16 elsewhere.

    Shapes: ``forward(points01 [N, 3] in [0, 1]) -> [N, L * F]`` float32 (the table's dtype), level-major.
    """

    def __init__(
        self,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        points_per_chunk: int | None = None,
    ) -> None:
        super().__init__()
        if features_per_level < 1 or log2_hashmap_size < 1 or (points_per_chunk is not None and points_per_chunk < 1):
            raise ValueError("features_per_level, log2_hashmap_size and points_per_chunk must be positive")
        if max_resolution > 2**20:
            raise ValueError(f"max_resolution {max_resolution} too large for int64 hashing (limit 2^20)")
        self.num_levels = int(num_levels)
        self.features_per_level = int(features_per_level)
        self.log2_hashmap_size = int(log2_hashmap_size)
        self.hashmap_size = 2**self.log2_hashmap_size
        self.base_resolution = int(base_resolution)
        self.max_resolution = int(max_resolution)
        self.points_per_chunk = points_per_chunk

        resolutions = hash_grid_level_resolutions(num_levels, base_resolution, max_resolution)
        #: per level: True when the level is stored densely ((res + 1)^3 <= hash table size).
        self.level_is_dense: list[bool] = [(res + 1) ** 3 <= self.hashmap_size for res in resolutions]
        #: per level: cells per axis.
        self.level_resolutions: list[int] = resolutions
        sizes = [(res + 1) ** 3 if dense else self.hashmap_size for res, dense in zip(resolutions, self.level_is_dense)]
        # Resolutions grow, so dense levels are a prefix; the vectorized index math relies on that.
        self.num_dense_levels = sum(self.level_is_dense)
        assert self.level_is_dense == [True] * self.num_dense_levels + [False] * (num_levels - self.num_dense_levels)
        # Table layout: hashed levels first (offsets h * 2^log2_hashmap_size, so the offset can be XOR-ed into the
        # hash), then the dense levels.
        num_hashed_levels = self.num_levels - self.num_dense_levels
        dense_starts = np.concatenate([[0], np.cumsum(sizes[: self.num_dense_levels])])
        hashed_rows = num_hashed_levels * self.hashmap_size
        offsets = [hashed_rows + int(start) for start in dense_starts[: self.num_dense_levels]]
        offsets += [h * self.hashmap_size for h in range(num_hashed_levels)]

        self.register_buffer("_resolutions", torch.tensor(resolutions, dtype=torch.int64), persistent=False)
        self.register_buffer("level_offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        self.register_buffer("level_sizes", torch.tensor(sizes, dtype=torch.int64), persistent=False)
        self.table = nn.Parameter(torch.empty(int(sum(sizes)), self.features_per_level, dtype=torch.float32))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Table entries uniform in (-1e-4, 1e-4), as in Instant-NGP."""
        with torch.no_grad():
            self.table.uniform_(-1e-4, 1e-4)

    @property
    def output_dim(self) -> int:
        """L * F."""
        return self.num_levels * self.features_per_level

    def level_table(self, level: int) -> Tensor:
        """View of one level's rows of ``table``: [level_sizes[level], F]."""
        start = int(self.level_offsets[level])
        return self.table[start : start + int(self.level_sizes[level])]

    def forward(self, points01: Tensor) -> Tensor:
        """Encode points.

        Args:
            points01: floating [N, 3] in [0, 1]^3 (clamped). Points receive no gradient.
        Returns:
            [N, L * F] of the table's dtype (float32 by default), level-major.
        """
        return hash_grid_encode(
            points01.to(self.table.device),
            self.table,
            self._resolutions,
            self.level_offsets,
            self.num_dense_levels,
            self.hashmap_size,
            self.points_per_chunk or (2**18 if self.table.is_cuda else 2**16),
        )

    def extra_repr(self) -> str:
        return (
            f"levels={self.num_levels}, features={self.features_per_level}, table=2^{self.log2_hashmap_size}, "
            f"resolution={self.base_resolution}..{self.max_resolution}, dense_levels={self.num_dense_levels}"
        )


# ----------------------------------------------------------------------------------------------------------------------
# Implicit texture field
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FieldConfig:
    """Hash grid + MLP texture field settings. Defaults follow the released CSD code (see DESIGN.md)."""

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


# ----------------------------------------------------------------------------------------------------------------------
# Explicit UV texture
# ----------------------------------------------------------------------------------------------------------------------

# Colours are clamped to [eps, 1 - eps] before the logit so that 0 and 255 give finite logits. eps is a quarter of an
# 8-bit level, not half: with half a level, 255 comes back as 254.5, which rounds (half to even) to 254, and 0 as
# 0.4999..., exact halves left to float error. A quarter level rounds back to 0 and 255 with margin.
_COLOR_EPS = 0.25 / 255.0


def _logit(colors: Tensor) -> Tensor:
    return torch.logit(colors.clamp(_COLOR_EPS, 1.0 - _COLOR_EPS))


class UVTexture(TextureModel):
    """Explicit learnable texture: one RGB image per material, sampled bilinearly by UV.

    The parameter ``logits`` is float32 [M, 3, S, S]; the texture colour is ``sigmoid(logits)``, so it stays in
    (0, 1) under any optimizer step. Row 0 of every image is the *top* of the image (v = 1) and column 0 the left
    edge (u = 0), exactly as in a PNG file, so :meth:`to_images` writes what an image viewer shows.

    Sampling uses ``grid_sample`` (bilinear, ``align_corners=False``, ``padding_mode='border'``) on the colours
    (sigmoid first, then interpolation): texel (row r, column c) has its centre at
    ``u = (c + 0.5) / S, v = 1 - (r + 0.5) / S``. UVs outside [0, 1] are clamped to the border (no wrapping).

    Shapes: ``forward(points [N, 3] (unused), uvs float32 [N, 2], materials int [N] or None) -> float32 [N, 3]``.
    """

    uses_uvs: ClassVar[bool] = True

    def __init__(
        self,
        num_materials: int,
        size: int,
        init_color: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        """A texture of ``num_materials`` images of ``size`` x ``size`` texels, all ``init_color`` (RGB in [0, 1])."""
        super().__init__()
        if num_materials < 1 or size < 1:
            raise ValueError(f"need num_materials >= 1 and size >= 1, got {num_materials}, {size}")
        color = torch.as_tensor(tuple(init_color), dtype=torch.float32)
        if color.shape != (3,):
            raise ValueError(f"init_color must be 3 numbers, got {init_color!r}")
        self.logits = nn.Parameter(_logit(color).view(1, 3, 1, 1).repeat(num_materials, 1, size, size))

    @property
    def num_materials(self) -> int:
        return int(self.logits.shape[0])

    @property
    def size(self) -> int:
        return int(self.logits.shape[-1])

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray], size: int | None = None) -> "UVTexture":
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
        texture = cls(len(arrays), int(size))
        stacked = np.stack([_resize_rgb(array, int(size)) for array in arrays])  # [M, S, S, 3] uint8
        colors = torch.from_numpy(stacked).to(torch.float32).div_(255.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            texture.logits.copy_(_logit(colors))
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
        """Bilinearly sampled colour float32 [N, 3] in (0, 1).

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
        # grid_sample: x = -1 is the left edge, y = -1 the top edge (row 0), so y = 1 - 2v puts v = 1 on row 0.
        uvs = uvs.to(device=colors.device, dtype=colors.dtype)
        grid = torch.stack([uvs[:, 0] * 2.0 - 1.0, 1.0 - uvs[:, 1] * 2.0], dim=-1)
        if materials is not None:
            self._check_materials(materials)
        if materials is None or self.num_materials == 1:
            return self._sample(colors[:1], grid)
        materials = materials.to(device=colors.device, dtype=torch.int64)
        albedo = torch.zeros(uvs.shape[0], 3, dtype=colors.dtype, device=colors.device)
        for material in range(self.num_materials):
            selected = torch.nonzero(materials == material).squeeze(1)
            if selected.numel() > 0:
                albedo = albedo.index_copy(0, selected, self._sample(colors[material : material + 1], grid[selected]))
        return albedo

    @staticmethod
    def _sample(image: Tensor, grid: Tensor) -> Tensor:
        """image [1, 3, S, S], grid [n, 2] in grid_sample coordinates -> [n, 3]."""
        sampled = F.grid_sample(
            image, grid.view(1, 1, -1, 2), mode="bilinear", padding_mode="border", align_corners=False
        )  # [1, 3, 1, n]
        return sampled[0, :, 0, :].transpose(0, 1)

    def _check_materials(self, materials: Tensor) -> None:
        if materials.numel() == 0:
            return
        lowest, highest = (int(value) for value in torch.aminmax(materials))
        if lowest < 0 or highest >= self.num_materials:
            raise ValueError(f"material indices must lie in [0, {self.num_materials}), got [{lowest}, {highest}]")


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
