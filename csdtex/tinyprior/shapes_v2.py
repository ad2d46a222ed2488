"""Procedural shapes of data version 2 (issue #15): bent tubes, vessels, furniture, thin-limbed creatures and
multi-part assemblies, each made of labelled parts, plus a held-out family of irregular shapes for the benchmark.

Version 1 trained on single trimesh primitives (:mod:`csdtex.tinyprior.shapes`); painted textures and the attribute
classifier then failed on thin legs, handles and concave parts of meshes they never saw. Version 2's pool mixes the
version-1 primitives (a quarter of the meshes, some of them bent) with these families (numpy only, 2-5 ms each):

- ``tube``: a tube swept along an arc, an S-curve, a helix or a random spline, possibly tapered (3 parts along it).
- ``bowl``, ``cup``, ``vase``: surfaces of revolution with a wall thickness and an open top (concave insides);
  cups often have a C-shaped handle (a second part).
- ``table``, ``chair``: slabs on thin legs (boxes or cylinders, possibly splayed), shelves, backrests or slats.
- ``creature``: an ellipsoid body on 2, 6 or 8 thin bent legs (never 4), with a head, antennae, arms or a tail.
- ``assembly``: 2-4 stacked primitives (snowman, lamp, mushroom-like), sometimes with side arms.

Held out of every split (never drawn by :func:`pool_mesh_v2`; only :func:`held_out_mesh` builds them) for the fidelity
benchmark (``benchmarks/fidelity.py`` loads them as ``proc:quadruped`` and ``proc:teapot``):

- ``quadruped``: an animal-like body on four straight tapered legs, with neck, head, ears and tail.
- ``teapot``: a squat body of revolution with lid and knob, an S-shaped spout and a handle.

Every shape is a :class:`PartMesh`: vertices, triangles and a part label per triangle (concatenated meshes: parts
intersect, watertightness is not needed), deterministic from its generator, at most ~5k triangles.
:func:`part_sizes` measures each part's middle extent, from which the textures of data version 2 scale their
features (:meth:`csdtex.tinyprior.textures.TextureSpec.scaled`).

Conventions: world +Y up; builders return raw float64 vertices (+Y up, the object standing on its lowest point
roughly) that :func:`pool_mesh_v2` normalizes into the unit sphere (:meth:`csdtex.mesh.Mesh.to_render`); triangles
int64, counter-clockwise seen from outside where the builder knows the outside.

Public API: :class:`PartMesh`, :data:`FAMILIES_V2`, :data:`FAMILY_WEIGHTS_V2`, :data:`HELD_OUT_FAMILIES`,
:func:`make_family_mesh`, :func:`family_noun`, :func:`pool_mesh_v2`, :func:`part_sizes`, :func:`held_out_mesh`,
:func:`held_out_names`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csdtex.mesh import Mesh
from csdtex.tinyprior.vocabulary import GENERIC_NOUN, SHAPES

FAMILIES_V2: tuple[str, ...] = ("primitive", "tube", "bowl", "cup", "vase", "table", "chair", "creature", "assembly")
"""Shape families of data version 2's mesh pools (``primitive`` = a version-1 primitive of :data:`SHAPES`)."""

FAMILY_WEIGHTS_V2: dict[str, float] = {
    "primitive": 0.25, "tube": 0.09, "bowl": 0.08, "cup": 0.09, "vase": 0.08, "table": 0.1, "chair": 0.08,
    "creature": 0.11, "assembly": 0.12,
}  # fmt: skip
"""Probability of each family in a pool (sums to 1)."""

HELD_OUT_FAMILIES: tuple[str, ...] = ("quadruped", "teapot")
"""Irregular families that no split of the synthetic data contains (benchmark only, :func:`held_out_mesh`)."""


