"""csdtex's glTF 2.0 reader (``.glb`` and ``.gltf``): the scene's triangles in world space, UVs, vertex colours and
base-colour materials with their samplers and texture transforms.

What it reads (the README's "glTF features" list is this module's :data:`GLTF_EXTENSIONS` plus):

- the default scene (``scene``, else scene 0, else every root node; a file without nodes: every mesh once), node
  hierarchies with ``matrix`` or ``translation``/``rotation``/``scale``; mirroring nodes (negative determinant) get
  their winding reversed (glTF 2.0, 3.7.4); ``EXT_mesh_gpu_instancing`` instances;
- primitive modes TRIANGLES (4), TRIANGLE_STRIP (5, with alternating winding; triangles with a repeated index, the
  strip's restart trick, are dropped) and TRIANGLE_FAN (6); points and lines are skipped with a warning;
- accessors of every component type, interleaved (``byteStride``), normalized or not (``KHR_mesh_quantization``),
  sparse (base values from the buffer view, or zeros, then the sparse substitutions), ``data:`` URIs, external
  ``.bin`` files inside the mesh's folder, compressed geometry (:mod:`csdtex.io.gltf_data`);
- per material: ``pbrMetallicRoughness.baseColorTexture`` (its image as uint8 RGB, its ``texCoord`` set, its sampler
  and ``KHR_texture_transform``) and ``baseColorFactor`` (linear: with a texture, its RGB is multiplied into the
  texture's texels in linear light, which is what viewers show, so that an edit keeps the colour of the parts it does
  not change; without one, ``Material.base_color`` is the factor sRGB-encoded, as displayed); ``COLOR_0``
  as vertex colours; ``alphaMode`` MASK / BLEND: the image's alpha times the factor's (``Material.alpha``); ``NORMAL``
  in world space (``Mesh.normals``); the normal, occlusion, metallic-roughness and emissive maps that read the base
  colour's UV set, with their samplers, strengths and texture transforms, and the metallic, roughness and emissive
  factors (``Material.maps``, ``metallic_factor``, ...), which the outputs carry unchanged. What the outputs cannot
  carry (other UV sets, a map on another UV set, KTX2 images) is named in one warning.

UVs come back with (0, 0) = bottom-left: ``v = 1 - v_file`` (glTF puts the origin at the top-left).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from csdtex.errors import MeshError
from csdtex.io._common import (ParseError, ReadError, error_text, image_alpha8, image_to_rgb8, map_image_bytes,
                               quiet_libraries, sixteen_bit_note)
from csdtex.io.gltf_data import GltfData, decode_draco, read_container
from csdtex.mesh.types import Material, MaterialMap, Mesh, unique_name
from csdtex.sampling import TextureSampler, TextureTransform
from csdtex.wording import counted

__all__ = ["GLTF_EXTENSIONS", "IGNORABLE_EXTENSIONS", "read_gltf_file"]

GLTF_EXTENSIONS: dict[str, str] = {
    "KHR_draco_mesh_compression": "Draco-compressed geometry, decoded with DracoPy (extra 'compressed')",
    "EXT_meshopt_compression": "meshoptimizer-compressed buffers, decoded with meshopt (extra 'compressed')",
    "KHR_meshopt_compression": "meshoptimizer-compressed buffers, decoded with meshopt (extra 'compressed')",
    "KHR_mesh_quantization": "integer (quantized) positions, UVs and colours",
    "KHR_texture_transform": "applied when sampling input textures; not written to painted outputs",
    "EXT_mesh_gpu_instancing": "instances expanded into triangles",
    "EXT_texture_webp": "WebP base-colour images (decoded with Pillow)",
    "KHR_materials_emissive_strength": "carried into the outputs with the emissive colour",
}
"""glTF extensions csdtex applies, with how."""

IGNORABLE_EXTENSIONS: dict[str, str] = {
    "KHR_texture_basisu": "KTX2 images are not decoded (a PNG/JPEG fallback source is used when present)",
    "KHR_materials_unlit": "only the base colour is read",
    "KHR_materials_ior": "only the base colour is read",
    "KHR_materials_specular": "only the base colour is read",
    "KHR_materials_transmission": "only the base colour is read",
    "KHR_materials_volume": "only the base colour is read",
    "KHR_materials_clearcoat": "only the base colour is read",
    "KHR_materials_sheen": "only the base colour is read",
    "KHR_materials_iridescence": "only the base colour is read",
    "KHR_materials_anisotropy": "only the base colour is read",
    "KHR_materials_dispersion": "only the base colour is read",
    "KHR_materials_pbrSpecularGlossiness": "its diffuse texture is not read",
    "KHR_materials_variants": "the default material of each primitive is used",
    "KHR_lights_punctual": "lights are not used",
    "EXT_lights_image_based": "lights are not used",
    "KHR_animation_pointer": "animations are not used",
    "KHR_xmp_json_ld": "metadata only",
    "KHR_xmp": "metadata only",
}
"""glTF extensions csdtex ignores without harm (the file still loads when they are required), with what is lost."""

_MODE_NAMES = {0: "points", 1: "lines", 2: "line loops", 3: "line strips", 4: "triangles", 5: "triangle strips",
               6: "triangle fans"}


def read_gltf_file(path: Path) -> Mesh:
    """Read a ``.glb`` / ``.gltf`` file (see the module docstring).

    Returns:
        an unvalidated :class:`~csdtex.mesh.Mesh` (``source`` not set): vertices float64 [V, 3] in world space (every
        node instance of every primitive, concatenated), faces int64 [F, 3], uvs float64 [T, 2] with (0, 0) =
        bottom-left (or None), uv_faces int64 [F, 3] (rows of -1 for primitives without UVs), face_materials int64
        [F] (one material per glTF material; primitives without one get one per glTF mesh, named after it),
        vertex_colors float32 [V, 3] or None, ``extensions`` = ``extensionsUsed`` -> applied or not.
    Raises:
        ParseError: malformed JSON / GLB / accessors. ReadError: a required resource could not be read, a required
        extension is not supported, or a decoder is missing. MeshError: no triangles in the scene.
    """
    document, binary = read_container(path)
    version = str((document.get("asset") or {}).get("version", ""))
    if not version.startswith("2"):
        raise ParseError(f"asset.version is {version or 'missing'}; csdtex reads glTF 2.0")
    used = [str(name) for name in document.get("extensionsUsed") or []]
    required = [str(name) for name in document.get("extensionsRequired") or []]
    refused = [name for name in required if name not in GLTF_EXTENSIONS and name not in IGNORABLE_EXTENSIONS]
    if refused:
        raise ReadError(f"it requires the glTF extension {', '.join(refused)}, which csdtex does not support",
                        remedy="convert the file without it (e.g. re-export it from Blender)")
    warnings: list[str] = []
    reader = _Reader(document, GltfData(document, binary, path, warnings), path, warnings)
    with quiet_libraries():
        mesh = reader.build()
    mesh.read_files = list(reader.data.read_files)
    mesh.extensions = {name: name in GLTF_EXTENSIONS for name in dict.fromkeys(used + required)}
    return mesh


def _node_matrix(node: dict) -> np.ndarray:
    """A node's local transform as float64 [4, 4] (``matrix`` is column-major; else T * R * S)."""
    if "matrix" in node:
        values = np.asarray(node["matrix"], dtype=np.float64)
        if values.size != 16:
            raise ParseError("a node matrix does not have 16 numbers")
        return values.reshape(4, 4).T
    matrix = np.eye(4)
    x, y, z, w = (float(v) for v in node.get("rotation", (0.0, 0.0, 0.0, 1.0)))
    norm = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)[None, :]
    matrix[:3, 3] = np.asarray(node.get("translation", (0.0, 0.0, 0.0)), dtype=np.float64)
    return matrix


