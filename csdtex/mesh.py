"""Meshes: loading, validation, normalization for rendering, UV unwrapping.

Conventions
-----------
- World space is right-handed with +Y up (as in glTF and most DCC exports).
- ``Mesh`` keeps the input's vertices, faces and UVs exactly as read; they are what gets exported. Rendering uses
  :meth:`Mesh.to_render`, which normalizes positions into the unit sphere without touching the ``Mesh``.
- UV (0, 0) is the bottom-left corner of the texture image and (1, 1) the top-right (the OBJ convention). glTF stores
  v flipped (origin at the top-left): trimesh's glTF loader, which :func:`load_mesh` uses for GLB/glTF, already returns
  ``1 - v_file`` (checked by a round trip in tests/test_mesh.py), and ``csdtex.export`` writes ``1 - v`` back.
- A mesh can carry several materials (OBJ ``usemtl`` groups, glTF primitives). Each material owns one texture image and
  its own UV space in [0, 1]^2, so parts whose UVs overlap across materials keep working.

Public API: :class:`Material`, :class:`Mesh`, :class:`RenderMesh`, :func:`load_mesh`, :func:`validate_mesh`,
:func:`unwrap_uvs`, :func:`analyze_mesh` / :class:`MeshReport`, and the helpers :func:`weld_positions`,
:func:`vertex_normals`, :func:`degenerate_faces`, :func:`uv_overlap_fraction`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings as warnings_module
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from csdtex.errors import ConfigError, MeshError
from csdtex.fileio import is_within


@dataclass
class Material:
    """One material group of a mesh.

    Attributes:
        name: material name (from the MTL / glTF file, or generated), used for export.
        texture: the existing base-colour texture as uint8 [H, W, 3] (RGB, row 0 = top of the image, i.e. v = 1),
            or None. Alpha is dropped on load.
        texture_source: where the texture was read from (for messages), or None.
        base_color: RGB in [0, 1] used when there is no texture.
    """

    name: str
    texture: np.ndarray | None = None
    texture_source: Path | None = None
    base_color: tuple[float, float, float] = (0.8, 0.8, 0.8)


@dataclass
class Mesh:
    """A triangle mesh as loaded from disk; exporting it writes back exactly these arrays.

    Attributes:
        vertices: float64 [V, 3], input coordinates, unchanged (right-handed, +Y up).
        faces: int64 [F, 3], counter-clockwise triangles indexing ``vertices``.
        uvs: float64 [T, 2] texture coordinates, (0, 0) = bottom-left of the image; None if the mesh has none.
        uv_faces: int64 [F, 3] indexing ``uvs`` (one UV triangle per face; a row of -1 means that face has no UVs);
            None if the mesh has no UVs at all.
        face_materials: int64 [F], index into ``materials`` for every face.
        materials: at least one :class:`Material`.
        source: the file the mesh was read from, or None for meshes built in code.
        warnings: non-fatal problems found while loading (e.g. a texture path outside the mesh folder was ignored).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    face_materials: np.ndarray | None = None
    materials: list[Material] = field(default_factory=lambda: [Material("material_0")])
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)

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

    def to_render(self, device: torch.device | str = "cpu") -> "RenderMesh":
        """Tensors for rendering: positions normalized into the unit sphere, smooth normals, UVs (see RenderMesh)."""
        center, scale = self.normalization()
        positions = (self.vertices - center) * scale
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
        )


@dataclass
class RenderMesh:
    """A mesh as tensors on one device, normalized into the unit sphere, for rasterization and shading.

    Attributes:
        positions: float32 [V, 3], ``(vertices - center) * scale`` (see :meth:`Mesh.normalization`).
        faces: int32 [F, 3].
        normals: float32 [V, 3] unit vertex normals, area-weighted over faces sharing a *position* (so normals are
            smooth across UV seams and duplicated vertices).
        uvs: float32 [T, 2]; a single dummy row when the mesh has no UVs.
        uv_faces: int32 [F, 3]; rows of -1 for faces without UVs.
        face_materials: int32 [F].
        num_materials: number of materials (texture images) of the mesh.
    """

    positions: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    face_materials: torch.Tensor
    num_materials: int

    @property
    def device(self) -> torch.device:
        return self.positions.device


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


# ======================================================================================================================
# Loading
# ======================================================================================================================

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
"""File extensions :func:`load_mesh` reads (case-insensitive)."""