@dataclass
class PartMesh:
    """A mesh made of labelled parts.

    Attributes:
        vertices: float64 [V, 3] positions (+Y up; raw builder units, or the unit sphere after normalization).
        faces: int64 [F, 3] vertex indices.
        face_parts: int64 [F] part label of each face, 0 .. P-1 (every label used).
        info: JSON-ready description (``family``, ``noun``, builder parameters).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_parts: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def num_parts(self) -> int:
        """P, the number of parts."""
        return int(self.face_parts.max()) + 1 if len(self.face_parts) else 0

    def to_mesh(self) -> Mesh:
        """The csdtex :class:`~csdtex.mesh.Mesh` of the geometry (no UVs, one material; part labels dropped)."""
        return Mesh(self.vertices, self.faces)


# ======================================================================================================================
# Geometry helpers (numpy)
# ======================================================================================================================


class _Builder:
    """Collects parts: ``add(vertices, faces, part)`` with ``part=None`` opening a new part."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.parts: list[np.ndarray] = []
        self.count = 0
        self.num_parts = 0

    def add(self, piece: tuple[np.ndarray, np.ndarray], part: int | None = None) -> int:
        vertices, faces = piece
        if part is None:
            part = self.num_parts
        self.num_parts = max(self.num_parts, part + 1)
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.faces.append(np.asarray(faces, dtype=np.int64) + self.count)
        self.parts.append(np.full(len(faces), part, dtype=np.int64))
        self.count += len(vertices)
        return part

    def add_parts(self, piece: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Add a piece that carries its own part labels (int [F], 0-based), as new parts."""
        vertices, faces, labels = piece
        first = self.num_parts
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.faces.append(np.asarray(faces, dtype=np.int64) + self.count)
        self.parts.append(np.asarray(labels, dtype=np.int64) + first)
        self.num_parts = first + int(np.max(labels)) + 1
        self.count += len(vertices)

    def build(self, info: dict) -> PartMesh:
        return PartMesh(np.concatenate(self.vertices), np.concatenate(self.faces), np.concatenate(self.parts), info)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation matrix about unit ``axis`` by ``angle`` radians (right-handed)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / max(float(np.linalg.norm(axis)), 1e-12)
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    return np.array([
        [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
        [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
        [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
    ])  # fmt: skip


def _ring_faces(rows: int, sections: int, closed_rows: bool = False) -> np.ndarray:
    """Triangles joining ``rows`` rings of ``sections`` vertices (vertex ``i * sections + j``); ``closed_rows`` also
    joins the last ring to the first. Counter-clockwise seen from the side where (ring direction x row direction)
    points, i.e. outside for rings turning positively about the row direction."""
    i, j = np.meshgrid(np.arange(rows if closed_rows else rows - 1), np.arange(sections), indexing="ij")
    i, j = i.ravel(), j.ravel()
    a = i * sections + j
    b = i * sections + (j + 1) % sections
    c = ((i + 1) % rows) * sections + j
    d = ((i + 1) % rows) * sections + (j + 1) % sections
    return np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])


def _frames(path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parallel-transport frames (tangent, normal, binormal), each float64 [n, 3], along a polyline [n, 3]."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    helper = np.array([0.0, 1.0, 0.0]) if abs(tangent[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.zeros_like(path)
    n = np.cross(tangent[0], helper)
    normal[0] = n / np.linalg.norm(n)
    for k in range(1, len(path)):
        n = normal[k - 1] - np.dot(normal[k - 1], tangent[k]) * tangent[k]
        length = np.linalg.norm(n)
        normal[k] = n / length if length > 1e-9 else normal[k - 1]
    binormal = np.cross(tangent, normal)
    return tangent, normal, binormal


def _tube(path: np.ndarray, radius: float | np.ndarray, sections: int = 10, caps: bool = True,
          closed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A tube of ``radius`` (float or float [n]) swept along ``path`` float [n, 3]; flat caps at both ends unless
    ``closed`` (a closed loop: the last point joins the first, as for a torus). Returns (vertices, faces)."""
    path = np.asarray(path, dtype=np.float64)
    n = len(path)
    tangent, normal, binormal = _frames(np.concatenate([path[-1:], path, path[:1]]) if closed else path)
    if closed:
        tangent, normal, binormal = tangent[1:-1], normal[1:-1], binormal[1:-1]
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    theta = np.linspace(0.0, 2.0 * math.pi, sections, endpoint=False)
    ring = np.cos(theta)[None, :, None] * normal[:, None] + np.sin(theta)[None, :, None] * binormal[:, None]
    vertices = (path[:, None] + radius[:, None, None] * ring).reshape(-1, 3)
    faces = _ring_faces(n, sections, closed_rows=closed)
    faces = faces[:, [0, 2, 1]]  # rings turn positively about the tangent: (a, c, b) faces outwards
    if caps and not closed:
        start, end = len(vertices), len(vertices) + 1
        vertices = np.concatenate([vertices, path[:1], path[-1:]])
        j = np.arange(sections)
        last = (n - 1) * sections
        cap0 = np.stack([np.full(sections, start), (j + 1) % sections, j], 1)
        cap1 = np.stack([np.full(sections, end), last + j, last + (j + 1) % sections], 1)
        faces = np.concatenate([faces, cap0, cap1])
    return vertices, faces


def _lathe(radius: np.ndarray, height: np.ndarray, sections: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Surface of revolution about +Y of the profile (radius [m], height [m]) (points with radius 0 collapse to the
    axis). Returns (vertices, faces)."""
    phi = np.linspace(0.0, 2.0 * math.pi, sections, endpoint=False)
    radius, height = np.asarray(radius, dtype=np.float64), np.asarray(height, dtype=np.float64)
    x = radius[:, None] * np.cos(phi)[None]
    z = radius[:, None] * np.sin(phi)[None]
    y = np.broadcast_to(height[:, None], x.shape)
    vertices = np.stack([x, y, z], -1).reshape(-1, 3)
    return vertices, _ring_faces(len(radius), sections)


def _ellipsoid(center, radii, rotation: np.ndarray | None = None, rows: int = 10,
               sections: int = 16) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, math.pi, rows)
    vertices, faces = _lathe(np.sin(t), -np.cos(t), sections)
    vertices = vertices * np.asarray(radii, dtype=np.float64)
    if rotation is not None:
        vertices = vertices @ rotation.T
    return vertices + np.asarray(center, dtype=np.float64), faces


_BOX_FACES = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [2, 3, 7], [2, 7, 6],
                       [1, 2, 6], [1, 6, 5], [0, 4, 7], [0, 7, 3]])  # fmt: skip


def _box(center, extents, rotation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1],
                        [-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]], dtype=np.float64)  # fmt: skip
    vertices = corners * (0.5 * np.asarray(extents, dtype=np.float64))
    if rotation is not None:
        vertices = vertices @ rotation.T
    return vertices + np.asarray(center, dtype=np.float64), _BOX_FACES.copy()


def _rod(p0, p1, r0: float, r1: float | None = None, sections: int = 10, rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A straight capped (tapered) cylinder from ``p0`` to ``p1``."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    t = np.linspace(0.0, 1.0, rows)[:, None]
    return _tube(p0 + t * (p1 - p0), np.linspace(r0, r0 if r1 is None else r1, rows), sections)


def _bezier(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points of the Bezier curve with control ``points`` [k, 3] (de Casteljau)."""
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    p = np.broadcast_to(np.asarray(points, dtype=np.float64), (n,) + np.shape(points)).copy()
    while p.shape[1] > 1:
        p = (1 - t) * p[:, :-1] + t * p[:, 1:]
    return p[:, 0]


def _catmull_rom(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points of a Catmull-Rom spline through ``points`` [k, 3] (ends repeated)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    segments = len(points) - 1
    u = np.linspace(0.0, segments, n)
    k = np.minimum(u.astype(int), segments - 1)
    t = (u - k)[:, None]
    p0, p1, p2, p3 = p[k], p[k + 1], p[k + 2], p[k + 3]
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)


def _bend(vertices: np.ndarray, angle: float, direction: np.ndarray) -> np.ndarray:
    """Bend ``vertices`` [V, 3] about a horizontal axis so that the +Y extent turns by ``angle`` radians towards the
    horizontal unit vector ``direction`` (the bottom stays in place)."""
    if abs(angle) < 1e-6:
        return vertices
    up = np.array([0.0, 1.0, 0.0])
    h = vertices @ up
    s = vertices @ direction
    low = float(h.min())
    radius = max(float(h.max()) - low, 1e-6) / angle
    theta = (h - low) / radius
    new_s = radius - (radius - s) * np.cos(theta)
    new_h = low + (radius - s) * np.sin(theta)
    return vertices + np.outer(new_s - s, direction) + np.outer(new_h - h, up)


def _horizontal(rng: np.random.Generator) -> np.ndarray:
    a = float(rng.uniform(0.0, 2.0 * math.pi))
    return np.array([math.cos(a), 0.0, math.sin(a)])


# ======================================================================================================================
# Training families
# ======================================================================================================================


def _primitive(rng: np.random.Generator) -> PartMesh:
    from csdtex.tinyprior.shapes import make_shape_mesh

    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    mesh, info = make_shape_mesh(shape, rng)
    vertices = mesh.vertices
    if rng.random() < 0.35:
        angle = float(rng.uniform(0.4, 1.4))
        vertices = _bend(vertices, angle, _horizontal(rng))
        info["bend"] = angle
    return PartMesh(vertices, mesh.faces, np.zeros(len(mesh.faces), np.int64), {"family": "primitive", **info})


def _tube_family(rng: np.random.Generator) -> PartMesh:
    kind = ("arc", "s_curve", "helix", "spline")[int(rng.integers(4))]
    n = 30
    t = np.linspace(0.0, 1.0, n)
    if kind == "arc":
        sweep = float(rng.uniform(0.5, 1.6)) * math.pi
        r = 2.0 / sweep
        path = np.stack([r * np.cos(sweep * t), r * np.sin(sweep * t), np.zeros(n)], 1)
    elif kind == "s_curve":
        amplitude = float(rng.uniform(0.25, 0.6))
        path = np.stack([2.0 * t - 1.0, amplitude * np.sin(2.0 * math.pi * t), np.zeros(n)], 1)
    elif kind == "helix":
        turns, r = float(rng.uniform(0.7, 1.6)), float(rng.uniform(0.35, 0.6))
        height = float(rng.uniform(0.8, 1.8))
        a = 2.0 * math.pi * turns * t
        path = np.stack([r * np.cos(a), height * t, r * np.sin(a)], 1)
    else:
        path = _catmull_rom(rng.uniform(-1.0, 1.0, (4, 3)) * np.array([1.0, 0.8, 1.0]), n)
    rotation = _rotation(rng.normal(size=3), float(rng.uniform(0.0, 2.0 * math.pi))) if kind != "helix" else None
    if rotation is not None:
        path = path @ rotation.T
    radius = float(rng.uniform(0.08, 0.22))
    taper = float(rng.uniform(0.0, 0.7)) if rng.random() < 0.5 else 0.0
    vertices, faces = _tube(path, radius * (1.0 - taper * t), sections=12)
    # three parts along the tube (each nearly straight, so its middle extent is the tube's thickness)
    ring_of_face = np.minimum(faces.min(axis=1) // 12, n - 2)
    parts = np.minimum(ring_of_face * 3 // (n - 1), 2)
    return PartMesh(vertices, faces, parts, {"family": "tube", "kind": kind, "radius": radius, "taper": taper})


def _vessel_profile(outer_r: np.ndarray, outer_y: np.ndarray, thickness: float,
                    inner_depth: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closed lathe profile of a vessel: from the bottom centre up the outside (``outer_r`` / ``outer_y``, bottom to
    rim), over a rounded rim, then down the inside (the outside offset inwards by ``thickness``) to the inner bottom
    centre (at ``inner_depth`` below the rim, default the whole height minus the thickness)."""
    rim_y = float(outer_y[-1])
    bottom = float(outer_y[0]) + thickness if inner_depth is None else rim_y - inner_depth
    inner_y = outer_y[::-1]
    keep = inner_y >= bottom
    inner_y = inner_y[keep]
    inner_r = np.maximum(outer_r[::-1][keep] - thickness, 0.0)
    radius = np.concatenate([[0.0], outer_r, [outer_r[-1] - 0.5 * thickness], inner_r, [0.0]])
    height = np.concatenate([[outer_y[0]], outer_y, [rim_y + 0.3 * thickness], inner_y, [bottom]])
    return radius, height


def _bowl(rng: np.random.Generator) -> PartMesh:
    depth = float(rng.uniform(0.35, 0.8))
    foot = float(rng.uniform(0.25, 0.5))
    phi = np.linspace(0.0, 0.5 * math.pi, 12)
    power = float(rng.uniform(0.7, 1.4))
    r = foot + (1.0 - foot) * np.sin(phi) ** power
    y = depth * (1.0 - np.cos(phi))
    thickness = float(rng.uniform(0.04, 0.09))
    vertices, faces = _lathe(*_vessel_profile(r, y, thickness), sections=28)
    return PartMesh(vertices, faces, np.zeros(len(faces), np.int64),
                    {"family": "bowl", "depth": depth, "thickness": thickness})


def _handle(rng: np.random.Generator, side: float, y_low: float, y_high: float, reach: float,
            radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A C-shaped handle on the +X side: from (side, y_high) out to side + reach and back to (side, y_low)."""
    a = np.linspace(0.5 * math.pi, -0.5 * math.pi, 14)
    mid, half = 0.5 * (y_low + y_high), 0.5 * (y_high - y_low)
    squash = float(rng.uniform(0.7, 1.0))
    path = np.stack([side - 0.3 * radius + reach * np.cos(a), mid + half * squash * np.sin(a), np.zeros_like(a)], 1)
    return _tube(path, radius, sections=8)


def _cup(rng: np.random.Generator) -> PartMesh:
    height = float(rng.uniform(0.9, 1.8))
    bottom = float(rng.uniform(0.55, 1.0))
    y = np.linspace(0.0, height, 10)
    bulge = float(rng.uniform(-0.1, 0.15))
    r = bottom + (1.0 - bottom) * y / height + bulge * np.sin(math.pi * y / height)
    thickness = float(rng.uniform(0.05, 0.1))
    builder = _Builder()
    builder.add(_lathe(*_vessel_profile(r, y, thickness), sections=28))
    has_handle = bool(rng.random() < 0.7)
    if has_handle:
        low, high = height * float(rng.uniform(0.15, 0.35)), height * float(rng.uniform(0.65, 0.85))
        side = float(np.interp(0.5 * (low + high), y, r))
        builder.add(_handle(rng, side, low, high, float(rng.uniform(0.3, 0.55)), float(rng.uniform(0.06, 0.11))))
    return builder.build({"family": "cup", "height": height, "handle": has_handle})


def _vase(rng: np.random.Generator) -> PartMesh:
    height = float(rng.uniform(1.6, 2.8))
    control = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.8, 1.0), rng.uniform(0.55, 0.95),
                        rng.uniform(0.25, 0.5), rng.uniform(0.3, 0.6)])  # fmt: skip
    u = np.linspace(0.0, 1.0, 16)
    r = _catmull_rom(np.stack([control, np.linspace(0, 1, 5), np.zeros(5)], 1), 16)[:, 0]
    y = u * height
    thickness = float(rng.uniform(0.04, 0.08))
    vertices, faces = _lathe(*_vessel_profile(r, y, thickness, inner_depth=0.3 * height), sections=28)
    return PartMesh(vertices, faces, np.zeros(len(faces), np.int64), {"family": "vase", "height": height})


def _leg(rng: np.random.Generator, top, bottom, thickness: float, square: bool) -> tuple[np.ndarray, np.ndarray]:
    if square:
        top, bottom = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
        direction = top - bottom
        length = float(np.linalg.norm(direction))
        axis = np.cross([0.0, 1.0, 0.0], direction / length)
        angle = math.asin(min(1.0, float(np.linalg.norm(axis))))
        rotation = _rotation(axis, angle) if np.linalg.norm(axis) > 1e-9 else None
        return _box(0.5 * (top + bottom), [thickness, length, thickness], rotation)
    return _rod(bottom, top, 0.5 * thickness, 0.5 * thickness * float(rng.uniform(0.7, 1.0)), sections=8)


def _table(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    leg_height = float(rng.uniform(0.7, 1.4))
    top_thickness = float(rng.uniform(0.05, 0.14))
    leg = float(rng.uniform(0.05, 0.13))
    square = bool(rng.random() < 0.5)
    splay = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.4 else 0.0
    round_top = bool(rng.random() < 0.35)
    if round_top:
        radius = float(rng.uniform(0.5, 1.0))
        builder.add(_rod([0, leg_height, 0], [0, leg_height + top_thickness, 0], radius, sections=28))
        count = 3 if rng.random() < 0.5 else 4
        angles = np.arange(count) * 2.0 * math.pi / count + rng.uniform(0, math.pi)
        corners = [0.75 * radius * np.array([math.cos(a), 0.0, math.sin(a)]) for a in angles]
    else:
        width, depth = float(rng.uniform(1.1, 2.0)), float(rng.uniform(0.6, 1.4))
        builder.add(_box([0, leg_height + 0.5 * top_thickness, 0], [width, top_thickness, depth]))
        inset = float(rng.uniform(0.05, 0.15))
        corners = [np.array([sx * (0.5 * width - inset), 0.0, sz * (0.5 * depth - inset)])
                   for sx in (-1, 1) for sz in (-1, 1)]  # fmt: skip
    for corner in corners:
        out = corner / max(float(np.linalg.norm(corner)), 1e-9)
        builder.add(_leg(rng, corner + [0, leg_height, 0], corner * (1.0 + splay) + out * splay, leg, square))
    if rng.random() < 0.3 and not round_top:
        shelf_y = leg_height * float(rng.uniform(0.2, 0.45))
        span = np.abs(np.array(corners)).max(axis=0)
        builder.add(_box([0, shelf_y, 0], [2 * span[0], 0.5 * top_thickness, 2 * span[2]]))
    return builder.build({"family": "table", "legs": len(corners), "leg_thickness": leg, "round": round_top})


def _chair(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    seat_height = float(rng.uniform(0.7, 1.1))
    width, depth, thickness = float(rng.uniform(0.8, 1.1)), float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.06, 0.12))
    leg = float(rng.uniform(0.05, 0.11))
    square = bool(rng.random() < 0.6)
    builder.add(_box([0, seat_height + 0.5 * thickness, 0], [width, thickness, depth]))
    corners = [np.array([sx * (0.5 * width - leg), 0.0, sz * (0.5 * depth - leg)]) for sx in (-1, 1) for sz in (-1, 1)]
    for corner in corners:
        builder.add(_leg(rng, corner + [0, seat_height, 0], corner, leg, square))
    back_height = float(rng.uniform(0.6, 1.1))
    back_z = -0.5 * depth + 0.5 * leg
    base = seat_height + thickness
    if rng.random() < 0.5:
        builder.add(_box([0, base + 0.5 * back_height, back_z], [width, back_height, 0.07]))
        back = "panel"
    else:
        slats = int(rng.integers(2, 6))
        for x in np.linspace(-0.5 * width + leg, 0.5 * width - leg, slats):
            builder.add(_leg(rng, [x, base + back_height, back_z], [x, base, back_z], 0.6 * leg, square))
        builder.add(_box([0, base + back_height, back_z], [width, 0.12, 0.08]))
        back = f"{slats} slats"
    return builder.build({"family": "chair", "leg_thickness": leg, "back": back})


def _creature(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    body = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.6)])
    legs = int(rng.choice([2, 6, 8]))
    leg_radius = float(rng.uniform(0.03, 0.07))
    if legs == 2:  # biped: body upright on two bent legs, with arms
        body = np.array([body[2], body[0] * 1.2, body[1] * 1.3])
        hip = float(rng.uniform(0.9, 1.5))
        builder.add(_ellipsoid([0, hip + body[1], 0], body))
        for side in (-1.0, 1.0):
            top = np.array([side * 0.45 * body[0], hip + 0.3 * body[1], 0.0])
            knee = np.array([side * 0.55 * body[0], 0.5 * hip, float(rng.uniform(0.05, 0.25))])
            builder.add(_tube(_bezier(np.array([top, knee, [top[0], 0.0, 0.0]]), 10), leg_radius * 1.3, sections=8))
            shoulder = np.array([side * 0.85 * body[0], hip + 1.5 * body[1], 0.0])
            hand = shoulder + np.array([side * rng.uniform(0.4, 0.7), -rng.uniform(0.2, 0.8), rng.uniform(-0.2, 0.3)])
            elbow = 0.5 * (shoulder + hand) + np.array([side * 0.15, 0.15, 0.0])
            builder.add(_tube(_bezier(np.array([shoulder, elbow, hand]), 10), leg_radius, sections=8))
        head_center = np.array([0.0, hip + 2.0 * body[1] + 0.2, 0.0])
    else:  # insect / spider: horizontal body on 6 or 8 bent legs
        lift = float(rng.uniform(0.35, 0.8))
        builder.add(_ellipsoid([0, lift + body[1], 0], body))
        per_side = legs // 2
        spread = float(rng.uniform(0.6, 1.2))
        for side in (-1.0, 1.0):
            for k in range(per_side):
                a = (k + 0.5) / per_side - 0.5  # -0.5 .. 0.5 along the body (x)
                root = np.array([a * 1.4 * body[0], lift + body[1], side * 0.7 * body[2]])
                foot = np.array([a * 2.4 * body[0] * spread, 0.0, side * (body[2] + spread)])
                knee = 0.5 * (root + foot) + np.array([0.0, lift + float(rng.uniform(0.2, 0.6)), side * 0.1])
                path = _bezier(np.array([root, knee, foot]), 12)
                builder.add(_tube(path, np.linspace(leg_radius, 0.6 * leg_radius, 12), sections=8))
        head_center = np.array([body[0] + 0.15, lift + body[1] * 1.3, 0.0])
    head = float(rng.uniform(0.18, 0.32))
    builder.add(_ellipsoid(head_center, [head, head * 0.9, head]))
    if rng.random() < 0.6:  # antennae / horns
        for side in (-1.0, 1.0):
            root = head_center + np.array([0.0, 0.7 * head, side * 0.4 * head])
            tip = root + np.array([rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.6), side * rng.uniform(0.1, 0.4)])
            mid = 0.5 * (root + tip) + np.array([0.15, 0.0, 0.0])
            builder.add(_tube(_bezier(np.array([root, mid, tip]), 8), 0.025, sections=6))
    if rng.random() < 0.5 and legs != 2:  # tail
        base_point = np.array([-body[0] * 0.95, rng.uniform(0.4, 0.9) + body[1], 0.0])
        tip = base_point + np.array([-rng.uniform(0.3, 0.8), rng.uniform(-0.2, 0.6), rng.uniform(-0.3, 0.3)])
        builder.add(_tube(_bezier(np.array([base_point, 0.5 * (base_point + tip) + [0, 0.3, 0], tip]), 10),
                          np.linspace(0.06, 0.02, 10), sections=8))
    return builder.build({"family": "creature", "legs": legs, "leg_radius": leg_radius})