def _mesh_label(mesh: dict, index: int) -> str:
    """How messages name a glTF mesh: ``mesh 'Body'``, or ``mesh 3`` when it has no name."""
    return f"mesh '{mesh['name']}'" if mesh.get("name") else f"mesh {index}"


def _skinned(matrices: np.ndarray, positions: np.ndarray, normals: np.ndarray | None, tangents: np.ndarray | None,
             faces: np.ndarray):
    """Apply per-vertex skinning matrices float64 [N, 4, 4] to positions [N, 3], normals [N, 3] (by the inverse
    transpose) and tangents [N, 4] (xyz by the matrix; w flips where it mirrors); faces [F, 3] whose corners the
    matrices mirror (negative determinant, by majority) get the other winding."""
    linear = matrices[:, :3, :3]
    vertices = np.einsum("nij,nj->ni", linear, positions) + matrices[:, :3, 3]
    determinants = np.linalg.det(linear)
    usable = np.abs(determinants) > 1e-300
    if normals is not None:
        inverse = np.linalg.inv(np.where(usable[:, None, None], linear, np.eye(3)))
        normals = np.einsum("nj,nji->ni", normals, inverse)  # n' = n M^-1: the inverse transpose
    if tangents is not None:
        sign = np.where(determinants < 0, -1.0, 1.0)[:, None]
        tangents = np.concatenate([np.einsum("nij,nj->ni", linear, tangents[:, :3]), tangents[:, 3:4] * sign], 1)
    mirrored = (determinants[faces] < 0).sum(axis=1) >= 2
    faces = np.where(mirrored[:, None], faces[:, [0, 2, 1]], faces)
    return vertices, normals, tangents, faces


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    """Triangle corner indices int64 [F, 3] of a primitive's index list in mode 4, 5 or 6 (glTF 2.0, 3.7.2.1)."""
    indices = indices.reshape(-1).astype(np.int64)
    if mode == 4:
        return indices[: len(indices) // 3 * 3].reshape(-1, 3)
    count = len(indices) - 2
    if count <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    i = np.arange(count)
    if mode == 5:  # strips: p_i = (v_i, v_{i + 1 + i % 2}, v_{i + 2 - i % 2})
        faces = np.stack([indices[i], indices[i + 1 + i % 2], indices[i + 2 - i % 2]], axis=1)
        restart = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
        return faces[~restart]
    return np.stack([indices[i + 1], indices[i + 2], np.full(count, indices[0])], axis=1)  # fans


def _uv_set_name(attribute_names, uv_set: int) -> str:
    """The attribute a primitive's base-colour texture reads: ``TEXCOORD_<uv_set>``, or ``TEXCOORD_0`` when the
    primitive lacks that set (a warning says so)."""
    return f"TEXCOORD_{uv_set}" if f"TEXCOORD_{uv_set}" in attribute_names else "TEXCOORD_0"


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1), float64."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1], float64."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1.0 / 2.4) - 0.055)


