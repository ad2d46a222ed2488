"""Wavefront OBJ + MTL: csdtex's own reader (:func:`read_obj`) and writer (:func:`obj_text`, :func:`mtl_text`).

Conventions: OBJ indices are 1-based; ``vt`` (0, 0) is the bottom-left of the texture image, the same as
:class:`~csdtex.mesh.Mesh`, so UVs are read and written unchanged. Vertices and UVs keep their file order in both
directions and floats are written with the shortest round-trip ``repr`` (bit-exact float64 on reading back).
Multi-file export (MTL + PNG files next to the OBJ, all or nothing) is :func:`csdtex.export.export_obj`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from csdtex.errors import MeshError
from csdtex.fileio import is_within
from csdtex.io._common import (GENERATOR, ParseError, clean_relative, error_text, image_alpha8, image_to_grey8,
                               image_to_rgb8, map_image_bytes, sixteen_bit_note)
from csdtex.mesh.types import Material, MaterialMap, Mesh, unique_name
from csdtex.sampling import CLAMP_TO_EDGE, MIRRORED_REPEAT, TextureSampler, TextureTransform

__all__ = ["mtl_text", "obj_text", "read_obj"]

# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def read_obj(path: Path) -> Mesh:
    """Read an OBJ file, its ``mtllib`` MTL files and their ``map_Kd`` textures, keeping the file's arrays untouched.

    Vertices and ``vt`` are kept in file order, never split or merged: ``vertices`` = the ``v`` lines (extra colour
    columns ignored), ``uvs`` = the ``vt`` lines (``u v``; a missing ``v`` is 0, ``w`` ignored), ``uv_faces`` = the
    ``vt`` indices of each face (row -1 for a face written without ``vt``). Quads and n-gons are triangulated in file
    order: convex ones as the fan ``(0, i, i + 1)``, concave ones by ear clipping in their plane
    (:func:`polygon_triangles`), so no triangle covers area outside the polygon. Negative (relative) indices are
    resolved. Every ``usemtl`` name becomes one :class:`~csdtex.mesh.Material` (in order of first use; faces before any
    ``usemtl`` get a default material); ``Kd`` gives ``base_color``, ``map_Kd`` the texture (sampler: repeat, or clamp
    with ``-clamp on``; ``-o`` / ``-s`` become the material's texture transform), ``map_d`` its alpha (the image's alpha
    band or PNG transparency, else its luminance; MASK when only 0 and 255, else BLEND); the PBR keys become the carried
    maps and factors (:attr:`~csdtex.mesh.Material.maps`): ``map_Bump`` / ``bump`` / ``norm`` with a normal map (a grey
    height map is named as not carried), ``map_Ke`` + ``Ke``, ``map_Pr`` / ``map_Pm`` packed into one metallic-roughness
    map, ``Pr`` / ``Pm``; other maps (``map_Ks``, ``disp``, ...) are named in one warning; ``vn`` + ``f v/vt/vn`` give
    ``normals``; ``v x y z r g b`` lines give ``vertex_colors`` (0..255 values are rescaled). MTL files and textures are
    read only when they resolve inside the OBJ's folder (symbolic links and ``..`` resolved); otherwise, or when they
    are missing or unreadable, the mesh loads without them and ``mesh.warnings`` says why.

    Args:
        path: the ``.obj`` file.
    Returns:
        an unvalidated :class:`~csdtex.mesh.Mesh` (``source`` not set; :func:`csdtex.io.load_mesh` does both):
        vertices float64 [V, 3], faces int64 [F, 3], uvs float64 [T, 2] or None (no face uses a ``vt``), uv_faces
        int64 [F, 3] or None, face_materials int64 [F], textures uint8 [H, W, 3] RGB with row 0 = top of the image.
    Raises:
        ParseError: binary content, an unreadable line, index 0 or a relative index before the first element.
    """
    raw = path.read_bytes()
    if raw[:4] == b"glTF":
        raise MeshError(f"mesh file '{path}' is a GLB file (it starts with 'glTF'), not OBJ: rename it to .glb")
    if b"\x00" in raw[:4096]:
        raise ParseError("it contains binary data, but OBJ is a text format")
    text = decode_text(raw)

    positions: list[tuple[float, float, float]] = []
    texcoords: list[tuple[float, float]] = []
    normals: list[tuple[float, float, float]] = []
    tri_v: list[tuple[int, int, int]] = []
    tri_t: list[tuple[int, int, int]] = []
    tri_n: list[tuple[int, int, int]] = []
    tri_m: list[int] = []
    group_keys: list[str | None] = []  # material names in order of first use (None = before any usemtl)
    group_index: dict[str | None, int] = {}
    current: str | None = None
    current_group = -1
    mtllibs: list[str] = []
    object_names: dict[str, None] = {}  # "o" / "g" names in order of appearance
    colors: list[tuple[float, float, float]] = []
    short_faces = 0
    no_uv = (-1, -1, -1)
    polygons: list[tuple[int, list[int], list[int] | None, list[int] | None]] = []  # (first triangle, corners)

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
        stripped = strip_comment(stripped)
        parts = stripped.split()
        if not parts:
            continue
        key = parts[0]
        try:
            if key == "v":
                positions.append((float(parts[1]), float(parts[2]), float(parts[3])))
                if len(parts) >= 7:  # "v x y z r g b": a common vertex-colour extension
                    colors.append((float(parts[4]), float(parts[5]), float(parts[6])))
            elif key == "vt":
                texcoords.append((float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0))
            elif key == "vn":
                normals.append((float(parts[1]), float(parts[2]), float(parts[3])))
            elif key == "f":
                corners = parts[1:]
                if len(corners) < 3:
                    short_faces += 1
                    continue
                nv, nt, nn = len(positions), len(texcoords), len(normals)
                vi: list[int] = []
                ti: list[int] = []
                ni: list[int] = []
                for corner in corners:
                    fields = corner.split("/")
                    vi.append(_obj_index(fields[0], nv, "vertex", lineno))
                    if len(fields) > 1 and fields[1]:
                        ti.append(_obj_index(fields[1], nt, "texture coordinate", lineno))
                    if len(fields) > 2 and fields[2]:
                        ni.append(_obj_index(fields[2], nn, "normal", lineno))
                has_t = len(ti) == len(vi)
                has_n = len(ni) == len(vi)
                if current_group < 0:
                    current_group = group_index.setdefault(current, len(group_keys))
                    if current_group == len(group_keys):
                        group_keys.append(current)
                if len(vi) > 3:  # fan for now; concave polygons are re-triangulated once every vertex is read
                    polygons.append((len(tri_v), vi, ti if has_t else None, ni if has_n else None))
                for k in range(1, len(vi) - 1):
                    tri_v.append((vi[0], vi[k], vi[k + 1]))
                    tri_t.append((ti[0], ti[k], ti[k + 1]) if has_t else no_uv)
                    tri_n.append((ni[0], ni[k], ni[k + 1]) if has_n else no_uv)
                    tri_m.append(current_group)
            elif key == "usemtl":
                current = stripped.split(None, 1)[1].strip() if len(parts) > 1 else None
                current_group = -1
            elif key == "mtllib":
                mtllibs.append(stripped.split(None, 1)[1].strip() if len(parts) > 1 else "")
            elif key in ("o", "g") and len(parts) > 1:  # named for the output note: outputs keep one object
                object_names.setdefault(stripped.split(None, 1)[1].strip(), None)
            # vp, s, l, p, curv, ... are ignored
        except (ValueError, IndexError):
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ParseError(f"line {lineno}: cannot read {shown!r}") from None

    warnings: list[str] = []
    if short_faces:
        warnings.append(f"{path.name}: skipped {short_faces} face(s) with fewer than 3 corners")
    tangled = 0
    vertex_array = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    for first, vi, ti, ni in polygons:
        if max(vi) >= len(vertex_array):
            continue  # a missing vertex: validate_mesh names it
        order = polygon_triangles(vertex_array[vi])
        if order is None:
            tangled += 1
            continue
        for offset, (a, b, c) in enumerate(order):
            tri_v[first + offset] = (vi[a], vi[b], vi[c])
            tri_t[first + offset] = (ti[a], ti[b], ti[c]) if ti is not None else no_uv
            tri_n[first + offset] = (ni[a], ni[b], ni[c]) if ni is not None else no_uv
    if tangled:
        warnings.append(f"{path.name}: {tangled} polygon(s) with more than 3 corners cross themselves or are not flat "
                        "enough to triangulate by shape; they were split as a fan from their first corner "
                        "(triangulate them in your 3D tool to choose)")
    read_files: list[Path] = []
    output_notes: list[str] = []
    if len(object_names) > 1:
        shown = ", ".join(list(object_names)[:4]) + (f" and {len(object_names) - 4} more" if len(object_names) > 4
                                                      else "")
        output_notes.append(f"{path.name}: the outputs keep one object: its {len(object_names)} objects / groups "
                            f"({shown}) are merged (faces in their order); split them again in your 3D tool by "
                            "material or selection")
    library = _read_mtl_libraries(path, mtllibs, warnings, read_files, output_notes)

    faces = np.asarray(tri_v, dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    uv_faces = np.asarray(tri_t, dtype=np.int64).reshape(-1, 3)
    uvs: np.ndarray | None = np.asarray(texcoords, dtype=np.float64).reshape(-1, 2)
    if len(uv_faces) == 0 or (uv_faces < 0).all():
        uvs, uv_faces = None, None  # no face uses a texture coordinate
    normal_faces: np.ndarray | None = np.asarray(tri_n, dtype=np.int64).reshape(-1, 3)
    normal_table: np.ndarray | None = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    if len(normal_faces) == 0 or (normal_faces < 0).all():
        normal_table, normal_faces = None, None  # no face uses a normal

    materials: list[Material] = []
    taken = {name for name in group_keys if name is not None}
    missing: list[str] = []
    for name in group_keys:
        if name is None:
            materials.append(Material(unique_name("material_0" if len(group_keys) == 1 else "default", taken)))
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
    vertex_colors = None
    if colors and len(colors) == len(positions):
        vertex_colors = np.asarray(colors, dtype=np.float64)
        if vertex_colors.max(initial=0.0) > 1.0:  # some exporters write 0..255
            vertex_colors = vertex_colors / 255.0
        vertex_colors = np.clip(vertex_colors, 0.0, 1.0)
    return Mesh(
        vertices=vertices,
        faces=faces,
        uvs=uvs,
        uv_faces=uv_faces,
        face_materials=np.asarray(tri_m, dtype=np.int64),
        materials=materials,
        warnings=warnings,
        output_notes=output_notes,
        vertex_colors=vertex_colors,
        normals=normal_table,
        normal_faces=normal_faces,
        read_files=read_files,
    )


def _obj_index(token: str, count: int, what: str, lineno: int) -> int:
    """0-based index of an OBJ index token (1-based, or negative = relative to the ``count`` elements so far)."""
    index = int(token)
    if index > 0:
        return index - 1  # range checked by validate_mesh
    if index == 0:
        raise ParseError(f"line {lineno}: {what} index 0 is invalid (OBJ indices start at 1)")
    if count + index < 0:
        raise ParseError(f"line {lineno}: relative {what} index {index} points before the first {what}")
    return count + index


def polygon_triangles(points: np.ndarray) -> list[tuple[int, int, int]] | None:
    """Triangles covering a polygon exactly, as corner index triples, in the polygon's winding.

    A convex polygon gets the fan ``(0, i, i + 1)`` (what every OBJ reader does, so convex n-gons come out as
    before); a concave one (an L-shaped face) is ear-clipped in its plane, so no triangle covers area outside it or
    faces the other way.

    Args:
        points: float64 [N, 3] corner positions, N >= 3, in order around the polygon.
    Returns:
        N - 2 triples of indices into ``points``; None when the polygon crosses itself or has no usable plane
        (degenerate), where the caller keeps the fan.
    """
    count = len(points)
    fan = [(0, k, k + 1) for k in range(1, count - 1)]
    if count == 3:
        return fan
    normal = np.zeros(3)  # Newell's normal: robust for non-planar and concave polygons
    for i in range(count):
        p, q = points[i], points[(i + 1) % count]
        normal += np.array([(p[1] - q[1]) * (p[2] + q[2]), (p[2] - q[2]) * (p[0] + q[0]),
                            (p[0] - q[0]) * (p[1] + q[1])])
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-300:
        return None
    drop = int(np.argmax(np.abs(normal)))
    flat = points[:, [(drop + 1) % 3, (drop + 2) % 3]]  # a right-handed pair: (y, z), (z, x) or (x, y)
    if normal[drop] < 0:
        flat = flat[:, ::-1]  # counter-clockwise in the projection
    edges = np.roll(flat, -1, axis=0) - flat
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    scale = float(np.abs(turns).max()) or 1.0
    if (turns >= -1e-12 * scale).all():
        return fan  # convex

    def cross(o, a, b) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    remaining = list(range(count))
    triangles: list[tuple[int, int, int]] = []
    while len(remaining) > 3:
        for k in range(len(remaining)):
            i, j, m = remaining[k - 1], remaining[k], remaining[(k + 1) % len(remaining)]
            if cross(flat[i], flat[j], flat[m]) <= 1e-12 * scale:
                continue  # a reflex or flat corner is no ear
            corners = flat[[i, j, m]]
            inside = any(cross(flat[i], flat[j], flat[r]) >= 0 and cross(flat[j], flat[m], flat[r]) >= 0
                         and cross(flat[m], flat[i], flat[r]) >= 0
                         for r in remaining
                         if r not in (i, j, m) and not (corners == flat[r]).all(axis=1).any())  # skip duplicates
            if not inside:
                triangles.append((i, j, m))
                remaining.pop(k)
                break
        else:
            return None  # no ear: the polygon crosses itself
    triangles.append(tuple(remaining))
    return triangles


def decode_text(raw: bytes) -> str:
    """An OBJ / MTL file's text: UTF-8 (a byte-order mark dropped), else Windows-1252, the code page Windows 3D tools
    write names in (``Grün``), so names and texture file names keep their letters."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


