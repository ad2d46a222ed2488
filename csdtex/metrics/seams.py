"""Seam consistency of a baked texture: :func:`seam_metrics` (issue #11).

Conventions: texture images are uint8 or float [H, W, 3] with row 0 = top of the image (v = 1) and column 0 = left
(u = 0); UV (0, 0) is the bottom-left of the image. Values are compared in 8-bit units (0..255).

Definitions, as implemented:

- **Mip levels**: level 0 is the image; level L+1 is the 2x2 box average of level L (an odd row/column count is first
  padded by repeating the last row/column), as viewers' mipmaps do. Levels 0..``mip_levels``.
- **Lookup** ``T_L(u, v)``: bilinear at level L's texel centres, ``x = u * W_L - 0.5``, ``y = (1 - v) * H_L - 0.5``
  (x = column, y = row), clamped to the border (clamp-to-edge).
- **Seam edges**: :func:`csdtex.mesh.seams.seam_edges`: edges of the welded surface shared by exactly two faces with
  UVs whose UV edges differ *or whose materials differ*. Each side is sampled in its own material's texture, so a
  seam between two materials compares two different images (a painter must make them agree too).
- **Seam error** of edge s with UV segments (a, b) and (a', b') (end e of both sides = the same 3D end)::

      E_s = integral_0^1 || T(a + t (b - a)) - T'(a' + t (b' - a')) ||^2 dt

  (squared Euclidean norm over RGB), by the midpoint rule with ``n_s = max(8, ceil(samples_per_texel * l_s))``
  samples, ``l_s`` = the longer side's segment length in level-0 texels (the same samples at every level).
  **Seam RMS** = ``sqrt(sum_s len3d_s * E_s / sum_s len3d_s)``, in 8-bit units (Liu et al., "Seamless", 2017).
- **Interior edges**: edges of the welded surface shared by exactly two faces with UVs, of the same material, whose
  two faces use the same UV coordinates at both ends (the complement of seams among manifold UV edges). **Interior
  RMS** (the reference level) is the same length-weighted RMS of the texture's *one-texel variation across* each
  interior edge: ``|| T(p + h n / 2) - T(p - h n / 2) ||^2`` integrated along the segment with the same sampling
  rule, where ``n`` is the segment's unit normal in level-0 texel coordinates and ``h = 2^L`` level-0 texels (one
  texel at level L). A seam is invisible when seam RMS <= about the interior RMS (ratio ~1 or less).
- **Bleed**: for each side of each seam edge, ``|| T(p) - T(p + h n_in) ||^2`` integrated along that side's segment,
  ``n_in`` = the unit normal pointing into the side's own triangle (texel coordinates), ``h = 2^L`` level-0 texels:
  the seam value against the value one texel inside. Both sides are averaged with weight len3d_s / 2. A gutter that
  darkens both sides equally (black fill) leaves the seam RMS low but makes the bleed RMS large. Thin triangles
  (narrower than h) make the inner point leave the triangle; that is part of what the bleed sees.
- **Covered interior RMS** (:func:`covered_interior_rms`, not part of :func:`seam_metrics`): the interior RMS over
  only those sample points whose two level-L lookups read mip-L texels that average covered texels alone. Near a
  chart's border a level-L lookup also reads gutter texels (whatever the bake or a seam erasure put there); this
  variant measures the texture's own detail without them.
- **Texel-density ratio** of a seam edge: the two sides' texels per unit 3D length along the edge,
  ``(|b - a| in level-0 texels of its own texture) / len3d``, larger over smaller (>= 1; inf for a side of zero UV
  length). Reported length-weighted: median, the share of seam length with ratio >= 2, and the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from csdtex.mesh.seams import SeamEdges, _canonical_uv_faces, _WeldedEdges, seam_edges
from csdtex.mesh.types import Mesh

__all__ = [
    "InteriorEdges",
    "SeamReport",
    "covered_interior_rms",
    "density_ratios",
    "interior_edges",
    "mip_pyramid",
    "sample_bilinear",
    "seam_edge_errors",
    "seam_metrics",
    "third_corner_uvs",
]


@dataclass
class InteriorEdges:
    """Interior (non-seam) UV edges, ``I`` of them (definition in the module docstring).

    Attributes:
        lengths: float64 [I], 3D lengths (input units).
        uvs: float64 [I, 2, 2], the shared UV segment (end, uv).
        materials: int64 [I], the material of both faces.
    """

    lengths: np.ndarray
    uvs: np.ndarray
    materials: np.ndarray


@dataclass
class SeamReport:
    """What :func:`seam_metrics` measured; lists are indexed by mip level 0..L (8-bit units).

    Attributes:
        seam_rms, interior_rms, bleed_rms: float per level (NaN when there are no seam / interior edges).
        ratio: seam_rms / interior_rms per level (NaN when undefined).
        bleed_ratio: bleed_rms / interior_rms per level.
        edge_errors: float64 [L+1, S], per-seam-edge mean squared error E_s (RGB squared norm).
        seam_length, interior_length: total 3D length of seam / interior edges (input units).
        num_seams, num_interior: edge counts.
        density: texel-density ratio summary ``{"median", "share_ge_2", "max"}`` (length-weighted).
    """

    seam_rms: list[float]
    interior_rms: list[float]
    bleed_rms: list[float]
    ratio: list[float]
    bleed_ratio: list[float]
    edge_errors: np.ndarray
    seam_length: float
    interior_length: float
    num_seams: int
    num_interior: int
    density: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serializable values (NaN -> None); per-edge errors are left out."""

        def clean(values):
            return [None if not np.isfinite(v) else round(float(v), 4) for v in values]

        return {
            "seam_rms": clean(self.seam_rms), "interior_rms": clean(self.interior_rms),
            "bleed_rms": clean(self.bleed_rms), "ratio": clean(self.ratio), "bleed_ratio": clean(self.bleed_ratio),
            "seam_length": float(self.seam_length), "interior_length": float(self.interior_length),
            "num_seams": int(self.num_seams), "num_interior": int(self.num_interior),
            "density_ratio": {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in self.density.items()},
        }


