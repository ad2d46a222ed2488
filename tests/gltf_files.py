"""Hand-built glTF 2.0 files for tests: a tiny document builder (buffer views, accessors, sparse accessors, images,
materials with samplers and extensions, nodes) that writes GLB or glTF + .bin. Nothing is downloaded."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

FLOAT, UBYTE, USHORT, UINT, SHORT, BYTE = 5126, 5121, 5123, 5125, 5122, 5120
REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE = 10497, 33648, 33071
NEAREST, LINEAR = 9728, 9729
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}
_CODES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UBYTE, np.dtype(np.uint16): USHORT,
          np.dtype(np.uint32): UINT, np.dtype(np.int16): SHORT, np.dtype(np.int8): BYTE}


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class GltfBuilder:
    """Accumulates a glTF document and its single binary buffer."""

    def __init__(self) -> None:
        self.doc: dict = {"asset": {"version": "2.0", "generator": "tests"}, "scene": 0, "scenes": [{"nodes": []}],
                          "nodes": [], "meshes": [], "accessors": [], "bufferViews": [], "buffers": []}
        self.blob = bytearray()

    def _list(self, key: str) -> list:
        return self.doc.setdefault(key, [])

    def use_extension(self, name: str, required: bool = False) -> None:
        if name not in self._list("extensionsUsed"):
            self._list("extensionsUsed").append(name)
        if required and name not in self._list("extensionsRequired"):
            self._list("extensionsRequired").append(name)

    def view(self, data: bytes, **extra) -> int:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self._list("bufferViews").append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data),
                                          **extra})
        self.blob.extend(data)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array, dtype=np.float32, normalized: bool = False, min_max: bool = False,
                 view: int | None = None, **extra) -> int:
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        width = 1 if array.ndim == 1 else array.shape[1]
        accessor = {"componentType": _CODES[array.dtype], "count": int(array.shape[0]), "type": _TYPES[width], **extra}
        if view is not None or array.size:
            accessor["bufferView"] = self.view(array.tobytes()) if view is None else view
        if normalized:
            accessor["normalized"] = True
        if min_max:
            flat = array.reshape(len(array), -1)
            accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self._list("accessors").append(accessor)
        return len(self.doc["accessors"]) - 1

    def texture(self, image: np.ndarray, sampler: dict | None = None) -> int:
        source = len(self._list("images"))
        self._list("images").append({"bufferView": self.view(png_bytes(image)), "mimeType": "image/png"})
        texture = {"source": source}
        if sampler is not None:
            self._list("samplers").append(sampler)
            texture["sampler"] = len(self.doc["samplers"]) - 1
        self._list("textures").append(texture)
        return len(self.doc["textures"]) - 1

    def material(self, name: str, texture: int | None = None, color=(1.0, 1.0, 1.0), transform: dict | None = None,
                 tex_coord: int = 0) -> int:
        pbr: dict = {"baseColorFactor": [*color, 1.0]}
        if texture is not None:
            info: dict = {"index": texture}
            if tex_coord:
                info["texCoord"] = tex_coord
            if transform is not None:
                info["extensions"] = {"KHR_texture_transform": transform}
                self.use_extension("KHR_texture_transform")
            pbr["baseColorTexture"] = info
        self._list("materials").append({"name": name, "pbrMetallicRoughness": pbr})
        return len(self.doc["materials"]) - 1

    def mesh(self, primitives: list[dict], name: str = "mesh", node: dict | None = None) -> int:
        self.doc["meshes"].append({"name": name, "primitives": primitives})
        self.doc["nodes"].append({"mesh": len(self.doc["meshes"]) - 1, **(node or {})})
        self.doc["scenes"][0]["nodes"].append(len(self.doc["nodes"]) - 1)
        return len(self.doc["nodes"]) - 1

    def primitive(self, positions, indices=None, uvs=None, mode: int = 4, material: int | None = None,
                  colors=None) -> dict:
        """A primitive from float positions [N, 3], csdtex UVs [N, 2] ((0, 0) = bottom-left; flipped here)."""
        attributes = {"POSITION": self.accessor(positions, min_max=True)}
        if uvs is not None:
            uvs = np.asarray(uvs, dtype=np.float64)
            attributes["TEXCOORD_0"] = self.accessor(np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], 1))
        if colors is not None:
            attributes["COLOR_0"] = self.accessor(colors)
        primitive: dict = {"attributes": attributes, "mode": mode}
        if indices is not None:
            primitive["indices"] = self.accessor(np.asarray(indices).reshape(-1), dtype=np.uint16)
        if material is not None:
            primitive["material"] = material
        return primitive

    def write_glb(self, path: Path) -> Path:
        self.doc["buffers"] = [{"byteLength": len(self.blob)}] + self.doc["buffers"][1:]
        text = json.dumps(self.doc).encode()
        text += b" " * (-len(text) % 4)
        blob = bytes(self.blob) + b"\0" * (-len(self.blob) % 4)
        total = 12 + 8 + len(text) + 8 + len(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text
                         + struct.pack("<II", len(blob), 0x004E4942) + blob)
        return path

    def write_gltf(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / (path.stem + ".bin")).write_bytes(bytes(self.blob))
        self.doc["buffers"] = [{"byteLength": len(self.blob), "uri": path.stem + ".bin"}] + self.doc["buffers"][1:]
        path.write_text(json.dumps(self.doc))
        return path


def read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20:20 + length]), data[20 + length + 8:]


def quad(z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit square in the XY plane facing +Z: positions [4, 3], two counter-clockwise triangles [2, 3]."""
    positions = np.array([[0, 0, z], [1, 0, z], [1, 1, z], [0, 1, z]], dtype=np.float32)
    return positions, np.array([[0, 1, 2], [0, 2, 3]])


def box_faces() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit box with 4 vertices per side (24), 12 outward triangles and per-side UVs u in [0, 6] (each side's
    u range [0, 6], v in [0, 1]): positions [24, 3], faces [12, 3], uvs [24, 2]."""
    positions, faces, uvs = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = [a for a in range(3) if a != axis]
            if sign < 0:
                u_axis, v_axis = v_axis, u_axis
            base = len(positions)
            for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                p = np.zeros(3)
                p[axis] = 0.5 * sign
                p[u_axis], p[v_axis] = du - 0.5, dv - 0.5
                positions.append(p)
                uvs.append((6.0 * du, float(dv)))
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.array(positions, dtype=np.float32), np.array(faces), np.array(uvs)
