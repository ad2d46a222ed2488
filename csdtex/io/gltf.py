"""glTF 2.0: the GLB / glTF reader (:func:`read_gltf`, csdtex's own: :mod:`csdtex.io.gltf_read`) and csdtex's own GLB writer
(:func:`glb_bytes`, with :func:`split_seams` and :func:`check_gltf_document`).

Conventions: glTF puts UV (0, 0) at the top-left of the image, :class:`~csdtex.mesh.Mesh` at the bottom-left, so
``v_gltf = 1 - v`` in both directions (the reader undoes the flip; the writer stores ``1 - v``). Positions are float32 in glTF (the format has no float64 vertex attributes). Writing the ``.glb`` file
atomically, with PNG-encoded textures, is :func:`csdtex.export.export_glb`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from csdtex.io._common import GENERATOR
from csdtex.mesh.types import MaterialMap, Mesh
from csdtex.sampling import TextureSampler, TextureTransform, baked_samplers

__all__ = ["check_gltf_document", "glb_bytes", "read_gltf", "split_corners", "split_seams"]

# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def read_gltf(path: Path) -> Mesh:
    """Read a ``.glb`` or ``.gltf`` file with csdtex's own reader (:func:`csdtex.io.gltf_read.read_gltf_file`).

    Every node instance of every triangle primitive (modes 4, 5, 6) is transformed into world space and concatenated;
    each glTF material is one material group (texture = its PBR ``baseColorTexture``, with its sampler and
    ``KHR_texture_transform``). Instances whose node transform mirrors (negative determinant) get their winding
    reversed, as glTF prescribes. Parts without UVs get ``uv_faces`` rows of -1. UVs come back with (0, 0) =
    bottom-left. External resources are read only when they resolve inside the file's folder. Sparse accessors,
    quantized attributes, Draco and meshopt compression are decoded (see :mod:`csdtex.io.gltf_read`).

    Args:
        path: the ``.glb`` / ``.gltf`` file.
    Returns:
        an unvalidated :class:`~csdtex.mesh.Mesh` (``source`` not set).
    Raises:
        ParseError: a malformed file. ReadError: a missing resource, an unsupported required extension, a missing
        decoder. MeshError: no triangles.
    """
    from csdtex.io.gltf_read import read_gltf_file

    return read_gltf_file(path)


# ----------------------------------------------------------------------------------------------------------------------
# Writing (binary glTF 2.0)
# ----------------------------------------------------------------------------------------------------------------------


_FLOAT, _UINT16, _UINT32 = 5126, 5123, 5125
_COMPONENT_SIZE = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COUNT = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942


def split_seams(faces: np.ndarray, uv_faces: np.ndarray, num_uvs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split vertices at UV seams: one output vertex per distinct (vertex index, uv index) pair used by a corner.

    Args:
        faces: int64 [F, 3] vertex indices.
        uv_faces: int64 [F, 3] UV indices (all >= 0).
        num_uvs: T, the number of UVs (kept for callers; the split does not need it).
    Returns:
        ``(vertex_index int64 [N], uv_index int64 [N], new_faces int64 [F, 3])`` where output vertex ``k`` has
        position ``vertices[vertex_index[k]]`` and UV ``uvs[uv_index[k]]``, and ``new_faces`` indexes output vertices
        with the same corner order as ``faces``. Output vertices are sorted by (vertex index, uv index), so they
        follow the input's vertex order.
    """
    (vertex_index, uv_index), new_faces = split_corners(faces, uv_faces)
    return vertex_index, uv_index, new_faces