def _times_factor(texture: np.ndarray, factor: tuple[float, float, float]) -> np.ndarray:
    """uint8 [H, W, 3] sRGB ``texture`` times the linear RGB ``baseColorFactor`` (each in [0, 1]), as glTF viewers
    do: texels decoded to linear light, multiplied, encoded again and rounded (a white texel under factor 0.5 is 188,
    not 128); unchanged (the same array) when the factor is white, as it is in most files."""
    if all(f >= 1.0 for f in factor):
        return texture
    table = _linear_to_srgb(_srgb_to_linear(np.arange(256) / 255.0)[:, None] * np.asarray(factor)[None, :]) * 255.0
    lookup = np.clip(np.rint(table), 0, 255).astype(np.uint8)  # [256, 3]: one row per 8-bit value
    return np.stack([lookup[texture[..., channel], channel] for channel in range(3)], axis=-1)


def _image_alpha(image, factor_alpha: float) -> np.ndarray:
    """uint8 [H, W] alpha of a PIL image (Pillow's alpha bands are 8-bit; 255 where the image has none) times the
    factor's alpha in [0, 1], rounded."""
    alpha = image_alpha8(image)
    alpha = np.full((image.height, image.width), 255.0, np.float32) if alpha is None else alpha.astype(np.float32)
    return np.clip(np.rint(alpha * min(max(factor_alpha, 0.0), 1.0)), 0, 255).astype(np.uint8)


_MAP_KEYS: dict[str, tuple[str, str]] = {
    "normal": ("normalTexture", "normal map"),
    "occlusion": ("occlusionTexture", "occlusion map"),
    "metallic_roughness": ("metallicRoughnessTexture", "metallic-roughness map"),
    "emissive": ("emissiveTexture", "emissive map"),
}
"""Material map slot (:data:`csdtex.mesh.types.MAP_SLOTS`) -> (glTF textureInfo key, words for messages)."""


def _unit(value, default: float) -> float:
    """A glTF factor in [0, 1] (``default`` when missing or not a number)."""
    return float(min(max(value, 0.0), 1.0)) if isinstance(value, (int, float)) and math.isfinite(value) else default