_NAMING_STATEMENTS = frozenset({"usemtl", "mtllib", "newmtl", "o", "g", "bump", "disp", "decal", "refl", "norm"})
"""OBJ / MTL statements whose arguments are names or file names (``map_*`` too): a ``#`` in them is part of the name
(3ds Max names materials ``Material #25``), not a comment."""


def strip_comment(line: str) -> str:
    """``line`` without its comment: a line starting with ``#`` is all comment; in a statement of numbers (``v``,
    ``f``, ``Kd``, ...) a ``#`` starts a trailing comment; in a naming statement (:data:`_NAMING_STATEMENTS`,
    ``map_*``) it belongs to the name, which runs to the end of the line."""
    stripped = line.lstrip()
    if stripped.startswith("#"):
        return ""
    key = stripped.split(None, 1)[0].lower() if stripped else ""
    if key in _NAMING_STATEMENTS or key.startswith("map_"):
        return line
    hash_at = line.find("#")
    return line if hash_at < 0 else line[:hash_at]


def _read_mtl_libraries(obj_path: Path, mtllibs: list[str], warnings: list[str],
                        read_files: list[Path] | None = None, output_notes: list[str] | None = None
                        ) -> dict[str, Material]:
    """Materials by name from the OBJ's ``mtllib`` files; files outside the mesh folder are never opened. The MTL
    files and textures read or looked for (inside the folder) are appended to ``read_files``, the parts of the
    materials that outputs do not carry to ``output_notes`` (:attr:`csdtex.mesh.Mesh.output_notes`)."""
    read_files = [] if read_files is None else read_files
    output_notes = [] if output_notes is None else output_notes
    folder = obj_path.parent
    library: dict[str, Material] = {}
    textures: dict = {}  # (file, reader) -> (image array, path) or None
    for entry in mtllibs:
        entry = clean_relative(entry)
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
            read_files.append(mtl_path)
            if not mtl_path.is_file():
                warnings.append(f"{obj_path.name}: MTL file '{name}' was not found; materials get default colours")
                continue
            try:
                text = decode_text(mtl_path.read_bytes())
            except OSError as err:
                warnings.append(f"{obj_path.name}: MTL file '{name}' could not be read ({error_text(err)})")
                continue
            for material in _parse_mtl(text, mtl_path, folder, warnings, textures, output_notes):
                library.setdefault(material.name, material)
    read_files.extend(dict.fromkeys(file for file, _ in textures))
    return library


