"""Seam erasure across mip levels: a sparse least-squares correction of baked texel values (:func:`erase_seams`).

After Liu, Ferguson, Jacobson, Gingold, "Seamless: seam erasure and seam-aware decoupling of shape from mesh
resolution" (2017), extended to mipmaps: the texel values ``x`` (all materials' images, 8-bit units, per channel;
``x0`` = the input) minimize::

    sum_L w_L * sum_s (len3d_s / n_s) * sum_i || T_L(side 0, t_i) - T_L(side 1, t_i) ||^2      (seam energy)
      + lam * sum_texels c_j * || x_j - x0_j ||^2                                                (stay close)
      + keep * sum_s,k (len3d_s / n_s) * sum_i || D_k(x, t_i) - D_k(x0, t_i) ||^2                (keep the border)
      + detail * sum_(i,j) || (x_i - x_j) - (x0_i - x0_j) ||^2                                   (keep the detail)

with ``D_k(x, t) = T_0(side k, t) - T_0(side k, t + one texel into its triangle)``,

where ``T_L`` is the bilinear lookup at mip level L (2x2 box-averaged mips, texel centres at ``u * W_L - 0.5``, as in
:mod:`csdtex.metrics.seams`), which is linear in the level-0 texels, so the whole energy is a sparse quadratic. The
seam terms are normalized by the mean 3D length of a level-0 texel along the seam so that ``lam`` is unitless. Only
texels that some seam lookup reads are free; ``c_j`` is 1 on covered texels and ``gutter_weight`` on gutter texels
(which no surface point shows at level 0, so they may move freely to serve the coarser levels).

The detail term (gradient-domain editing, as in Poisson image editing) runs over the 4-neighbour pairs ``(i, j)`` of
level-0 texels of one image that are both covered and of which at least one is free (a pair with a fixed texel
pulls the free one's change towards 0, so the change fades out smoothly at the edge of the free band). It makes the
change ``x - x0`` of covered texels a smooth, low-frequency correction over about ``sqrt(detail / lam)`` texels
instead of a per-texel one that flattens the texture's detail next to a seam; gutter pairs are left out (the gutter
must be free to change at texel scale for the coarser levels).

On a layout whose charts have different texel densities across a seam, the solution band-limits the signal near
the seam (both sides agree at every level), touching only texels within about 1.5 * 2^max_level texels of a seam.
Solved for the change ``x - x0`` of the three channels at once by conjugate gradients on the normal equations
(Jacobi preconditioner, starting from no change), scipy.sparse.
"""

from __future__ import annotations

import dataclasses

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_LEVEL_WEIGHTS", "erase_seams", "erase_seams_render"]