def _assembly(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    count = int(rng.integers(2, 5))
    y = 0.0
    widest = 0.0
    kinds = []
    for _ in range(count):
        kind = ("ellipsoid", "box", "cylinder", "cone", "torus", "pole")[int(rng.integers(6))]
        kinds.append(kind)
        offset = rng.uniform(-0.1, 0.1, 3) * [1, 0, 1]
        if kind == "ellipsoid":
            r = rng.uniform(0.25, 0.7, 3)
            builder.add(_ellipsoid(offset + [0, y + r[1], 0], r))
            y += 1.8 * r[1]
            widest = max(widest, r[0], r[2])
        elif kind == "box":
            e = rng.uniform(0.3, 1.2, 3)
            builder.add(_box(offset + [0, y + 0.5 * e[1], 0], e, _rotation([0, 1, 0], float(rng.uniform(0, math.pi)))))
            y += e[1]
            widest = max(widest, 0.5 * e[0], 0.5 * e[2])
        elif kind in ("cylinder", "cone", "pole"):
            r0 = float(rng.uniform(0.2, 0.7)) if kind != "pole" else float(rng.uniform(0.04, 0.1))
            r1 = r0 if kind != "cone" else r0 * float(rng.uniform(0.0, 0.5))
            h = float(rng.uniform(0.3, 1.2)) if kind != "pole" else float(rng.uniform(0.6, 1.4))
            builder.add(_rod(offset + [0, y, 0], offset + [0, y + h, 0], r0, max(r1, 0.01), sections=20))
            y += h
            widest = max(widest, r0)
        else:
            major, minor = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.07, 0.2))
            a = np.linspace(0.0, 2.0 * math.pi, 24, endpoint=False)
            ring = np.stack([major * np.cos(a), np.full_like(a, y + minor), major * np.sin(a)], 1) + offset
            builder.add(_tube(ring, minor, sections=8, closed=True))
            y += 2 * minor
            widest = max(widest, major + minor)
    if rng.random() < 0.35:  # side arms
        arm_y = y * float(rng.uniform(0.3, 0.8))
        direction = _horizontal(rng)
        length = widest + float(rng.uniform(0.3, 0.8))
        radius = float(rng.uniform(0.03, 0.08))
        for side in (-1.0, 1.0):
            end = side * length * direction + [0, arm_y + rng.uniform(-0.2, 0.4), 0]
            builder.add(_rod([0, arm_y, 0], end, radius, sections=8))
    return builder.build({"family": "assembly", "components": kinds})