# map_Kd options and how many arguments they take (at most; -o/-s/-t take 1 to 3 numbers)
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1, "-mm": 2,
                "-o": 3, "-s": 3, "-t": 3, "-texres": 1, "-type": 1}


def _parse_mtl(text: str, mtl_path: Path, folder: Path, warnings: list[str],
               textures: dict, output_notes: list[str]) -> list[Material]:
    materials: list[Material] = []
    current: Material | None = None
    scalars: dict[str, dict[str, float]] = {}  # material name -> Pr / Pm / Ke values
    channels: dict[str, dict[str, np.ndarray]] = {}  # material name -> map_Pr / map_Pm images
    lost: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = strip_comment(line)
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
                current.sampler, current.texture_transform = _map_options(parts[1:])
        elif key == "map_d" and len(parts) > 1:
            loaded = _load_mtl_texture(parts[1:], mtl_path, folder, warnings, textures, reader=_coverage)
            if loaded is not None:
                current.alpha = loaded[0]
        elif key in ("map_bump", "bump", "norm", "map_ke") and len(parts) > 1:
            loaded = _load_mtl_texture(parts[1:], mtl_path, folder, warnings, textures, reader=_encoded)
            if loaded is None:
                continue
            (data, mime_type, is_normal_map), _ = loaded
            sampler, transform = _map_options(parts[1:])
            gltf_transform = None if transform is None else transform.to_gltf()
            if key == "map_ke":
                current.maps["emissive"] = MaterialMap(data, mime_type, sampler, 1.0, gltf_transform)
            elif is_normal_map:
                strength = _option_value(parts[1:], "-bm", 1.0)
                current.maps["normal"] = MaterialMap(data, mime_type, sampler, strength, gltf_transform)
            else:
                lost.setdefault(current.name, []).append("a height (bump) map")
        elif key in ("map_pr", "map_pm") and len(parts) > 1:
            loaded = _load_mtl_texture(parts[1:], mtl_path, folder, warnings, textures, reader=image_to_grey8)
            if loaded is not None:
                channels.setdefault(current.name, {})[key] = loaded[0]
        elif key in ("pr", "pm") and len(parts) >= 2 and _is_float(parts[1]):
            scalars.setdefault(current.name, {})[key] = min(max(float(parts[1]), 0.0), 1.0)
        elif key == "ke" and len(parts) >= 4 and all(_is_float(x) for x in parts[1:4]):
            scalars.setdefault(current.name, {})["ke"] = tuple(max(float(x), 0.0) for x in parts[1:4])
        elif key in _UNCARRIED_MAPS and len(parts) > 1:
            lost.setdefault(current.name, []).append(f"{_UNCARRIED_MAPS[key]} ({parts[0]})")
    for material in materials:
        _settle_alpha(material)
        _settle_pbr(material, scalars.get(material.name, {}), channels.get(material.name, {}))
    if lost:
        listed = "; ".join(f"'{name}': {', '.join(dict.fromkeys(parts))}" for name, parts in lost.items())
        output_notes.append(f"{mtl_path.name}: painted or edited outputs do not carry these parts of its materials "
                        f"({listed}): copy them over from the source file in your 3D tool")
    return materials