DEFAULT_LEVEL_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def _lookup_rows(uv: np.ndarray, material: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 level: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse weights of the level-``level`` bilinear lookup in terms of level-0 texels.

    Returns (columns int64 [N, K], weights float64 [N, K]) with K = 4 * 4^level: global texel ids (``offsets[m] +
    row * W + col``) and weights summing to 1 per point.
    """
    block = 2**level
    width, height = sizes[material, 0], sizes[material, 1]
    wl, hl = width // block, height // block
    x = uv[:, 0] * wl - 0.5
    y = (1.0 - uv[:, 1]) * hl - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    cols, weights = [], []
    by, bx = np.meshgrid(np.arange(block), np.arange(block), indexing="ij")
    by, bx = by.reshape(-1), bx.reshape(-1)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            mx = np.clip(x0 + dx, 0, wl - 1)
            my = np.clip(y0 + dy, 0, hl - 1)
            rows = my[:, None] * block + by[None]  # [N, block^2] level-0 rows
            cc = mx[:, None] * block + bx[None]
            cols.append(offsets[material][:, None] + rows * width[:, None] + cc)
            weights.append(np.repeat((wy * wx)[:, None] / block**2, block**2, axis=1))
    return np.concatenate(cols, axis=1), np.concatenate(weights, axis=1)


def _select(seams, keep: np.ndarray):
    """The seam edges ``keep`` (bool [S]) selects, as a new :class:`csdtex.mesh.SeamEdges`."""
    return dataclasses.replace(seams, **{f.name: getattr(seams, f.name)[keep] for f in dataclasses.fields(seams)})


def _placed_sides(seams, third: np.ndarray, samplers) -> tuple[np.ndarray, np.ndarray]:
    """Each seam side's UV triangle (its two seam-edge UVs and ``third``, the face's third corner, [S, 2, 2]) where
    the bake placed it: :func:`csdtex.sampling.wrap_uv_triangles` with the side's material's sampler, so a chart in
    another whole tile is read where the viewer (and the bake) reads it. A triangle across tile borders (several
    copies) or without a sampler keeps its UVs. Returns ``(uvs [S, 2, 2, 2], third [S, 2, 2])``."""
    from csdtex.sampling import wrap_uv_triangles

    uvs, third = seams.uvs.copy(), third.copy()
    if samplers is None or len(seams) == 0:
        return uvs, third
    for side in range(2):
        triangles = np.concatenate([seams.uvs[:, side], third[:, side, None]], axis=1)  # [S, 3, 2]
        for material, sampler in enumerate(samplers):
            rows = np.flatnonzero(seams.materials[:, side] == material)
            if sampler is None or not len(rows):
                continue
            copies, source = wrap_uv_triangles(triangles[rows], sampler)
            single = np.bincount(source, minlength=len(rows))[source] == 1  # the copies of one-tile triangles
            placed = rows[source[single]]
            uvs[placed, side] = copies[single][:, :2]
            third[placed, side] = copies[single][:, 2]
    return uvs, third


def _block_cg(apply, rhs: np.ndarray, start: np.ndarray, inverse_diagonal: np.ndarray, iterations: int,
              rtol: float = 1e-5) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients on every column of ``rhs`` [n, k] at once (independent systems)."""

    def dots(u, v):  # column-wise inner products [k]
        return np.einsum("ij,ij->j", u, v)

    x = start.copy()
    r = rhs - apply(x)
    z = inverse_diagonal[:, None] * r
    p = z.copy()
    rz = dots(r, z)
    stop = rtol**2 * dots(rhs, rhs)
    for _ in range(iterations):
        if (dots(r, r) <= stop).all():
            break
        ap = apply(p)
        alpha = rz / np.maximum(dots(p, ap), 1e-30)
        x += alpha * p
        r -= alpha * ap
        np.multiply(inverse_diagonal[:, None], r, out=z)
        rz_new = dots(r, z)
        p *= rz_new / np.maximum(rz, 1e-30)
        p += z
        rz = rz_new
    return x


def _keep_rows(seams, third: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, texel_len: np.ndarray,
               texel_3d: float, samples_per_texel: float, total: int):
    """Sparse [R, total]: level-0 ``T(p) - T(p + n_in)`` on both sides of every seam (p on the seam, n_in one texel
    into the side's own triangle, whose third corner's UV is ``third`` [S, 2, 2]), weighted like the seam rows; the
    solve keeps these differences as baked."""
    from scipy.sparse import csr_matrix

    n = np.maximum(8, np.ceil(samples_per_texel * texel_len.max(axis=1))).astype(np.int64)
    edge = np.repeat(np.arange(len(seams)), n)
    t = (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + 0.5) / n[edge]
    weight = np.sqrt(seams.lengths[edge] / n[edge] / max(texel_3d, 1e-12))
    rows, cols, vals = [], [], []
    for side in range(2):
        material = seams.materials[edge, side]
        size = sizes[material].astype(np.float64)  # (W, H)
        scale = np.stack([size[:, 0], -size[:, 1]], axis=-1)  # UV -> texel offsets (y down)
        a_uv, b_uv = seams.uvs[edge, side, 0], seams.uvs[edge, side, 1]
        uv = a_uv * (1 - t[:, None]) + b_uv * t[:, None]
        seg = (b_uv - a_uv) * scale
        normal = np.stack([-seg[:, 1], seg[:, 0]], axis=-1) / np.maximum(np.linalg.norm(seg, axis=-1, keepdims=True),
                                                                          1e-12)
        inward = np.sign((((third[edge, side] - a_uv) * scale) * normal).sum(-1, keepdims=True))
        inner = uv + normal * inward / scale
        c0, w0 = _lookup_rows(uv, material, offsets, sizes, 0)
        c1, w1 = _lookup_rows(inner, material, offsets, sizes, 0)
        c = np.concatenate([c0, c1], axis=1)
        w = np.concatenate([w0, -w1], axis=1) * weight[:, None]
        base = side * len(edge)
        rows.append(np.repeat(np.arange(base, base + len(edge)), c.shape[1]))
        cols.append(c.reshape(-1))
        vals.append(w.reshape(-1))
    return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(2 * len(edge), total))


