"""Mesh files: :func:`load_mesh` reads any supported format; one module per format holds its reader and writer.

- :mod:`csdtex.io.obj`: Wavefront OBJ + MTL, csdtex's own parser and writer (``read_obj``, ``obj_text``, ``mtl_text``).
- :mod:`csdtex.io.gltf`: GLB / glTF, read and written by csdtex (:mod:`csdtex.io.gltf_read`) (``read_gltf``, ``glb_bytes``,
  ``split_seams``, ``check_gltf_document``).
- :mod:`csdtex.io.trimesh_formats`: PLY / STL / OFF, read through trimesh (``read_with_trimesh``).

Writing a textured mesh with its PNG files, atomically and all or nothing, is :mod:`csdtex.export`. Conventions of
the arrays are those of :class:`csdtex.mesh.Mesh` (UV (0, 0) = bottom-left of the image, textures uint8 [H, W, 3] with
row 0 = top).

Import order: the format modules import :mod:`csdtex.mesh`, whose ``__init__`` re-exports :func:`load_mesh` from here,
so this ``__init__`` imports them (and :mod:`csdtex.mesh`) only inside :func:`load_mesh`; at import time it needs only
:mod:`csdtex.io._common`, which imports nothing from :mod:`csdtex.mesh`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from csdtex.errors import MeshError
from csdtex.io._common import ParseError, ReadError, error_text

if TYPE_CHECKING:
    from csdtex.mesh.types import Mesh

__all__ = ["SUPPORTED_EXTENSIONS", "SUPPORTED_FORMATS", "load_mesh"]

SUPPORTED_FORMATS: dict[str, str] = {
    ".obj": "OBJ", ".ply": "PLY", ".stl": "STL", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF",
}
"""The format name (as used in messages) of every file extension :func:`load_mesh` reads (lower case)."""

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(SUPPORTED_FORMATS)
"""File extensions :func:`load_mesh` reads (case-insensitive)."""


def _reader(ext: str) -> Callable[[Path], "Mesh"]:
    """The reader for a (lower-case, supported) extension; imported here to keep :mod:`csdtex.io` import-cycle free."""
    if ext == ".obj":
        from csdtex.io.obj import read_obj

        return read_obj
    if ext in (".glb", ".gltf"):
        from csdtex.io.gltf import read_gltf

        return read_gltf
    from csdtex.io.trimesh_formats import read_with_trimesh

    return read_with_trimesh


def load_mesh(path: str | os.PathLike, *, discard_uvs: bool = False) -> Mesh:
    """Read a triangle mesh, its UVs and its materials from ``path``, keeping the file's arrays untouched.

    Formats (by extension, case-insensitive): ``.obj`` (+ ``.mtl`` and ``map_Kd`` textures), ``.ply``, ``.stl``,
    ``.off``, ``.glb`` / ``.gltf``.

    - OBJ is read by csdtex's own parser (:func:`csdtex.io.obj.read_obj`, which lists everything it reads), so
      vertices and ``vt`` are kept in file order, never split or merged; quads and n-gons are triangulated in file
      order (convex ones as a fan, concave ones by ear clipping); ``v x y z r g b`` colours become ``vertex_colors``;
      every ``usemtl`` name becomes one :class:`~csdtex.mesh.Material`; ``Kd`` gives ``base_color``, ``map_Kd`` the
      texture, ``map_d`` its alpha, the MTL PBR keys the carried maps (``Material.maps``).
    - PLY / STL / OFF are read with trimesh (``process=False``, so no merging or reordering); per-vertex PLY UVs
      become ``uvs`` with ``uv_faces = faces``. STL has no shared vertices: three vertices per triangle.
    - glTF / GLB (:func:`csdtex.io.gltf.read_gltf`): every node instance of every triangle primitive is transformed
      into world space and concatenated; each glTF material is one material group (texture = its PBR
      ``baseColorTexture`` on the ``TEXCOORD_n`` it names, the other maps carried); instances whose node transform
      mirrors get their winding reversed, as glTF prescribes; parts without that UV set get ``uv_faces`` rows of -1.
    - MTL files, textures and external glTF resources are read only when they resolve inside the mesh's folder
      (symbolic links and ``..`` resolved); otherwise, or when they are missing or unreadable, the mesh loads
      without them and ``mesh.warnings`` says why.

    ``discard_uvs``: leave the file's UVs out (``uvs`` and ``uv_faces`` None) before validating, for a caller that
    unwraps anew anyway (``--unwrap``): UVs with NaN values, which would be refused, then do not matter.

    Returns:
        a validated :class:`~csdtex.mesh.Mesh` (see :func:`csdtex.mesh.validate_mesh`): vertices float64 [V, 3],
        faces int64 [F, 3], uvs float64 [T, 2] with (0, 0) = bottom-left of the image (or None), uv_faces int64
        [F, 3] (or None), face_materials int64 [F], textures uint8 [H, W, 3] RGB with row 0 = top of the image,
        ``source`` = ``path``.
    Raises:
        MeshError: with a one-line message naming the file, when it is missing, a directory, of an unsupported
            type, empty, unparsable, or geometrically unusable (see :func:`csdtex.mesh.validate_mesh`).
    """
    from csdtex.mesh.validate import validate_mesh

    path = Path(path)
    supported = ", ".join(SUPPORTED_EXTENSIONS)
    if not path.exists():
        raise MeshError(f"mesh file '{path}' does not exist: check the path")
    if path.is_dir():
        raise MeshError(f"'{path}' is a directory, not a mesh file: pass the mesh file itself ({supported})")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_FORMATS:
        raise MeshError(
            f"mesh file '{path}' has an unsupported extension '{path.suffix or '(none)'}': supported formats are "
            f"{supported}; convert it first (e.g. with Blender)"
        )
    fmt = SUPPORTED_FORMATS[ext]
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MeshError(f"mesh file '{path}' cannot be read ({err.strerror or err}): check its permissions") from err
    if size == 0:
        raise MeshError(f"mesh file '{path}' is empty: re-export the mesh")

    try:
        mesh = _reader(ext)(path)
    except MeshError:
        raise
    except ParseError as err:
        raise MeshError(f"mesh file '{path}' is not a valid {fmt} file ({err}): repair or re-export it") from None
    except Exception as err:  # trimesh / numpy / PIL / OS errors: wrap, never leak
        reason = str(err) if isinstance(err, ReadError) else error_text(err)
        remedy = getattr(err, "remedy", None) or f"check that it is a valid {fmt} file or re-export it"
        raise MeshError(f"mesh file '{path}' could not be read as {fmt} ({reason}): {remedy}") from err
    mesh.source = path
    mesh.read_files = [path, *(f for f in dict.fromkeys(mesh.read_files) if f != path)]
    if discard_uvs:
        mesh.uvs = mesh.uv_faces = None
    validate_mesh(mesh)
    return mesh