_UNCARRIED_MAPS = {"map_ks": "specular map", "map_ns": "glossiness map", "map_ka": "ambient map",
                   "disp": "displacement map", "decal": "decal map", "refl": "reflection map",
                   "map_pc": "clearcoat map", "map_ps": "sheen map"}
"""MTL map statements csdtex does not carry into its outputs (named in one warning), with words for it."""


def _encoded(image) -> tuple[bytes, str, bool]:
    """A map image for the outputs: ``(bytes, MIME type, looks like a tangent-space normal map)``. PNG and JPEG files
    keep their own bytes (16-bit normal maps included); other formats are re-encoded as PNG. A normal map is a colour
    image whose blue channel is on average the largest (flat regions are (128, 128, 255)); a grey image is a height
    (bump) map, which glTF cannot carry. ``image`` was opened from its file (:func:`_load_mtl_texture`)."""
    rgb = image_to_rgb8(image).astype(np.float64)
    means = rgb.reshape(-1, 3).mean(axis=0)
    is_normal_map = bool(np.ptp(rgb, axis=2).mean() > 8.0 and means[2] > max(means[0], means[1]))
    return (*map_image_bytes(Path(image.filename).read_bytes()), is_normal_map)


def mtl_map_options(transform: dict | None) -> str:
    """``-o u v 0 -s u v 1 `` for a map's glTF ``KHR_texture_transform`` (the inverse of
    :meth:`csdtex.sampling.TextureTransform.to_gltf` for an OBJ map's offset and scale),
    or ``""`` for none or one with a rotation, which MTL cannot state (the GLB keeps it)."""
    if not transform or abs(float(transform.get("rotation", 0.0))) > 1e-12:
        return ""
    (offset_u, offset_v), (scale_u, scale_v) = transform.get("offset", (0.0, 0.0)), transform.get("scale", (1.0, 1.0))
    return (f"-o {float(offset_u):g} {1.0 - float(scale_v) - float(offset_v):g} 0 "
            f"-s {float(scale_u):g} {float(scale_v):g} 1 ")