def _detail_rows(shapes: Sequence[tuple[int, int]], offsets: np.ndarray, free: np.ndarray, covered: np.ndarray):
    """Sparse [P, total] float64: ``x_i - x_j`` for every 4-neighbour pair of level-0 texels of one image (``shapes``
    = (H, W) per image, ``offsets`` int64 [M] = its first global texel id) that are both ``covered`` (bool [total])
    and of which at least one is ``free`` (bool [total])."""
    from scipy.sparse import csr_matrix

    firsts, seconds = [], []
    for (height, width), offset in zip(shapes, offsets):
        ids = offset + np.arange(height * width, dtype=np.int64).reshape(height, width)
        for first, second in ((ids[:, :-1], ids[:, 1:]), (ids[:-1, :], ids[1:, :])):
            first, second = first.reshape(-1), second.reshape(-1)
            pair = covered[first] & covered[second] & (free[first] | free[second])
            firsts.append(first[pair])
            seconds.append(second[pair])
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    count = len(first)
    rows = np.repeat(np.arange(count), 2)
    cols = np.stack([first, second], axis=1).reshape(-1)
    vals = np.tile([1.0, -1.0], count)
    return csr_matrix((vals, (rows, cols)), shape=(count, len(free)))


def erase_seams(mesh, images: Sequence[np.ndarray], coverage: Sequence[np.ndarray] | None = None,
                level_weights: Sequence[float] = DEFAULT_LEVEL_WEIGHTS, lam: float = 0.5,
                gutter_weight: float = 0.01, keep_weight: float = 1.0, detail_weight: float = 10.0,
                samples_per_texel: float = 2.0, iterations: int = 100, samplers=None) -> list[np.ndarray]:
    """Seam-erased copies of ``images`` (module docstring).

    Args:
        mesh: a :class:`csdtex.mesh.Mesh` with UVs (its seam edges are found with :func:`csdtex.mesh.seam_edges`);
            a seam side whose triangle lies in another whole tile than [0, 1] (a chart moved by whole tiles) is read
            where its material's sampler places it (``samplers``, as the bake does); other seam edges with a UV
            outside [0, 1] (a side across a tile border, a clamped texture) are left alone.
        samplers: :class:`csdtex.sampling.TextureSampler` or None per material (None: nothing is folded).
        images: uint8 [H, W, 3] per material (row 0 = top, v = 1); levels whose 2^L does not divide H and W are
            skipped.
        coverage: bool [H, W] per material (texels inside a UV triangle); None = every texel counts as covered.
        level_weights: w_L for mip levels 0..len-1.
        lam: weight of staying close to the input (per covered texel; larger = smaller changes).
        gutter_weight: c_j of gutter texels.
        keep_weight: weight of keeping the baked level-0 difference between each seam point and the point one texel
            inside its own triangle (without it, the gutter and border texels drift together and a line shows
            along the seam at level 0: the bleed of :mod:`csdtex.metrics.seams`).
        detail_weight: weight (>= 0, per texel pair, like ``lam`` per texel) of keeping the baked difference of
            neighbouring covered texels (module docstring); 0 = the per-texel correction of the first version, which
            softened interiors next to seams.
        samples_per_texel: seam samples per level-L texel of the longer side at level L (>= 8 per edge).
        iterations: conjugate-gradient iterations (at most).
    Returns:
        uint8 [H, W, 3] per material; unchanged copies when the mesh has no seams.
    """
    from scipy.sparse import csr_matrix

    from csdtex.mesh.seams import seam_edges

    images = [np.ascontiguousarray(np.asarray(image)[..., :3]) for image in images]
    from csdtex.metrics.seams import third_corner_uvs

    seams = seam_edges(mesh)
    placed, third = _placed_sides(seams, third_corner_uvs(mesh, seams), samplers)
    seams = dataclasses.replace(seams, uvs=placed)
    # UVs still outside [0, 1] are read through a wrap rule that these clamp-to-edge lookups do not model: skip them
    inside = ((seams.uvs >= 0.0) & (seams.uvs <= 1.0)).all(axis=(1, 2, 3))
    if not inside.all():
        seams, third = _select(seams, inside), third[inside]
    if len(seams) == 0:
        return [image.copy() for image in images]
    sizes = np.array([[image.shape[1], image.shape[0]] for image in images], dtype=np.int64)  # (W, H)
    counts = sizes[:, 0] * sizes[:, 1]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = int(counts.sum())

    side_sizes = sizes[seams.materials].astype(np.float64)  # [S, 2, 2]
    texel_len = np.linalg.norm((seams.uvs[:, :, 1] - seams.uvs[:, :, 0]) * side_sizes, axis=-1)  # [S, 2]
    # 3D length of a level-0 texel along the seam (the finer side), to make the seam energy per texel
    texel_3d = float(np.sum(seams.lengths) / np.maximum(texel_len.max(axis=1), 1e-12).sum())

    rows, cols, vals = [], [], []
    row_count = 0
    for level, weight in enumerate(level_weights):
        block = 2**level
        if weight <= 0 or (sizes % block).any():
            continue
        # samples_per_texel per level-L texel: the lookups at level L vary on that scale
        n = np.maximum(8, np.ceil(samples_per_texel * texel_len.max(axis=1) / block)).astype(np.int64)
        edge = np.repeat(np.arange(len(seams)), n)
        t = (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + 0.5) / n[edge]
        sample_weight = seams.lengths[edge] / n[edge] / max(texel_3d, 1e-12)
        parts = []
        for side, sign in ((0, 1.0), (1, -1.0)):
            uv = seams.uvs[edge, side, 0] * (1 - t[:, None]) + seams.uvs[edge, side, 1] * t[:, None]
            c, w = _lookup_rows(uv, seams.materials[edge, side], offsets, sizes, level)
            parts.append((c, sign * w))
        c = np.concatenate([parts[0][0], parts[1][0]], axis=1)
        w = np.concatenate([parts[0][1], parts[1][1]], axis=1) * np.sqrt(weight * sample_weight)[:, None]
        rows.append(np.repeat(np.arange(row_count, row_count + len(edge)), c.shape[1]))
        cols.append(c.reshape(-1))
        vals.append(w.reshape(-1))
        row_count += len(edge)
    if row_count == 0:
        return [image.copy() for image in images]
    matrix = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(row_count, total))
    keep = _keep_rows(seams, third, offsets, sizes, texel_len, texel_3d, samples_per_texel, total) * np.sqrt(
        keep_weight)
    used = np.asarray(abs(matrix).sum(axis=0)).reshape(-1) > 0
    active = np.flatnonzero(used)
    a = matrix[:, active].tocsr()
    at = a.T.tocsr()
    b = keep[:, active].tocsr()
    bt = b.T.tocsr()

    covered = np.concatenate([
        (np.ones(image.shape[:2], dtype=bool) if coverage is None else np.asarray(cov, dtype=bool)).reshape(-1)
        for image, cov in zip(images, coverage if coverage is not None else [None] * len(images))
    ])
    if detail_weight > 0:  # texels outside the free band do not change: their columns drop out of the detail rows
        g = _detail_rows([image.shape[:2] for image in images], offsets, used, covered)[:, active].tocsr() * np.sqrt(
            detail_weight)
    else:
        g = csr_matrix((0, len(active)))
    gt = g.T.tocsr()
    closeness = lam * np.where(covered[active], 1.0, gutter_weight)
    x0_all = np.concatenate([image.reshape(-1, 3).astype(np.float64) for image in images])  # [total, 3]
    x0 = x0_all[active]
    diagonal = (np.asarray(a.multiply(a).sum(axis=0)).reshape(-1) + np.asarray(b.multiply(b).sum(axis=0)).reshape(-1)
                + np.asarray(g.multiply(g).sum(axis=0)).reshape(-1) + closeness)
    # in terms of the change d = x - x0: (A'A + B'B + G'G + C) d = -A'A x0 (the keep and detail terms are 0 at d = 0)
    change = _block_cg(lambda v: at @ (a @ v) + bt @ (b @ v) + gt @ (g @ v) + closeness[:, None] * v,
                       -(at @ (a @ x0)), np.zeros_like(x0), 1.0 / diagonal, iterations)
    solution = x0 + change
    result = x0_all.copy()
    result[active] = solution
    out = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    pieces = np.split(out, np.cumsum(counts)[:-1])
    return [piece.reshape(image.shape) for piece, image in zip(pieces, images)]


def erase_seams_render(render_mesh, images: Sequence[np.ndarray], coverage: Sequence[np.ndarray] | None = None,
                       **options) -> list[np.ndarray]:
    """:func:`erase_seams` for a :class:`csdtex.mesh.RenderMesh` (its normalized positions weld like the input's)."""
    from csdtex.mesh.types import Material, Mesh

    mesh = Mesh(
        render_mesh.positions.detach().cpu().double().numpy(), render_mesh.faces.cpu().long().numpy(),
        uvs=render_mesh.uvs.detach().cpu().double().numpy(), uv_faces=render_mesh.uv_faces.cpu().long().numpy(),
        face_materials=render_mesh.face_materials.cpu().long().numpy(),
        materials=[Material(f"material_{i}") for i in range(render_mesh.num_materials)],
    )
    return erase_seams(mesh, images, coverage, **options)