class _Reader:
    def __init__(self, document: dict, data: GltfData, path: Path, warnings: list[str]) -> None:
        self.document, self.data, self.path, self.warnings = document, data, path, warnings
        self.materials: list[Material] = []
        self.material_index: dict[object, int] = {}
        self.uv_sets: dict[object, int] = {}
        self.taken: set[str] = set()
        self.geometry_cache: dict[tuple[int, int], tuple] = {}
        self.skipped_modes: set[str] = set()
        self.not_carried: dict[str, list[str]] = {}
        self.tangent_parts: dict[int, set[bool]] = {}  # material -> whether its parts had TANGENT
        self.posed: list[str] = []  # "mesh 'X' has morph targets" / "... is skinned": output notes
        self._node_worlds: list[np.ndarray] | None = None

    # -- scene -------------------------------------------------------------------------------------------------------

    def instances(self) -> list[tuple[np.ndarray, int, int | None]]:
        """(world matrix float64 [4, 4], mesh index, node index or None) of every mesh instance of the default
        scene."""
        nodes = self.document.get("nodes") or []
        scenes = self.document.get("scenes") or []
        if not nodes:
            return [(np.eye(4), m, None) for m in range(len(self.document.get("meshes") or []))]
        scene_index = self.document.get("scene", 0)
        if scenes and isinstance(scene_index, int) and 0 <= scene_index < len(scenes):
            roots = list(scenes[scene_index].get("nodes") or [])
        else:
            children = {c for node in nodes for c in (node.get("children") or [])}
            roots = [n for n in range(len(nodes)) if n not in children]
        result: list[tuple[np.ndarray, int]] = []
        stack = [(root, np.eye(4), frozenset()) for root in reversed(roots)]
        while stack:
            index, parent, ancestors = stack.pop()
            if not isinstance(index, int) or not 0 <= index < len(nodes) or index in ancestors:
                raise ParseError(f"node {index} does not exist or is its own ancestor")
            node = nodes[index]
            world = parent @ _node_matrix(node)
            if "mesh" in node:
                for matrix in self.gpu_instances(node):
                    result.append((world @ matrix, int(node["mesh"]), index))
            for child in reversed(node.get("children") or []):
                stack.append((child, world, ancestors | {index}))
        return result

    def node_structure_note(self) -> str | None:
        """What the outputs' single node loses of the scene's node tree (transforms applied to the vertices, a mesh
        used by several nodes written once per use, several nodes merged), as one line, or None when the scene is a
        single mesh instance under an identity transform."""
        instances = self.instances()
        moved = sum(not np.allclose(world, np.eye(4), rtol=0.0, atol=1e-12) for world, _, _ in instances)
        uses: dict[int, int] = {}
        for _, mesh_index, _ in instances:
            uses[mesh_index] = uses.get(mesh_index, 0) + 1
        shared = sum(1 for count in uses.values() if count > 1)
        if not moved and not shared and len(instances) <= 1:
            return None
        parts = [f"{counted(len(instances), 'mesh instance')} merged into one mesh under one node"
                 ] if len(instances) > 1 else []
        if moved:
            parts.append(f"the node transforms of {counted(moved, 'instance')} applied to the vertices (the output "
                         "vertices are the input's in world space, with the scene's units and orientation)")
        if shared:
            parts.append(f"{counted(shared, 'mesh')} used by several nodes written once per use")
        return (f"{self.path.name}: the outputs do not keep the node tree: {'; '.join(parts)}; re-parent or "
                "re-instance in your 3D tool if your pipeline needs the original hierarchy")

    def gpu_instances(self, node: dict) -> list[np.ndarray]:
        """Local instance matrices of ``EXT_mesh_gpu_instancing`` (one identity without the extension)."""
        extension = (node.get("extensions") or {}).get("EXT_mesh_gpu_instancing")
        if not extension:
            return [np.eye(4)]
        attributes = extension.get("attributes") or {}
        parts = {name: self.data.accessor(index) for name, index in attributes.items()
                 if name in ("TRANSLATION", "ROTATION", "SCALE")}
        count = max((len(values) for values in parts.values()), default=0)
        matrices = []
        for k in range(count):
            trs = {}
            if "TRANSLATION" in parts:
                trs["translation"] = parts["TRANSLATION"][k, :3]
            if "ROTATION" in parts:
                trs["rotation"] = parts["ROTATION"][k, :4]
            if "SCALE" in parts:
                trs["scale"] = parts["SCALE"][k, :3]
            matrices.append(_node_matrix(trs))
        return matrices or [np.eye(4)]

    # -- geometry ----------------------------------------------------------------------------------------------------

    def geometry(self, mesh_index: int, primitive_index: int, primitive: dict, uv_set: int):
        """(positions [N, 3], faces [F, 3], uvs [N, 2] or None, colours [N, 3] or None, normals [N, 3] or None,
        tangents [N, 4] or None), cached per primitive."""
        key = (mesh_index, primitive_index)
        if key not in self.geometry_cache:
            mode = int(primitive.get("mode", 4))
            attributes_info = primitive.get("attributes") or {}
            if "KHR_draco_mesh_compression" in (primitive.get("extensions") or {}):
                faces, attributes = decode_draco(self.data, primitive)
                if mode != 4:
                    raise ParseError("a Draco-compressed primitive is not in TRIANGLES mode")
            else:
                attributes = {name: self.data.accessor(index) for name, index in attributes_info.items()
                              if name in ("POSITION", "NORMAL", "TANGENT", "COLOR_0") or name.startswith("TEXCOORD_")}
                if "POSITION" not in attributes:
                    raise ParseError(f"mesh {mesh_index} primitive {primitive_index} has no POSITION")
                count = len(attributes["POSITION"])
                if "indices" in primitive:
                    accessors, index = self.document.get("accessors") or [], primitive["indices"]
                    info = accessors[index] if isinstance(index, int) and 0 <= index < len(accessors) else None
                    if info is not None and (info.get("componentType") not in (5121, 5123, 5125)
                                             or info.get("type") != "SCALAR"):  # a missing one: accessor() names it
                        raise ParseError(f"mesh {mesh_index} primitive {primitive_index}: its indices are not unsigned "
                                         "integers (SCALAR of UNSIGNED_BYTE, UNSIGNED_SHORT or UNSIGNED_INT)")
                    indices = self.data.accessor(primitive["indices"], normalize=False).reshape(-1)
                else:
                    indices = np.arange(count)
                faces = _triangles(indices, mode)
                if mode == 4 and len(indices) % 3:
                    self.warnings.append(f"{self.path.name}: mesh {mesh_index} primitive {primitive_index} has "
                                         f"{len(indices)} indices, not a multiple of 3; the last {len(indices) % 3} "
                                         "were ignored")
                if len(faces) and (faces.min() < 0 or faces.max() >= count):
                    raise ParseError(f"mesh {mesh_index} primitive {primitive_index} indexes past its {count} "
                                     "vertices")
            if "POSITION" not in attributes:
                raise ParseError(f"mesh {mesh_index} primitive {primitive_index} has no POSITION")
            for name, values in attributes.items():  # (NORMAL / TANGENT of another shape are dropped below)
                wanted = 3 if name == "POSITION" else 2 if name.startswith("TEXCOORD_") else 0
                if wanted and (values.ndim != 2 or values.shape[1] < wanted):
                    found = values.shape[1] if values.ndim == 2 else 1
                    raise ParseError(f"mesh {mesh_index} primitive {primitive_index}: {name} has {found} "
                                     f"component(s) per vertex, glTF requires {wanted} (VEC{wanted})")
                if wanted == 2 and len(values) != len(attributes["POSITION"]):
                    raise ParseError(f"mesh {mesh_index} primitive {primitive_index}: {name} has {len(values)} "
                                     f"entries for {len(attributes['POSITION'])} vertices")
            positions = attributes["POSITION"][:, :3]
            uv_name = _uv_set_name(attributes, uv_set)
            if uv_name != f"TEXCOORD_{uv_set}" and uv_name in attributes:
                self.warnings.append(f"{self.path.name}: mesh {mesh_index} primitive {primitive_index} has no "
                                     f"TEXCOORD_{uv_set}, which its base-colour texture names; TEXCOORD_0 is used")
            uvs = attributes.get(uv_name)
            if uvs is not None:
                uvs = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1)  # glTF (0, 0) = top-left -> bottom-left
            colors = attributes.get("COLOR_0")
            if colors is not None:
                colors = np.clip(colors[:, :3], 0.0, 1.0)
            normals = attributes.get("NORMAL")
            if normals is not None and (normals.ndim != 2 or normals.shape[1] < 3 or len(normals) != len(positions)):
                normals = None  # unusable: export falls back to smooth normals
            tangents = attributes.get("TANGENT") if normals is not None else None  # glTF: ignored without normals
            if tangents is not None and (tangents.ndim != 2 or tangents.shape[1] != 4
                                         or len(tangents) != len(positions)):
                tangents = None
            self.geometry_cache[key] = (positions, faces, uvs, colors,
                                        None if normals is None else normals[:, :3], tangents)
        return self.geometry_cache[key]

    # -- materials ---------------------------------------------------------------------------------------------------

    def material_for(self, primitive: dict, mesh_index: int, mesh_name: str | None) -> tuple[int, int]:
        """(csdtex material index, texture coordinate set) of a primitive; materials are made on first use."""
        gltf_index = primitive.get("material")
        key: object = gltf_index if isinstance(gltf_index, int) else ("mesh", mesh_index)
        if key not in self.material_index:
            materials = self.document.get("materials") or []
            if isinstance(gltf_index, int) and not 0 <= gltf_index < len(materials):
                raise ParseError(f"mesh {mesh_index} names material {gltf_index}, but the file has "
                                 f"{len(materials)} material(s)")
            source = materials[gltf_index] if isinstance(gltf_index, int) else {}
            fallback = mesh_name or f"material_{len(self.materials)}"
            material = Material(unique_name(str(source.get("name") or fallback), self.taken))
            self.uv_sets[key] = self.read_material(source, material)
            self.material_index[key] = len(self.materials)
            self.materials.append(material)
        return self.material_index[key], self.uv_sets[key]

    def read_material(self, source: dict, material: Material) -> int:
        """Fill base colour, texture, sampler, transform and the carried maps and factors; return the texture
        coordinate set to use."""
        uv_set = self.read_base_colour(source, material)
        self.read_maps(source, material, uv_set)
        return uv_set

    def read_maps(self, source: dict, material: Material, uv_set: int) -> None:
        """The maps and factors csdtex carries unchanged (:attr:`Material.maps`): each map that reads ``uv_set`` (the
        UV set the outputs keep); the others are named in the not-carried warning."""
        pbr = source.get("pbrMetallicRoughness") or {}
        material.metallic_factor = _unit(pbr.get("metallicFactor"), 1.0)
        material.roughness_factor = _unit(pbr.get("roughnessFactor"), 1.0)
        emissive = source.get("emissiveFactor")
        material.emissive_factor = (0.0, 0.0, 0.0)  # glTF's default: an emissive map alone shows nothing
        if isinstance(emissive, list) and len(emissive) >= 3:
            material.emissive_factor = tuple(_unit(v, 0.0) for v in emissive[:3])
        strength = ((source.get("extensions") or {}).get("KHR_materials_emissive_strength") or {}).get(
            "emissiveStrength")
        if isinstance(strength, (int, float)) and math.isfinite(strength) and strength >= 0:
            material.emissive_strength = float(strength)
        material.double_sided = bool(source.get("doubleSided", False))
        lost: list[str] = []
        for slot, (key, words) in _MAP_KEYS.items():
            info = (pbr if slot == "metallic_roughness" else source).get(key)
            if not isinstance(info, dict):
                continue
            transform = (info.get("extensions") or {}).get("KHR_texture_transform")
            transform = dict(transform) if isinstance(transform, dict) else None
            map_set = int((transform or {}).pop("texCoord", info.get("texCoord", 0)))
            if map_set != uv_set:
                lost.append(f"{words} (it reads TEXCOORD_{map_set}, the base colour TEXCOORD_{uv_set})")
                continue
            try:
                texture = self.document.get("textures", [])[int(info["index"])]
                sampler_index = texture.get("sampler")
                samplers = self.document.get("samplers") or []
                sampler = TextureSampler.from_gltf(
                    samplers[sampler_index] if isinstance(sampler_index, int) and sampler_index < len(samplers)
                    else None)
                image_index = self.image_source(texture)
                if image_index is None:
                    lost.append(f"{words} (a KTX2/Basis image)")
                    continue
                image, mime_type = map_image_bytes(self.data.image_bytes(image_index))
            except Exception:  # noqa: BLE001 - a broken map is left out (and named), the mesh still loads
                lost.append(f"{words} (its texture or image is missing or unreadable)")
                continue
            strength = info.get("scale" if slot == "normal" else "strength", 1.0)
            strength = float(strength) if isinstance(strength, (int, float)) and math.isfinite(strength) else 1.0
            material.maps[slot] = MaterialMap(image, mime_type, sampler, strength, transform)
        if lost:
            self.not_carried.setdefault(material.name, []).extend(lost)

    def read_base_colour(self, source: dict, material: Material) -> int:
        """Fill base colour, texture, sampler and transform; return the texture coordinate set to use."""
        pbr = source.get("pbrMetallicRoughness") or {}
        factor = pbr.get("baseColorFactor")
        factor_rgb = (1.0, 1.0, 1.0)
        material.base_color = factor_rgb  # glTF's default base colour is white (csdtex's own default is grey)
        if isinstance(factor, list) and len(factor) >= 3:
            rgb = np.clip(np.asarray(factor[:3], dtype=np.float64), 0.0, 1.0)
            factor_rgb = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
            shown = _linear_to_srgb(rgb)  # the factor is linear; Material.base_color is the colour as displayed
            material.base_color = (float(shown[0]), float(shown[1]), float(shown[2]))
        info = pbr.get("baseColorTexture")
        if not isinstance(info, dict):
            return 0
        uv_set = int(info.get("texCoord", 0))
        transform = (info.get("extensions") or {}).get("KHR_texture_transform")
        if isinstance(transform, dict):
            uv_set = int(transform.get("texCoord", uv_set))
            material.texture_transform = TextureTransform.from_gltf(
                transform.get("offset", (0.0, 0.0)), transform.get("rotation", 0.0), transform.get("scale", (1.0, 1.0)))
        try:
            texture = self.document.get("textures", [])[int(info["index"])]
            sampler_index = texture.get("sampler")
            samplers = self.document.get("samplers") or []
            material.sampler = TextureSampler.from_gltf(
                samplers[sampler_index] if isinstance(sampler_index, int) and sampler_index < len(samplers) else None)
            image_index = self.image_source(texture)
        except (IndexError, KeyError, TypeError, ValueError):
            self.warnings.append(f"{self.path.name}: material '{material.name}' names a texture that does not exist; "
                                 "ignored")
            return uv_set
        if image_index is None:
            self.warnings.append(f"{self.path.name}: the texture of material '{material.name}' has no image csdtex "
                                 "can decode (KTX2/Basis); it is shown in its base colour")
            return uv_set
        try:
            from PIL import Image

            data = self.data.image_bytes(image_index)
            with Image.open(io.BytesIO(data)) as image:
                material.texture = _times_factor(image_to_rgb8(image), factor_rgb)
                note = sixteen_bit_note(f"the base colour image of material '{material.name}'", image, data[:32])
                if note:
                    self.warnings.append(f"{self.path.name}: {note}")
                mode = source.get("alphaMode", "OPAQUE")
                if mode in ("MASK", "BLEND"):
                    material.alpha_mode = mode
                    material.alpha_cutoff = float(source.get("alphaCutoff", 0.5))
                    factor_alpha = float(factor[3]) if isinstance(factor, list) and len(factor) >= 4 else 1.0
                    material.alpha = _image_alpha(image, factor_alpha)
            material.texture_source = self.path
        except (ReadError, ParseError) as err:
            self.warnings.append(str(err) if str(err).startswith(self.path.name) else f"{self.path.name}: {err}")
        except Exception as err:  # PIL decoding errors
            self.warnings.append(f"{self.path.name}: texture of material '{material.name}' could not be decoded "
                                 f"({error_text(err)}); ignored")
        return uv_set

    def image_source(self, texture: dict) -> int | None:
        extensions = texture.get("extensions") or {}
        webp = extensions.get("EXT_texture_webp")
        if isinstance(webp, dict) and isinstance(webp.get("source"), int):
            return webp["source"]
        source = texture.get("source")
        return source if isinstance(source, int) else None

    # -- assembly ----------------------------------------------------------------------------------------------------

    def morphed(self, mesh_index: int, mesh: dict, node: dict, primitive: dict, positions: np.ndarray,
                normals: np.ndarray | None, tangents: np.ndarray | None):
        """``positions`` [N, 3], ``normals`` [N, 3] and ``tangents`` [N, 4] (or None) with the primitive's morph
        targets added at their default weights (the node's ``weights``, else the mesh's; glTF 2.0, 3.7.2.2)."""
        targets = primitive.get("targets") or []
        if not targets:
            return positions, normals, tangents
        note = f"{_mesh_label(mesh, mesh_index)} has morph targets"
        if note not in self.posed:
            self.posed.append(note)
        weights = node.get("weights") or mesh.get("weights") or [0.0] * len(targets)
        positions, normals = positions.copy(), None if normals is None else normals.copy()
        tangents = None if tangents is None else tangents.copy()
        for weight, target in zip(weights, targets):
            weight = float(weight)
            if weight == 0.0:
                continue
            for name, values in (("POSITION", positions), ("NORMAL", normals), ("TANGENT", tangents)):
                if values is not None and name in target:
                    delta = self.data.accessor(target[name])
                    if delta.shape[0] != len(values) or delta.shape[1] < 3:
                        raise ParseError(f"mesh {mesh_index}: a morph target's {name} does not match the primitive's "
                                         f"{len(values)} vertices")
                    values[:, :3] += weight * delta[:, :3]
        return positions, normals, tangents

    def node_worlds(self) -> list[np.ndarray]:
        """World matrix float64 [4, 4] of every node (its parents' transforms applied), computed once."""
        if self._node_worlds is None:
            nodes = self.document.get("nodes") or []
            parent = {child: index for index, node in enumerate(nodes) for child in (node.get("children") or [])
                      if isinstance(child, int)}
            worlds: dict[int, np.ndarray] = {}
            for start in range(len(nodes)):
                chain, index = [], start  # up to the first node whose world is known (or a root)
                while index not in worlds:
                    chain.append(index)
                    if len(chain) > len(nodes):
                        raise ParseError(f"node {start} is its own ancestor")
                    if index not in parent:
                        break
                    index = parent[index]
                above = worlds[index] if index in worlds else np.eye(4)
                for node_index in reversed(chain):
                    above = above @ _node_matrix(nodes[node_index])
                    worlds[node_index] = above
            self._node_worlds = [worlds[index] for index in range(len(nodes))]
        return self._node_worlds

    def skin_matrices(self, node: dict, mesh_index: int, primitive: dict, count: int) -> np.ndarray | None:
        """Per-vertex skinning matrices float64 [N, 4, 4] (``sum_k weight_k * world(joint_k) @ inverseBind_k``) of a
        skinned node's primitive in the joints' rest pose, or None when the node has no skin (or the primitive no
        JOINTS_0 / WEIGHTS_0: then its node transform applies, as for any mesh)."""
        skins = self.document.get("skins") or []
        attributes = primitive.get("attributes") or {}
        if "skin" not in node or "JOINTS_0" not in attributes or "WEIGHTS_0" not in attributes:
            return None
        index = node["skin"]
        if not isinstance(index, int) or not 0 <= index < len(skins):
            raise ParseError(f"a node refers to skin {index}, which does not exist")
        skin = skins[index]
        joints = [int(j) for j in skin.get("joints") or []]
        worlds = self.node_worlds()
        if not joints or not all(0 <= j < len(worlds) for j in joints):
            raise ParseError(f"skin {index} has no joints or names a node that does not exist")
        if "inverseBindMatrices" in skin:
            inverse_bind = self.data.accessor(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
            if len(inverse_bind) < len(joints):
                raise ParseError(f"skin {index} has fewer inverse bind matrices than joints")
        else:
            inverse_bind = np.broadcast_to(np.eye(4), (len(joints), 4, 4))
        joint_matrices = np.stack([worlds[j] for j in joints]) @ inverse_bind[: len(joints)]
        vertex_joints = self.data.accessor(attributes["JOINTS_0"], normalize=False).astype(np.int64)
        weights = self.data.accessor(attributes["WEIGHTS_0"])
        if vertex_joints.shape != (count, 4) or weights.shape != (count, 4):
            raise ParseError(f"mesh {mesh_index}: JOINTS_0 / WEIGHTS_0 do not give 4 values per vertex")
        if vertex_joints.min(initial=0) < 0 or vertex_joints.max(initial=0) >= len(joints):
            raise ParseError(f"mesh {mesh_index}: JOINTS_0 names a joint its skin does not have")
        total = weights.sum(axis=1, keepdims=True)
        weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), np.array([1.0, 0, 0, 0]))
        note = f"{_mesh_label((self.document.get('meshes') or [])[mesh_index], mesh_index)} is skinned"
        if note not in self.posed:
            self.posed.append(note)
        return np.einsum("nk,nkij->nij", weights, joint_matrices[vertex_joints])

    def build(self) -> Mesh:
        meshes = self.document.get("meshes") or []
        parts_v, parts_f, parts_uv, parts_uvf, parts_m, parts_c = [], [], [], [], [], []
        parts_n, parts_nf, parts_t = [], [], []
        v_offset = uv_offset = n_offset = 0
        for world, mesh_index, node_index in self.instances():
            if not 0 <= mesh_index < len(meshes):
                raise ParseError(f"a node refers to mesh {mesh_index}, which does not exist")
            mesh = meshes[mesh_index]
            for primitive_index, primitive in enumerate(mesh.get("primitives") or []):
                mode = int(primitive.get("mode", 4))
                if mode not in (4, 5, 6):
                    self.skipped_modes.add(_MODE_NAMES.get(mode, f"mode {mode}"))
                    continue
                material, uv_set = self.material_for(primitive, mesh_index, mesh.get("name"))
                names = primitive.get("attributes") or {}
                used = _uv_set_name(names, uv_set)
                other_sets = sorted(name for name in names if name.startswith("TEXCOORD_") and name != used)
                if other_sets:  # lightmap / detail UVs: the outputs have one UV set
                    lost = self.not_carried.setdefault(self.materials[material].name, [])
                    words = f"UV sets {', '.join(other_sets)}"
                    if words not in lost:
                        lost.append(words)
                positions, faces, uvs, colors, normals, tangents = self.geometry(mesh_index, primitive_index,
                                                                                  primitive, uv_set)
                if len(faces) == 0:
                    continue
                node = (self.document.get("nodes") or [])[node_index] if node_index is not None else {}
                positions, normals, tangents = self.morphed(mesh_index, mesh, node, primitive, positions, normals,
                                                            tangents)
                skin = self.skin_matrices(node, mesh_index, primitive, len(positions))
                if skin is not None:  # a skinned mesh's node transform is ignored (glTF 2.0, 3.7.3.3)
                    vertices, normals, tangents, faces = _skinned(skin, positions, normals, tangents, faces)
                    world = np.eye(4)
                else:
                    vertices = positions @ world[:3, :3].T + world[:3, 3]
                if np.linalg.det(world[:3, :3]) < 0:
                    faces = faces[:, [0, 2, 1]]  # a mirroring node flips the winding (glTF 2.0, 3.7.4)
                parts_v.append(vertices)
                parts_f.append(faces + v_offset)
                parts_m.append(np.full(len(faces), material, dtype=np.int64))
                parts_c.append(colors)
                if uvs is not None:
                    parts_uv.append(uvs)
                    parts_uvf.append(faces + uv_offset)
                    uv_offset += len(uvs)
                else:
                    parts_uvf.append(np.full_like(faces, -1))
                linear = world[:3, :3]
                if normals is not None and abs(np.linalg.det(linear)) > 1e-300:
                    world_normals = normals @ np.linalg.inv(linear)  # n' = n M^-1: the inverse transpose
                    parts_n.append(world_normals)
                    parts_nf.append(faces + n_offset)
                    n_offset += len(world_normals)
                    self.tangent_parts.setdefault(material, set()).add(tangents is not None)
                    if tangents is not None:  # t' = M t; a mirroring transform flips the bitangent's sign
                        sign = np.sign(np.linalg.det(linear))
                        parts_t.append(np.concatenate([tangents[:, :3] @ linear.T, tangents[:, 3:4] * sign], axis=1))
                    else:  # NaN rows: materials whose corners use them get no TANGENT (viewers generate it)
                        parts_t.append(np.full((len(world_normals), 4), np.nan))
                else:
                    parts_nf.append(np.full_like(faces, -1))
                v_offset += len(vertices)
        if self.skipped_modes:
            self.warnings.append(f"{self.path.name}: ignored non-triangle primitives "
                                 f"({', '.join(sorted(self.skipped_modes))})")
        mixed = [self.materials[m].name for m, kinds in self.tangent_parts.items()
                 if kinds == {True, False} and "normal" in self.materials[m].maps]
        output_notes: list[str] = []
        if mixed:
            output_notes.append(f"{self.path.name}: some parts of material(s) {', '.join(repr(n) for n in mixed)} "
                                 "have tangents (TANGENT) and others not; the outputs give those materials none, so "
                                 "viewers generate them for their normal maps")
        if self.posed:
            output_notes.append(f"{self.path.name}: {'; '.join(self.posed)}: csdtex reads the shape at rest (as "
                                "viewers show it without animation); the outputs are static meshes with no morph "
                                "targets, skin or joints")
        structure = self.node_structure_note()
        if structure:
            output_notes.append(structure)
        animations = self.document.get("animations") or []
        if animations:
            output_notes.append(f"{self.path.name}: {counted(len(animations), 'animation')} not carried: the "
                                "outputs hold its rest pose")
        if self.not_carried:
            listed = "; ".join(f"'{name}': {', '.join(parts)}" for name, parts in self.not_carried.items())
            output_notes.append(f"{self.path.name}: painted or edited outputs do not carry these parts of its "
                                 f"materials ({listed}): copy them over from the source file in your 3D tool")
        if not parts_f and meshes and not self.skipped_modes and not self.instances():
            scene = self.document.get("scene", 0)
            raise MeshError(f"mesh file '{self.path}' has {len(meshes)} mesh(es), but its default scene (scene "
                            f"{scene}) places none of them: add them to the scene in your 3D tool and re-export")
        if not parts_f:
            what = f" (it holds only {', '.join(sorted(self.skipped_modes))})" if self.skipped_modes else ""
            raise MeshError(f"mesh file '{self.path}' contains no triangle faces{what}: export the surface as a "
                            "triangle mesh")
        vertex_colors = None
        if any(c is not None for c in parts_c):
            vertex_colors = np.concatenate([c if c is not None else np.ones((len(v), 3))
                                            for c, v in zip(parts_c, parts_v)])
        return Mesh(
            vertices=np.concatenate(parts_v),
            faces=np.concatenate(parts_f),
            uvs=np.concatenate(parts_uv) if parts_uv else None,
            uv_faces=np.concatenate(parts_uvf) if parts_uv else None,
            face_materials=np.concatenate(parts_m),
            materials=self.materials,
            warnings=self.warnings,
            output_notes=output_notes,
            vertex_colors=vertex_colors,
            normals=np.concatenate(parts_n) if parts_n else None,
            normal_faces=np.concatenate(parts_nf) if parts_n else None,
            tangents=np.concatenate(parts_t) if parts_t and any(np.isfinite(t).all() for t in parts_t) else None,
        )