def mtl_texture_options(sampler: TextureSampler | None, transform: TextureTransform | None) -> tuple[str, list[str]]:
    """``(options, lost)``: the ``map_Kd`` options stating a written texture's sampler and transform in MTL
    (``-clamp on`` when both axes clamp, ``-o`` / ``-s`` for an offset and scale), and what MTL cannot state (mirrored
    repeat, clamping one axis only, nearest filtering, a rotation), in words for a note."""
    options, lost = "", []
    if sampler is not None:
        wraps = {sampler.wrap_s, sampler.wrap_t}
        if wraps == {CLAMP_TO_EDGE}:
            options += "-clamp on "
        elif MIRRORED_REPEAT in wraps:
            lost.append("mirrored repeat")
        elif CLAMP_TO_EDGE in wraps:
            lost.append("clamping along one axis")
        if sampler.mag_filter == "nearest":
            lost.append("nearest filtering")
    gltf = transform.to_gltf() if transform is not None else None
    if gltf is not None:
        written = mtl_map_options(gltf)
        options += written
        if not written:
            lost.append("a rotated texture transform")
    return options, lost


def _option_value(tokens: list[str], option: str, default: float) -> float:
    """The number after ``option`` in a map statement's tokens (``-bm 0.5``), or ``default``."""
    for i, token in enumerate(tokens[:-1]):
        if token.lower() == option and _is_float(tokens[i + 1]):
            return float(tokens[i + 1])
    return default