_FORMAT_NAMES = {".obj": "OBJ", ".ply": "PLY", ".stl": "STL", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF"}


class _ParseError(Exception):
    """A malformed line in a text mesh file (message already says which line)."""


def load_mesh(path: str | os.PathLike) -> Mesh:
    """Read a triangle mesh, its UVs and its materials from ``path``, keeping the file's arrays untouched.

    Formats (by extension, case-insensitive): ``.obj`` (+ ``.mtl`` and ``map_Kd`` textures), ``.ply``, ``.stl``,
    ``.off``, ``.glb`` / ``.gltf``.

    - OBJ is read by csdtex's own parser, so vertices and ``vt`` are kept in file order, never split or merged:
      ``vertices`` = the ``v`` lines (extra colour columns ignored), ``uvs`` = the ``vt`` lines (``u v``; a missing
      ``v`` is 0, ``w`` ignored), ``uv_faces`` = the ``vt`` indices of each face (row -1 for a face written without
      ``vt``). Quads and n-gons are fan-triangulated (``(0, i, i + 1)``) in file order. Negative (relative) indices
      are resolved. Every ``usemtl`` name becomes one :class:`Material` (in order of first use; faces before any
      ``usemtl`` get a default material); ``Kd`` gives ``base_color``, ``map_Kd`` the texture.
    - PLY / STL / OFF are read with trimesh (``process=False``, so no merging or reordering); per-vertex PLY UVs
      become ``uvs`` with ``uv_faces = faces``. STL has no shared vertices: three vertices per triangle.
    - glTF / GLB: every node instance of every primitive is transformed into world space and concatenated; each
      primitive is one material group (texture = its PBR ``baseColorTexture``). Instances whose node transform
      mirrors (negative determinant) get their winding reversed, as glTF prescribes. Parts without ``TEXCOORD_0``
      get ``uv_faces`` rows of -1.
    - MTL files, textures and external glTF resources are read only when they resolve inside the mesh's folder
      (symbolic links and ``..`` resolved); otherwise, or when they are missing or unreadable, the mesh loads
      without them and ``mesh.warnings`` says why.

    Returns:
        a validated :class:`Mesh` (see :func:`validate_mesh`): vertices float64 [V, 3], faces int64 [F, 3],
        uvs float64 [T, 2] with (0, 0) = bottom-left of the image (or None), uv_faces int64 [F, 3] (or None),
        face_materials int64 [F], textures uint8 [H, W, 3] RGB with row 0 = top of the image, ``source`` = ``path``.
    Raises:
        MeshError: with a one-line message naming the file, when it is missing, a directory, of an unsupported
            type, empty, unparsable, or geometrically unusable (see :func:`validate_mesh`).
    """
    path = Path(path)
    supported = ", ".join(SUPPORTED_EXTENSIONS)
    if not path.exists():
        raise MeshError(f"mesh file '{path}' does not exist: check the path")
    if path.is_dir():
        raise MeshError(f"'{path}' is a directory, not a mesh file: pass the mesh file itself ({supported})")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise MeshError(
            f"mesh file '{path}' has an unsupported extension '{path.suffix or '(none)'}': supported formats are "
            f"{supported}; convert it first (e.g. with Blender)"
        )
    fmt = _FORMAT_NAMES[ext]
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MeshError(f"mesh file '{path}' cannot be read ({err.strerror or err}): check its permissions") from err
    if size == 0:
        raise MeshError(f"mesh file '{path}' is empty: re-export the mesh")

    resolver = None
    try:
        if ext == ".obj":
            mesh = _load_obj(path)
        else:
            if ext == ".gltf":
                try:
                    json.loads(path.read_bytes().decode("utf-8-sig"))
                except ValueError as err:
                    raise _ParseError(f"it is not JSON: {_one_line(err)}") from None
            resolver = _FolderResolver(path)
            mesh = _load_with_trimesh(path, resolver)
    except MeshError:
        raise
    except _ParseError as err:
        raise MeshError(f"mesh file '{path}' is not a valid {fmt} file ({err}): repair or re-export it") from None
    except Exception as err:  # trimesh / numpy / PIL / OS errors: wrap, never leak
        reason = resolver.problems[-1] if resolver is not None and resolver.problems else _one_line(err)
        raise MeshError(
            f"mesh file '{path}' could not be read as {fmt} ({reason}): check that it is a valid {fmt} file "
            "or re-export it"
        ) from err
    if resolver is not None:
        mesh.warnings.extend(w for w in resolver.problems if w not in mesh.warnings)
    mesh.source = path
    validate_mesh(mesh)
    return mesh


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


# ---------------------------------------------------------------------------------------------------------- OBJ / MTL


def _load_obj(path: Path) -> Mesh:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise _ParseError("it contains binary data, but OBJ is a text format")
    text = raw.decode("utf-8", errors="replace")

    positions: list[tuple[float, float, float]] = []
    texcoords: list[tuple[float, float]] = []
    tri_v: list[tuple[int, int, int]] = []
    tri_t: list[tuple[int, int, int]] = []
    tri_m: list[int] = []
    group_keys: list[str | None] = []  # material names in order of first use (None = before any usemtl)
    group_index: dict[str | None, int] = {}
    current: str | None = None
    current_group = -1
    mtllibs: list[str] = []
    short_faces = 0
    no_uv = (-1, -1, -1)

    pending = ""
    pending_line = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if pending:
            line = pending + " " + line
            lineno = pending_line
            pending = ""
        stripped = line.rstrip()
        if stripped.endswith("\\"):  # line continuation
            pending, pending_line = stripped[:-1], lineno
            continue
        hash_at = stripped.find("#")
        if hash_at >= 0:
            stripped = stripped[:hash_at]
        parts = stripped.split()
        if not parts:
            continue
        key = parts[0]
        try:
            if key == "v":
                positions.append((float(parts[1]), float(parts[2]), float(parts[3])))
            elif key == "vt":
                texcoords.append((float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0))
            elif key == "f":
                corners = parts[1:]
                if len(corners) < 3:
                    short_faces += 1
                    continue
                nv, nt = len(positions), len(texcoords)
                vi: list[int] = []
                ti: list[int] = []
                for corner in corners:
                    fields = corner.split("/")
                    vi.append(_obj_index(fields[0], nv, "vertex", lineno))
                    if len(fields) > 1 and fields[1]:
                        ti.append(_obj_index(fields[1], nt, "texture coordinate", lineno))
                has_t = len(ti) == len(vi)
                if current_group < 0:
                    current_group = group_index.setdefault(current, len(group_keys))
                    if current_group == len(group_keys):
                        group_keys.append(current)
                for k in range(1, len(vi) - 1):
                    tri_v.append((vi[0], vi[k], vi[k + 1]))
                    tri_t.append((ti[0], ti[k], ti[k + 1]) if has_t else no_uv)
                    tri_m.append(current_group)
            elif key == "usemtl":
                current = stripped.split(None, 1)[1].strip() if len(parts) > 1 else None
                current_group = -1
            elif key == "mtllib":
                mtllibs.append(stripped.split(None, 1)[1].strip() if len(parts) > 1 else "")
            # vn, vp, o, g, s, l, p, curv, ... are ignored
        except (ValueError, IndexError):
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise _ParseError(f"line {lineno}: cannot read {shown!r}") from None

    warnings: list[str] = []
    if short_faces:
        warnings.append(f"{path.name}: skipped {short_faces} face(s) with fewer than 3 corners")
    library = _read_mtl_libraries(path, mtllibs, warnings)

    faces = np.asarray(tri_v, dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    uv_faces = np.asarray(tri_t, dtype=np.int64).reshape(-1, 3)
    uvs: np.ndarray | None = np.asarray(texcoords, dtype=np.float64).reshape(-1, 2)
    if len(uv_faces) == 0 or (uv_faces < 0).all():
        uvs, uv_faces = None, None  # no face uses a texture coordinate

    materials: list[Material] = []
    taken = {name for name in group_keys if name is not None}
    missing: list[str] = []
    for name in group_keys:
        if name is None:
            materials.append(Material(_unique_name("material_0" if len(group_keys) == 1 else "default", taken)))
        elif name in library:
            materials.append(library[name])
        else:
            materials.append(Material(name))
            if mtllibs:
                missing.append(name)
    if missing and library:
        warnings.append(
            f"{path.name}: material(s) {', '.join(repr(m) for m in missing)} are not defined in the MTL file(s); "
            "they get a grey base colour"
        )
    if not materials:
        materials = [Material("material_0")]
    return Mesh(
        vertices=vertices,
        faces=faces,
        uvs=uvs,
        uv_faces=uv_faces,
        face_materials=np.asarray(tri_m, dtype=np.int64),
        materials=materials,
        warnings=warnings,
    )


def _obj_index(token: str, count: int, what: str, lineno: int) -> int:
    """0-based index of an OBJ index token (1-based, or negative = relative to the ``count`` elements so far)."""
    index = int(token)
    if index > 0:
        return index - 1  # range checked by validate_mesh
    if index == 0:
        raise _ParseError(f"line {lineno}: {what} index 0 is invalid (OBJ indices start at 1)")
    if count + index < 0:
        raise _ParseError(f"line {lineno}: relative {what} index {index} points before the first {what}")
    return count + index


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def _clean_relative(name: str) -> str:
    """A file reference from a mesh asset as a relative POSIX-style string (quotes stripped, backslashes -> '/')."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    return name.replace("\\", "/")


def _read_mtl_libraries(obj_path: Path, mtllibs: list[str], warnings: list[str]) -> dict[str, Material]:
    """Materials by name from the OBJ's ``mtllib`` files; files outside the mesh folder are never opened."""
    folder = obj_path.parent
    library: dict[str, Material] = {}
    textures: dict[Path, tuple[np.ndarray, Path] | None] = {}
    for entry in mtllibs:
        entry = _clean_relative(entry)
        if not entry:
            continue
        # The spec allows several names on one line; a single name with spaces is more common in practice.
        names = [entry] if (folder / entry).is_file() or len(entry.split()) == 1 else entry.split()
        for name in names:
            mtl_path = folder / name
            if not is_within(mtl_path, folder):
                warnings.append(
                    f"{obj_path.name}: MTL file '{name}' lies outside the mesh folder and was not read; "
                    "materials get default colours (copy it next to the mesh)"
                )
                continue
            if not mtl_path.is_file():
                warnings.append(f"{obj_path.name}: MTL file '{name}' was not found; materials get default colours")
                continue
            try:
                text = mtl_path.read_bytes().decode("utf-8", errors="replace")
            except OSError as err:
                warnings.append(f"{obj_path.name}: MTL file '{name}' could not be read ({_one_line(err)})")
                continue
            for material in _parse_mtl(text, mtl_path, folder, warnings, textures):
                library.setdefault(material.name, material)
    return library


# map_Kd options and how many arguments they take (at most; -o/-s/-t take 1 to 3 numbers)
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1, "-mm": 2,
                "-o": 3, "-s": 3, "-t": 3, "-texres": 1, "-type": 1}


def _parse_mtl(text: str, mtl_path: Path, folder: Path, warnings: list[str],
               textures: dict[Path, tuple[np.ndarray, Path] | None]) -> list[Material]:
    materials: list[Material] = []
    current: Material | None = None
    for line in text.splitlines():
        hash_at = line.find("#")
        if hash_at >= 0:
            line = line[:hash_at]
        parts = line.split()
        if not parts:
            continue
        key = parts[0].lower()
        if key == "newmtl":
            current = Material(line.split(None, 1)[1].strip() if len(parts) > 1 else f"material_{len(materials)}")
            materials.append(current)
        elif current is None:
            continue
        elif key == "kd" and len(parts) >= 4:
            try:
                rgb = [min(max(float(x), 0.0), 1.0) for x in parts[1:4]]
            except ValueError:
                continue  # "Kd spectral ..." / "Kd xyz ..." are not supported; keep the default colour
            current.base_color = (rgb[0], rgb[1], rgb[2])
        elif key == "map_kd" and len(parts) > 1:
            loaded = _load_mtl_texture(parts[1:], mtl_path, folder, warnings, textures)
            if loaded is not None:
                current.texture, current.texture_source = loaded
    return materials


def _map_filename_candidates(tokens: list[str]) -> list[str]:
    """Possible file names of a ``map_Kd`` statement: after skipping known options, then just the last token."""
    i = 0
    while i < len(tokens) and tokens[i].lower() in _MAP_OPTIONS:
        option, i = tokens[i].lower(), i + 1
        count = _MAP_OPTIONS[option]
        if option in ("-o", "-s", "-t"):
            taken = 0
            while taken < count and i < len(tokens) - 1 and _is_float(tokens[i]):
                i, taken = i + 1, taken + 1
        else:
            i += count
    candidates = []
    if i < len(tokens):
        candidates.append(" ".join(tokens[i:]))
    if tokens[-1] not in candidates:
        candidates.append(tokens[-1])
    return [_clean_relative(c) for c in candidates]


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _load_mtl_texture(tokens: list[str], mtl_path: Path, folder: Path, warnings: list[str],
                      cache: dict[Path, tuple[np.ndarray, Path] | None]) -> tuple[np.ndarray, Path] | None:
    candidates = _map_filename_candidates(tokens)
    name = candidates[0]
    for candidate in candidates:
        if (mtl_path.parent / candidate).exists():
            name = candidate
            break
    tex_path = mtl_path.parent / name
    if not is_within(tex_path, folder):
        warnings.append(
            f"{mtl_path.name}: texture '{name}' lies outside the mesh folder and was not read "
            "(copy it next to the mesh to use it)"
        )
        return None
    key = tex_path.resolve()
    if key in cache:
        return cache[key]
    result = None
    if not tex_path.is_file():
        warnings.append(f"{mtl_path.name}: texture '{name}' was not found; the material has no texture")
    else:
        try:
            from PIL import Image

            with Image.open(tex_path) as image:
                image.load()
                result = (_image_to_rgb8(image), tex_path)
        except Exception as err:  # unreadable / unsupported / decompression bomb: go on without it
            warnings.append(f"{mtl_path.name}: texture '{name}' could not be read ({_one_line(err)}); ignored")
    cache[key] = result
    return result


def _image_to_rgb8(image) -> np.ndarray:
    """A PIL image as uint8 [H, W, 3] RGB, row 0 = top; alpha dropped, 16-bit / float greyscale rescaled."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") and values.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


# ----------------------------------------------------------------------------------------- PLY / STL / OFF / glTF


def _folder_resolver_class():
    import trimesh.resolvers

    class FolderResolver(trimesh.resolvers.Resolver):
        """Gives trimesh the files it asks for (glTF buffers/images, PLY textures) only from inside one folder."""

        def __init__(self, mesh_path: Path, folder: Path | None = None):
            self.mesh_path = mesh_path
            self.folder = folder if folder is not None else mesh_path.parent
            self.problems: list[str] = []

        def get(self, name: str) -> bytes:
            from urllib.parse import unquote

            relative = _clean_relative(unquote(name))
            target = self.folder / relative
            if not is_within(target, self.mesh_path.parent):
                self.problems.append(
                    f"{self.mesh_path.name}: '{relative}' lies outside the mesh folder and was not read"
                )
                raise PermissionError(f"'{relative}' lies outside the mesh folder")
            if not target.is_file():
                self.problems.append(f"{self.mesh_path.name}: '{relative}' was not found")
                raise FileNotFoundError(relative)
            return target.read_bytes()

        def keys(self):
            return iter(())

        def namespaced(self, namespace: str) -> "FolderResolver":
            child = FolderResolver(self.mesh_path, self.folder / _clean_relative(namespace))
            child.problems = self.problems
            return child

        def write(self, name, data):
            raise PermissionError("csdtex never writes through a loader resolver")

    return FolderResolver


def _FolderResolver(mesh_path: Path):  # noqa: N802 - a factory, so trimesh is imported lazily
    return _folder_resolver_class()(mesh_path)


def _load_with_trimesh(path: Path, resolver) -> Mesh:
    import trimesh

    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore")
        loaded = trimesh.load(str(path), file_type=path.suffix.lower().lstrip("."), resolver=resolver,
                              process=False)

    if isinstance(loaded, trimesh.Scene):
        instances = []
        for node in loaded.graph.nodes_geometry:
            transform, geometry_name = loaded.graph[node]
            instances.append((np.asarray(transform, dtype=np.float64), geometry_name, loaded.geometry[geometry_name]))
    else:
        instances = [(np.eye(4), "material_0", loaded)]
    kinds = sorted({type(g).__name__ for _, _, g in instances if not isinstance(g, trimesh.Trimesh)})
    instances = [item for item in instances if isinstance(item[2], trimesh.Trimesh) and len(item[2].faces) > 0]
    if not instances:
        what = f" (it holds only {', '.join(kinds)})" if kinds else ""
        raise MeshError(
            f"mesh file '{path}' contains no triangle faces{what}: export the surface as a triangle mesh"
        )

    warnings: list[str] = []
    if kinds:
        warnings.append(f"{path.name}: ignored non-mesh content ({', '.join(kinds)})")
    materials: list[Material] = []
    material_of: dict[str, int] = {}
    taken: set[str] = set()
    parts_v, parts_f, parts_uv, parts_uvf, parts_m = [], [], [], [], []
    v_offset = uv_offset = 0
    for transform, geometry_name, geometry in instances:
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        faces = np.asarray(geometry.faces, dtype=np.int64)
        if not np.allclose(transform, np.eye(4)):
            vertices = vertices @ transform[:3, :3].T + transform[:3, 3]
        if np.linalg.det(transform[:3, :3]) < 0:
            faces = faces[:, [0, 2, 1]]  # a mirroring node flips the winding (glTF 2.0, 3.7.4)
        if geometry_name not in material_of:
            material_of[geometry_name] = len(materials)
            materials.append(_material_from_visual(geometry.visual, geometry_name, taken, path, warnings))
        uv = getattr(geometry.visual, "uv", None) if getattr(geometry.visual, "kind", None) == "texture" else None
        if uv is not None and len(uv) == len(vertices):
            # trimesh returns glTF TEXCOORD_0 already flipped to (0, 0) = bottom-left (it stores 1 - v on export
            # and undoes it on load; checked with a round trip in tests/test_mesh.py), and PLY s/t are
            # bottom-left too, so they are used as they are.
            parts_uv.append(np.asarray(uv, dtype=np.float64)[:, :2])
            parts_uvf.append(faces + uv_offset)
            uv_offset += len(uv)
        else:
            parts_uvf.append(np.full_like(faces, -1))
        parts_v.append(vertices)
        parts_f.append(faces + v_offset)
        parts_m.append(np.full(len(faces), material_of[geometry_name], dtype=np.int64))
        v_offset += len(vertices)

    uvs = np.concatenate(parts_uv) if parts_uv else None
    uv_faces = np.concatenate(parts_uvf) if parts_uv else None
    if len(materials) == 1 and not isinstance(loaded, trimesh.Scene):
        materials[0].name = "material_0"
    return Mesh(
        vertices=np.concatenate(parts_v),
        faces=np.concatenate(parts_f),
        uvs=uvs,
        uv_faces=uv_faces,
        face_materials=np.concatenate(parts_m),
        materials=materials,
        warnings=warnings,
    )


def _material_from_visual(visual, fallback_name: str, taken: set[str], path: Path, warnings: list[str]) -> Material:
    import trimesh

    material = Material(_unique_name(str(fallback_name), taken))
    source = getattr(visual, "material", None) if getattr(visual, "kind", None) == "texture" else None
    if source is None:
        source = getattr(visual, "material", None)
    if source is not None:
        name = getattr(source, "name", None)
        if name and str(name) != str(fallback_name):
            taken.discard(material.name)
            material.name = _unique_name(str(name), taken)
        if isinstance(source, trimesh.visual.material.PBRMaterial):
            image, color = source.baseColorTexture, source.baseColorFactor
        else:
            image, color = getattr(source, "image", None), getattr(source, "diffuse", None)
        if color is not None:
            raw = np.asarray(color)
            color = raw.astype(np.float64).reshape(-1)
            if color.size >= 3:
                scale = 255.0 if np.issubdtype(raw.dtype, np.integer) or color[:3].max() > 1.0 else 1.0
                rgb = np.clip(color[:3] / scale, 0.0, 1.0)
                material.base_color = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
        if image is not None:
            try:
                material.texture = _image_to_rgb8(image)
                material.texture_source = path
            except Exception as err:
                warnings.append(f"{path.name}: texture of material '{material.name}' could not be decoded "
                                f"({_one_line(err)}); ignored")
    elif getattr(visual, "kind", None) in ("face", "vertex"):
        main = np.asarray(visual.main_color, dtype=np.float64).reshape(-1)
        if main.size >= 3:
            rgb = np.clip(main[:3] / 255.0, 0.0, 1.0)
            material.base_color = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    return material


# ======================================================================================================================
# Validation
# ======================================================================================================================


def _face_double_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """float64 [F]: twice the area of every triangle (the length of the edge cross product)."""
    corners = vertices[faces]
    return np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """bool [F]: faces with a repeated vertex index or (numerically) zero area.

    A face counts as zero-area when twice its area is at most ``1e-14 * d**2`` with ``d`` the bounding-box diagonal of
    ``vertices`` (edges around 1e-7 of the mesh size, below float32 resolution in the normalized render space).
    Args: vertices float [V, 3]; faces int [F, 3] with valid indices.
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
    UVs outside [0, 1] or overlapping UVs are allowed (see :func:`analyze_mesh`). Runs on meshes built in code too.
    """
    where = f"mesh file '{mesh.source}'" if mesh.source is not None else "mesh"
    vertices, faces = mesh.vertices, mesh.faces
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"{where}: vertices must have shape [V, 3], got {list(vertices.shape)}: pass xyz positions")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(f"{where}: faces must have shape [F, 3] (triangles), got {list(faces.shape)}: triangulate it")
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
            "repair the UVs or re-unwrap the mesh"
        )


# ======================================================================================================================
# UV unwrapping (xatlas)
# ======================================================================================================================

# xatlas runs in a child process: it segfaults on some inputs (e.g. trimesh's 80k-face icosphere crashes while
# packing in xatlas-python 0.0.11), which would otherwise kill the whole csdtex process without a message.
_XATLAS_CHILD = r"""
import json, sys
import numpy as np
import xatlas

data = np.load(sys.argv[1])
options = json.loads(sys.argv[3])
vertices, faces = data["vertices"], data["faces"]
resolution, padding = options["resolution"], options["padding"]
texels_per_unit = options["texels_per_unit"]


def run(tpu):
    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces)
    pack = xatlas.PackOptions()
    pack.resolution = resolution
    pack.padding = padding
    pack.texels_per_unit = tpu
    pack.bilinear = True
    pack.rotate_charts = True
    atlas.generate(xatlas.ChartOptions(), pack)
    return atlas


