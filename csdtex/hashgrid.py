"""Multi-resolution hash encoding (Instant-NGP, Müller et al. 2022) in plain PyTorch, CPU and CUDA alike.

:func:`hash_grid_encode` is the functional core: points in [0, 1]^3 -> concatenated per-level features, trilinear
within each level's cell; dense levels index a full grid, finer levels hash their corners into a table. Its backward
pass recomputes the corner indices instead of storing them, so training memory does not grow with the number of
levels times eight corners per point (small calls keep them: :data:`KEEP_CORNERS_MAX_BYTES`).
:class:`HashGridEncoding` holds the learnable table. The test suite checks both against a naive per-point reference
over device x dtype.
"""

from __future__ import annotations

import functools
import math

import numpy as np

import torch
from torch import Tensor, nn

__all__ = ["HASH_PRIMES", "KEEP_CORNERS_MAX_BYTES", "HashGridEncoding", "hash_grid_encode",
           "hash_grid_level_resolutions"]

#: Spatial hash primes of Instant-NGP (Müller et al. 2022), one per axis x, y, z.
HASH_PRIMES: tuple[int, int, int] = (1, 2654435761, 805459861)



@functools.lru_cache(maxsize=16)
def _constants(device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
    """Small constant tensors of the encoding, made once per device and dtype (creating them from Python lists on
    every call would copy them to the GPU, a host synchronization each time)."""
    return {
        "lower_upper": torch.tensor([1.0, 0.0], dtype=dtype, device=device),
        "weight_slope": torch.tensor([-1.0, 1.0], dtype=dtype, device=device),
        "corner_bits": torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int64,
                                    device=device),
        "primes": torch.tensor(HASH_PRIMES, dtype=torch.int64, device=device),
    }


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
    constants = _constants(device, dtype)
    # [n, L, 3, 2]
    axis_weights = torch.addcmul(constants["lower_upper"], frac.unsqueeze(-1), constants["weight_slope"])
    wx, wy, wz = axis_weights[:, :, 0], axis_weights[:, :, 1], axis_weights[:, :, 2]
    weights = (wx[:, :, :, None, None] * wy[:, :, None, :, None] * wz[:, :, None, None, :]).view(n, num_levels, 8)

    indices = torch.empty(n, num_levels, 8, dtype=torch.int64, device=device)
    dense_levels = num_dense_levels
    if dense_levels > 0:
        # Dense, collision-free: row = x + y * (res + 1) + z * (res + 1)^2.
        side = resolution[:, :dense_levels] + 1  # [1, D, 1]
        strides = torch.cat([torch.ones_like(side), side, side * side], dim=2)  # [1, D, 3]
        cell_rows = (lower[:, :dense_levels] * strides).sum(dim=-1, keepdim=True)  # [n, D, 1]
        corner_bits = constants["corner_bits"]  # [8, 3]
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
        primes = constants["primes"]
        prime_steps = torch.stack([torch.zeros_like(primes), primes], dim=-1)  # [3, 2]: (0, p) per axis
        hashed_axes = (lower[:, dense_levels:] * primes).unsqueeze(-1) + prime_steps  # [n, H, 3, 2]
        hashed_axes &= hashmap_size - 1
        hashed_axes[:, :, 0] ^= level_offsets[dense_levels:].view(1, hashed_levels, 1)
        hx, hy, hz = hashed_axes[:, :, 0], hashed_axes[:, :, 1], hashed_axes[:, :, 2]
        hashed = indices[:, dense_levels:].view(n, hashed_levels, 2, 2, 2)
        torch.bitwise_xor((hx[:, :, :, None] ^ hy[:, :, None, :]).unsqueeze(-1), hz[:, :, None, None, :], out=hashed)
    return indices, weights


KEEP_CORNERS_MAX_BYTES = 64 * 2**20
"""Largest size of one call's corner indices and weights (int64 + the table's dtype, [N, L, 8] each) that the forward
pass keeps for the backward pass instead of recomputing them there; above it (or when the points span several
chunks) only the points are kept. 64 MiB is about 43,000 points at 16 levels in float32: the built-in prior's renders
(64^2 pixels a view) fall below it, Stable Diffusion's (512^2) far above. Keeping or recomputing gives the same
gradient (bit for bit on the CPU; on CUDA up to the order of index_add's atomic additions); keeping saves the index
computation of the backward pass (about 16 ms of a 276 ms built-in-prior step on 2 CPU cores)."""


def _interpolate(table: Tensor, indices: Tensor, weights: Tensor) -> Tensor:
    """Trilinear features [n, L, F] from ``table`` [E, F], corner ``indices`` int64 [n, L, 8] and ``weights`` [n, L, 8]
    (the table's dtype). On the CPU one fused weighted gather (``embedding_bag``, 3x faster there than gathering all
    corners first, measured at 6,500 points x 16 levels); elsewhere the gather, product and sum as separate kernels
    (the path measured on CUDA). Both sum each point's 8 weighted corners; they agree up to float rounding."""
    n, num_levels, _ = indices.shape
    num_features = table.shape[1]
    if table.device.type == "cpu":
        return torch.nn.functional.embedding_bag(
            indices.view(n * num_levels, 8), table, per_sample_weights=weights.view(n * num_levels, 8), mode="sum"
        ).view(n, num_levels, num_features)
    corner_features = table.index_select(0, indices.view(-1)).view(n, num_levels, 8, num_features)
    return corner_features.mul_(weights.unsqueeze(-1)).sum(dim=2)


class _HashGridFunction(torch.autograd.Function):
    """Chunked forward; the backward pass recomputes indices/weights per chunk, so that only the points are kept for
    it, unless they are small enough to keep (:data:`KEEP_CORNERS_MAX_BYTES`)."""

    @staticmethod
    def forward(ctx, points01, table, level_resolutions, level_offsets, num_dense_levels, hashmap_size, chunk):
        num_points, num_levels, num_features = points01.shape[0], level_resolutions.shape[0], table.shape[1]
        corner_bytes = num_points * num_levels * 8 * (8 + table.element_size())
        keep_corners = num_points <= chunk and corner_bytes <= KEEP_CORNERS_MAX_BYTES
        output = torch.empty(num_points, num_levels, num_features, dtype=table.dtype, device=table.device)
        for start in range(0, num_points, chunk):
            stop = min(start + chunk, num_points)
            indices, weights = _corner_indices_and_weights(
                points01[start:stop], level_resolutions, level_offsets, num_dense_levels, hashmap_size
            )
            output[start:stop] = _interpolate(table, indices, weights)
        kept = (indices, weights) if keep_corners and num_points > 0 else ()
        ctx.save_for_backward(points01, level_resolutions, level_offsets, *kept)
        ctx.settings = (num_dense_levels, hashmap_size, chunk, table.shape)
        return output.view(num_points, num_levels * num_features)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        if not ctx.needs_input_grad[1]:
            return (None,) * 7
        points01, level_resolutions, level_offsets, *kept = ctx.saved_tensors
        num_dense_levels, hashmap_size, chunk, table_shape = ctx.settings
        num_levels, num_features = level_resolutions.shape[0], table_shape[1]
        grad_table = torch.zeros(table_shape, dtype=grad_output.dtype, device=grad_output.device)
        for start in range(0, points01.shape[0], chunk):
            stop = min(start + chunk, points01.shape[0])
            if kept:  # one chunk, kept by the forward pass
                indices, weights = kept
            else:
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
    scatter-adds into a dense table gradient (the table's size). Measured speed and memory per chunk size are in
    ``benchmarks/README.md``.

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