def split_corners(*corner_indices: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """One output vertex per distinct combination of per-corner indices (vertex, uv, normal, ...).

    Args:
        corner_indices: K arrays int [F, 3] (all >= 0), e.g. faces, uv_faces and normal corners.
    Returns:
        ``((index_1 int64 [N], ..., index_K int64 [N]), new_faces int64 [F, 3])``: output vertex ``k`` takes entry
        ``index_j[k]`` of the j-th attribute; ``new_faces`` keeps the corner order. Output vertices are sorted by
        the combination (first array first), so they follow the input's vertex order.
    """
    stacked = np.stack([np.asarray(c, dtype=np.int64).reshape(-1) for c in corner_indices], axis=1)
    unique_rows, inverse = np.unique(stacked, axis=0, return_inverse=True)
    columns = tuple(np.ascontiguousarray(unique_rows[:, j]) for j in range(unique_rows.shape[1]))
    return columns, inverse.reshape(-1, 3).astype(np.int64)


class _BinaryBuilder:
    """Accumulates the GLB binary chunk plus bufferViews and accessors (every view starts 4-byte aligned)."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob.extend(b"\x00" * (-len(self.blob) % 4))
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def accessor(self, array: np.ndarray, component_type: int, kind: str, target: int, min_max: bool = False) -> int:
        array = np.ascontiguousarray(array)
        accessor = {
            "bufferView": self.view(array.tobytes(), target),
            "componentType": component_type,
            "count": int(array.shape[0]) if kind != "SCALAR" else int(array.size),
            "type": kind,
        }
        if min_max:  # exact float32 values, as the spec requires them to bound the stored data
            accessor["min"] = array.min(axis=0).tolist()
            accessor["max"] = array.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


_MAP_KEY = {"normal": "normalTexture", "occlusion": "occlusionTexture", "emissive": "emissiveTexture"}


class _CarriedMaps:
    """Adds the input's carried maps (:class:`~csdtex.mesh.types.MaterialMap`) to a document being built: each
    distinct image once, one texture per (image, sampler)."""

    def __init__(self, builder: _BinaryBuilder, textures: list, images: list, samplers: list, sampler_index: dict):
        self.builder, self.textures, self.images = builder, textures, images
        self.samplers, self.sampler_index = samplers, sampler_index
        self.image_index: dict[bytes, int] = {}
        self.texture_index: dict[tuple, int] = {}
        self.uses_transform = False

    def texture_info(self, carried: MaterialMap, slot: str) -> dict:
        """The glTF textureInfo of ``carried`` in slot ``slot`` (texCoord 0: the outputs' only UV set)."""
        if carried.image not in self.image_index:
            self.images.append({"bufferView": self.builder.view(carried.image), "mimeType": carried.mime_type})
            self.image_index[carried.image] = len(self.images) - 1
        sampler = (carried.sampler or TextureSampler()).to_gltf()
        sampler_key = tuple(sorted(sampler.items()))
        if sampler_key not in self.sampler_index:
            self.samplers.append(sampler)
            self.sampler_index[sampler_key] = len(self.samplers) - 1
        key = (self.image_index[carried.image], self.sampler_index[sampler_key])
        if key not in self.texture_index:
            self.textures.append({"sampler": key[1], "source": key[0]})
            self.texture_index[key] = len(self.textures) - 1
        info: dict = {"index": self.texture_index[key], "texCoord": 0}
        if slot == "normal" and carried.strength != 1.0:
            info["scale"] = float(carried.strength)
        if slot == "occlusion" and carried.strength != 1.0:
            info["strength"] = float(carried.strength)
        if carried.transform:
            info["extensions"] = {"KHR_texture_transform": dict(carried.transform)}
            self.uses_transform = True
        return info


def _gltf_document(mesh: Mesh, png_images: Sequence[bytes], name: str,
                   samplers_written: Sequence[TextureSampler] | None = None,
                   transforms: Sequence[TextureTransform | None] | None = None) -> tuple[dict, bytes]:
    """Build the glTF JSON document and its binary buffer (see :func:`glb_bytes` for the layout)."""
    normal_table, normal_corners = mesh.export_normals()  # the file's own normals, else smooth across seams
    tangent_table = mesh.export_tangents() if any(m.maps.get("normal") for m in mesh.materials) else None
    builder = _BinaryBuilder()
    primitives: list[dict] = []
    materials: list[dict] = []
    textures: list[dict] = []
    images: list[dict] = []
    samplers: list[dict] = []
    sampler_index: dict[tuple, int] = {}
    baked = list(samplers_written) if samplers_written is not None else baked_samplers(mesh)
    carried_maps = _CarriedMaps(builder, textures, images, samplers, sampler_index)
    extensions_used: set[str] = set()

    for material_index, material in enumerate(mesh.materials):
        selected = np.flatnonzero(mesh.face_materials == material_index)
        if len(selected) == 0:
            continue  # glTF forbids empty accessors; an unused material is left out of the GLB
        (vertex_index, uv_index, normal_index), new_faces = split_corners(
            mesh.faces[selected], mesh.uv_faces[selected], normal_corners[selected])
        positions = mesh.vertices[vertex_index].astype(np.float32)
        vertex_normal = normal_table[normal_index].astype(np.float32)
        uv = mesh.uvs[uv_index]
        texcoord = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1).astype(np.float32)  # glTF: (0, 0) = top-left
        # The largest value of the index type is reserved for primitive restart, hence "<" and not "<=".
        index_type, index_code = (np.uint16, _UINT16) if len(positions) < 0xFFFF else (np.uint32, _UINT32)

        # The sampler the bake placed this material's charts by (csdtex.sampling.baked_sampler): CLAMP_TO_EDGE along
        # an axis whose UVs lie in [0, 1] (REPEAT would bleed the opposite image edge into border charts), else the
        # input texture's wrap mode (REPEAT by default), so tiled UVs find their paint where the bake put it.
        sampler = baked[material_index].to_gltf()
        key = tuple(sorted(sampler.items()))
        if key not in sampler_index:
            samplers.append(sampler)
            sampler_index[key] = len(samplers) - 1

        attributes = {
            "POSITION": builder.accessor(positions, _FLOAT, "VEC3", _ARRAY_BUFFER, min_max=True),
            "NORMAL": builder.accessor(vertex_normal, _FLOAT, "VEC3", _ARRAY_BUFFER),
            "TEXCOORD_0": builder.accessor(texcoord, _FLOAT, "VEC2", _ARRAY_BUFFER),
        }
        frames = tangent_table[normal_index] if tangent_table is not None and "normal" in material.maps else None
        if frames is not None and np.isfinite(frames).all():  # the frame the carried normal map was baked in
            attributes["TANGENT"] = builder.accessor(frames.astype(np.float32), _FLOAT, "VEC4", _ARRAY_BUFFER)
        flat_indices = new_faces.reshape(-1).astype(index_type)
        indices = builder.accessor(flat_indices, index_code, "SCALAR", _ELEMENT_ARRAY_BUFFER)
        images.append({"bufferView": builder.view(png_images[material_index]), "mimeType": "image/png"})
        textures.append({"sampler": sampler_index[key], "source": len(images) - 1})
        base_colour_texture: dict = {"index": len(textures) - 1, "texCoord": 0}
        transform = transforms[material_index] if transforms is not None else None
        if transform is not None and transform.to_gltf() is not None:
            base_colour_texture["extensions"] = {"KHR_texture_transform": transform.to_gltf()}
            extensions_used.add("KHR_texture_transform")
        entry = {
            "name": material.name,
            "pbrMetallicRoughness": {
                "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                "baseColorTexture": base_colour_texture,
                "metallicFactor": 0.0 if material.metallic_factor is None else float(material.metallic_factor),
                "roughnessFactor": 0.9 if material.roughness_factor is None else float(material.roughness_factor),
            },
            # As the input says; else (OBJ, PLY, ...) both sides: existing meshes are often open (cloth, leaves, scans).
            "doubleSided": True if material.double_sided is None else bool(material.double_sided),
        }
        if material.emissive_factor is not None and any(material.emissive_factor):
            entry["emissiveFactor"] = [float(v) for v in material.emissive_factor]
            if material.emissive_strength is not None and material.emissive_strength != 1.0:
                entry["extensions"] = {"KHR_materials_emissive_strength": {
                    "emissiveStrength": float(material.emissive_strength)}}
                extensions_used.add("KHR_materials_emissive_strength")
        for slot, carried in material.maps.items():  # the input's other maps, unchanged (same UVs, same UV set)
            info = carried_maps.texture_info(carried, slot)
            if slot == "metallic_roughness":
                entry["pbrMetallicRoughness"]["metallicRoughnessTexture"] = info
            else:
                entry[_MAP_KEY[slot]] = info
        if material.has_cutout:  # the PNG carries the alpha
            entry["alphaMode"] = material.alpha_mode
            if material.alpha_mode == "MASK":
                entry["alphaCutoff"] = float(material.alpha_cutoff)
        materials.append(entry)
        primitives.append({"attributes": attributes, "indices": indices, "material": len(materials) - 1, "mode": 4})

    builder.blob.extend(b"\x00" * (-len(builder.blob) % 4))
    document: dict = {
        "asset": {"version": "2.0", "generator": GENERATOR},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "meshes": [{"name": name, "primitives": primitives}],
        "materials": materials,
        "textures": textures,
        "images": images,
        "samplers": samplers,
        "accessors": builder.accessors,
        "bufferViews": builder.buffer_views,
        "buffers": [{"byteLength": len(builder.blob)}],
    }
    if carried_maps.uses_transform:
        extensions_used.add("KHR_texture_transform")
    if extensions_used:
        document["extensionsUsed"] = sorted(extensions_used)
    return document, bytes(builder.blob)


def check_gltf_document(document: dict, binary: bytes) -> None:
    """Consistency checks on a glTF document with one GLB binary buffer (raise ValueError on the first problem).

    Checks: version 2.0; buffer byteLength within the binary chunk; every bufferView inside the buffer and 4-byte
    aligned; every accessor has a known componentType/type, count >= 1, fits its bufferView, and (for indices)
    uses an unsigned index type whose values stay below the primitive's vertex count; POSITION has min/max;
    all attributes of a primitive have the same count; material/texture/image/sampler references exist.
    """

    def fail(message: str) -> None:
        raise ValueError(f"invalid glTF document: {message}")

    if document.get("asset", {}).get("version") != "2.0":
        fail("asset.version must be '2.0'")
    buffers = document.get("buffers", [])
    if len(buffers) != 1 or buffers[0]["byteLength"] > len(binary) or len(binary) - buffers[0]["byteLength"] > 3:
        fail("expected one buffer whose byteLength matches the BIN chunk")
    views = document.get("bufferViews", [])
    for i, view in enumerate(views):
        if view["byteOffset"] % 4 or view["byteOffset"] + view["byteLength"] > buffers[0]["byteLength"]:
            fail(f"bufferView {i} is misaligned or outside the buffer")
    accessors = document.get("accessors", [])
    for i, accessor in enumerate(accessors):
        size = _COMPONENT_SIZE.get(accessor["componentType"])
        width = _TYPE_COUNT.get(accessor["type"])
        if size is None or width is None or accessor["count"] < 1:
            fail(f"accessor {i} has an unknown componentType/type or no elements")
        view = views[accessor["bufferView"]]
        if accessor.get("byteOffset", 0) + accessor["count"] * size * width > view["byteLength"]:
            fail(f"accessor {i} does not fit its bufferView")
    dtype_of = {_UINT16: np.uint16, _UINT32: np.uint32, _FLOAT: np.float32}
    for mesh in document.get("meshes", []):
        for p, primitive in enumerate(mesh["primitives"]):
            counts = {accessors[a]["count"] for a in primitive["attributes"].values()}
            if len(counts) != 1:
                fail(f"primitive {p} has attributes of different counts {sorted(counts)}")
            position = accessors[primitive["attributes"]["POSITION"]]
            if "min" not in position or "max" not in position:
                fail(f"primitive {p} POSITION lacks min/max")
            indices = accessors[primitive["indices"]]
            if indices["componentType"] not in (_UINT16, _UINT32) or indices["type"] != "SCALAR":
                fail(f"primitive {p} indices must be SCALAR uint16/uint32")
            if indices["count"] % 3:
                fail(f"primitive {p} has {indices['count']} indices, not a multiple of 3")
            view = views[indices["bufferView"]]
            values = np.frombuffer(
                binary, dtype_of[indices["componentType"]], indices["count"], view["byteOffset"]
            )
            if int(values.max()) >= position["count"]:
                fail(f"primitive {p} indexes past its {position['count']} vertices")
            if primitive.get("material", 0) >= len(document.get("materials", [])):
                fail(f"primitive {p} references a missing material")
    for i, texture in enumerate(document.get("textures", [])):
        if texture["source"] >= len(document.get("images", [])) or texture["sampler"] >= len(document["samplers"]):
            fail(f"texture {i} references a missing image or sampler")
    for i, material in enumerate(document.get("materials", [])):
        pbr = material["pbrMetallicRoughness"]
        infos = [pbr["baseColorTexture"], pbr.get("metallicRoughnessTexture"), *(material.get(key) for key in
                                                                                 _MAP_KEY.values())]
        if any(info is not None and info["index"] >= len(document.get("textures", [])) for info in infos):
            fail(f"material {i} references a missing texture")


def _glb_container(document: dict, binary: bytes) -> bytes:
    """Pack JSON + BIN into a GLB: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    json_bytes = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    binary = binary + b"\x00" * (-len(binary) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(json_bytes), _CHUNK_JSON),
            json_bytes,
            struct.pack("<II", len(binary), _CHUNK_BIN),
            binary,
        ]
    )


def glb_bytes(mesh: Mesh, png_images: Sequence[bytes], name: str,
              samplers: Sequence[TextureSampler] | None = None,
              transforms: Sequence[TextureTransform | None] | None = None) -> bytes:
    """The content of a binary glTF 2.0 file holding ``mesh`` with one embedded PNG texture per material.

    Layout: one scene, one node (no transform), one mesh named ``name``, one triangle primitive per material that
    has faces. glTF wants one index per vertex, so vertices are split at UV seams and normal creases
    (:func:`split_corners`, one vertex per distinct (vertex, uv, normal) combination, per primitive); faces keep their
    input order within a material. Attributes:

    - ``POSITION``: float32 VEC3 with exact min/max (float64 input coordinates rounded to float32).
    - ``NORMAL``: float32 VEC3: the input file's own normals where it has them (hard edges and custom normals
      kept; vertices are split where a position has several), else smooth area-weighted normals over the original
      vertices (:func:`csdtex.mesh.vertex_normals`, shared across seams); :meth:`csdtex.mesh.Mesh.export_normals`.
    - ``TEXCOORD_0``: float32 VEC2 ``(u, 1 - v)`` (glTF's origin is the top-left of the image).
    - indices: uint16 when the primitive has fewer than 65535 vertices, else uint32.

    Each material is PBR metallic-roughness with ``baseColorTexture`` -> texture -> image embedded in the buffer
    (``image/png``), metallicFactor 0, roughnessFactor 0.9, double-sided; a material with an input alpha (MASK or
    BLEND, :attr:`csdtex.mesh.Material.alpha`) keeps its ``alphaMode`` / ``alphaCutoff`` and its PNG is RGBA.
    Samplers: LINEAR mag filter, LINEAR_MIPMAP_LINEAR min filter, and per axis the wrap mode of
    :func:`csdtex.sampling.baked_sampler` (the rule the bake used): CLAMP_TO_EDGE when the material's UVs lie in
    [0, 1] along it, else the input material's wrap
    mode (REPEAT when it had none, MIRRORED_REPEAT kept). No ``KHR_texture_transform`` is written: baked textures
    live in raw UV space. ``samplers`` / ``transforms`` replace those for textures that do not (an edit writes each
    texture in its input's own image space, so it keeps the input's sampler and transform). Chunks and bufferViews
    are 4-byte aligned; ``asset.generator`` is ``'csdtex'``. The document is checked with
    :func:`check_gltf_document` before packing.

    Args:
        mesh: a mesh with UVs on every face; vertices float64 [V, 3], faces / uv_faces int64 [F, 3], uvs float64
            [T, 2] with (0, 0) = bottom-left, face_materials int64 [F] (inputs are not validated here; see
            :func:`csdtex.export.export_glb`).
        png_images: one PNG file content per material, in material order (used for materials that have faces).
        name: the scene, node and mesh name.
        samplers: per material, the sampler of its written texture (default: :func:`csdtex.sampling.baked_samplers`).
        transforms: per material, the ``KHR_texture_transform`` of its written texture, or None (default: none).
    Returns:
        the GLB bytes: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros.
    Raises:
        ValueError: the document failed :func:`check_gltf_document` (a bug, not a user error).
    """
    document, binary = _gltf_document(mesh, png_images, name, samplers, transforms)
    check_gltf_document(document, binary)
    return _glb_container(document, binary)