def _settle_pbr(material: Material, scalars: dict, channels: dict[str, np.ndarray]) -> None:
    """The MTL PBR keys as glTF's: ``Pr`` / ``Pm`` / ``Ke`` become the factors (a ``Ke`` above 1 becomes a colour in
    [0, 1] and an emissive strength), ``map_Pr`` / ``map_Pm`` one packed
    metallic-roughness map (roughness in green, metallic in blue, at the larger map's size; a missing one is 255, its
    factor then does the work); an emissive map without ``Ke`` shows at full strength."""
    if "pr" in scalars or "map_pr" in channels:
        material.roughness_factor = scalars.get("pr", 1.0)
    if "pm" in scalars or "map_pm" in channels:
        material.metallic_factor = scalars.get("pm", 1.0 if "map_pm" in channels else 0.0)
        if material.roughness_factor is None:
            material.roughness_factor = 1.0 if "map_pr" in channels else 0.9
    elif material.roughness_factor is not None:
        material.metallic_factor = 0.0
    if "ke" in scalars or "emissive" in material.maps:
        emissive = scalars.get("ke", (1.0, 1.0, 1.0))
        brightest = max(emissive)
        if brightest > 1.0:  # glTF: a colour in [0, 1] times KHR_materials_emissive_strength
            material.emissive_strength = brightest
            emissive = tuple(v / brightest for v in emissive)
        material.emissive_factor = emissive
    if channels:
        from PIL import Image

        height = max(c.shape[0] for c in channels.values())
        width = max(c.shape[1] for c in channels.values())
        packed = np.full((height, width, 3), 255, dtype=np.uint8)
        for key, channel in (("map_pr", 1), ("map_pm", 2)):
            if key in channels:
                image = channels[key]
                if image.shape != (height, width):
                    image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
                packed[:, :, channel] = image
        buffer = io.BytesIO()
        Image.fromarray(packed).save(buffer, format="PNG")
        material.maps["metallic_roughness"] = MaterialMap(buffer.getvalue(), "image/png")


def _coverage(image) -> np.ndarray:
    """The coverage a ``map_d`` image gives: its alpha band when it has one (the usual RGBA texture), else its
    luminance. uint8 [H, W]; 16-bit / float greyscale scaled to 8 bits."""
    alpha = image_alpha8(image)
    return alpha if alpha is not None else image_to_grey8(image)