for attempt in range(options["attempts"]):
    atlas = run(texels_per_unit)
    if atlas.atlas_count == 1:
        break
    texels_per_unit *= 0.85
square = atlas.atlas_count == 1
if not square:  # give up on a fixed square atlas: one atlas of xatlas's own size, rescaled uniformly below
    atlas = run(0.0)
vmapping, indices, uvs = atlas[0]
uvs = uvs.astype(np.float64)
if not square:
    uvs = uvs * np.array([atlas.width, atlas.height], dtype=np.float64) / max(atlas.width, atlas.height)
np.savez(sys.argv[2], vmapping=vmapping.astype(np.int64), indices=indices.astype(np.int64), uvs=uvs,
         charts=atlas.chart_count, width=atlas.width, height=atlas.height, square=square, attempts=attempt + 1,
         utilization=float(np.mean(atlas.utilization)))
"""


def unwrap_uvs(mesh: Mesh, texture_size: int = 1024, force: bool = False) -> Mesh:
    """Give every face UVs with xatlas, never changing ``vertices`` or ``faces``.

    - Every face already has UVs and not ``force``: ``mesh`` is returned unchanged (same object).
    - No UVs at all, or ``force``: all faces are unwrapped into one atlas and one material (material 0's name and
      base colour are kept; its old texture is dropped since it belonged to the old UVs); ``face_materials`` = 0.
    - Some faces without UVs (``uv_faces`` rows of -1, e.g. a glTF primitive without ``TEXCOORD_0``): only those
      faces are unwrapped, into a NEW material appended to ``materials`` (named ``unwrapped``, base colour of the
      material most of them had); all other faces keep their UVs and materials bit for bit. Materials whose faces
      all moved stay in the list with no faces.

    The atlas is packed for a ``texture_size`` x ``texture_size`` texture with ``max(2, texture_size // 256)`` texels
    of padding between charts and the same texel density for all charts (UV space is scaled uniformly). Degenerate
    faces are accepted (they get zero-area UV triangles). New ``uvs`` are float64 in [0, 1], (0, 0) = bottom-left.

    Args:
        mesh: a valid mesh (see :func:`validate_mesh`).
        texture_size: texture resolution the charts and padding are planned for, 16 to 16384.
        force: re-unwrap everything even if the mesh has UVs.
    Returns:
        a new :class:`Mesh` (``copy_with``) with ``uvs``, ``uv_faces``, ``face_materials`` and ``materials`` set.
    Raises:
        ConfigError: bad ``texture_size``. MeshError: invalid mesh, xatlas missing or crashing.
    """
    if isinstance(texture_size, bool) or not isinstance(texture_size, (int, np.integer)) or not (
        16 <= texture_size <= 16384
    ):
        raise ConfigError(f"texture_size must be an integer in [16, 16384], got {texture_size!r}")
    validate_mesh(mesh)
    if mesh.has_uvs and not force:
        return mesh
    full = force or mesh.uv_faces is None or bool((mesh.uv_faces < 0).all())
    selected = np.arange(mesh.num_faces) if full else np.flatnonzero((mesh.uv_faces < 0).any(axis=1))
    new_uvs, new_uv_faces = _xatlas_unwrap(mesh, mesh.faces[selected], int(texture_size))

    if full:
        first = mesh.materials[0]
        return mesh.copy_with(
            uvs=new_uvs,
            uv_faces=new_uv_faces,
            face_materials=np.zeros(mesh.num_faces, dtype=np.int64),
            materials=[Material(first.name, base_color=first.base_color)],
            warnings=list(mesh.warnings),
        )
    uvs = np.concatenate([mesh.uvs, new_uvs])
    uv_faces = mesh.uv_faces.copy()
    uv_faces[selected] = new_uv_faces + len(mesh.uvs)
    face_materials = mesh.face_materials.copy()
    most_common = int(np.bincount(face_materials[selected]).argmax())
    name = _unique_name("unwrapped", {m.name for m in mesh.materials})
    face_materials[selected] = len(mesh.materials)
    materials = list(mesh.materials) + [Material(name, base_color=mesh.materials[most_common].base_color)]
    return mesh.copy_with(uvs=uvs, uv_faces=uv_faces, face_materials=face_materials, materials=materials,
                          warnings=list(mesh.warnings))


def _xatlas_unwrap(mesh: Mesh, faces: np.ndarray, texture_size: int) -> tuple[np.ndarray, np.ndarray]:
    """UVs float64 [K, 2] in [0, 1] and uv_faces int64 [len(faces), 3] (into them) for ``faces`` of ``mesh``.

    Only non-degenerate faces go to xatlas; a degenerate face gets, per corner, an atlas vertex of the same input
    vertex (or a UV point at (0, 0) when that vertex has none), i.e. a zero-area UV triangle.
    """
    where = f"mesh file '{mesh.source}'" if mesh.source is not None else "mesh"
    degenerate = degenerate_faces(mesh.vertices, faces)
    good = faces[~degenerate]
    if len(good) == 0:
        return np.zeros((1, 2)), np.zeros_like(faces)
    used, local_faces = np.unique(good, return_inverse=True)
    local_faces = local_faces.reshape(-1, 3).astype(np.int64)
    vmapping, indices, uvs = _run_xatlas(mesh.vertices[used], local_faces, texture_size, where)
    if indices.shape == local_faces.shape and (vmapping[indices] == local_faces).all():
        good_uv_faces = indices  # xatlas kept the face order and corner order (the usual case)
    else:
        good_uv_faces = _match_atlas_faces(local_faces, vmapping, indices)
    uvs = np.clip(np.nan_to_num(uvs, nan=0.0), 0.0, 1.0)
    uv_faces = np.empty_like(faces)
    uv_faces[~degenerate] = good_uv_faces
    if degenerate.any():
        atlas_vertex = np.full(len(mesh.vertices), len(uvs), dtype=np.int64)  # default: the extra (0, 0) point
        atlas_vertex[used[vmapping]] = np.arange(len(vmapping))
        uv_faces[degenerate] = atlas_vertex[faces[degenerate]]
        uvs = np.concatenate([uvs, np.zeros((1, 2))])
    return uvs, uv_faces


def _run_xatlas(positions: np.ndarray, faces: np.ndarray, texture_size: int,
                where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas's (vmapping int64 [K], indices int64 [F', 3], uvs float64 [K, 2]) for one mesh, in a child process."""
    import importlib.util

    if importlib.util.find_spec("xatlas") is None:
        raise MeshError(f"{where} needs UVs but xatlas is not installed: pip install xatlas (or give the mesh UVs)")
    # unit-sphere coordinates: xatlas works in float32 and its texel density is per world unit
    center = (positions.min(axis=0) + positions.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(positions - center, axis=1).max())
    positions = (positions - center) / (radius if radius > 0 else 1.0)
    area = 0.5 * float(_face_double_areas(positions, faces).sum())
    # first guess of the texel density: charts cover about 45% of the square (lowered by retries in the child)
    texels_per_unit = texture_size * float(np.sqrt(0.45 / max(area, 1e-12)))
    options = dict(resolution=texture_size, padding=max(2, texture_size // 256), texels_per_unit=texels_per_unit,
                   attempts=8)
    with tempfile.TemporaryDirectory(prefix="csdtex-xatlas-") as tmp:
        in_path, out_path = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(in_path, vertices=positions.astype(np.float32), faces=faces.astype(np.uint32))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _XATLAS_CHILD, str(in_path), str(out_path), json.dumps(options)],
                capture_output=True, text=True,
            )
        except OSError as err:  # no usable interpreter path (embedded Python), fork limits, ...
            raise MeshError(
                f"could not start xatlas to unwrap {where} ({_one_line(err)}): give the mesh UVs in a 3D tool"
            ) from err
        if proc.returncode != 0 or not out_path.exists():
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            reason = f"exit code {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
            if lines:
                reason += f": {lines[-1].strip()[:160]}"
            raise MeshError(
                f"xatlas failed to unwrap {where} ({len(faces)} faces; {reason}): give the mesh UVs in a 3D tool "
                "(e.g. Blender Smart UV Project) or simplify it"
            )
        with np.load(out_path) as result:
            return result["vmapping"], result["indices"], result["uvs"]


