"""Mesh formats read through trimesh: PLY, STL, OFF (glTF / GLB have csdtex's own reader, :mod:`csdtex.io.gltf_read`;
scenes are still handled here for any other trimesh format that returns one).

trimesh is imported lazily (inside the functions), so importing this module is cheap. Files a mesh refers to (glTF
buffers and images, PLY textures) are served to trimesh only from inside the mesh's folder, through a resolver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csdtex.errors import MeshError
from csdtex.fileio import is_within
from csdtex.io._common import ReadError, clean_relative, error_text, image_to_rgb8, quiet_libraries
from csdtex.mesh.types import Material, Mesh, unique_name

__all__ = ["read_with_trimesh"]


def read_with_trimesh(path: Path) -> Mesh:
    """Read a PLY / STL / OFF / GLB / glTF file with trimesh (``process=False``, so no merging or reordering).

    - PLY / STL / OFF: one material (``material_0``); per-vertex PLY UVs become ``uvs`` with ``uv_faces = faces``.
      STL has no shared vertices: three vertices per triangle.
    - Scenes: every node instance of every geometry is transformed
      into world space and concatenated; each geometry is one material group. Instances whose node transform mirrors
      (negative determinant) get their winding reversed, as glTF prescribes. Parts without UVs get ``uv_faces`` rows
      of -1. trimesh returns glTF ``TEXCOORD_0`` already flipped to (0, 0) = bottom-left.
    - Referenced files (glTF buffers / images, PLY textures) are read only when they resolve inside the mesh's folder
      (symbolic links and ``..`` resolved); otherwise, or when missing, ``mesh.warnings`` says why.

    Args:
        path: the mesh file; its (lower-case) suffix tells trimesh the format.
    Returns:
        an unvalidated :class:`~csdtex.mesh.Mesh` (``source`` not set): vertices float64 [V, 3], faces int64 [F, 3],
        uvs float64 [T, 2] with (0, 0) = bottom-left of the image (or None), uv_faces int64 [F, 3] (or None),
        face_materials int64 [F], textures uint8 [H, W, 3] RGB with row 0 = top of the image.
    Raises:
        MeshError: the file holds no triangle faces.
        ReadError: trimesh failed after the resolver refused or missed a referenced file (the message says which).
        Exception: anything else trimesh, numpy or PIL raise (:func:`csdtex.io.load_mesh` turns it into a
            :class:`MeshError`).
    """
    resolver = _folder_resolver(path)
    try:
        mesh = _load_with_trimesh(path, resolver)
    except MeshError:
        raise
    except Exception as err:
        if resolver.problems:  # the real reason, e.g. "'../secret.bin' lies outside the mesh folder"
            raise ReadError(resolver.problems[-1]) from err
        raise
    mesh.warnings.extend(w for w in resolver.problems if w not in mesh.warnings)
    return mesh


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

            relative = clean_relative(unquote(name))
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
            child = FolderResolver(self.mesh_path, self.folder / clean_relative(namespace))
            child.problems = self.problems
            return child

        def write(self, name, data):
            raise PermissionError("csdtex never writes through a loader resolver")

    return FolderResolver


def _folder_resolver(mesh_path: Path):
    """A resolver for the files ``mesh_path`` refers to (trimesh is imported here, lazily)."""
    return _folder_resolver_class()(mesh_path)


def _load_with_trimesh(path: Path, resolver) -> Mesh:
    import trimesh

    with quiet_libraries():  # trimesh's log lines and warnings never reach the user's terminal
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
    parts_v, parts_f, parts_uv, parts_uvf, parts_m, parts_c = [], [], [], [], [], []
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
        parts_c.append(_vertex_colors(geometry.visual, len(vertices)))
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
        vertex_colors=(np.concatenate([c if c is not None else np.ones((len(v), 3)) for c, v in zip(parts_c, parts_v)])
                       if any(c is not None for c in parts_c) else None),
    )


def _vertex_colors(visual, count: int) -> np.ndarray | None:
    """Per-vertex RGB float [count, 3] in [0, 1] of a ColorVisuals with vertex colours that are not all one colour."""
    if getattr(visual, "kind", None) != "vertex":
        return None
    colors = np.asarray(visual.vertex_colors, dtype=np.float64)
    if colors.ndim != 2 or len(colors) != count or colors.shape[1] < 3 or (colors[:, :3] == colors[0, :3]).all():
        return None
    return colors[:, :3] / 255.0


def _material_from_visual(visual, fallback_name: str, taken: set[str], path: Path, warnings: list[str]) -> Material:
    import trimesh

    material = Material(unique_name(str(fallback_name), taken))
    source = getattr(visual, "material", None) if getattr(visual, "kind", None) == "texture" else None
    if source is None:
        source = getattr(visual, "material", None)
    if source is not None:
        name = getattr(source, "name", None)
        if name and str(name) != str(fallback_name):
            taken.discard(material.name)
            material.name = unique_name(str(name), taken)
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
                material.texture = image_to_rgb8(image)
                material.texture_source = path
            except Exception as err:
                warnings.append(f"{path.name}: texture of material '{material.name}' could not be decoded "
                                f"({error_text(err)}); ignored")
    elif getattr(visual, "kind", None) in ("face", "vertex"):
        main = np.asarray(visual.main_color, dtype=np.float64).reshape(-1)
        if main.size >= 3:
            rgb = np.clip(main[:3] / 255.0, 0.0, 1.0)
            material.base_color = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    return material