def _settle_alpha(material: Material) -> None:
    """A ``map_d`` coverage becomes the material's alpha at its texture's size: MASK (cutoff 0.5) when it holds only
    0 and 255, else BLEND; dropped when the material has no texture or the coverage is opaque everywhere."""
    alpha = material.alpha
    if alpha is None:
        return
    if material.texture is None or alpha.min() == 255:
        material.alpha = None
        return
    height, width = material.texture.shape[:2]
    if alpha.shape != (height, width):
        from PIL import Image

        alpha = np.asarray(Image.fromarray(alpha).resize((width, height), Image.Resampling.NEAREST), dtype=np.uint8)
    material.alpha = alpha
    material.alpha_mode = "MASK" if np.isin(alpha, (0, 255)).all() else "BLEND"


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
    return [clean_relative(c) for c in candidates]


def _map_options(tokens: list[str]) -> tuple[TextureSampler, TextureTransform | None]:
    """The sampler (OBJ textures repeat; ``-clamp on`` clamps) and the ``-o`` / ``-s`` transform of a ``map_Kd``."""
    offset, scale, clamp = [0.0, 0.0], [1.0, 1.0], False
    i = 0
    while i < len(tokens) - 1 and tokens[i].lower() in _MAP_OPTIONS:
        option, i = tokens[i].lower(), i + 1
        if option in ("-o", "-s", "-t"):
            values = []
            while len(values) < 3 and i < len(tokens) - 1 and _is_float(tokens[i]):
                values.append(float(tokens[i]))
                i += 1
            if option == "-o":
                offset[: min(2, len(values))] = values[:2]
            elif option == "-s":
                scale[: min(2, len(values))] = values[:2]
        else:
            if option == "-clamp" and i < len(tokens):
                clamp = tokens[i].lower() == "on"
            i += _MAP_OPTIONS[option]
    wrap = CLAMP_TO_EDGE if clamp else "repeat"
    transform = TextureTransform.from_obj(offset, scale)
    return TextureSampler(wrap, wrap), (None if transform.is_identity else transform)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _load_mtl_texture(tokens: list[str], mtl_path: Path, folder: Path, warnings: list[str],
                      cache: dict, reader=image_to_rgb8) -> tuple[np.ndarray, Path] | None:
    """``(reader(image), path)`` of the image a ``map_Kd`` / ``map_d`` statement names (``tokens``: its options and
    file name), or None with a warning (outside the mesh folder, missing, unreadable). Cached per (file, reader)."""
    candidates = _map_filename_candidates(tokens)
    name = candidates[0]
    for candidate in candidates:
        if (mtl_path.parent / candidate).exists() and is_within(mtl_path.parent / candidate, folder):
            name = candidate
            break
    else:  # a path from the artist's machine ("C:/Users/.../wood.png"): the file name next to the MTL, as importers do
        for candidate in candidates:
            base = candidate.rsplit("/", 1)[-1]
            if base and base != candidate and (mtl_path.parent / base).is_file():
                warnings.append(f"{mtl_path.name}: texture '{candidate}' is not at that path; '{base}' next to the "
                                "MTL file was used")
                name = base
                break
    tex_path = mtl_path.parent / name
    if not is_within(tex_path, folder):
        warnings.append(
            f"{mtl_path.name}: texture '{name}' lies outside the mesh folder and was not read "
            "(copy it next to the mesh to use it)"
        )
        return None
    key = (tex_path.resolve(), reader.__name__)
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
                result = (reader(image), tex_path)
                if reader is image_to_rgb8:
                    with open(tex_path, "rb") as handle:
                        note = sixteen_bit_note(f"texture '{name}'", image, handle.read(32))
                    if note:
                        warnings.append(f"{mtl_path.name}: {note}")
        except Exception as err:  # unreadable / unsupported / decompression bomb: go on without it
            warnings.append(f"{mtl_path.name}: texture '{name}' could not be read ({error_text(err)}); ignored")
    cache[key] = result
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------------


