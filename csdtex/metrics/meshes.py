"""Deterministic procedural meshes for the seam benchmark (``csdtex bench seams proc:NAME``).

- ``proc:mismatch``: a cube-sphere (every cube side a ``grid x grid`` quad grid, pushed onto the unit sphere) cut into
  24 square charts (2 x 2 per cube side). Charts alternate between full and ``small_scale`` size in the atlas, in a
  checkerboard over each side's 2 x 2 patches, so most seams join a fine chart to a coarse one (texel-density ratio
  1 / small_scale, 2.86x by default): the hard layout of issue #11.
- ``proc:xatlas``: the same surface with UVs from xatlas (uniform density, many charts).

Positions are shared between charts (bit-identical along cube edges), so the surface is closed and only the UVs are
cut. UVs: float64 in [0, 1], (0, 0) = bottom-left.
"""

from __future__ import annotations

import numpy as np

from csdtex.errors import MeshError
from csdtex.mesh.types import Mesh

__all__ = ["PROCEDURAL_MESHES", "procedural_mesh", "mismatch_sphere"]

# cube side -> (axis of the normal, sign, axis of local s, axis of local t)
_SIDES = ((0, 1.0, 2, 1), (0, -1.0, 1, 2), (1, 1.0, 0, 2), (1, -1.0, 2, 0), (2, 1.0, 1, 0), (2, -1.0, 0, 1))


def _cube_sphere_patches(grid: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Welded vertices float64 [V, 3] on the unit sphere, and per patch (faces int [f, 3], local st float [f, 3, 2])."""
    coords = np.linspace(-1.0, 1.0, grid + 1)
    keys: dict[tuple[float, float, float], int] = {}
    vertices: list[np.ndarray] = []
    half = grid // 2
    patches = []
    for axis, sign, s_axis, t_axis in _SIDES:
        index = np.zeros((grid + 1, grid + 1), dtype=np.int64)
        for i, s in enumerate(coords):
            for j, t in enumerate(coords):
                point = np.zeros(3)
                point[axis], point[s_axis], point[t_axis] = sign, s, t
                key = tuple(point.tolist())
                if key not in keys:
                    keys[key] = len(vertices)
                    vertices.append(point / np.linalg.norm(point))
                index[i, j] = keys[key]
        for pi in range(2):
            for pj in range(2):
                faces, st = [], []
                for i in range(pi * half, (pi + 1) * half):
                    for j in range(pj * half, (pj + 1) * half):
                        a, b, c, d = index[i, j], index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]
                        la, lb = ((i - pi * half) / half, (j - pj * half) / half), ((i + 1 - pi * half) / half,
                                                                                  (j - pj * half) / half)
                        lc, ld = ((i + 1 - pi * half) / half, (j + 1 - pj * half) / half), (
                            (i - pi * half) / half, (j + 1 - pj * half) / half)
                        tri = [(a, b, c), (a, c, d)]
                        loc = [(la, lb, lc), (la, lc, ld)]
                        for f, l in zip(tri, loc):
                            faces.append(f)
                            st.append(l)
                patches.append((np.array(faces), np.array(st, dtype=np.float64)))
    vertices = np.array(vertices)
    # Orient faces outwards (counter-clockwise seen from outside).
    for faces, st in patches:
        p = vertices[faces]
        normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        flip = (normal * p.mean(axis=1)).sum(-1) < 0
        faces[flip] = faces[flip][:, [0, 2, 1]]
        st[flip] = st[flip][:, [0, 2, 1]]
    return vertices, patches


def mismatch_sphere(grid: int = 16, small_scale: float = 0.35) -> Mesh:
    """The ``proc:mismatch`` mesh: 24 charts, checkerboard of full / ``small_scale`` chart sizes (see module doc).

    Args:
        grid: quads per cube side and axis (even, >= 2): 2 * grid^2 * 6 triangles.
        small_scale: size of the small charts relative to the big ones (the density ratio is 1 / small_scale).
    """
    vertices, patches = _cube_sphere_patches(grid)
    cell, pad = 0.25, 0.05
    big_slots = [(r, c) for r in range(4) for c in range(4)]
    small_cells = big_slots[12:]
    faces_all, uvs_all, uv_faces_all = [], [], []
    big_count = small_count = 0
    for number, (faces, st) in enumerate(patches):
        side, local = divmod(number, 4)
        big = (side + local // 2 + local % 2) % 2 == 0
        if big:
            row, col = big_slots[big_count]
            big_count += 1
            origin, size = np.array([col * cell, row * cell]) + pad * cell, cell * (1 - 2 * pad)
        else:
            row, col = small_cells[small_count // 4]
            sub = small_count % 4
            small_count += 1
            sub_cell = cell / 2
            origin = np.array([col * cell + (sub % 2) * sub_cell, row * cell + (sub // 2) * sub_cell]) + pad * cell
            size = cell * (1 - 2 * pad) * small_scale
        uv = origin + st.reshape(-1, 2) * size
        uv_faces_all.append(np.arange(len(uv)).reshape(-1, 3) + sum(len(u) for u in uvs_all))
        uvs_all.append(uv)
        faces_all.append(faces)
    if big_count > 12 or small_count > 16:  # pragma: no cover - layout constant
        raise AssertionError("atlas overflow")
    return Mesh(vertices, np.concatenate(faces_all), uvs=np.concatenate(uvs_all),
                uv_faces=np.concatenate(uv_faces_all))


def _xatlas_sphere(grid: int = 16) -> Mesh:
    from csdtex.mesh.unwrap import unwrap_uvs

    mesh = mismatch_sphere(grid)
    return unwrap_uvs(Mesh(mesh.vertices, mesh.faces), 512)


PROCEDURAL_MESHES = {"mismatch": mismatch_sphere, "xatlas": _xatlas_sphere}


def procedural_mesh(name: str) -> Mesh:
    """The procedural mesh ``name`` (``mismatch`` or ``xatlas``; a ``proc:`` prefix is accepted)."""
    key = name[5:] if name.startswith("proc:") else name
    if key not in PROCEDURAL_MESHES:
        raise MeshError(f"unknown procedural mesh {name!r}: use one of "
                        + ", ".join(f"proc:{k}" for k in PROCEDURAL_MESHES))
    return PROCEDURAL_MESHES[key]()