_FAMILY_BUILDERS: dict[str, Callable[[np.random.Generator], PartMesh]] = {
    "primitive": _primitive, "tube": _tube_family, "bowl": _bowl, "cup": _cup, "vase": _vase, "table": _table,
    "chair": _chair, "creature": _creature, "assembly": _assembly,
}  # fmt: skip


def make_family_mesh(family: str, rng: np.random.Generator) -> PartMesh:
    """Build one random mesh of a training ``family`` of :data:`FAMILIES_V2`.

    Args:
        family: the family name.
        rng: numpy generator (all randomness comes from it).
    Returns:
        :class:`PartMesh` in raw builder units (+Y up; roughly 1-3 units across; not normalized), with ``info``
        holding ``family``, ``noun`` (:func:`family_noun`) and the builder's parameters.
    """
    if family not in _FAMILY_BUILDERS:
        raise ValueError(f"unknown family {family!r}: choose one of {FAMILIES_V2}")
    mesh = _FAMILY_BUILDERS[family](rng)
    mesh.info["noun"] = family_noun(mesh.info)
    return mesh


def family_noun(info: dict[str, Any]) -> str:
    """The caption noun of a data-version-2 mesh: the primitive's shape word, the family word (tube, bowl, cup,
    vase, table, chair, creature), or :data:`GENERIC_NOUN` for assemblies and held-out shapes."""
    family = info.get("family")
    if family == "primitive":
        return str(info["shape"])
    if family in ("assembly",) + HELD_OUT_FAMILIES:
        return GENERIC_NOUN
    return str(family)