def obj_text(mesh: Mesh, object_name: str, mtl_file: str, labels: Sequence[str]) -> str:
    """OBJ text: ``v`` (input order, repr floats), ``vt`` (input order), faces grouped by material, 1-based.

    Args:
        mesh: a mesh with UVs on every face (``mesh.has_uvs``); vertices float64 [V, 3], uvs float64 [T, 2] with
            (0, 0) = bottom-left (OBJ's own convention, written unchanged), faces / uv_faces int64 [F, 3].
        object_name: the ``o`` name.
        mtl_file: the ``mtllib`` file name (relative to the OBJ).
        labels: one ``usemtl`` name per material, in material order (see :func:`csdtex.export.export_obj`).
    Returns:
        the file content: a header comment, ``mtllib``, ``o``, every ``v x y z`` then every ``vt u v`` in input
        order, then per non-empty material a ``usemtl`` line and its faces as ``f v/vt v/vt v/vt`` in their
        original relative order. A mesh with its own normals (``mesh.normals``) also gets ``vn`` lines (its normals,
        then smooth ones for corners without, :meth:`~csdtex.mesh.Mesh.export_normals`) and ``f v/vt/vn`` corners;
        other meshes get none (viewers compute smooth normals).
    """
    out = io.StringIO()
    out.write(f"# {GENERATOR} export: {mesh.num_vertices} vertices, {len(mesh.uvs)} uvs, {mesh.num_faces} faces\n")
    out.write(f"mtllib {mtl_file}\n")
    out.write(f"o {object_name}\n")
    # %r on Python floats is the shortest string that round-trips to the same float64 (bit-exact).
    out.write(("v %r %r %r\n" * mesh.num_vertices) % tuple(mesh.vertices.ravel().tolist()))
    out.write(("vt %r %r\n" * len(mesh.uvs)) % tuple(mesh.uvs.ravel().tolist()))
    normal_table, normal_corners = mesh.export_normals() if mesh.normals is not None else (None, None)
    if normal_table is not None:
        out.write(("vn %r %r %r\n" * len(normal_table)) % tuple(normal_table.ravel().tolist()))
    for material_index, label in enumerate(labels):
        selected = np.flatnonzero(mesh.face_materials == material_index)  # ascending: original relative order
        if len(selected) == 0:
            continue
        per_corner = 2 if normal_corners is None else 3
        corners = np.empty((len(selected), 3 * per_corner), dtype=np.int64)
        corners[:, 0::per_corner] = mesh.faces[selected] + 1
        corners[:, 1::per_corner] = mesh.uv_faces[selected] + 1
        if normal_corners is not None:
            corners[:, 2::per_corner] = normal_corners[selected] + 1
        out.write(f"usemtl {label}\n")
        corner_format = "%d/%d" if normal_corners is None else "%d/%d/%d"
        out.write((f"f {corner_format} {corner_format} {corner_format}\n" * len(selected))
                  % tuple(corners.ravel().tolist()))
    return out.getvalue()


def mtl_text(labels: Sequence[str], texture_files: Sequence[str], alpha_files: Sequence[str | None] = (),
             extra_lines: Sequence[Sequence[str]] = (), map_options: Sequence[str] = ()) -> str:
    """MTL text: a matte, fully textured material per label (Kd = 1 so viewers show the texture unmodulated).

    Args:
        labels: ``newmtl`` names, one per material.
        texture_files: the ``map_Kd`` file name (relative to the MTL) of each label's texture.
        alpha_files: per label, the ``map_d`` file of its cut-out (a grey-and-alpha PNG of the coverage), or None
            for an opaque material; default none.
        extra_lines: per label, more MTL lines (the carried maps' ``map_Bump``, ``map_Ke``, ``Pr``, ...); default
            none.
        map_options: per label, options written before the ``map_Kd`` / ``map_d`` file name (``-clamp on``, ``-o``
            / ``-s``: :func:`mtl_texture_options`); default none.
    Returns:
        the file content: per label ``newmtl``, ``Ka 1 1 1``, ``Kd 1 1 1``, ``Ks 0 0 0``, ``Ns 10``, ``d 1``,
        ``illum 1`` and ``map_Kd``, plus ``map_d`` (its coverage PNG) for a cut-out, then its
        ``extra_lines``.
    """
    blocks = [f"# {GENERATOR} export\n"]
    for index, (label, texture) in enumerate(zip(labels, texture_files)):
        options = map_options[index] if index < len(map_options) else ""
        blocks.append(
            f"\nnewmtl {label}\n"
            "Ka 1.000000 1.000000 1.000000\n"
            "Kd 1.000000 1.000000 1.000000\n"
            "Ks 0.000000 0.000000 0.000000\n"
            "Ns 10.000000\n"
            "d 1.000000\n"
            "illum 1\n"
            f"map_Kd {options}{texture}\n"
            + (f"map_d {options}{alpha_files[index]}\n" if index < len(alpha_files) and alpha_files[index] else "")
            + "".join(f"{line}\n" for line in (extra_lines[index] if index < len(extra_lines) else ()))
        )
    return "".join(blocks)