def _match_atlas_faces(faces: np.ndarray, vmapping: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """uv_faces [F, 3] for ``faces`` when xatlas reordered (or dropped) faces: match them by their vertex triples.

    A face without a match gets, per corner, any atlas vertex made from the same input vertex (a degenerate UV
    triangle is better than none).
    """
    original = vmapping[indices]
    pool: dict[tuple[int, ...], list[int]] = {}
    for j, row in enumerate(original.tolist()):
        pool.setdefault(tuple(sorted(row)), []).append(j)
    any_atlas_vertex = np.zeros(int(faces.max()) + 1, dtype=np.int64)
    any_atlas_vertex[vmapping] = np.arange(len(vmapping))
    uv_faces = np.empty_like(faces)
    for i, row in enumerate(faces.tolist()):
        candidates = pool.get(tuple(sorted(row)))
        if candidates:
            j = candidates.pop()
            out = original[j].tolist()
            uv_faces[i] = [indices[j, out.index(vertex)] for vertex in row]
        else:
            uv_faces[i] = any_atlas_vertex[row]
    return uv_faces


# ======================================================================================================================
# Analysis
# ======================================================================================================================


@dataclass
class MeshReport:
    """What ``csdtex info`` prints about a mesh (see :func:`analyze_mesh`).

    Attributes:
        num_vertices: number of vertices as stored (not welded).
        num_faces: number of triangles.
        has_uvs: every face has UVs.
        num_materials: number of materials (texture images).
        num_charts: UV charts = connected groups of faces sharing UV vertices, counted per material over faces with
            UVs; None when the mesh has no UVs.
        bbox_min: float64 [3], smallest input coordinate per axis.
        bbox_max: float64 [3], largest input coordinate per axis.
        num_seam_edges: edges shared by exactly two faces in 3D (after welding equal positions) whose two sides do
            not use the same UV coordinates at both ends (or belong to different materials); None without UVs.
        problems: human-readable findings (degenerate faces, UVs outside [0, 1], overlapping UVs, non-manifold
            edges, duplicate faces, faces without UVs, loader warnings); empty when nothing was found.
        source: the mesh file, if any.
    """

    num_vertices: int
    num_faces: int
    has_uvs: bool
    num_materials: int
    num_charts: int | None
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    num_seam_edges: int | None
    problems: list[str] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict:
        """JSON-serializable dict (plain ints, floats, lists, None) with the attribute names as keys."""
        return {
            "source": self.source,
            "num_vertices": int(self.num_vertices),
            "num_faces": int(self.num_faces),
            "has_uvs": bool(self.has_uvs),
            "num_materials": int(self.num_materials),
            "num_charts": None if self.num_charts is None else int(self.num_charts),
            "bbox_min": [float(x) for x in self.bbox_min],
            "bbox_max": [float(x) for x in self.bbox_max],
            "num_seam_edges": None if self.num_seam_edges is None else int(self.num_seam_edges),
            "problems": list(self.problems),
        }

    def to_text(self) -> str:
        """Aligned ``key: value`` lines, problems listed one per line under ``problems:``."""

        def vec(values: np.ndarray) -> str:
            return " ".join(f"{float(x):.6g}" for x in values)

        size = np.asarray(self.bbox_max, dtype=np.float64) - np.asarray(self.bbox_min, dtype=np.float64)
        rows = [("file", self.source)] if self.source is not None else []
        rows += [
            ("vertices", str(self.num_vertices)),
            ("faces", str(self.num_faces)),
            ("materials", str(self.num_materials)),
            ("UVs", "yes" if self.has_uvs else ("partial" if self.num_charts else "no")),
            ("UV charts", "-" if self.num_charts is None else str(self.num_charts)),
            ("UV seam edges", "-" if self.num_seam_edges is None else str(self.num_seam_edges)),
            ("bbox min", vec(self.bbox_min)),
            ("bbox max", vec(self.bbox_max)),
            ("bbox size", vec(size)),
            ("problems", str(len(self.problems)) if self.problems else "none"),
        ]
        width = max(len(key) for key, _ in rows) + 1
        lines = [f"{key + ':':<{width}} {value}" for key, value in rows]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def analyze_mesh(mesh: Mesh, overlap_resolution: int = 256) -> MeshReport:
    """Count charts and seams and look for problems; see :class:`MeshReport` for what each number means.

    Positions are welded with :func:`weld_positions` (exact duplicates) for seams, non-manifold edges and duplicate
    faces; UV coordinates with bit-identical values count as the same UV vertex. Overlapping UVs are estimated per
    material by rasterizing its UV triangles on an ``overlap_resolution``² grid of samples in [0, 1]²: the share of
    covered samples covered by two or more triangles is reported when above 1%.

    Args:
        mesh: a mesh; it is validated first (:class:`MeshError` if unusable).
        overlap_resolution: samples per side for the overlap estimate.
    """
    validate_mesh(mesh)
    vertices, faces = mesh.vertices, mesh.faces
    problems: list[str] = []
    num_faces = mesh.num_faces

    degenerate = degenerate_faces(vertices, faces)
    if degenerate.any():
        problems.append(f"{int(degenerate.sum())} degenerate (zero-area) faces")

    welded = weld_positions(vertices)
    wf = welded[faces]
    # half-edges (p -> q) of every face, in welded vertex ids
    starts, ends = wf.reshape(-1), wf[:, [1, 2, 0]].reshape(-1)
    edge_face = np.repeat(np.arange(num_faces), 3)
    edge_corner = np.tile(np.arange(3), num_faces)
    proper = starts != ends
    lo, hi = np.minimum(starts, ends), np.maximum(starts, ends)
    keys = lo * (len(vertices) + 1) + hi
    order = np.argsort(keys[proper], kind="stable")
    ids = np.flatnonzero(proper)[order]
    sorted_keys = keys[ids]
    unique_keys, first, counts = np.unique(sorted_keys, return_index=True, return_counts=True)
    non_manifold = int((counts > 2).sum())
    if non_manifold:
        problems.append(f"{non_manifold} non-manifold edges (shared by more than two faces)")

    face_keys = np.sort(wf, axis=1)
    face_keys = face_keys[~degenerate]
    if len(face_keys):
        duplicates = len(face_keys) - len(np.unique(face_keys, axis=0))
        if duplicates:
            problems.append(f"{duplicates} duplicate faces (same three corners as another face)")

    num_charts = num_seams = None
    if mesh.uv_faces is not None:
        uv_faces = mesh.uv_faces
        with_uv = (uv_faces >= 0).all(axis=1)
        # canonical UV vertex ids: bit-identical coordinates are the same UV vertex
        _, uv_canon = np.unique(mesh.uvs, axis=0, return_inverse=True)
        uv_canon = uv_canon.reshape(-1)
        cuv = np.where(uv_faces >= 0, uv_canon[np.maximum(uv_faces, 0)], -1)
        num_charts = _count_charts(cuv, mesh.face_materials, with_uv, len(mesh.uvs))

        # seams: manifold edges (two half-edges) between faces with UVs whose UV ends differ
        two = counts == 2
        a, b = ids[first[two]], ids[first[two] + 1]
        fa, fb = edge_face[a], edge_face[b]
        both_uv = with_uv[fa] & with_uv[fb]
        a, b, fa, fb = a[both_uv], b[both_uv], fa[both_uv], fb[both_uv]

        def uv_ends(half: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            corner = edge_corner[half]
            uv_start, uv_end = cuv[face, corner], cuv[face, (corner + 1) % 3]
            flip = starts[half] > ends[half]  # order the ends by welded vertex id
            return np.where(flip, uv_end, uv_start), np.where(flip, uv_start, uv_end)

        a_lo, a_hi = uv_ends(a, fa)
        b_lo, b_hi = uv_ends(b, fb)
        seam = (a_lo != b_lo) | (a_hi != b_hi) | (mesh.face_materials[fa] != mesh.face_materials[fb])
        num_seams = int(seam.sum())

        missing = int((~with_uv).sum())
        if missing:
            problems.append(f"{missing} faces have no UVs (csdtex unwraps them into a new material)")
        used = np.unique(uv_faces[with_uv])
        if len(used):
            outside = ((mesh.uvs[used] < -1e-6) | (mesh.uvs[used] > 1.0 + 1e-6)).any(axis=1)
            if outside.any():
                problems.append(
                    f"{int(outside.sum())} of {len(used)} used UV coordinates lie outside [0, 1] (tiled UVs: "
                    "the texture repeats there)"
                )
        for index, material in enumerate(mesh.materials):
            selected = with_uv & (mesh.face_materials == index)
            if not selected.any():
                continue
            fraction = uv_overlap_fraction(mesh.uvs[uv_faces[selected]], overlap_resolution)
            if fraction > 0.01:
                problems.append(
                    f"material '{material.name}': {100.0 * fraction:.1f}% of its UV area is covered by more than one "
                    "triangle (overlapping UVs share texels; use --unwrap to re-unwrap)"
                )

    problems.extend(f"warning: {w}" for w in mesh.warnings)
    return MeshReport(
        num_vertices=mesh.num_vertices,
        num_faces=num_faces,
        has_uvs=mesh.has_uvs,
        num_materials=len(mesh.materials),
        num_charts=num_charts,
        bbox_min=vertices.min(axis=0),
        bbox_max=vertices.max(axis=0),
        num_seam_edges=num_seams,
        problems=problems,
        source=None if mesh.source is None else str(mesh.source),
    )


def _count_charts(cuv: np.ndarray, face_materials: np.ndarray, with_uv: np.ndarray, num_uvs: int) -> int:
    """Connected components of faces (with UVs) linked through shared (material, UV vertex) nodes."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    face_ids = np.flatnonzero(with_uv)
    if len(face_ids) == 0:
        return 0
    node = face_materials[face_ids, None] * (num_uvs + 1) + cuv[face_ids]  # [n, 3]
    _, node = np.unique(node.reshape(-1), return_inverse=True)
    n = len(face_ids)
    rows = np.repeat(np.arange(n), 3)
    cols = n + node.reshape(-1)
    size = n + int(node.max()) + 1
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return int(len(np.unique(labels[:n])))


def uv_overlap_fraction(triangles: np.ndarray, resolution: int = 256, max_samples: int = 4_000_000) -> float:
    """Share of the covered UV area that is covered by two or more triangles, estimated on a sample grid.

    Args:
        triangles: float [N, 3, 2] UV triangles (u, v), any orientation; the part outside [0, 1]² is ignored
            (tiled UVs are not wrapped).
        resolution: samples per side; sample (i, j) sits at ((i + 0.5 + du) / r, (j + 0.5 + dv) / r) with small
            irrational-looking offsets du, dv so that samples practically never lie exactly on the (often axis-aligned
            or diagonal) shared edges of neighbouring triangles, which would be counted twice.
        max_samples: work limit (sample-in-triangle tests). When the triangles' bounding boxes hold more samples
            than this (huge total UV area: tiled or garbage UVs), the grid is made coarser (down to 16 per side) and,
            if that is not enough, a random subset of the triangles (fixed seed) is rasterized; such inputs overlap
            heavily, so the estimate stays far above any reporting threshold.
    Returns:
        float in [0, 1]: (#samples covered more than once) / (#samples covered at least once); 0 if none covered.
    """
    tri = np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 2)
    tri = tri[np.isfinite(tri).all(axis=(1, 2))]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = signed != 0
    a, b, c, signed = a[keep], b[keep], c[keep], signed[keep]
    b, c = np.where(signed[:, None] < 0, c, b), np.where(signed[:, None] < 0, b, c)  # counter-clockwise
    offset = np.array([0.5 + 0.0123456789, 0.5 + 0.0298765431])
    tri_lo = np.minimum(np.minimum(a, b), c)
    tri_hi = np.maximum(np.maximum(a, b), c)

    def sample_boxes(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        i0 = np.clip(np.ceil(tri_lo * r - offset), 0, r).astype(np.int64)
        i1 = np.clip(np.floor(tri_hi * r - offset), -1, r - 1).astype(np.int64)
        nx = np.maximum(i1[:, 0] - i0[:, 0] + 1, 0)
        ny = np.maximum(i1[:, 1] - i0[:, 1] + 1, 0)
        return i0, nx, ny, nx * ny

    r = int(resolution)
    i0, nx, ny, sizes = sample_boxes(r)
    total = int(sizes.sum())
    if total > max_samples and r > 16:
        r = max(16, int(r * np.sqrt(max_samples / total)))
        i0, nx, ny, sizes = sample_boxes(r)
        total = int(sizes.sum())
    chosen = np.flatnonzero(sizes > 0)
    if total > max_samples:
        rng = np.random.default_rng(0)
        chosen = chosen[rng.random(len(chosen)) < max_samples / total]

    counts = np.zeros(r * r, dtype=np.int64)
    cumulative = np.cumsum(sizes[chosen])
    chunk = 1 << 21
    start = 0
    while start < len(chosen):
        base = cumulative[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(cumulative, base + chunk, side="right")), start + 1)
        ids = chosen[start:stop]
        n = sizes[ids]
        which = np.repeat(np.arange(len(ids)), n)
        local = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        t = ids[which]
        ix = i0[t, 0] + local % nx[t]
        iy = i0[t, 1] + local // nx[t]
        px = (ix + offset[0]) / r
        py = (iy + offset[1]) / r
        inside = np.ones(len(t), dtype=bool)
        for p, q in ((a, b), (b, c), (c, a)):
            inside &= (q[t, 0] - p[t, 0]) * (py - p[t, 1]) - (q[t, 1] - p[t, 1]) * (px - p[t, 0]) >= 0
        counts += np.bincount(iy[inside] * r + ix[inside], minlength=r * r)
        start = stop
    covered = int((counts > 0).sum())
    return float((counts > 1).sum()) / covered if covered else 0.0