def interior_edges(mesh: Mesh) -> InteriorEdges:
    """The interior UV edges of ``mesh`` (welded 3D edges of two faces with the same UV edge and material)."""
    edges = _WeldedEdges.build(mesh.vertices, mesh.faces)
    cuv = _canonical_uv_faces(mesh)
    if cuv is None:
        return InteriorEdges(np.zeros(0), np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64))
    with_uv = (mesh.uv_faces >= 0).all(axis=1)
    two = edges.counts == 2
    a, b = edges.ids[edges.first[two]], edges.ids[edges.first[two] + 1]
    fa, fb = a // 3, b // 3
    keep = with_uv[fa] & with_uv[fb] & (mesh.face_materials[fa] == mesh.face_materials[fb])
    a, b, fa, fb = a[keep], b[keep], fa[keep], fb[keep]

    def corners(half):
        start, end = half % 3, (half % 3 + 1) % 3
        flip = edges.starts[half] > edges.ends[half]
        return np.stack([np.where(flip, end, start), np.where(flip, start, end)], axis=1)

    ca, cb = corners(a), corners(b)
    same = (cuv[fa[:, None], ca] == cuv[fb[:, None], cb]).all(axis=1)
    a, fa, ca = a[same], fa[same], ca[same]
    ends = np.stack([edges.starts[a], edges.ends[a]], axis=1)
    positions = mesh.vertices[ends]
    uvs = mesh.uvs[mesh.uv_faces[fa[:, None], ca]]
    return InteriorEdges(lengths=np.linalg.norm(positions[:, 1] - positions[:, 0], axis=1), uvs=uvs,
                         materials=mesh.face_materials[fa].astype(np.int64))


