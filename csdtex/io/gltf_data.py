"""glTF 2.0 binary data: the GLB container, buffers, buffer views and accessors (with sparse accessors, normalized
and quantized integer types), images, and the compressed geometry of ``KHR_draco_mesh_compression`` (DracoPy) and
``EXT_meshopt_compression`` (meshopt).

Used by :mod:`csdtex.io.gltf_read`. Every problem of the file raises :class:`~csdtex.io._common.ParseError` (a
malformed file) or :class:`~csdtex.io._common.ReadError` (a resource that could not be had), each with a one-line
message that :func:`csdtex.io.load_mesh` embeds in its :class:`~csdtex.errors.MeshError`.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from csdtex.fileio import is_within
from csdtex.io._common import ParseError, ReadError, clean_relative, quiet_libraries

__all__ = ["GltfData", "COMPONENT_DTYPES", "TYPE_WIDTH", "DECODER_INSTALL", "read_container"]

COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
                    5126: np.float32}
"""glTF ``componentType`` -> little-endian numpy dtype."""
TYPE_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
"""glTF accessor ``type`` -> number of components."""
DECODER_INSTALL = "pip install 'csdtex[compressed]'"
"""How to install the optional geometry decoders (DracoPy, meshopt)."""
_MESHOPT = ("EXT_meshopt_compression", "KHR_meshopt_compression")
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = b"glTF", 0x4E4F534A, 0x004E4942


def read_container(path: Path) -> tuple[dict, bytes | None]:
    """The JSON document and the GLB binary chunk (None for ``.gltf`` files or a GLB without one).

    Raises:
        ParseError: not a GLB / not JSON / truncated chunks.
    """
    data = path.read_bytes()
    if data[:4] != _GLB_MAGIC:
        if path.suffix.lower() == ".glb":
            raise ParseError("it does not start with the GLB magic 'glTF'")
        try:
            return json.loads(data.decode("utf-8-sig")), None
        except ValueError as err:
            raise ParseError(f"it is not JSON: {type(err).__name__}: {str(err)[:160]}") from None
    if len(data) < 20:
        raise ParseError("the GLB header is truncated")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise ParseError(f"GLB version {version} is not supported (glTF 2.0 only)")
    offset, document, binary = 12, None, None
    end = min(length, len(data))
    while offset + 8 <= end:
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        chunk = data[offset + 8: offset + 8 + chunk_length]
        if len(chunk) < chunk_length:
            raise ParseError("a GLB chunk is truncated")
        if chunk_type == _CHUNK_JSON and document is None:
            try:
                document = json.loads(chunk.decode("utf-8"))
            except ValueError as err:
                raise ParseError(f"its JSON chunk is not JSON: {type(err).__name__}") from None
        elif chunk_type == _CHUNK_BIN and binary is None:
            binary = bytes(chunk)
        offset += 8 + chunk_length + (-chunk_length % 4)
    if not isinstance(document, dict):
        raise ParseError("it has no JSON chunk")
    return document, binary


class GltfData:
    """Lazy access to the buffers, buffer views, accessors and images of one glTF document.

    Args:
        document: the parsed JSON.
        binary: the GLB BIN chunk (buffer 0 without ``uri``), or None.
        path: the glTF file; external resources are read only from inside its folder.
        warnings: receives one-line notes (resources that could not be read are reported by the reader).
    """

    def __init__(self, document: dict, binary: bytes | None, path: Path, warnings: list[str]) -> None:
        self.document, self.binary, self.path, self.warnings = document, binary, path, warnings
        self.read_files: list[Path] = []  # external files read (or looked for), for Mesh.read_files
        self._buffers: dict[int, bytes] = {}
        self._views: dict[int, bytes] = {}
        for buffer in document.get("buffers") or []:  # the folder rule first: it names the real problem
            uri = buffer.get("uri") if isinstance(buffer, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:") and "://" not in uri:
                relative = clean_relative(unquote(uri))
                if not is_within(path.parent / relative, path.parent):
                    raise ReadError(f"{path.name}: '{relative}' lies outside the mesh folder and was not read",
                                    remedy=OUTSIDE_REMEDY)

    # -- resources ---------------------------------------------------------------------------------------------------

    def _item(self, kind: str, index) -> dict:
        items = self.document.get(kind) or []
        if not isinstance(index, int) or not 0 <= index < len(items) or not isinstance(items[index], dict):
            raise ParseError(f"{kind}[{index}] does not exist")
        return items[index]

    def uri_bytes(self, uri: str, what: str) -> bytes:
        """The bytes of a ``data:`` URI or of a relative file inside the glTF file's folder.

        Raises:
            ReadError: the file lies outside the folder, is missing, or the URI is not a usable data URI.
        """
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise ReadError(f"{self.path.name}: {what} is a data URI that is not base64")
            try:
                return base64.b64decode(payload, validate=False)
            except ValueError:
                raise ReadError(f"{self.path.name}: {what} has a broken base64 data URI") from None
        relative = clean_relative(unquote(uri))
        if "://" in relative:
            raise ReadError(f"{self.path.name}: {what} '{relative}' is a URL; csdtex reads only local files",
                            remedy="download it into the mesh's folder and point the file at the copy, or export a GLB")
        target = self.path.parent / relative
        if not is_within(target, self.path.parent):
            raise ReadError(f"{self.path.name}: '{relative}' lies outside the mesh folder and was not read",
                            remedy=OUTSIDE_REMEDY)
        self.read_files.append(target)
        if not target.is_file():
            raise ReadError(f"{self.path.name}: '{relative}' was not found",
                            remedy="put it where the file expects it (relative to the mesh), or export a GLB")
        return target.read_bytes()

    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            buffer = self._item("buffers", index)
            if "uri" in buffer:
                data = self.uri_bytes(str(buffer["uri"]), f"buffer {index}")
            elif index == 0 and self.binary is not None:
                data = self.binary
            elif _is_meshopt_fallback(buffer):
                data = b""  # placeholder of EXT_meshopt_compression: its views are decoded from another buffer
            else:
                raise ParseError(f"buffer {index} has no data (no uri and no GLB binary chunk)")
            if len(data) < int(buffer.get("byteLength", 0)) and not _is_meshopt_fallback(buffer):
                raise ParseError(f"buffer {index} holds {len(data)} bytes, fewer than its byteLength "
                                 f"{buffer.get('byteLength')}")
            self._buffers[index] = data
        return self._buffers[index]

    def view(self, index: int) -> bytes:
        """The bytes of ``bufferViews[index]`` (decoded when the view is meshopt-compressed)."""
        if index not in self._views:
            view = self._item("bufferViews", index)
            meshopt = next(((name, view["extensions"][name]) for name in _MESHOPT
                            if name in (view.get("extensions") or {})), None)
            if meshopt is not None:
                self._views[index] = _decode_meshopt(self, *meshopt)
            else:
                data = self.buffer(view.get("buffer", 0))
                start, length = int(view.get("byteOffset", 0)), int(view.get("byteLength", 0))
                if start < 0 or length < 0 or start + length > len(data):
                    raise ParseError(f"bufferView {index} lies outside its buffer")
                self._views[index] = data[start:start + length]
        return self._views[index]

    # -- accessors ---------------------------------------------------------------------------------------------------

    def accessor(self, index: int, normalize: bool = True) -> np.ndarray:
        """Accessor ``index`` as an array [count, width] (float64 when ``normalize`` or float; raw integers for
        indices with ``normalize=False``), sparse substitutions applied (glTF 2.0, 3.6.2.3).

        Normalized integer types map to [0, 1] (unsigned) or [-1, 1] (signed, ``max(c / max, -1)``); integer types
        that are not normalized keep their integer values (``KHR_mesh_quantization``).
        """
        accessor = self._item("accessors", index)
        dtype = COMPONENT_DTYPES.get(accessor.get("componentType"))
        width = TYPE_WIDTH.get(accessor.get("type"))
        count = accessor.get("count")
        if dtype is None or width is None or not isinstance(count, int) or count < 0:
            raise ParseError(f"accessor {index} has an unknown componentType/type or a bad count")
        if "bufferView" in accessor:
            values = self._strided(accessor, dtype, width, count, index)
        else:
            values = np.zeros((count, width), dtype=dtype)  # all zeros unless sparse fills them (3.6.2.3)
        sparse = accessor.get("sparse")
        if sparse:
            values = self._apply_sparse(values, sparse, dtype, width, index)
        if not normalize:
            return values
        result = values.astype(np.float64)
        if accessor.get("normalized") and dtype != np.float32:
            top = float(np.iinfo(dtype).max)
            result = result / top
            if np.issubdtype(dtype, np.signedinteger):
                result = np.maximum(result, -1.0)
        return result

    def _strided(self, accessor: dict, dtype, width: int, count: int, index: int) -> np.ndarray:
        view_index = accessor["bufferView"]
        data = self.view(view_index)
        view = self._item("bufferViews", view_index)
        item = np.dtype(dtype).itemsize
        element = item * width
        stride = int(view.get("byteStride") or element)
        start = int(accessor.get("byteOffset", 0))
        if count == 0:
            return np.zeros((0, width), dtype=dtype)
        if stride < element or start + stride * (count - 1) + element > len(data):
            raise ParseError(f"accessor {index} does not fit its bufferView {view_index}")
        raw = np.frombuffer(data, dtype=np.uint8, count=stride * (count - 1) + element, offset=start)
        if stride == element:
            return np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).reshape(count, width)
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, element), strides=(stride, 1))
        return np.frombuffer(rows.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).reshape(count, width)

    def _apply_sparse(self, values: np.ndarray, sparse: dict, dtype, width: int, index: int) -> np.ndarray:
        try:
            count = int(sparse["count"])
            indices_info, values_info = sparse["indices"], sparse["values"]
            index_dtype = COMPONENT_DTYPES[indices_info["componentType"]]
        except (KeyError, TypeError, ValueError):
            raise ParseError(f"accessor {index} has a malformed sparse section") from None
        if index_dtype not in (np.uint8, np.uint16, np.uint32):
            raise ParseError(f"accessor {index}: sparse indices must be unsigned integers")
        targets = self._sparse_part(indices_info, index_dtype, 1, count, index).reshape(-1).astype(np.int64)
        substitutes = self._sparse_part(values_info, dtype, width, count, index)
        if len(targets) and (targets.min() < 0 or targets.max() >= len(values)):
            raise ParseError(f"accessor {index}: a sparse index lies outside the accessor")
        values = values.copy()
        values[targets] = substitutes
        return values

    def _sparse_part(self, info: dict, dtype, width: int, count: int, index: int) -> np.ndarray:
        data = self.view(info.get("bufferView", -1))
        start = int(info.get("byteOffset", 0))
        size = np.dtype(dtype).itemsize * width * count
        if start + size > len(data):
            raise ParseError(f"accessor {index}: its sparse data does not fit its bufferView")
        return np.frombuffer(data[start:start + size], dtype=np.dtype(dtype).newbyteorder("<")).reshape(count, width)

    # -- images ------------------------------------------------------------------------------------------------------

    def image_bytes(self, index: int) -> bytes:
        image = self._item("images", index)
        if "bufferView" in image:
            return self.view(image["bufferView"])
        if "uri" in image:
            return self.uri_bytes(str(image["uri"]), f"image {index}")
        raise ParseError(f"image {index} has neither a uri nor a bufferView")


def _is_meshopt_fallback(buffer: dict) -> bool:
    return any((buffer.get("extensions") or {}).get(name, {}).get("fallback") for name in _MESHOPT)


def _decode_meshopt(data: GltfData, name: str, info: dict) -> bytes:
    try:
        import meshopt
    except ImportError:
        raise ReadError(
            f"it uses {name} (meshoptimizer-compressed geometry) and the decoder is not installed",
            remedy=f"`{DECODER_INSTALL}`, or write an uncompressed copy first (e.g. `gltfpack -i in.glb -o out.glb "
            "-noq`)",
        ) from None
    try:
        source = data.buffer(int(info["buffer"]))
        start, length = int(info.get("byteOffset", 0)), int(info["byteLength"])
        count, stride, mode = int(info["count"]), int(info["byteStride"]), str(info["mode"])
        filter_name = str(info.get("filter", "NONE"))
    except (KeyError, TypeError, ValueError):
        raise ParseError(f"a bufferView has a malformed {name} section") from None
    if start + length > len(source):
        raise ParseError(f"a {name} bufferView lies outside its buffer")
    try:
        with quiet_libraries():
            decoded = meshopt.decode_gltf_buffer(source[start:start + length], count, stride, mode,
                                                 None if filter_name == "NONE" else filter_name)
    except Exception as err:  # the decoder's own errors: a corrupt stream
        raise ParseError(f"its {name} data could not be decoded ({type(err).__name__}: {str(err)[:120]})") from None
    return np.ascontiguousarray(decoded).tobytes()


_SEMANTIC_WIDTHS: dict[str, tuple[int, ...]] = {"POSITION": (3,), "NORMAL": (3,), "TEXCOORD": (2,), "COLOR": (3, 4),
                                                 "TANGENT": (4,)}
"""Components per vertex of the glTF attribute semantics csdtex reads from Draco data (``TEXCOORD_n`` ->
``TEXCOORD``)."""


OUTSIDE_REMEDY = "copy it into the mesh's folder and point the file at the copy, or export a GLB"
"""What to do about a resource a glTF file names outside its folder (csdtex reads only inside it)."""


def decode_draco(data: GltfData, primitive: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The triangles and attributes of a ``KHR_draco_mesh_compression`` primitive.

    Returns:
        ``(faces int64 [F, 3], attributes)`` where ``attributes`` maps the glTF semantic (``POSITION``,
        ``TEXCOORD_0``, ``COLOR_0``, ...) to float64 [N, k] (normalized as the primitive's accessor says).
    Raises:
        ReadError: DracoPy is not installed. ParseError: the Draco stream is corrupt or lacks a mapped attribute.
    """
    extension = primitive["extensions"]["KHR_draco_mesh_compression"]
    try:
        import DracoPy
    except ImportError:
        raise ReadError(
            "it uses KHR_draco_mesh_compression (Draco-compressed geometry) and the decoder is not installed",
            remedy=f"`{DECODER_INSTALL}`, or re-export the file without Draco compression (e.g. from Blender)",
        ) from None
    stream = data.view(extension.get("bufferView", -1))
    try:
        with quiet_libraries():
            decoded = DracoPy.decode(stream)
    except Exception as err:
        raise ParseError(f"its Draco data could not be decoded ({type(err).__name__}: {str(err)[:120]})") from None
    faces = getattr(decoded, "faces", None)
    if faces is None or len(faces) == 0:
        raise ParseError("its Draco data holds a point cloud, not triangles")
    by_id = {attribute["unique_id"]: attribute for attribute in decoded.attributes}
    attributes: dict[str, np.ndarray] = {}
    accessors = primitive.get("attributes") or {}
    for semantic, unique_id in (extension.get("attributes") or {}).items():
        if unique_id not in by_id:
            raise ParseError(f"its Draco data lacks attribute {semantic} (id {unique_id})")
        values = np.asarray(by_id[unique_id]["data"])
        values = values.reshape(len(values), -1)
        width = _SEMANTIC_WIDTHS.get(semantic.split("_")[0])
        if width is not None and values.shape[1] not in width:
            raise ParseError(f"its Draco attribute {unique_id}, mapped to {semantic}, has {values.shape[1]} "
                             f"components where {semantic} needs {' or '.join(map(str, width))} (the extension's "
                             "attribute ids do not match the Draco data)")
        result = values.astype(np.float64)
        accessor = data.document.get("accessors", [])[accessors[semantic]] if semantic in accessors else {}
        if accessor.get("normalized") and np.issubdtype(values.dtype, np.integer):
            result = result / float(np.iinfo(values.dtype).max)
        attributes[semantic] = result
    return np.asarray(faces, dtype=np.int64).reshape(-1, 3), attributes
