"""Mesh validation: :func:`validate_mesh` (is this mesh usable?) and :func:`degenerate_faces`.

Every loader (:func:`csdtex.io.load_mesh`), :func:`csdtex.mesh.unwrap.unwrap_uvs` and
:func:`csdtex.mesh.analysis.analyze_mesh` validate their input here, so an unusable mesh is always reported as one
:class:`~csdtex.errors.MeshError` line naming the file.
"""

from __future__ import annotations

import numpy as np

from csdtex.errors import MeshError
from csdtex.mesh.types import Mesh

__all__ = ["degenerate_faces", "validate_mesh"]


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _face_double_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """float64 [F]: twice the area of every triangle (the length of the edge cross product).

    Args: vertices float64 [V, 3]; faces int [F, 3] with valid indices. Used by :mod:`csdtex.mesh.unwrap` too.
    """
    corners = vertices[faces]
    return np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """bool [F]: faces with a repeated vertex index or (numerically) zero area.

    A face counts as zero-area when twice its area is at most ``1e-14 * d**2`` with ``d`` the bounding-box diagonal of
    ``vertices`` (edges around 1e-7 of the mesh size, below float32 resolution in the normalized render space).
    Args: vertices float [V, 3]; faces int [F, 3] with valid indices.
    Returns: bool [F], True for degenerate faces.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=bool)
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0))) if len(vertices) else 0.0
    return repeated | (_face_double_areas(vertices, faces) <= 1e-14 * diagonal**2)


def validate_mesh(mesh: Mesh) -> None:
    """Check that ``mesh`` is usable; raise :class:`MeshError` (one line naming ``mesh.source``) if it is not.

    Checks: vertices float [V, 3] all finite; faces int [F, 3] with F > 0 and every index in [0, V); not every face
    degenerate (see :func:`degenerate_faces`); ``face_materials`` [F] in [0, len(materials)) with at least one
    material; textures uint8 [H, W, 3] or None; ``uvs`` and ``uv_faces`` both None or both set, ``uv_faces`` [F, 3]
    with each row either all -1 (no UVs) or all in [0, T), ``uvs`` [T, 2] finite where used. Some degenerate faces,
    UVs outside [0, 1] or overlapping UVs are allowed (see :func:`~csdtex.mesh.analysis.analyze_mesh`). Runs on
    meshes built in code too.
    """
    where = f"mesh file '{mesh.source}'" if mesh.source is not None else "mesh"
    vertices, faces = mesh.vertices, mesh.faces
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"{where}: vertices must have shape [V, 3], got {list(vertices.shape)}: pass xyz positions")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(f"{where}: faces must have shape [F, 3] (triangles), got {list(faces.shape)}: triangulate it")
    if len(faces) == 0 and len(vertices) == 0:
        raise MeshError(f"{where} has no vertices and no faces: export the mesh again (as triangles)")
    if len(faces) == 0:
        raise MeshError(
            f"{where} has no faces ({len(vertices)} vertices only, e.g. a point cloud): export a triangle mesh"
        )
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise MeshError(
            f"{where} has {_count(len(bad), 'vertex', 'vertices')} with NaN or infinite coordinates "
            f"(first: vertex {bad[0] + 1}): "
            "repair or re-export the mesh"
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        worst = int(faces.max()) if faces.max() >= len(vertices) else int(faces.min())
        shown = f"vertex {worst + 1}" if worst >= 0 else f"index {worst}"
        raise MeshError(
            f"{where} has faces that use missing vertices ({shown}, but there are only {len(vertices)} vertices): "
            "the file is truncated or corrupt, re-export it"
        )
    if degenerate_faces(vertices, faces).all():
        raise MeshError(
            f"{where}: all {len(faces)} faces are degenerate (zero area), there is no surface to texture: "
            "check the export (units, collapsed geometry)"
        )
    if not mesh.materials:
        raise MeshError(f"{where} has no materials: a mesh needs at least one Material")
    fm = mesh.face_materials
    if fm is None or fm.shape != (len(faces),) or fm.min() < 0 or fm.max() >= len(mesh.materials):
        raise MeshError(
            f"{where}: face_materials must be [F] = [{len(faces)}] with values in [0, {len(mesh.materials)}): "
            "the mesh is inconsistent"
        )
    for material in mesh.materials:
        tex = material.texture
        if tex is not None and (tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3 or tex.size == 0):
            raise MeshError(
                f"{where}: the texture of material '{material.name}' must be uint8 [H, W, 3], got "
                f"{tex.dtype} {list(tex.shape)}"
            )
    if mesh.tangents is not None and (mesh.normals is None or mesh.tangents.shape != (len(mesh.normals), 4)):
        raise MeshError(f"{where}: tangents must be [N, 4], row for row with the normals; the mesh is inconsistent")
    if (mesh.normals is None) != (mesh.normal_faces is None):
        raise MeshError(f"{where}: normals and normal_faces must both be set or both be None")
    if mesh.normals is not None:
        if mesh.normals.ndim != 2 or mesh.normals.shape[1] != 3 or mesh.normal_faces.shape != faces.shape:
            raise MeshError(f"{where}: normals must be [N, 3] and normal_faces the shape of faces; the mesh is "
                            "inconsistent")
        if mesh.normal_faces.size and (mesh.normal_faces.max() >= len(mesh.normals) or mesh.normal_faces.min() < -1):
            raise MeshError(
                f"{where} has faces that use missing normals (normal {int(mesh.normal_faces.max()) + 1}, but there "
                f"are only {len(mesh.normals)}): the file is truncated or corrupt, re-export it"
            )
    if (mesh.uvs is None) != (mesh.uv_faces is None):
        raise MeshError(f"{where}: uvs and uv_faces must both be set or both be None")
    if mesh.uv_faces is None:
        return
    uvs, uv_faces = mesh.uvs, mesh.uv_faces
    if uvs.ndim != 2 or uvs.shape[1] != 2:
        raise MeshError(f"{where}: uvs must have shape [T, 2], got {list(uvs.shape)}")
    if uv_faces.shape != faces.shape:
        raise MeshError(f"{where}: uv_faces must have the shape of faces {list(faces.shape)}, got "
                        f"{list(uv_faces.shape)}")
    missing = uv_faces < 0
    if ((missing.any(axis=1)) & ~(missing.all(axis=1))).any() or (uv_faces < -1).any():
        raise MeshError(f"{where}: a uv_faces row must be all -1 (no UVs) or all valid indices; the mesh is corrupt")
    if uv_faces.max() >= len(uvs):
        raise MeshError(
            f"{where} has faces that use missing texture coordinates (UV {int(uv_faces.max()) + 1}, but there are "
            f"only {len(uvs)}): the file is truncated or corrupt, re-export it"
        )
    used = np.unique(uv_faces[~missing])
    bad_uv = used[~np.isfinite(uvs[used]).all(axis=1)]
    if len(bad_uv):
        raise MeshError(
            f"{where} has {_count(len(bad_uv), 'texture coordinate')} with NaN or infinite values "
            f"(first: UV {bad_uv[0] + 1}): "
            "repair the UVs, or pass --unwrap to replace them"
        )