def mip_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels 0..``levels`` of ``image`` (uint8 or float [H, W, C]) as float64 [H_L, W_L, C] by 2x2 box averaging
    (odd sizes padded by edge replication first; a 1-texel side stays 1)."""
    current = np.asarray(image, dtype=np.float64)
    if current.ndim == 2:
        current = current[..., None]
    pyramid = [current]
    for _ in range(levels):
        h, w = current.shape[:2]
        if h > 1 and h % 2:
            current = np.concatenate([current, current[-1:]], axis=0)
        if w > 1 and w % 2:
            current = np.concatenate([current, current[:, -1:]], axis=1)
        h, w = current.shape[:2]
        if h > 1:
            current = 0.5 * (current[0::2] + current[1::2])
        if w > 1:
            current = 0.5 * (current[:, 0::2] + current[:, 1::2])
        pyramid.append(current)
    return pyramid


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup at texel centres: float64 [N, C] from ``image`` float [H, W, C] at ``uv`` float [N, 2]
    (x = u * W - 0.5, y = (1 - v) * H - 0.5, clamp-to-edge)."""
    h, w = image.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = (1.0 - uv[:, 1]) * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = image[ya, xa] * (1 - fx) + image[ya, xb] * fx
    bottom = image[yb, xa] * (1 - fx) + image[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def _to_texels(uv: np.ndarray, size: np.ndarray) -> np.ndarray:
    """UV [..., 2] -> level-0 texel coordinates [..., 2] (x right, y down) for textures of ``size`` [..., 2] (W, H)."""
    return np.stack([uv[..., 0] * size[..., 0], (1.0 - uv[..., 1]) * size[..., 1]], axis=-1)


def _from_texels(xy: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.stack([xy[..., 0] / size[..., 0], 1.0 - xy[..., 1] / size[..., 1]], axis=-1)


def _sample_points(lengths_texels: np.ndarray, samples_per_texel: float) -> tuple[np.ndarray, np.ndarray]:
    """(edge id int64 [N], t float64 [N]) midpoint samples, ``max(8, ceil(spt * length))`` per edge."""
    counts = np.maximum(8, np.ceil(samples_per_texel * np.nan_to_num(lengths_texels))).astype(np.int64)
    edge = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return edge, (local + 0.5) / counts[edge]


def _per_edge_mean(values: np.ndarray, edge: np.ndarray, count: int) -> np.ndarray:
    sums = np.bincount(edge, weights=values, minlength=count)
    n = np.bincount(edge, minlength=count)
    return sums / np.maximum(n, 1)


def _lookup(pyramids: Sequence[list[np.ndarray]], level: int, materials: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """float64 [N, C]: T_level of each point's material at its UV."""
    out = np.zeros((len(uv), pyramids[0][0].shape[-1]))
    for material in np.unique(materials):
        rows = materials == material
        out[rows] = sample_bilinear(pyramids[int(material)][level], uv[rows])
    return out


def _rms(errors: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float(np.sqrt((errors * weights).sum() / total)) if total > 0 else float("nan")


def density_ratios(seams: SeamEdges, sizes: np.ndarray) -> np.ndarray:
    """float64 [S] texel-density ratio (>= 1) across every seam edge; ``sizes`` int [M, 2] = (W, H) per material."""
    side_sizes = sizes[seams.materials]  # [S, 2, 2]
    texels = _to_texels(seams.uvs, side_sizes[:, :, None, :])  # [S, 2, 2, 2]
    uv_len = np.linalg.norm(texels[:, :, 1] - texels[:, :, 0], axis=-1)  # [S, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return uv_len.max(axis=1) / uv_len.min(axis=1)


def _density_summary(ratios: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    if len(ratios) == 0:
        return {"median": float("nan"), "share_ge_2": 0.0, "max": float("nan")}
    order = np.argsort(ratios)
    cumulative = np.cumsum(lengths[order]) / lengths.sum()
    median = float(ratios[order][np.searchsorted(cumulative, 0.5)])
    share = float(lengths[ratios >= 2.0].sum() / lengths.sum())
    return {"median": median, "share_ge_2": share, "max": float(ratios.max())}


def seam_edge_errors(seams: SeamEdges, third_uvs: np.ndarray, pyramids: Sequence[list[np.ndarray]],
                     sizes: np.ndarray, level: int, samples_per_texel: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-seam-edge (E_s float64 [S], bleed float64 [S] = mean of both sides) at ``level``.

    Args:
        seams: the seam edges; third_uvs: float64 [S, 2, 2], UV of each side's face corner off the edge
            (:func:`third_corner_uvs`); pyramids: :func:`mip_pyramid` per material; sizes: int [M, 2] (W, H) per
            material at level 0.
    """
    count = len(seams)
    side_sizes = sizes[seams.materials].astype(np.float64)  # [S, 2, 2]
    texels = _to_texels(seams.uvs, side_sizes[:, :, None, :])  # [S, side, end, 2]
    seg_len = np.linalg.norm(texels[:, :, 1] - texels[:, :, 0], axis=-1)  # [S, 2]
    edge, t = _sample_points(seg_len.max(axis=1), samples_per_texel)
    tt = t[:, None]
    values, points = [], []
    for side in range(2):
        xy = texels[edge, side, 0] * (1 - tt) + texels[edge, side, 1] * tt
        uv = _from_texels(xy, side_sizes[edge, side])
        values.append(_lookup(pyramids, level, seams.materials[edge, side], uv))
        points.append(xy)
    errors = _per_edge_mean(((values[0] - values[1]) ** 2).sum(-1), edge, count)

    # Bleed: one level-L texel into each side's own triangle.
    step = float(2**level)
    bleed = np.zeros(count)
    for side in range(2):
        seg = texels[:, side, 1] - texels[:, side, 0]
        normal = np.stack([-seg[:, 1], seg[:, 0]], axis=-1) / np.maximum(seg_len[:, side, None], 1e-12)
        third = _to_texels(third_uvs[:, side], side_sizes[:, side])
        inward = np.sign(((third - texels[:, side, 0]) * normal).sum(-1, keepdims=True))
        inner_xy = points[side] + (normal * inward)[edge] * step
        inner = _lookup(pyramids, level, seams.materials[edge, side], _from_texels(inner_xy, side_sizes[edge, side]))
        bleed += 0.5 * _per_edge_mean(((values[side] - inner) ** 2).sum(-1), edge, count)
    return errors, bleed


def third_corner_uvs(mesh: Mesh, seams: SeamEdges) -> np.ndarray:
    """float64 [S, 2, 2]: UV of the corner of each side's face that is not on the seam edge (for the inward normal)."""
    out = np.zeros((len(seams), 2, 2))
    for side in range(2):
        rows = mesh.uv_faces[seams.faces[:, side]]  # [S, 3]
        on_edge = (rows == seams.uv_indices[:, side, 0:1]) | (rows == seams.uv_indices[:, side, 1:2])
        out[:, side] = mesh.uvs[rows[np.arange(len(rows)), np.argmin(on_edge, axis=1)]]
    return out


def _interior_samples(interior: InteriorEdges, sizes: np.ndarray, samples_per_texel: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample points along the interior edges in level-0 texel coordinates: (edge int [P], xy float [P, 2], unit
    normal float [P, 2], texture size (W, H) float [P, 2], material int [P])."""
    size = sizes[interior.materials].astype(np.float64)  # [I, 2]
    texels = _to_texels(interior.uvs, size[:, None, :])
    seg = texels[:, 1] - texels[:, 0]
    seg_len = np.linalg.norm(seg, axis=-1)
    normal = np.stack([-seg[:, 1], seg[:, 0]], axis=-1) / np.maximum(seg_len[:, None], 1e-12)
    edge, t = _sample_points(seg_len, samples_per_texel)
    xy = texels[edge, 0] * (1 - t[:, None]) + texels[edge, 1] * t[:, None]
    return edge, xy, normal[edge], size[edge], interior.materials[edge]


def _interior_errors(interior: InteriorEdges, pyramids: Sequence[list[np.ndarray]], sizes: np.ndarray, level: int,
                     samples_per_texel: float) -> np.ndarray:
    edge, xy, normal, size, materials = _interior_samples(interior, sizes, samples_per_texel)
    half = normal * (2.0**level / 2.0)
    plus = _lookup(pyramids, level, materials, _from_texels(xy + half, size))
    minus = _lookup(pyramids, level, materials, _from_texels(xy - half, size))
    return _per_edge_mean(((plus - minus) ** 2).sum(-1), edge, len(interior.lengths))


def seam_metrics(mesh: Mesh, textures: Sequence[np.ndarray], mip_levels: int = 3, samples_per_texel: float = 4.0,
                 seams: SeamEdges | None = None, interior: InteriorEdges | None = None) -> SeamReport:
    """Seam, interior and bleed RMS at mip levels 0..``mip_levels`` (definitions in the module docstring).

    Args:
        mesh: the textured mesh (UVs on every face that should count; faces without UVs are ignored).
        textures: one image per material, uint8 or float in 8-bit units, [H, W, 3] (row 0 = top).
        mip_levels: highest mip level (>= 0).
        samples_per_texel: sampling density along edges (per level-0 texel of the longer side), >= 1.
        seams, interior: precomputed :func:`seam_edges` / :func:`interior_edges` of ``mesh`` (for speed).
    Returns:
        :class:`SeamReport`.
    """
    if len(textures) != len(mesh.materials):
        raise ValueError(f"need one texture per material ({len(mesh.materials)}), got {len(textures)}")
    seams = seams if seams is not None else seam_edges(mesh)
    interior = interior if interior is not None else interior_edges(mesh)
    third_uvs = third_corner_uvs(mesh, seams) if len(seams) else np.zeros((0, 2, 2))
    pyramids = [mip_pyramid(np.asarray(image)[..., :3], mip_levels) for image in textures]
    sizes = np.array([[p[0].shape[1], p[0].shape[0]] for p in pyramids], dtype=np.int64)  # (W, H)
    seam_rms, interior_rms, bleed_rms, all_errors = [], [], [], []
    for level in range(mip_levels + 1):
        if len(seams):
            errors, bleed = seam_edge_errors(seams, third_uvs, pyramids, sizes, level, samples_per_texel)
        else:
            errors, bleed = np.zeros(0), np.zeros(0)
        all_errors.append(errors)
        seam_rms.append(_rms(errors, seams.lengths))
        bleed_rms.append(_rms(bleed, seams.lengths))
        inner = _interior_errors(interior, pyramids, sizes, level, samples_per_texel) if len(interior.lengths) else (
            np.zeros(0))
        interior_rms.append(_rms(inner, interior.lengths))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = list(np.divide(seam_rms, interior_rms))
        bleed_ratio = list(np.divide(bleed_rms, interior_rms))
    ratios = density_ratios(seams, sizes) if len(seams) else np.zeros(0)
    return SeamReport(
        seam_rms=seam_rms, interior_rms=interior_rms, bleed_rms=bleed_rms, ratio=[float(r) for r in ratio],
        bleed_ratio=[float(r) for r in bleed_ratio], edge_errors=np.array(all_errors).reshape(mip_levels + 1, -1),
        seam_length=float(seams.lengths.sum()), interior_length=float(interior.lengths.sum()),
        num_seams=len(seams), num_interior=len(interior.lengths),
        density=_density_summary(ratios, seams.lengths),
    )


def covered_interior_rms(mesh: Mesh, textures: Sequence[np.ndarray], coverage: Sequence[np.ndarray],
                         mip_levels: int = 3, samples_per_texel: float = 4.0,
                         interior: InteriorEdges | None = None) -> tuple[list[float], list[float]]:
    """Interior RMS restricted to sample points whose lookups read covered texels only (module docstring).

    At level L a sample point of an interior edge is kept when all four bilinear taps of both of its lookups
    (``p +- h n / 2``) are mip-L texels whose 2^L x 2^L level-0 block is entirely covered; kept points are weighted
    as in :func:`seam_metrics` (``len3d_e / n_e`` each).

    Args:
        mesh: the textured mesh; textures: uint8 or float [H, W, 3] per material (8-bit units, row 0 = top);
        coverage: bool [H, W] per material, texels whose centre lies inside a UV triangle (the bake's coverage);
        mip_levels: highest mip level (>= 0); samples_per_texel: as in :func:`seam_metrics`;
        interior: precomputed :func:`interior_edges` of ``mesh``.
    Returns:
        (RMS in 8-bit units per level 0..mip_levels, NaN where no point is kept; share of the interior edges' weight
        kept per level, in [0, 1]).
    """
    interior = interior if interior is not None else interior_edges(mesh)
    pyramids = [mip_pyramid(np.asarray(image)[..., :3], mip_levels) for image in textures]
    # a mip texel is "covered" when the box average of the coverage mask is 1 (every texel of its block covered)
    full = [[level[..., 0] >= 1.0 - 1e-9 for level in mip_pyramid(np.asarray(c, dtype=np.float64), mip_levels)]
            for c in coverage]
    sizes = np.array([[p[0].shape[1], p[0].shape[0]] for p in pyramids], dtype=np.int64)  # (W, H)
    count = len(interior.lengths)
    rms, shares = [], []
    if count == 0:
        return [float("nan")] * (mip_levels + 1), [0.0] * (mip_levels + 1)
    edge, xy, normal, size, materials = _interior_samples(interior, sizes, samples_per_texel)
    weight = interior.lengths[edge] / np.bincount(edge, minlength=count)[edge]
    for level in range(mip_levels + 1):
        half = normal * (2.0**level / 2.0)
        kept = np.ones(len(edge), dtype=bool)
        values = []
        for point in (xy + half, xy - half):
            values.append(_lookup(pyramids, level, materials, _from_texels(point, size)))
            x = point[:, 0] / 2**level - 0.5  # level-L texel coordinates, as in sample_bilinear
            y = point[:, 1] / 2**level - 0.5
            x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
            for material in np.unique(materials):
                rows = materials == material
                mask = full[int(material)][level]
                h, w = mask.shape
                for dy in (0, 1):
                    for dx in (0, 1):
                        kept[rows] &= mask[np.clip(y0[rows] + dy, 0, h - 1), np.clip(x0[rows] + dx, 0, w - 1)]
        errors = ((values[0] - values[1]) ** 2).sum(-1)
        rms.append(_rms(errors[kept], weight[kept]))
        shares.append(float(weight[kept].sum() / weight.sum()))
    return rms, shares
