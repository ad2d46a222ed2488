"""UV seam edges: where a 3D edge is cut apart in UV space (:func:`seam_edges`).

A *seam edge* is an edge of the welded surface (vertices at the same position merged with
:func:`~csdtex.mesh.types.weld_positions`) that is shared by exactly two faces which both have UVs, and whose two
faces do not use the same UV coordinates at both of its ends, or belong to different materials (hence different
texture images). Across a seam, the texture is sampled along two different UV segments for the same 3D points; a
painted texture looks continuous only if both segments hold the same colours. :func:`csdtex.mesh.analyze_mesh` counts
seam edges; a seam-consistency metric can compare the texture along both sides.

Comparisons are exact: two UV indices count as the same UV vertex when their coordinates are bit-identical (so a mesh
that duplicates UV rows, e.g. an unwelded OBJ, has the same seams as its welded version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csdtex.mesh.types import Mesh, weld_positions
from csdtex.mesh.validate import validate_mesh

__all__ = ["SeamEdges", "seam_edges"]


@dataclass
class SeamEdges:
    """The seam edges of a mesh, ``S`` of them, as parallel arrays (see :func:`seam_edges`).

    Every seam edge ``s`` has two *ends* ``e = 0, 1`` (its welded 3D endpoints) and two *sides* ``k = 0, 1`` (the two
    faces that share it). The UV segment of side ``k`` runs from ``uvs[s, k, 0]`` to ``uvs[s, k, 1]``, in the same
    direction as the 3D edge from ``positions[s, 0]`` to ``positions[s, 1]``: the 3D point
    ``(1 - t) * positions[s, 0] + t * positions[s, 1]`` (t in [0, 1]) has the UV ``(1 - t) * uvs[s, k, 0] +
    t * uvs[s, k, 1]`` on side ``k``, in the texture of material ``materials[s, k]``.

    Attributes:
        faces: int64 [S, 2], the two face indices (into ``mesh.faces``), ``faces[s, 0] <= faces[s, 1]`` (equal only
            for a degenerate face that runs along the same edge twice).
        vertices: int64 [S, 2], the welded endpoints as vertex indices (into ``mesh.vertices``; each is the first
            vertex at its position, see :func:`~csdtex.mesh.types.weld_positions`), ``vertices[s, 0] <
            vertices[s, 1]``. Rows are sorted by ``(vertices[s, 0], vertices[s, 1])``.
        positions: float64 [S, 2, 3], ``mesh.vertices[vertices]``: the endpoints in input coordinates (not the
            normalized render space).
        lengths: float64 [S], 3D edge lengths ``|positions[s, 1] - positions[s, 0]|`` in input units (> 0).
        uv_indices: int64 [S, 2, 2], ``uv_indices[s, k, e]`` = the UV index (into ``mesh.uvs``) that face
            ``faces[s, k]`` uses at end ``e``.
        uvs: float64 [S, 2, 2, 2], ``mesh.uvs[uv_indices]``: ``uvs[s, k, e]`` = (u, v) with (0, 0) = bottom-left of
            the image.
        materials: int64 [S, 2], ``mesh.face_materials[faces]``: whose texture each side samples.
    """

    faces: np.ndarray
    vertices: np.ndarray
    positions: np.ndarray
    lengths: np.ndarray
    uv_indices: np.ndarray
    uvs: np.ndarray
    materials: np.ndarray

    def __len__(self) -> int:
        """S, the number of seam edges."""
        return int(self.faces.shape[0])


def seam_edges(mesh: Mesh) -> SeamEdges:
    """Find the UV seam edges of ``mesh`` (definition in the module docstring; layout in :class:`SeamEdges`).

    Only edges shared by exactly two faces, both with UVs, can be seams: boundary edges (one face), non-manifold
    edges (three or more faces), edges of faces without UVs and edges whose two endpoints weld to one position are
    never reported. A mesh without UVs has no seam edges.

    Args:
        mesh: a mesh; it is validated first (:class:`~csdtex.errors.MeshError` if unusable).
    Returns:
        :class:`SeamEdges` with ``S`` rows (``S`` may be 0).
    Example:
        A closed cube of 12 triangles (8 positions, 18 edges: 12 cube edges and 6 face diagonals) has 12 seam edges
        when each square side is its own UV chart, 18 when each triangle is, and 7 when it is unfolded into one
        cross-shaped chart (12 cube edges minus the 5 that the cross keeps joined).
    """
    validate_mesh(mesh)
    return _seam_edges(mesh, _WeldedEdges.build(mesh.vertices, mesh.faces), _canonical_uv_faces(mesh))


@dataclass
class _WeldedEdges:
    """The half-edges of every face in welded vertex ids, grouped by undirected edge.

    Half-edge ``h = 3 * f + c`` runs from corner ``c`` to corner ``(c + 1) % 3`` of face ``f``.

    Attributes:
        welded: int64 [V], :func:`weld_positions` of the vertices.
        starts, ends: int64 [3F], welded vertex ids at the start and end of every half-edge.
        ids: int64 [H], the half-edges with ``starts != ends``, sorted (stably, so by face within an edge) by their
            undirected edge (lower welded id, higher welded id).
        first: int64 [E], position in ``ids`` of the first half-edge of each undirected edge (edges in sorted order).
        counts: int64 [E], how many half-edges (face sides) each undirected edge has; 2 for a manifold interior edge.
    """

    welded: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray
    first: np.ndarray
    counts: np.ndarray

    @classmethod
    def build(cls, vertices: np.ndarray, faces: np.ndarray) -> "_WeldedEdges":
        welded = weld_positions(vertices)
        wf = welded[faces]
        starts, ends = wf.reshape(-1), wf[:, [1, 2, 0]].reshape(-1)
        proper = starts != ends
        lo, hi = np.minimum(starts, ends), np.maximum(starts, ends)
        keys = lo * (len(vertices) + 1) + hi
        order = np.argsort(keys[proper], kind="stable")
        ids = np.flatnonzero(proper)[order]
        _, first, counts = np.unique(keys[ids], return_index=True, return_counts=True)
        return cls(welded=welded, starts=starts, ends=ends, ids=ids, first=first, counts=counts)


def _canonical_uv_faces(mesh: Mesh) -> np.ndarray | None:
    """int64 [F, 3]: ``uv_faces`` with bit-identical UV coordinates mapped to one id (-1 kept); None without UVs."""
    if mesh.uv_faces is None:
        return None
    _, uv_canon = np.unique(mesh.uvs, axis=0, return_inverse=True)
    uv_canon = uv_canon.reshape(-1)
    return np.where(mesh.uv_faces >= 0, uv_canon[np.maximum(mesh.uv_faces, 0)], -1)


def _seam_edges(mesh: Mesh, edges: _WeldedEdges, cuv: np.ndarray | None) -> SeamEdges:
    """:func:`seam_edges` from precomputed welded edges and canonical UV faces (shared with ``analyze_mesh``)."""
    if cuv is None:
        none = np.zeros((0, 2), dtype=np.int64)
        return _seam_arrays(mesh, none, none, np.zeros((0, 2, 2), dtype=np.int64))
    with_uv = (mesh.uv_faces >= 0).all(axis=1)
    # manifold edges (two half-edges) between faces with UVs
    two = edges.counts == 2
    a, b = edges.ids[edges.first[two]], edges.ids[edges.first[two] + 1]
    fa, fb = a // 3, b // 3
    both_uv = with_uv[fa] & with_uv[fb]
    a, b, fa, fb = a[both_uv], b[both_uv], fa[both_uv], fb[both_uv]

    def corners_at_ends(half: np.ndarray) -> np.ndarray:
        """int64 [n, 2]: the face corner at the lower and at the higher welded end of each half-edge."""
        start, end = half % 3, (half % 3 + 1) % 3
        flip = edges.starts[half] > edges.ends[half]  # order the ends by welded vertex id
        return np.stack([np.where(flip, end, start), np.where(flip, start, end)], axis=1)

    ca, cb = corners_at_ends(a), corners_at_ends(b)
    different_uvs = (cuv[fa[:, None], ca] != cuv[fb[:, None], cb]).any(axis=1)
    seam = different_uvs | (mesh.face_materials[fa] != mesh.face_materials[fb])
    a, fa, fb, ca, cb = a[seam], fa[seam], fb[seam], ca[seam], cb[seam]
    ends = np.stack([np.minimum(edges.starts[a], edges.ends[a]), np.maximum(edges.starts[a], edges.ends[a])], axis=1)
    uv_indices = np.stack([mesh.uv_faces[fa[:, None], ca], mesh.uv_faces[fb[:, None], cb]], axis=1)
    return _seam_arrays(mesh, np.stack([fa, fb], axis=1), ends, uv_indices)


def _seam_arrays(mesh: Mesh, faces: np.ndarray, vertices: np.ndarray, uv_indices: np.ndarray) -> SeamEdges:
    """:class:`SeamEdges` from faces int [S, 2], welded end vertices int [S, 2] and UV indices int [S, 2, 2]."""
    faces = faces.astype(np.int64).reshape(-1, 2)
    vertices = vertices.astype(np.int64).reshape(-1, 2)
    uv_indices = uv_indices.astype(np.int64).reshape(-1, 2, 2)
    positions = mesh.vertices[vertices].reshape(-1, 2, 3)
    uvs = mesh.uvs[uv_indices].reshape(-1, 2, 2, 2) if mesh.uvs is not None else np.zeros((0, 2, 2, 2))
    return SeamEdges(
        faces=faces,
        vertices=vertices,
        positions=positions,
        lengths=np.linalg.norm(positions[:, 1] - positions[:, 0], axis=1),
        uv_indices=uv_indices,
        uvs=uvs,
        materials=mesh.face_materials[faces].reshape(-1, 2),
    )