# ======================================================================================================================
# Held-out family (benchmark only)
# ======================================================================================================================


def _quadruped(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    length = float(rng.uniform(0.8, 1.1))  # body half-length along +Z
    body = np.array([rng.uniform(0.3, 0.42), rng.uniform(0.3, 0.4), length])
    leg_height = float(rng.uniform(0.7, 1.0))
    body_y = leg_height + 0.7 * body[1]
    builder.add(_ellipsoid([0, body_y, 0], body, rows=12, sections=20))
    leg = float(rng.uniform(0.07, 0.1))
    for sx in (-1.0, 1.0):
        for sz in (-1.0, 1.0):
            top = np.array([sx * 0.55 * body[0], body_y - 0.3 * body[1], sz * 0.65 * length])
            builder.add(_rod([top[0], 0.0, top[2]], top, 0.75 * leg, leg, sections=10, rows=4))
    neck_base = np.array([0.0, body_y + 0.3 * body[1], 0.85 * length])
    head_center = neck_base + np.array([0.0, rng.uniform(0.35, 0.55), rng.uniform(0.25, 0.4)])
    neck = _bezier(np.array([neck_base, neck_base + [0, 0.3, 0.05], head_center]), 10)
    builder.add(_tube(neck, np.linspace(0.16, 0.11, 10), sections=12))
    head = np.array([0.14, 0.15, 0.26])
    builder.add(_ellipsoid(head_center + [0, 0, 0.1], head, _rotation([1, 0, 0], -0.3), rows=10, sections=16))
    for side in (-1.0, 1.0):  # ears
        ear = head_center + np.array([side * 0.15, 0.12, -0.05])
        builder.add(_ellipsoid(ear, [0.09, 0.03, 0.05], _rotation([0, 0, 1], side * 0.5), rows=6, sections=8))
    if rng.random() < 0.5:  # horns
        for side in (-1.0, 1.0):
            root = head_center + np.array([side * 0.08, 0.14, 0.0])
            builder.add(_rod(root, root + [side * 0.12, 0.18, -0.04], 0.035, 0.01, sections=8))
    tail_root = np.array([0.0, body_y + 0.2 * body[1], -0.98 * length])
    tail = _bezier(np.array([tail_root, tail_root + [0, -0.1, -0.25], tail_root + [0, -0.7, -0.3]]), 10)
    builder.add(_tube(tail, np.linspace(0.04, 0.025, 10), sections=8))
    return builder.build({"family": "quadruped", "leg_radius": leg, "body_length": 2 * length})


def _teapot(rng: np.random.Generator) -> PartMesh:
    builder = _Builder()
    height = float(rng.uniform(0.9, 1.2))
    radius = float(rng.uniform(0.8, 1.0))
    phi = np.linspace(0.0, math.pi, 16)
    r = radius * np.sin(phi) ** 0.8
    r[0], r[-1] = 0.55 * radius, 0.45 * radius  # flat base, open top rim
    y = 0.5 * height * (1.0 - np.cos(phi))
    r = np.concatenate([[0.0], r, [0.0]])
    y = np.concatenate([[0.0], y, [height]])
    builder.add(_lathe(r, y, sections=32))
    lid = np.linspace(0.0, 0.5 * math.pi, 8)
    builder.add(_lathe(np.concatenate([0.5 * radius * np.cos(lid), [0.0]]),
                       np.concatenate([height + 0.18 * height * np.sin(lid) - 0.02, [height + 0.17 * height]]),
                       sections=32))  # fmt: skip
    builder.add(_ellipsoid([0, height * 1.22, 0], [0.09, 0.07, 0.09], rows=8, sections=12))
    spout = _bezier(np.array([[0.75 * radius, 0.35 * height, 0.0], [1.3 * radius, 0.4 * height, 0.0],
                              [1.25 * radius, 0.9 * height, 0.0], [1.55 * radius, 1.05 * height, 0.0]]), 14)  # fmt: skip
    builder.add(_tube(spout, np.linspace(0.16, 0.07, 14), sections=12))
    builder.add(_mirror_x(_handle(rng, 0.85 * radius, 0.25 * height, 0.85 * height, 0.45, 0.07)))  # on -X
    return builder.build({"family": "teapot", "height": height, "radius": radius})


def _mirror_x(piece: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a piece across the YZ plane (flipping the winding so outside stays outside)."""
    vertices, faces = piece
    return vertices * np.array([-1.0, 1.0, 1.0]), faces[:, [0, 2, 1]]


_HELD_OUT_BUILDERS: dict[str, Callable[[np.random.Generator], PartMesh]] = {
    "quadruped": _quadruped, "teapot": _teapot,
}  # fmt: skip


def held_out_names() -> tuple[str, ...]:
    """Names of the held-out benchmark shapes, as ``benchmarks/fidelity.py`` spells them: ``proc:quadruped``,
    ``proc:teapot``."""
    return tuple(f"proc:{name}" for name in HELD_OUT_FAMILIES)


def held_out_mesh(name: str, seed: int = 0) -> PartMesh:
    """A held-out irregular shape (never in any split of the synthetic data).

    Args:
        name: ``quadruped`` or ``teapot``, optionally prefixed ``proc:`` and suffixed ``-N`` for seed N (e.g.
            ``proc:quadruped-2``); without a suffix the seed is ``seed``.
        seed: seed of the shape's proportions (0 = the benchmark's shape).
    Returns:
        :class:`PartMesh` in builder units (+Y up, standing on y = 0), ``info["family"]`` the name; ``to_mesh()``
        gives the csdtex mesh to paint.
    Raises:
        ValueError: unknown name.
    """
    key = name.removeprefix("proc:")
    if "-" in key:
        key, _, suffix = key.partition("-")
        seed = int(suffix)
    if key not in _HELD_OUT_BUILDERS:
        raise ValueError(f"unknown held-out shape {name!r}: use one of {', '.join(held_out_names())}")
    mesh = _HELD_OUT_BUILDERS[key](np.random.default_rng([seed, 15, 2]))
    mesh.info["noun"] = family_noun(mesh.info)
    mesh.info["seed"] = seed
    return mesh


# ======================================================================================================================
# Pools and part sizes
# ======================================================================================================================


def part_sizes(positions: np.ndarray, faces: np.ndarray, face_parts: np.ndarray) -> np.ndarray:
    """Size of every part: the middle of its three principal extents (float64 [P], same units as ``positions``).

    The extents are the ranges of the part's vertices along the principal axes of their covariance; the middle one
    is the thickness of a tube or leg (length, thickness, thickness), the width of a slab (width, depth, thickness)
    and the diameter of a roundish body, i.e. the scale at which a pattern still reads across the part.

    Args:
        positions: float [V, 3] vertex positions.
        faces: int [F, 3] triangles.
        face_parts: int [F] part labels 0 .. P-1.
    """
    face_parts = np.asarray(face_parts, dtype=np.int64)
    count = int(face_parts.max()) + 1 if len(face_parts) else 0
    sizes = np.zeros(count)
    for part in range(count):
        vertices = positions[np.unique(faces[face_parts == part])]
        if len(vertices) < 2:
            continue
        centered = vertices - vertices.mean(axis=0)
        _, vectors = np.linalg.eigh(centered.T @ centered)
        projected = centered @ vectors
        extents = np.sort(projected.max(axis=0) - projected.min(axis=0))
        sizes[part] = extents[1]
    return sizes


def pool_mesh_v2(seed: int, split_code: int, index: int):
    """Mesh number ``index`` of the data-version-2 mesh pool of dataset seed ``seed`` and split ``split_code``.

    Deterministic: its generator is seeded with ``(seed, split_code, 21, index)``; the family is drawn with
    :data:`FAMILY_WEIGHTS_V2` (never a :data:`HELD_OUT_FAMILIES` shape), then built by :func:`make_family_mesh` and
    normalized into the unit sphere (:meth:`csdtex.mesh.Mesh.to_render`: bounding-box centre at the origin, farthest
    vertex at radius 1).

    Returns:
        :class:`csdtex.tinyprior.shapes.PoolMesh` with ``face_parts`` (int64 [F]) set and ``info`` holding
        ``family``, ``noun``, ``shape`` (= the noun, used for held-out combinations), ``parts`` (P) and the builder's
        parameters.
    """
    from csdtex.tinyprior.shapes import PoolMesh

    rng = np.random.default_rng([seed, split_code, 21, index])
    weights = np.array([FAMILY_WEIGHTS_V2[f] for f in FAMILIES_V2])
    family = FAMILIES_V2[int(rng.choice(len(FAMILIES_V2), p=weights / weights.sum()))]
    mesh = make_family_mesh(family, rng)
    render = Mesh(mesh.vertices, mesh.faces).to_render("cpu")
    info = {**mesh.info, "shape": mesh.info["noun"], "parts": mesh.num_parts}
    return PoolMesh(render.positions.double().numpy(), mesh.faces, render.normals.double().numpy(), info,
                    face_parts=mesh.face_parts)
