"""Random primitive meshes of the synthetic training data: trimesh primitives with random proportions, half of them
deformed, plus the per-object random scale and yaw.

- :func:`make_shape_mesh`: one primitive of :data:`~csdtex.tinyprior.vocabulary.SHAPES` (sphere, box, cylinder, cone,
  torus, capsule) as a csdtex :class:`~csdtex.mesh.Mesh`, optionally deformed (twist around +Y, taper, smooth bumps
  along the normals).
- :func:`pool_mesh`: the deterministic mesh number ``index`` of a split's mesh pool, normalized into the unit sphere
  with :meth:`csdtex.mesh.Mesh.to_render`.
- :func:`place_randomly`: a random anisotropic scale and yaw of a pool mesh, renormalized into the unit sphere.

Conventions: world +Y up; positions float64, normalized meshes inside the unit sphere around the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from csdtex.mesh import Mesh
from csdtex.tinyprior.vocabulary import SHAPES


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def make_shape_mesh(shape: str, rng: np.random.Generator, deform: bool | None = None) -> tuple[Mesh, dict]:
    """Build one random primitive of kind ``shape`` as a csdtex :class:`Mesh`, optionally deformed.

    Primitives (trimesh.creation, then subdivided so that edges are at most ~12% of the diagonal, 600..2300
    triangles): icosphere scaled into an ellipsoid, box with random extents, upright cylinder, upright cone (apex up),
    torus lying flat or standing, upright capsule. Deformations (each applied with probability 1/2 when ``deform``):
    twist around +Y (up to +-1.6 radians over the height), taper (horizontal scale changing linearly with height),
    smooth bumps (three random sinusoids displacing vertices along their normals by up to ~6% of the size).

    Args:
        shape: one of :data:`SHAPES`.
        rng: numpy generator.
        deform: apply deformations; None = with probability 1/2.
    Returns:
        (mesh, info): the Mesh (float64 vertices, +Y up, not normalized; no UVs) and a JSON-ready dict with the shape
        and the deformation parameters.
    """
    import trimesh
    from trimesh.remesh import subdivide_to_size

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: choose one of {SHAPES}")
    upright = _rotation_x(-math.pi / 2.0)  # trimesh's +Z axis -> +Y
    info: dict[str, Any] = {"shape": shape}
    if shape == "sphere":
        tm = trimesh.creation.icosphere(subdivisions=3)
        vertices = tm.vertices * rng.uniform(0.7, 1.3, 3)
    elif shape == "box":
        tm = trimesh.creation.box(extents=rng.uniform(0.6, 1.6, 3))
        vertices = tm.vertices
    elif shape == "cylinder":
        tm = trimesh.creation.cylinder(radius=float(rng.uniform(0.3, 0.7)), height=float(rng.uniform(0.8, 2.0)),
                                       sections=32)
        vertices = tm.vertices @ upright.T
    elif shape == "cone":
        tm = trimesh.creation.cone(radius=float(rng.uniform(0.4, 0.8)), height=float(rng.uniform(0.8, 1.8)),
                                   sections=32)
        vertices = tm.vertices @ upright.T
    elif shape == "torus":
        tm = trimesh.creation.torus(major_radius=1.0, minor_radius=float(rng.uniform(0.25, 0.5)),
                                    major_sections=32, minor_sections=16)
        standing = bool(rng.random() < 0.4)
        info["standing"] = standing
        vertices = tm.vertices if standing else tm.vertices @ upright.T
    else:  # capsule
        tm = trimesh.creation.capsule(height=float(rng.uniform(0.6, 1.6)), radius=float(rng.uniform(0.3, 0.6)),
                                      count=[16, 16])
        vertices = tm.vertices @ upright.T
    faces = np.asarray(tm.faces, dtype=np.int64)
    vertices = np.asarray(vertices, dtype=np.float64)
    diagonal = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    vertices, faces = subdivide_to_size(vertices, faces, max_edge=0.12 * diagonal)
    vertices = vertices - 0.5 * (vertices.max(0) + vertices.min(0))

    deform = bool(rng.random() < 0.5) if deform is None else bool(deform)
    info["deformed"] = deform
    if deform:
        from csdtex.mesh import vertex_normals

        height = max(float(vertices[:, 1].max() - vertices[:, 1].min()), 1e-6)
        y = vertices[:, 1] / height  # [-0.5, 0.5]
        if rng.random() < 0.5:
            twist = float(rng.uniform(-1.6, 1.6))
            angle = twist * y
            c, s = np.cos(angle), np.sin(angle)
            x, z = vertices[:, 0].copy(), vertices[:, 2].copy()
            vertices[:, 0], vertices[:, 2] = c * x + s * z, -s * x + c * z
            info["twist"] = twist
        if rng.random() < 0.5:
            taper = float(rng.uniform(-0.6, 0.6))
            vertices[:, [0, 2]] *= (1.0 + taper * y)[:, None]
            info["taper"] = taper
        if rng.random() < 0.5:
            normals = vertex_normals(vertices, faces)
            size = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
            displacement = np.zeros(len(vertices))
            for _ in range(3):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                frequency = float(rng.uniform(1.5, 4.0)) * 2.0 * math.pi / size
                displacement += np.sin(vertices @ direction * frequency + rng.uniform(0.0, 2.0 * math.pi))
            amplitude = float(rng.uniform(0.01, 0.02)) * size
            vertices = vertices + normals * (amplitude * displacement)[:, None]
            info["bumps"] = amplitude / size
    return Mesh(vertices, faces), info


@dataclass
class PoolMesh:
    """A mesh of a split's mesh pool, normalized into the unit sphere (see :func:`pool_mesh`).

    Attributes:
        positions: float64 [V, 3] vertex positions in the normalized render space (+Y up).
        faces: int64 [F, 3] vertex indices (counter-clockwise seen from outside).
        normals: float64 [V, 3] unit vertex normals.
        info: JSON-ready description from :func:`make_shape_mesh` (shape, deformation parameters).
        face_parts: int64 [F] part label of each face (data version 2's multi-part meshes,
            :func:`csdtex.tinyprior.shapes_v2.pool_mesh_v2`), or None for a single part (version 1).
    """

    positions: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    info: dict
    face_parts: np.ndarray | None = None


def pool_mesh(seed: int, split_code: int, index: int) -> PoolMesh:
    """Mesh number ``index`` of the mesh pool of dataset seed ``seed`` and split ``split_code``.

    Deterministic: its generator is seeded with ``(seed, split_code, 1, index)``; the shape is
    ``SHAPES[index % len(SHAPES)]`` (shapes in rotation), deformed with probability 1/2.
    """
    rng = np.random.default_rng([seed, split_code, 1, index])
    shape = SHAPES[index % len(SHAPES)]
    mesh, info = make_shape_mesh(shape, rng)
    render = mesh.to_render("cpu")
    return PoolMesh(render.positions.double().numpy(), mesh.faces, render.normals.double().numpy(), info)


def place_randomly(mesh: PoolMesh, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Apply a random anisotropic scale (0.75..1.3 per axis) and a random yaw about +Y, renormalized into the unit
    sphere.

    Returns:
        (positions float64 [V, 3], unit normals float64 [V, 3], JSON-ready parameters ``{"scale": [3],
        "yaw_deg": float}``).
    """
    scale = rng.uniform(0.75, 1.3, 3)
    yaw = float(rng.uniform(0.0, 2.0 * math.pi))
    matrix = _rotation_y(yaw) @ np.diag(scale)
    positions = mesh.positions @ matrix.T
    center = 0.5 * (positions.max(0) + positions.min(0))
    positions = positions - center
    positions /= max(float(np.linalg.norm(positions, axis=1).max()), 1e-12)
    normals = mesh.normals @ np.linalg.inv(matrix)  # inverse-transpose for normals (row vectors)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return positions, normals, {"scale": [float(v) for v in scale], "yaw_deg": math.degrees(yaw)}
