"""Mesh data types: :class:`Material`, :class:`Mesh`, and the position helpers :func:`weld_positions` and
:func:`vertex_normals`.

Conventions (shared by the whole :mod:`csdtex.mesh` package)
------------------------------------------------------------
- World space is right-handed with +Y up (as in glTF and most DCC exports); a mesh with another up axis is turned
  upright in render space only (:meth:`Mesh.to_render`'s ``up_axis``).
- ``Mesh`` keeps the input's vertices, faces and UVs exactly as read; they are what gets exported. Rendering uses
  :meth:`Mesh.to_render`, which normalizes positions into the unit sphere without touching the ``Mesh`` and returns a
  :class:`csdtex.render.mesh.RenderMesh`.
- UV (0, 0) is the bottom-left corner of the texture image and (1, 1) the top-right (the OBJ convention). glTF stores
  v flipped (origin at the top-left): trimesh's glTF loader, which :func:`csdtex.io.load_mesh` uses for GLB/glTF,
  already returns ``1 - v_file`` (checked by a round trip in tests/test_mesh.py), and :mod:`csdtex.io.gltf` writes
  ``1 - v`` back.
- A mesh can carry several materials (OBJ ``usemtl`` groups, glTF materials). Each material owns one texture image and
  its own UV space, so parts whose UVs overlap across materials keep working. How the image is looked up (wrap modes
  for UVs outside [0, 1], filter, texture transform) is the material's ``sampler`` and ``texture_transform``, applied
  by :func:`csdtex.sampling.sample_texture` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from csdtex.render.cutouts import Cutouts, MaterialCutout
from csdtex.render.mesh import RenderMesh
from csdtex.sampling import TextureSampler, TextureTransform

__all__ = ["MAP_SLOTS", "Material", "MaterialMap", "Mesh", "unique_name", "vertex_normals", "weld_positions"]

MAP_SLOTS: tuple[str, ...] = ("normal", "occlusion", "metallic_roughness", "emissive")
"""The texture maps besides the base colour that a material can carry through csdtex (glTF's ``normalTexture``,
``occlusionTexture``, ``pbrMetallicRoughness.metallicRoughnessTexture`` and ``emissiveTexture``)."""


@dataclass(frozen=True)
class MaterialMap:
    """A texture map of a material that csdtex carries into its outputs unchanged: csdtex paints the base colour
    only, and a map that reads the same UV set as the base colour stays valid because the geometry and UVs are kept.

    Attributes:
        image: the image file as read (PNG or JPEG bytes; other formats, e.g. WebP, re-encoded as PNG when read).
        mime_type: ``"image/png"`` or ``"image/jpeg"``.
        sampler: the map's wrap and filter modes, or None (the format's defaults).
        strength: glTF ``normalTexture.scale`` / ``occlusionTexture.strength`` (1.0 for the other slots).
        transform: the map's ``KHR_texture_transform`` object as read (offset, rotation, scale; without
            ``texCoord``), written back as it is; None for none.
    """

    image: bytes
    mime_type: str
    sampler: TextureSampler | None = None
    strength: float = 1.0
    transform: dict | None = None


@dataclass
class Material:
    """One material group of a mesh.

    Attributes:
        name: material name (from the MTL / glTF file, or generated), used for export.
        texture: the existing base-colour texture as uint8 [H, W, 3] (RGB, row 0 = top of the image, i.e. v = 1),
            or None, as viewers show it: a glTF ``baseColorFactor`` is multiplied into its texels on load. Its alpha,
            where the file uses it, is kept apart in ``alpha``.
        texture_source: where the texture was read from (for messages), or None.
        base_color: RGB in [0, 1] used when there is no texture, as displayed (sRGB-encoded, like texels: an OBJ
            ``Kd`` as written, a glTF ``baseColorFactor`` encoded from its linear value).
        sampler: wrap and filter modes of the texture (glTF ``sampler``; OBJ: repeat), or None when the file says
            nothing (no texture, or a format without samplers): consumers then use :class:`TextureSampler`'s
            defaults (repeat, linear) for input textures.
        texture_transform: the UV transform applied before sampling the texture (glTF ``KHR_texture_transform``,
            OBJ ``map_Kd -o/-s``), or None (identity). Baked outputs live in raw UV space and never carry one.
        alpha: uint8 [H, W] coverage of ``texture`` (255 = opaque; glTF ``alphaMode`` MASK / BLEND: the base-colour
            image's alpha times the factor's), or None (opaque). Exports write it back (RGBA PNG, the same alpha
            mode), resized to the exported texture, so cut-outs (leaves, decals, fences) stay cut out.
        alpha_mode: ``"OPAQUE"``, ``"MASK"`` or ``"BLEND"`` (glTF's); ``alpha`` is set exactly when not OPAQUE.
        alpha_cutoff: the MASK threshold in [0, 1] (glTF ``alphaCutoff``, default 0.5).
        maps: slot (:data:`MAP_SLOTS`) -> :class:`MaterialMap`: the normal, occlusion, metallic-roughness and
            emissive maps carried into the outputs (glTF inputs whose maps read the base colour's UV set); empty when
            there are none, or when the UVs were re-unwrapped (the maps belonged to the old UVs).
        metallic_factor, roughness_factor: glTF ``metallicFactor`` / ``roughnessFactor`` in [0, 1] (the spec's
            default 1.0 when the file omits them), or None for formats without them (exports then write a matte,
            non-metallic material: 0.0 / 0.9).
        emissive_factor: glTF ``emissiveFactor`` RGB in [0, 1], or None (black).
        emissive_strength: glTF ``KHR_materials_emissive_strength`` (a multiplier >= 0 of the emissive colour), or
            None (1).
        double_sided: glTF ``doubleSided`` as the file says, or None for formats without it (exports then write
            double-sided materials: open meshes such as cloth, leaves and scans show both sides instead of holes).
    """

    name: str
    texture: np.ndarray | None = None
    texture_source: Path | None = None
    base_color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    sampler: TextureSampler | None = None
    texture_transform: TextureTransform | None = None
    alpha: np.ndarray | None = None
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    maps: dict[str, MaterialMap] = field(default_factory=dict)
    metallic_factor: float | None = None
    roughness_factor: float | None = None
    emissive_factor: tuple[float, float, float] | None = None
    emissive_strength: float | None = None
    double_sided: bool | None = None

    @property
    def has_cutout(self) -> bool:
        """True when the material's alpha is to be carried (MASK or BLEND with an ``alpha`` array)."""
        return self.alpha is not None and self.alpha_mode in ("MASK", "BLEND")


@dataclass
class Mesh:
    """A triangle mesh as loaded from disk; exporting it writes back exactly these arrays.

    Attributes:
        vertices: float64 [V, 3], the file's coordinates, unchanged (right-handed; +Y up unless a run's ``up_axis``
            says otherwise).
        faces: int64 [F, 3], counter-clockwise triangles indexing ``vertices``.
        uvs: float64 [T, 2] texture coordinates, (0, 0) = bottom-left of the image; None if the mesh has none.
        uv_faces: int64 [F, 3] indexing ``uvs`` (one UV triangle per face; a row of -1 means that face has no UVs);
            None if the mesh has no UVs at all.
        face_materials: int64 [F], index into ``materials`` for every face.
        materials: at least one :class:`Material`.
        source: the file the mesh was read from, or None for meshes built in code.
        warnings: non-fatal problems found while loading (e.g. a texture path outside the mesh folder was ignored).
        output_notes: what a paint's or edit's outputs will not carry over from the file (texture maps csdtex does
            not write, tangents it drops), one line each: shown by ``paint``, ``edit`` and ``info``, not by
            ``render`` (which writes no mesh).
        vertex_colors: float32 [V, 3] RGB in [0, 1] per vertex (glTF ``COLOR_0``, OBJ ``v x y z r g b``, PLY
            colours), or None. Viewers multiply them into the base colour; ``csdtex render`` shows them, painting
            replaces them (the outputs do not carry them).
        extensions: glTF extensions the file uses (``extensionsUsed``), name -> True when csdtex applies it, False
            when it ignores it (:data:`csdtex.io.gltf_features.GLTF_EXTENSIONS`); empty for other formats.
        normals: float64 [N, 3] shading normals from the file (glTF ``NORMAL`` in world space, OBJ ``vn``; any
            length, :meth:`export_normals` normalizes them), or None. Exports write them back (hard edges, custom
            normals) and renders shade with them (:meth:`to_render`).
        normal_faces: int64 [F, 3] indexing ``normals`` per face corner (-1: that corner has none, and exports
            give it the smooth area-weighted normal); None exactly when ``normals`` is None.
        read_files: every file the reader read or looked for to build this mesh, the mesh file first (MTL files,
            textures and maps, glTF buffers and images; a referenced file that was missing too, so that adding it
            later counts as a change); empty for meshes built in code. Batch reruns compare their contents.
        tangents: float64 [N, 4] tangent frames aligned with ``normals`` row for row (glTF ``TANGENT`` in world
            space: xyz the tangent, w = +-1 the bitangent's sign; NaN rows for parts of the file without), or None. A
            carried normal map was baked against them, so GLB exports write them back (:meth:`export_tangents`).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    face_materials: np.ndarray | None = None
    materials: list[Material] = field(default_factory=lambda: [Material("material_0")])
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)
    output_notes: list[str] = field(default_factory=list)
    vertex_colors: np.ndarray | None = None
    extensions: dict[str, bool] = field(default_factory=dict)
    normals: np.ndarray | None = None
    normal_faces: np.ndarray | None = None
    tangents: np.ndarray | None = None
    read_files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        if self.uvs is not None:
            self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float64)
        if self.uv_faces is not None:
            self.uv_faces = np.ascontiguousarray(self.uv_faces, dtype=np.int64)
        if self.face_materials is None:
            self.face_materials = np.zeros(len(self.faces), dtype=np.int64)
        else:
            self.face_materials = np.ascontiguousarray(self.face_materials, dtype=np.int64)
        if self.vertex_colors is not None:
            self.vertex_colors = np.ascontiguousarray(self.vertex_colors, dtype=np.float32)
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, dtype=np.float64)
        if self.normal_faces is not None:
            self.normal_faces = np.ascontiguousarray(self.normal_faces, dtype=np.int64)
        if self.tangents is not None:
            self.tangents = np.ascontiguousarray(self.tangents, dtype=np.float64)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def has_uvs(self) -> bool:
        """True when every face has a UV triangle."""
        return self.uv_faces is not None and self.uvs is not None and bool((self.uv_faces >= 0).all())

    def export_normals(self) -> tuple[np.ndarray, np.ndarray]:
        """Shading normals for export: ``(table float64 [N', 3] unit vectors, corners int64 [F, 3] into it)``.

        The file's own normals (:attr:`normals`, :attr:`normal_faces`) where it has them; elsewhere, and for meshes
        without any, smooth area-weighted vertex normals (:func:`vertex_normals`, shared across UV seams), appended
        after the file's normals (only when some corner needs them) and indexed by vertex. The file's normals are
        returned as unit vectors; a zero or non-finite one counts as missing."""
        if self.normals is None or self.normal_faces is None or len(self.normals) == 0:
            return vertex_normals(self.vertices, self.faces), self.faces
        own = np.asarray(self.normals, dtype=np.float64)
        length = np.linalg.norm(own, axis=1)
        usable = np.isfinite(own).all(axis=1) & (length > 1e-12)  # a zero or NaN normal falls back to smooth
        own = own / np.where(usable, length, 1.0)[:, None]
        fallback = len(own) + self.faces
        corners = np.where(self.normal_faces >= 0, self.normal_faces, fallback)
        corners = np.where(usable[np.clip(corners, 0, len(own) - 1)] | (corners >= len(own)), corners, fallback)
        if (corners < len(own)).all():
            return own, corners.astype(np.int64)
        return np.concatenate([own, vertex_normals(self.vertices, self.faces)]), corners.astype(np.int64)

    def export_tangents(self) -> np.ndarray | None:
        """The file's tangents for export, row for row with :meth:`export_normals`' table (float64 [N', 4], xyz unit,
        w = +-1; NaN rows where a part of the file had none or an unusable one: a primitive using such a row is
        written without TANGENT), or None when the mesh has none or some corner's normal is not the file's own (its
        tangent frame would be incomplete; viewers then generate tangents for every corner, consistently)."""
        if self.tangents is None or self.normals is None or len(self.tangents) != len(self.normals):
            return None
        table, _ = self.export_normals()
        if len(table) != len(self.normals):
            return None
        tangents = np.asarray(self.tangents, dtype=np.float64)
        length = np.linalg.norm(tangents[:, :3], axis=1)
        usable = np.isfinite(tangents).all(axis=1) & (length > 1e-12)
        frames = np.concatenate([tangents[:, :3] / np.where(usable, length, 1.0)[:, None],
                                 np.where(tangents[:, 3:] < 0, -1.0, 1.0)], axis=1)
        return np.where(usable[:, None], frames, np.nan)

    def copy_with(self, **changes) -> "Mesh":
        """A shallow copy with some fields replaced (dataclasses.replace)."""
        return replace(self, **changes)

    def normalization(self) -> tuple[np.ndarray, float]:
        """(center float64 [3], scale) such that ``(vertices - center) * scale`` lies in the unit sphere.

        The center is the middle of the axis-aligned bounding box; the farthest vertex lands at radius 1.
        """
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        center = (lo + hi) / 2.0
        radius = float(np.linalg.norm(self.vertices - center, axis=1).max())
        return center, (1.0 / radius if radius > 0 else 1.0)

    def to_render(self, device: torch.device | str = "cpu", vertex_colors: bool = False,
                  up_axis: str = "+y") -> RenderMesh:
        """Tensors for rendering: positions normalized into the unit sphere, smooth normals, UVs, and the file's own
        shading normals per face corner when it has them (:meth:`export_normals`; renders then shade hard edges as
        viewers do).

        See :class:`csdtex.render.mesh.RenderMesh` for the shapes and dtypes (float32 positions/normals/uvs, int32
        faces/uv_faces/face_materials, all on ``device``). ``vertex_colors`` True also passes
        :attr:`vertex_colors` (when the mesh has them), which the renderer multiplies into the texture colour, as
        viewers do; painting leaves it False (the painted texture replaces the input's appearance). Materials with
        alpha cut-outs (:attr:`Material.has_cutout`) pass their alpha (:attr:`RenderMesh.cutouts`) either way: a
        paint keeps them (its outputs carry the alpha), so its views see the cut-out shapes too. ``up_axis`` (one of
        :data:`UP_AXES`) is the mesh's up direction, turned to +Y in the render space (:func:`up_axis_rotation`;
        normals turn with it); the mesh's own arrays are untouched.
        """
        center, scale = self.normalization()
        rotation = up_axis_rotation(up_axis)
        positions = (self.vertices - center) * scale @ rotation.T
        normals = vertex_normals(positions, self.faces)
        uvs = self.uvs if self.uvs is not None else np.zeros((1, 2))
        uv_faces = self.uv_faces if self.uv_faces is not None else np.full_like(self.faces, -1)
        as_f32 = dict(dtype=torch.float32, device=device)
        return RenderMesh(
            positions=torch.as_tensor(positions, **as_f32),
            faces=torch.as_tensor(self.faces, dtype=torch.int32, device=device),
            normals=torch.as_tensor(normals, **as_f32),
            uvs=torch.as_tensor(uvs, **as_f32),
            uv_faces=torch.as_tensor(uv_faces, dtype=torch.int32, device=device),
            face_materials=torch.as_tensor(self.face_materials, dtype=torch.int32, device=device),
            num_materials=len(self.materials),
            colors=(torch.as_tensor(self.vertex_colors[:, :3], **as_f32)
                    if vertex_colors and self.vertex_colors is not None else None),
            corner_normals=None if self.normals is None else torch.as_tensor(
                np.take(*self.export_normals(), axis=0) @ rotation.T, **as_f32),
            cutouts=self.cutouts(device),
        )

    def cutouts(self, device: torch.device | str = "cpu") -> Cutouts | None:
        """The alpha of the materials with cut-outs as a :class:`~csdtex.render.cutouts.Cutouts` on ``device`` (each
        with its material's sampler, repeat / linear when the file gave none, and texture transform), or None when
        every material is opaque or the mesh has no UVs."""
        if self.uvs is None or not any(material.has_cutout for material in self.materials):
            return None
        per_material = []
        for material in self.materials:
            if not material.has_cutout:
                per_material.append(None)
                continue
            alpha = torch.as_tensor(np.asarray(material.alpha, dtype=np.float32) / 255.0, device=device)[None]
            per_material.append(MaterialCutout(alpha, material.alpha_mode, float(material.alpha_cutoff),
                                               material.sampler, material.texture_transform))
        return Cutouts(per_material)


UP_AXES = ("+y", "+z", "-z", "+x", "-x", "-y")
"""The up directions :meth:`Mesh.to_render` turns to +Y (csdtex's renderer and cameras are Y-up)."""

_UP_ROTATIONS = {  # rows: where the render takes x, y, z from; each a proper rotation taking the axis to +Y
    "+y": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "+z": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),  # Z-up, front -Y (Blender, 3ds Max) -> Y-up, front +Z
    "-z": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "+x": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    "-x": ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
    "-y": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
}


def up_axis_rotation(up_axis: str) -> np.ndarray:
    """float64 [3, 3] rotation R (det +1) with ``R @ up = (0, 1, 0)`` for ``up_axis`` in :data:`UP_AXES`; applied to
    column vectors (``points @ R.T``)."""
    if up_axis not in _UP_ROTATIONS:
        raise ValueError(f"up axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    return np.asarray(_UP_ROTATIONS[up_axis], dtype=np.float64)


def weld_positions(vertices: np.ndarray, relative_tolerance: float = 1e-7) -> np.ndarray:
    """Index of a representative vertex for every vertex, merging positions that coincide.

    Args:
        vertices: float [V, 3].
        relative_tolerance: positions are snapped to a grid whose pitch is this fraction of the bounding-box
            diagonal (so any coordinate scale works and bit-identical duplicates always merge).
    Returns:
        int64 [V], for each vertex the index (into ``vertices``) of the first vertex at the same position. Used for
        normals and seam detection only; the exported mesh is never welded.
    """
    if len(vertices) == 0:
        return np.zeros(0, dtype=np.int64)
    vertices = np.asarray(vertices, dtype=np.float64)
    low = vertices.min(axis=0)
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - low))
    pitch = relative_tolerance * diagonal if diagonal > 0 else 1.0
    keys = np.round((vertices - low) / pitch).astype(np.int64)
    _, first_index, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first_index[inverse.reshape(-1)].astype(np.int64)


def vertex_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals (float64 [V, 3]), area-weighted, shared by all vertices at the same position.

    Args:
        positions: float [V, 3], any coordinate frame (the normals are in the same frame).
        faces: int [F, 3] counter-clockwise triangles indexing ``positions``; normals point to the side from which
            the corners appear counter-clockwise.
    Returns:
        float64 [V, 3] unit vectors; vertices at the same position (see :func:`weld_positions`) get the same normal.
        Vertices that touch no non-degenerate face get (0, 1, 0).
    """
    positions = np.asarray(positions, dtype=np.float64)
    welded = weld_positions(positions)
    corners = positions[faces]  # [F, 3, 3]
    face_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 * area
    accumulated = np.zeros_like(positions)
    for corner in range(3):
        np.add.at(accumulated, welded[faces[:, corner]], face_normal)
    accumulated = accumulated[welded]
    length = np.linalg.norm(accumulated, axis=1, keepdims=True)
    fallback = np.array([0.0, 1.0, 0.0])
    return np.where(length > 1e-20, accumulated / np.maximum(length, 1e-20), fallback)


def unique_name(name: str, taken: set[str], ignore_case: bool = False) -> str:
    """``name``, else ``name_1``, ``name_2``, ...: the first candidate not in ``taken`` (which is then added to it).

    Used for material names (loaders, :func:`csdtex.mesh.unwrap.unwrap_uvs`; case-sensitive) and output folder names
    (``ignore_case`` True: ``taken`` holds lower-cased names, as case-insensitive file systems compare them).
    """
    def key(text: str) -> str:
        return text.lower() if ignore_case else text

    candidate, k = name, 1
    while key(candidate) in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(key(candidate))
    return candidate
