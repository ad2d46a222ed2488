"""Tests for csdtex.export: OBJ/MTL/PNG and GLB writing, safe names, atomicity.

Meshes are built directly as ``Mesh(...)``; files are read back with trimesh, PIL and small parsers written here
(trimesh's OBJ loader may reorder or merge vertices, so exactness is checked with our own parser).

UV convention checked here: ``Mesh.uvs`` has (0, 0) at the bottom-left of the image. The GLB stores
``TEXCOORD_0 = (u, 1 - v)``; trimesh's glTF loader flips v back (``uv[:, 1] = 1 - uv[:, 1]``), so
``trimesh_geometry.visual.uv == our uv`` (to float32 precision), and the texel at our (u, v) is image row
``(1 - v) * (H - 1)``, column ``u * (W - 1)`` (row 0 = top), which is what ``trimesh.visual.color.uv_to_color`` samples.
"""

from __future__ import annotations

import io
import json
import struct
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from csdtex import export as export_module
from csdtex.errors import ConfigError, MeshError
from csdtex.export import (
    MAX_NAME_BYTES,
    MAX_NAME_LENGTH,
    ExportedFiles,
    export_all,
    export_glb,
    export_obj,
    output_path,
    safe_asset_name,
    save_texture_png,
)
from csdtex.io.gltf import check_gltf_document, split_seams
from csdtex.mesh import Material, Mesh, vertex_normals

# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------


def random_mesh(rng: np.random.Generator, num_materials: int = 1, num_vertices: int = 40, num_faces: int = 60) -> Mesh:
    vertices = rng.normal(size=(num_vertices, 3)) * 10.0 ** rng.integers(-3, 4, size=(num_vertices, 1))
    vertices[0] = [0.1, 1.0 / 3.0, -0.0]
    vertices[1] = [1e-300, 1e9, -123456789.123456789]
    uvs = rng.random((num_vertices + 7, 2))
    uvs[0] = [0.1, 2.0 / 3.0]
    faces = np.stack([rng.permutation(num_vertices)[:3] for _ in range(num_faces)])
    uv_faces = rng.integers(0, len(uvs), size=(num_faces, 3))
    face_materials = rng.integers(0, num_materials, size=num_faces)
    face_materials[:num_materials] = np.arange(num_materials)  # every material used
    materials = [Material(f"mat {i}") for i in range(num_materials)]
    return Mesh(vertices, faces, uvs, uv_faces, face_materials, materials)


def random_textures(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    return [rng.integers(0, 256, size=(8 + 4 * i, 12 + 2 * i, 3), dtype=np.uint8) for i in range(count)]


def cube_net() -> Mesh:
    """Unit cube, 8 positions, UVs from the classic cross unfolding: 14 UV vertices, each with one position."""
    # UV grid point (column, row) -> cube corner. Band of 4 sides (rows 1..2) around Y, top cap above the first
    # side (row 3), bottom cap below it (row 0).
    ring = [(0, 1), (1, 1), (1, 0), (0, 0), (0, 1)]  # (x, z) walking around the Y axis
    corner_of = {}
    for column, (x, z) in enumerate(ring):
        corner_of[(column, 1)] = (x, 0, z)
        corner_of[(column, 2)] = (x, 1, z)
    corner_of.update({(0, 3): (0, 1, 0), (1, 3): (1, 1, 0), (0, 0): (0, 0, 0), (1, 0): (1, 0, 0)})
    cells = [(c, 1) for c in range(4)] + [(0, 2), (0, 0)]
    positions = sorted(set(corner_of.values()))
    grid_points = sorted(corner_of)
    faces, uv_faces = [], []
    for c, r in cells:
        quad = [(c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1)]
        for tri in ([0, 1, 2], [0, 2, 3]):
            uv_faces.append([grid_points.index(quad[k]) for k in tri])
            faces.append([positions.index(corner_of[quad[k]]) for k in tri])
    uvs = np.array(grid_points, dtype=np.float64) / np.array([4.0, 4.0]) + 0.05
    return Mesh(np.array(positions, dtype=np.float64) - 0.5, np.array(faces), uvs, np.array(uv_faces))


def read_obj(path: Path) -> dict:
    """Minimal exact OBJ reader: v/vt as float64 via float(), faces with their usemtl group."""
    out = {"v": [], "vt": [], "f": [], "ft": [], "usemtl": [], "face_group": [], "mtllib": None}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "v":
            out["v"].append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            out["vt"].append([float(x) for x in parts[1:3]])
        elif parts[0] == "usemtl":
            out["usemtl"].append(parts[1])
        elif parts[0] == "mtllib":
            out["mtllib"] = parts[1]
        elif parts[0] == "f":
            corners = [p.split("/") for p in parts[1:]]
            assert len(corners) == 3
            out["f"].append([int(c[0]) - 1 for c in corners])
            out["ft"].append([int(c[1]) - 1 for c in corners])
            out["face_group"].append(len(out["usemtl"]) - 1)
    out["v"] = np.array(out["v"], dtype=np.float64)
    out["vt"] = np.array(out["vt"], dtype=np.float64)
    out["f"] = np.array(out["f"], dtype=np.int64)
    out["ft"] = np.array(out["ft"], dtype=np.int64)
    return out


def read_mtl(path: Path) -> dict[str, dict[str, str]]:
    materials: dict[str, dict[str, str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "newmtl":
            current = materials.setdefault(parts[1], {})
        else:
            current[parts[0]] = parts[1]
    return materials


def read_glb(path: Path) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<III", data, 0)
    assert magic == 0x46546C67 and version == 2 and total == len(data)
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length].decode("utf-8"))
    offset = 20 + json_length
    bin_length, bin_type = struct.unpack_from("<II", data, offset)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0
    assert offset + 8 + bin_length == len(data)
    return document, data[offset + 8 : offset + 8 + bin_length]


def accessor_array(document: dict, binary: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[accessor["type"]]
    start = view["byteOffset"] + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, dtype, accessor["count"] * width, start).reshape(accessor["count"], width)


def geometries_by_material(scene: trimesh.Scene) -> dict[str, trimesh.Trimesh]:
    return {g.visual.material.name: g for g in scene.geometry.values()}


def bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64).view(np.uint64)


# ----------------------------------------------------------------------------------------------------------------------
# names and paths
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd", "etc_passwd"),
        ("", "asset"),
        ("   ", "asset"),
        (".hidden", "hidden"),
        ("a/b\\c", "a_b_c"),
        ("café crème", "café_crème"),
        ("модель 2", "модель_2"),
        ("模型", "模型"),
        ("🙂", None),
        ("my mesh (final).v2", "my_mesh_final_.v2"),
        ("-rf", "rf"),
        ("name.", "name"),
        ("CON", "_CON"),
        ("_keep-this.name", "_keep-this.name"),
        ("C:\\Users\\x\\model", "C_Users_x_model"),
    ],
)
def test_safe_asset_name_examples(name, expected):
    if expected is None:  # no letter or digit: a hash keeps distinct names distinct
        assert safe_asset_name(name).startswith("asset_")
    else:
        assert safe_asset_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "", ".hidden", "a/b\\c", "模型", "🙂/../x", "..", "/", "a" * 500, "é" * 300, "x\0y\n",
     "模" * 200, "\u0301abc", "a\u202eb"],
)
def test_safe_asset_name_properties(name, tmp_path):
    safe = safe_asset_name(name)
    assert safe and len(safe) <= MAX_NAME_LENGTH and len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert all(ch.isalnum() or ch in "-_." or unicodedata.category(ch).startswith("M") for ch in safe)
    assert unicodedata.normalize("NFC", safe) == safe
    assert not safe.startswith((".", "-")) and not safe.endswith(".")
    assert safe_asset_name(safe) == safe  # idempotent
    path = output_path(tmp_path / "out", name, ".obj")
    assert path.parent == tmp_path / "out" and path.name == safe + ".obj"


def test_safe_asset_name_keeps_distinct_unicode_names_distinct():
    assert safe_asset_name("模型") != safe_asset_name("网格")
    assert safe_asset_name("🙂") != safe_asset_name("🙃")
    assert safe_asset_name("mo\u0301del") == safe_asset_name("m\u00f3del") == "m\u00f3del"  # NFD and NFC agree
    long_a, long_b = "a" * 200 + "1", "a" * 200 + "2"
    assert safe_asset_name(long_a) != safe_asset_name(long_b)


def test_output_path_rejects_escapes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "evil.obj").symlink_to(tmp_path / "elsewhere.obj")
    with pytest.raises(ConfigError, match="outside the output folder"):
        output_path(out, "evil", ".obj")
    with pytest.raises(ConfigError, match="suffix"):
        output_path(out, "ok", "/../../x.obj")
    assert output_path(out, "ok", "_albedo.png") == out / "ok_albedo.png"


def test_export_with_hostile_name_stays_inside(tmp_path):
    mesh = cube_net()
    out = tmp_path / "out"
    files = export_all(mesh, random_textures(np.random.default_rng(0), 1), out, "../../../evil/../name")
    for path in files.paths():
        assert path.exists() and path.resolve().parent == out.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ----------------------------------------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------------------------------------


def test_save_texture_png_uint8_float_rgba(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = save_texture_png(tmp_path / "t.png", image)
    with Image.open(path) as loaded:
        assert loaded.mode == "RGB" and loaded.size == (7, 5) and "srgb" in loaded.info
        np.testing.assert_array_equal(np.asarray(loaded), image)

    as_float = image.astype(np.float64) / 255.0 + rng.uniform(-0.49, 0.49, size=image.shape) / 255.0
    save_texture_png(tmp_path / "f.png", as_float.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "f.png")), image)

    save_texture_png(tmp_path / "c.png", np.array([[[-1.0, 0.5, 2.0]]]))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), [[[0, 128, 255]]])

    rgba = np.concatenate([image, np.zeros((5, 7, 1), np.uint8)], axis=2)
    save_texture_png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.png", "f.png", "t.png"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.uint16), "dtype"),
        (np.full((4, 4, 3), np.nan), "NaN"),
    ],
)
def test_save_texture_png_rejects_bad_images(tmp_path, bad, message):
    with pytest.raises(ConfigError, match=message):
        save_texture_png(tmp_path / "x.png", bad)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------------
# OBJ + MTL
# ----------------------------------------------------------------------------------------------------------------------


def test_obj_round_trip_is_bit_exact_single_material(tmp_path):
    rng = np.random.default_rng(2)
    mesh = random_mesh(rng, num_materials=1)
    mesh.vertices[2] = [1e17, 5e-324, -1.7976931348623157e308]  # extremes: OBJ writing never touches the values
    textures = random_textures(rng, 1)
    files = export_obj(mesh, textures, tmp_path, "thing")
    assert files.obj == tmp_path / "thing.obj" and files.mtl == tmp_path / "thing.mtl"
    assert files.textures == [tmp_path / "thing.png"] and files.glb is None

    obj = read_obj(files.obj)
    np.testing.assert_array_equal(bits(obj["v"]), bits(mesh.vertices))  # bit-exact, -0.0 included
    np.testing.assert_array_equal(bits(obj["vt"]), bits(mesh.uvs))
    np.testing.assert_array_equal(obj["f"], mesh.faces)  # exact input face order
    np.testing.assert_array_equal(obj["ft"], mesh.uv_faces)
    assert obj["mtllib"] == "thing.mtl" and obj["usemtl"] == ["mat_0"]

    mtl = read_mtl(files.mtl)
    assert list(mtl) == ["mat_0"]
    assert mtl["mat_0"]["map_Kd"] == "thing.png" and mtl["mat_0"]["Kd"].split() == ["1.000000"] * 3
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "thing.png")), textures[0])


def test_obj_multi_material_groups_and_textures(tmp_path):
    rng = np.random.default_rng(3)
    mesh = random_mesh(rng, num_materials=3, num_faces=90)
    mesh.materials[2] = Material("mat/0")  # collides with "mat 0" after sanitizing
    textures = random_textures(rng, 3)
    files = export_obj(mesh, textures, tmp_path / "out", "multi")

    labels = ["mat_0", "mat_1", "mat_0_2"]
    assert [p.name for p in files.textures] == [f"multi_{label}.png" for label in labels]
    obj = read_obj(files.obj)
    assert obj["usemtl"] == labels
    np.testing.assert_array_equal(bits(obj["v"]), bits(mesh.vertices))
    order = np.concatenate([np.flatnonzero(mesh.face_materials == m) for m in range(3)])  # stable grouping
    np.testing.assert_array_equal(obj["f"], mesh.faces[order])
    np.testing.assert_array_equal(obj["ft"], mesh.uv_faces[order])
    np.testing.assert_array_equal(np.array(obj["face_group"]), mesh.face_materials[order])

    mtl = read_mtl(files.mtl)
    assert list(mtl) == labels
    for label, path, texture in zip(labels, files.textures, textures):
        assert mtl[label]["map_Kd"] == path.name and path.parent == files.mtl.parent
        np.testing.assert_array_equal(np.asarray(Image.open(path)), texture)


def test_obj_loads_in_trimesh_with_texture(tmp_path):
    mesh = cube_net()
    texture = np.random.default_rng(4).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    files = export_obj(mesh, [texture], tmp_path, "cube")
    loaded = trimesh.load(files.obj, process=False, force="mesh")
    assert len(loaded.faces) == mesh.num_faces
    np.testing.assert_array_equal(np.asarray(loaded.visual.material.image.convert("RGB")), texture)


# ----------------------------------------------------------------------------------------------------------------------
# GLB
# ----------------------------------------------------------------------------------------------------------------------


def test_glb_loads_in_trimesh_same_triangles_uvs_image(tmp_path):
    rng = np.random.default_rng(5)
    mesh = random_mesh(rng, num_materials=1)
    texture = random_textures(rng, 1)[0]
    path = export_glb(mesh, [texture], tmp_path / "sub" / "m.glb")
    assert path == tmp_path / "sub" / "m.glb"

    scene = trimesh.load(path)
    assert len(scene.geometry) == 1
    geometry = next(iter(scene.geometry.values()))
    # Same triangles, in the input's face order, positions rounded to float32.
    np.testing.assert_array_equal(
        geometry.vertices[geometry.faces], mesh.vertices[mesh.faces].astype(np.float32).astype(np.float64)
    )
    # trimesh flips glTF's v back: its uv equals ours (corner by corner), up to float32 rounding.
    np.testing.assert_allclose(geometry.visual.uv[geometry.faces], mesh.uvs[mesh.uv_faces], atol=2e-7)
    np.testing.assert_array_equal(np.asarray(geometry.visual.material.baseColorTexture.convert("RGB")), texture)
    assert geometry.visual.material.metallicFactor == 0.0


def test_glb_uv_convention_red_top_half(tmp_path):
    """Texture red on its top half (rows 0..H/2-1 = v > 0.5), blue below; a quad mapped to v in [0.6, 0.9] must
    come out red in trimesh and a quad mapped to v in [0.1, 0.4] blue."""
    height, width = 32, 16
    texture = np.zeros((height, width, 3), np.uint8)
    texture[: height // 2] = [255, 0, 0]
    texture[height // 2 :] = [0, 0, 255]
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [3, 0, 0], [3, 1, 0], [2, 1, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    uvs = np.array([[0.1, 0.6], [0.9, 0.6], [0.9, 0.9], [0.1, 0.9], [0.1, 0.1], [0.9, 0.1], [0.9, 0.4], [0.1, 0.4]])
    mesh = Mesh(vertices, faces, uvs, faces.copy())
    path = export_glb(mesh, [texture], tmp_path / "uv.glb")

    document, binary = read_glb(path)
    stored = accessor_array(document, binary, document["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"])
    np.testing.assert_allclose(stored, np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1), atol=1e-7)  # glTF: v flipped

    geometry = next(iter(trimesh.load(path).geometry.values()))
    image = geometry.visual.material.baseColorTexture
    corner_uv = geometry.visual.uv[geometry.faces]  # [F, 3, 2], trimesh's uv: bottom-left origin like ours
    is_top = corner_uv[:, :, 1].min(axis=1) > 0.5
    np.testing.assert_array_equal(is_top, [True, True, False, False])
    colors = trimesh.visual.color.uv_to_color(corner_uv.reshape(-1, 2), image)[:, :3].reshape(4, 3, 3)
    assert (colors[is_top] == [255, 0, 0]).all() and (colors[~is_top] == [0, 0, 255]).all()
    # The same relation by hand: row = (1 - v) * (H - 1) (row 0 = top), column = u * (W - 1).
    pixels = np.asarray(image.convert("RGB"))
    rows = np.round((1.0 - corner_uv[..., 1]) * (height - 1)).astype(int)
    cols = np.round(corner_uv[..., 0] * (width - 1)).astype(int)
    assert (pixels[rows[is_top], cols[is_top]] == [255, 0, 0]).all()
    assert (pixels[rows[~is_top], cols[~is_top]] == [0, 0, 255]).all()


def test_glb_multi_material_primitives(tmp_path):
    rng = np.random.default_rng(6)
    mesh = random_mesh(rng, num_materials=3, num_faces=80)
    textures = random_textures(rng, 3)
    path = export_glb(mesh, textures, tmp_path / "multi.glb")

    document, _ = read_glb(path)
    primitives = document["meshes"][0]["primitives"]
    assert len(primitives) == 3 and [p["material"] for p in primitives] == [0, 1, 2]
    assert [m["name"] for m in document["materials"]] == ["mat 0", "mat 1", "mat 2"]

    by_material = geometries_by_material(trimesh.load(path))
    assert sorted(by_material) == ["mat 0", "mat 1", "mat 2"]
    for index, material in enumerate(mesh.materials):
        geometry = by_material[material.name]
        selected = mesh.face_materials == index
        np.testing.assert_array_equal(
            geometry.vertices[geometry.faces], mesh.vertices[mesh.faces[selected]].astype(np.float32)
        )
        np.testing.assert_allclose(geometry.visual.uv[geometry.faces], mesh.uvs[mesh.uv_faces[selected]], atol=2e-7)
        np.testing.assert_array_equal(
            np.asarray(geometry.visual.material.baseColorTexture.convert("RGB")), textures[index]
        )


def test_seam_split_cube_net_has_14_vertices(tmp_path):
    mesh = cube_net()
    assert mesh.num_vertices == 8 and len(mesh.uvs) == 14 and mesh.num_faces == 12

    vertex_index, uv_index, new_faces = split_seams(mesh.faces, mesh.uv_faces, len(mesh.uvs))
    assert len(vertex_index) == 14
    np.testing.assert_array_equal(vertex_index[new_faces], mesh.faces)
    np.testing.assert_array_equal(uv_index[new_faces], mesh.uv_faces)

    document, binary = read_glb(export_glb(mesh, [np.zeros((4, 4, 3), np.uint8)], tmp_path / "cube.glb"))
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    assert {document["accessors"][a]["count"] for a in attributes.values()} == {14}
    normals = accessor_array(document, binary, attributes["NORMAL"])
    positions = accessor_array(document, binary, attributes["POSITION"])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(normals, vertex_normals(mesh.vertices, mesh.faces)[vertex_index], atol=1e-7)
    # Smooth across the seams: the split copies of one corner share its normal, which points outwards.
    _, first = np.unique(positions, axis=0, return_inverse=True)
    for group in range(8):
        copies = normals[first.reshape(-1) == group]
        assert len(copies) >= 1 and (copies == copies[0]).all()
    assert (np.sign(normals) == np.sign(positions)).all()


def test_glb_structure(tmp_path):
    rng = np.random.default_rng(7)
    mesh = random_mesh(rng, num_materials=2)
    document, binary = read_glb(export_glb(mesh, random_textures(rng, 2), tmp_path / "s.glb"))
    check_gltf_document(document, binary)

    assert document["asset"] == {"version": "2.0", "generator": "csdtex"}
    assert document["buffers"] == [{"byteLength": len(binary)}]
    assert document["nodes"] == [{"name": "s", "mesh": 0}]  # no transform
    for view in document["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["byteOffset"] + view["byteLength"] <= len(binary)
    for primitive in document["meshes"][0]["primitives"]:
        attributes = primitive["attributes"]
        counts = {document["accessors"][a]["count"] for a in attributes.values()}
        assert len(counts) == 1
        position = document["accessors"][attributes["POSITION"]]
        assert position["componentType"] == 5126 and position["type"] == "VEC3"
        data = accessor_array(document, binary, attributes["POSITION"])
        assert position["min"] == data.min(axis=0).tolist() and position["max"] == data.max(axis=0).tolist()
        indices = document["accessors"][primitive["indices"]]
        assert indices["componentType"] == 5123 and indices["type"] == "SCALAR"  # uint16 for small meshes
        assert indices["count"] == 3 * int((mesh.face_materials == primitive["material"]).sum())
        assert document["bufferViews"][indices["bufferView"]]["target"] == 34963
    for material in document["materials"]:
        pbr = material["pbrMetallicRoughness"]
        assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] == pytest.approx(0.9)
    assert document["samplers"] == [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
    for image in document["images"]:
        assert image["mimeType"] == "image/png"
        view = document["bufferViews"][image["bufferView"]]
        assert binary[view["byteOffset"] : view["byteOffset"] + 8] == b"\x89PNG\r\n\x1a\n"


def test_glb_large_mesh_uses_uint32_and_tiling_uvs_use_repeat(tmp_path):
    n = 260  # 67600 grid vertices > 65535
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), axis=-1).reshape(-1, 2).astype(float)
    vertices = np.concatenate([grid, np.zeros((len(grid), 1))], axis=1)
    ids = np.arange(n * n).reshape(n, n)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel(), ids[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    mesh = Mesh(vertices, faces, grid / 10.0, faces.copy())  # UVs up to 25.9: a tiling texture
    document, binary = read_glb(export_glb(mesh, [np.zeros((2, 2, 3), np.uint8)], tmp_path / "big.glb"))
    check_gltf_document(document, binary)
    primitive = document["meshes"][0]["primitives"][0]
    assert document["accessors"][primitive["indices"]]["componentType"] == 5125
    indices = accessor_array(document, binary, primitive["indices"]).reshape(-1, 3)
    positions = accessor_array(document, binary, primitive["attributes"]["POSITION"])
    np.testing.assert_array_equal(positions[indices], vertices[faces].astype(np.float32))
    assert document["samplers"][0]["wrapS"] == 10497 and document["samplers"][0]["wrapT"] == 10497


def test_export_all_writes_everything_with_identical_pngs(tmp_path):
    rng = np.random.default_rng(8)
    mesh = random_mesh(rng, num_materials=2)
    files = export_all(mesh, random_textures(rng, 2), tmp_path, "both")
    assert isinstance(files, ExportedFiles)
    assert files.glb == tmp_path / "both.glb"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files.paths())
    document, binary = read_glb(files.glb)
    for image, png in zip(document["images"], files.textures):
        view = document["bufferViews"][image["bufferView"]]
        assert binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]] == png.read_bytes()


# ----------------------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------------------


def test_input_errors(tmp_path):
    mesh = cube_net()
    good = [np.zeros((4, 4, 3), np.uint8)]
    no_uvs = Mesh(mesh.vertices, mesh.faces)
    with pytest.raises(ConfigError, match="unwrap") as info:
        export_all(no_uvs, good, tmp_path, "x")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="1 material"):
        export_obj(mesh, good * 2, tmp_path, "x")
    with pytest.raises(ConfigError, match="shape"):
        export_glb(mesh, [np.zeros((4, 4), np.uint8)], tmp_path / "x.glb")
    broken = mesh.copy_with(faces=mesh.faces + 100)
    with pytest.raises(MeshError, match="out of range"):
        export_all(broken, good, tmp_path, "x")
    rgba = export_obj(mesh, [np.zeros((4, 4, 4), np.uint8)], tmp_path, "rgba")
    assert np.asarray(Image.open(rgba.textures[0])).shape == (4, 4, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgba.mtl", "rgba.obj", "rgba.png"]


# ----------------------------------------------------------------------------------------------------------------------
# atomicity
# ----------------------------------------------------------------------------------------------------------------------


def test_png_encoding_failure_leaves_nothing(tmp_path, monkeypatch):
    """PIL fails after the OBJ and MTL were already staged: no output and no temporary file may remain, and older
    outputs of the same name keep their content."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.obj").write_text("old")
    rng = np.random.default_rng(9)
    mesh = random_mesh(rng, num_materials=2)

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        export_all(mesh, random_textures(rng, 2), out, "keep")
    with pytest.raises(OSError, match="simulated"):
        save_texture_png(out / "single.png", np.zeros((2, 2, 3), np.uint8))
    assert sorted(p.name for p in out.iterdir()) == ["keep.obj"]
    assert (out / "keep.obj").read_text() == "old"


def test_glb_failure_after_pngs_leaves_nothing(tmp_path, monkeypatch):
    staged = []
    real_atomic_path = export_module.atomic_path

    def recording_atomic_path(destination):
        staged.append(Path(destination).name)
        return real_atomic_path(destination)

    def broken_glb(*args, **kwargs):
        assert len(list(tmp_path.iterdir())) == 4  # obj, mtl, 2 PNGs exist only as temporary files
        assert all(p.name.startswith(".") and ".tmp" in p.name for p in tmp_path.iterdir())
        raise RuntimeError("interrupted (simulated)")

    monkeypatch.setattr(export_module, "atomic_path", recording_atomic_path)
    monkeypatch.setattr(export_module, "glb_bytes", broken_glb)
    rng = np.random.default_rng(10)
    with pytest.raises(RuntimeError, match="simulated"):
        export_all(random_mesh(rng, num_materials=2), random_textures(rng, 2), tmp_path, "late")
    assert staged == ["late.obj", "late.mtl", "late_mat_0.png", "late_mat_1.png"]
    assert list(tmp_path.iterdir()) == []


def _gltf_validator_modules() -> Path | None:
    """The node_modules folder holding the npm package gltf-validator (``CSDTEX_GLTF_VALIDATOR``, else the CI's
    ``.ci-node/node_modules``), or None."""
    import os
    import shutil

    if shutil.which("node") is None:
        return None
    root = Path(__file__).resolve().parents[1]
    for candidate in (os.environ.get("CSDTEX_GLTF_VALIDATOR"), root / ".ci-node" / "node_modules"):
        if candidate and (Path(candidate) / "gltf-validator").is_dir():
            return Path(candidate)
    return None


def test_glb_outputs_pass_the_khronos_validator(tmp_path):
    """What viewers load: the Khronos glTF-Validator (npm gltf-validator, installed by .ci/run) finds no error and no
    warning in GLBs with several materials, the file's own hard-edge normals (vertices split per normal), an
    alpha cut-out (RGBA image, alphaMode MASK) and the input's carried normal / occlusion / metallic-roughness /
    emissive maps (with a texture transform)."""
    import os
    import subprocess
    import sys

    modules = _gltf_validator_modules()
    if modules is None:
        pytest.skip("node or the npm package gltf-validator is missing (.ci/run installs it into .ci-node)")
    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, box_faces

    from csdtex.mesh import load_mesh

    positions, faces, uvs = box_faces()
    flat = np.cross(positions[faces[:, 1]] - positions[faces[:, 0]], positions[faces[:, 2]] - positions[faces[:, 0]])
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[2:6, 2:6, 3] = 200, 255
    builder = GltfBuilder()
    cutout = builder.material("cutout", builder.texture(rgba))
    builder.doc["materials"][cutout].update({"alphaMode": "MASK", "alphaCutoff": 0.4})
    plain = builder.material("plain", builder.texture(rgba[..., :3].copy()))
    map_image = builder.texture(np.full((4, 4, 3), 128, np.uint8))  # carried maps (one image serves all four here)
    builder.use_extension("KHR_texture_transform")
    builder.doc["materials"][plain].update({
        "normalTexture": {"index": map_image, "scale": 0.5,
                          "extensions": {"KHR_texture_transform": {"scale": [2.0, 2.0]}}},
        "occlusionTexture": {"index": map_image, "strength": 0.7}, "emissiveTexture": {"index": map_image},
        "emissiveFactor": [0.2, 0.2, 0.2]})
    builder.doc["materials"][plain]["pbrMetallicRoughness"]["metallicRoughnessTexture"] = {"index": map_image}
    split = positions[faces].reshape(-1, 3).astype(np.float32)
    primitives = []
    for material, rows in ((cutout, slice(0, 6)), (plain, slice(6, 12))):
        corners = np.arange(len(split)).reshape(-1, 3)[rows]
        primitive = builder.primitive(split, corners, uvs[faces].reshape(-1, 2) / 6.0, material=material)
        primitive["attributes"]["NORMAL"] = builder.accessor(np.repeat(flat, 3, axis=0).astype(np.float32))
        helper = np.where(np.abs(flat[:, 1:2]) > 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        tangent = np.cross(flat, helper)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        tangent = np.concatenate([tangent, np.ones((len(tangent), 1))], axis=1)  # the normal map's frame, w = +1
        primitive["attributes"]["TANGENT"] = builder.accessor(np.repeat(tangent, 3, axis=0).astype(np.float32))
        primitives.append(primitive)
    builder.mesh(primitives)
    mesh = load_mesh(builder.write_glb(tmp_path / "box.glb"))
    assert mesh.normals is not None and mesh.materials[0].alpha is not None and len(mesh.materials[1].maps) == 4
    assert mesh.tangents is not None and mesh.tangents.shape == (len(mesh.normals), 4)
    files = export_all(mesh, [np.full((16, 16, 3), 90, np.uint8)] * 2, tmp_path / "out", "box")
    from gltf_files import read_glb

    written = [p["attributes"] for p in read_glb(files.glb)[0]["meshes"][0]["primitives"]]
    assert "TANGENT" not in written[0] and "TANGENT" in written[1]  # the frame of the carried normal map
    script = Path(__file__).parent / "data" / "gltf_validate.mjs"
    completed = subprocess.run(["node", str(script), str(files.glb)], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "GLTF_VALIDATOR_MODULES": str(modules)})
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]


def test_the_inputs_other_maps_are_carried_into_the_glb_and_the_obj(tmp_path):
    """csdtex paints the base colour only: a glTF material's normal, metallic-roughness, occlusion and emissive maps
    (with their strengths, texture transforms and the factors) reach the GLB unchanged and the MTL in its PBR keys; a
    map on another UV set is named as not carried."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, png_bytes, quad, read_glb

    from csdtex.mesh import load_mesh

    rng = np.random.default_rng(3)
    base, normal, packed, glow, occlusion = (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5))
    builder = GltfBuilder()
    metal = builder.material("metal", builder.texture(base))
    transform = {"offset": [0.25, 0.0], "scale": [2.0, 2.0]}
    builder.use_extension("KHR_texture_transform")
    builder.doc["materials"][metal].update({
        "normalTexture": {"index": builder.texture(normal), "scale": 0.5,
                          "extensions": {"KHR_texture_transform": transform}},
        "emissiveTexture": {"index": builder.texture(glow)}, "emissiveFactor": [1.0, 0.5, 0.0], "doubleSided": False,
        "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": 4.0}},
        "occlusionTexture": {"index": builder.texture(occlusion), "strength": 0.7, "texCoord": 1}})
    builder.doc["materials"][metal]["pbrMetallicRoughness"].update({
        "metallicRoughnessTexture": {"index": builder.texture(packed)}, "metallicFactor": 0.3, "roughnessFactor": 0.6})
    positions, faces = quad()
    primitive = builder.primitive(positions, faces, positions[:, :2].astype(np.float64), material=metal)
    primitive["attributes"]["TEXCOORD_1"] = builder.accessor(positions[:, :2] * 0.5)
    builder.mesh([primitive])
    mesh = load_mesh(builder.write_glb(tmp_path / "metal.glb"))
    assert set(mesh.materials[0].maps) == {"normal", "emissive", "metallic_roughness"}
    [warning] = [w for w in mesh.output_notes if "do not carry" in w]
    assert "'metal': occlusion map (it reads TEXCOORD_1, the base colour TEXCOORD_0), UV sets TEXCOORD_1" in warning
    from csdtex.mesh import analyze_mesh

    [line] = analyze_mesh(mesh).textures  # what `csdtex info` shows
    assert line.endswith("; carried into the outputs: normal map, metallic-roughness map, emissive map"), line

    files = export_all(mesh, [np.full((16, 16, 3), 90, np.uint8)], tmp_path / "out", "metal")
    document, binary = read_glb(files.glb)
    material = document["materials"][0]
    pbr = material["pbrMetallicRoughness"]
    assert (pbr["metallicFactor"], pbr["roughnessFactor"], material["emissiveFactor"]) == (0.3, 0.6, [1.0, 0.5, 0.0])
    assert material["normalTexture"]["scale"] == 0.5 and "occlusionTexture" not in material
    assert material["normalTexture"]["extensions"] == {"KHR_texture_transform": transform}
    assert document["extensionsUsed"] == ["KHR_materials_emissive_strength", "KHR_texture_transform"]
    assert material["extensions"] == {"KHR_materials_emissive_strength": {"emissiveStrength": 4.0}}
    assert material["doubleSided"] is False  # as the file says (OBJ inputs stay double-sided)

    def image_of(info: dict) -> bytes:
        view = document["bufferViews"][document["images"][document["textures"][info["index"]]["source"]]["bufferView"]]
        return binary[view.get("byteOffset", 0): view.get("byteOffset", 0) + view["byteLength"]]

    assert image_of(material["normalTexture"]) == png_bytes(normal)  # the input's own bytes
    assert image_of(pbr["metallicRoughnessTexture"]) == png_bytes(packed)
    assert image_of(material["emissiveTexture"]) == png_bytes(glow)
    again = load_mesh(files.glb)  # and csdtex reads its own output's maps back
    assert again.materials[0].maps["normal"].image == png_bytes(normal)
    assert again.materials[0].maps["normal"].transform == transform

    mtl = files.mtl.read_text().splitlines()
    for line in ("Pr 0.600000", "Pm 0.300000", "Ke 4.000000 2.000000 0.000000",
                 "map_Bump -bm 0.5 -o 0.25 -1 0 -s 2 2 1 metal_normal.png",
                 "map_Ke metal_emissive.png", "map_Pr metal_roughness.png", "map_Pm metal_metallic.png"):
        assert line in mtl, (line, mtl)
    assert sorted(p.name for p in files.maps) == ["metal_emissive.png", "metal_metallic.png", "metal_normal.png",
                                                  "metal_roughness.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(files.obj.parent / "metal_roughness.png")), packed[..., 1])
    np.testing.assert_array_equal(np.asarray(Image.open(files.obj.parent / "metal_metallic.png")), packed[..., 2])
    assert (files.obj.parent / "metal_normal.png").read_bytes() == png_bytes(normal)
    from_obj = load_mesh(files.obj).materials[0]  # Ke 4 2 0 reads back as colour (1, 0.5, 0) x strength 4
    assert from_obj.emissive_factor == (1.0, 0.5, 0.0) and from_obj.emissive_strength == 4.0


def test_an_objs_normal_emissive_and_pbr_maps_are_carried(tmp_path):
    """MTL maps as Blender and other tools write them: ``map_Bump -bm`` with a normal map, ``map_Pr`` / ``map_Pm``
    greyscale maps (packed into one glTF metallic-roughness map), ``map_Ke`` + ``Ke``; a greyscale ``bump`` height map
    and a specular map are named as not carried."""
    from csdtex.mesh import load_mesh

    rng = np.random.default_rng(5)
    normal = np.stack([rng.integers(100, 156, (8, 8)), rng.integers(100, 156, (8, 8)),
                       rng.integers(220, 256, (8, 8))], axis=2).astype(np.uint8)
    rough, metal = rng.integers(0, 256, (8, 8), dtype=np.uint8), rng.integers(0, 256, (4, 4), dtype=np.uint8)
    glow = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    height = np.repeat(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), 3, axis=2)
    for name, image in (("n.png", normal), ("r.png", rough), ("m.png", metal), ("e.png", glow), ("h.png", height),
                        ("kd.png", np.full((8, 8, 3), 60, np.uint8))):
        Image.fromarray(image).save(tmp_path / name)
    (tmp_path / "m.mtl").write_text(
        "newmtl panel\nmap_Kd kd.png\nmap_Bump -bm 0.8 n.png\nPr 0.5\nmap_Pr r.png\nmap_Pm m.png\nKe 1 0.5 0\n"
        "map_Ke e.png\nmap_Ks kd.png\n"
        "newmtl stone\nmap_Kd kd.png\nbump h.png\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\n"
                                    "vt 0 1\nusemtl panel\nf 1/1 2/2 3/3\nusemtl stone\nf 1/1 3/3 4/4\n")
    mesh = load_mesh(tmp_path / "m.obj")
    panel, stone = mesh.materials
    assert set(panel.maps) == {"normal", "metallic_roughness", "emissive"} and not stone.maps
    assert panel.maps["normal"].strength == 0.8 and panel.maps["normal"].image == (tmp_path / "n.png").read_bytes()
    assert (panel.roughness_factor, panel.metallic_factor, panel.emissive_factor) == (0.5, 1.0, (1.0, 0.5, 0.0))
    [warning] = [w for w in mesh.output_notes if "do not carry" in w]
    assert "'panel': specular map (map_Ks); 'stone': a height (bump) map" in warning
    assert not [w for w in mesh.warnings if "do not carry" in w]
    # `csdtex render` writes no mesh: the note about outputs is not its business; `csdtex info` shows it
    from click.testing import CliRunner

    from csdtex.cli import main

    rendered = CliRunner().invoke(main, ["render", str(tmp_path / "m.obj"), "--out", str(tmp_path / "r.png"),
                                         "--frames", "1", "--size", "16"])
    assert rendered.exit_code == 0 and "do not carry" not in rendered.output, rendered.output
    assert "do not carry" in CliRunner().invoke(main, ["info", str(tmp_path / "m.obj")]).output

    files = export_all(mesh, [np.full((8, 8, 3), 90, np.uint8)] * 2, tmp_path / "out", "m")
    packed = load_mesh(files.glb).materials[0].maps["metallic_roughness"]  # the GLB's map, read back
    channels = np.asarray(Image.open(io.BytesIO(packed.image)))
    np.testing.assert_array_equal(channels[..., 1], rough)
    np.testing.assert_array_equal(channels[..., 2], np.asarray(Image.fromarray(metal).resize((8, 8),
                                                                                              Image.Resampling.BILINEAR)))
    again = load_mesh(files.obj).materials[0]  # the OBJ output reads back the same
    assert again.maps["normal"].image == (tmp_path / "n.png").read_bytes() and again.maps["normal"].strength == 0.8
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(again.maps["metallic_roughness"].image)))[..., 1],
                                  rough)


def test_texture_names_never_take_a_previews_name_and_a_black_emissive_stays_dark(tmp_path):
    """A material named "views" wrote <stem>_views.png, which the preview sheet then replaced; a glTF emissive map
    without emissiveFactor (black: it shows nothing) became Ke 1 1 1 + map_Ke in the MTL, a glow (new-user tests,
    session 13)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, quad, read_glb

    from csdtex.mesh import load_mesh

    builder = GltfBuilder()
    views = builder.material("Views", builder.texture(np.full((4, 4, 3), 50, np.uint8)))
    builder.doc["materials"][views]["emissiveTexture"] = {"index": builder.texture(np.full((4, 4, 3), 250, np.uint8))}
    other = builder.material("other", builder.texture(np.full((4, 4, 3), 90, np.uint8)))
    positions, faces = quad()
    uvs = positions[:, :2].astype(np.float64)
    builder.mesh([builder.primitive(positions, faces, uvs, material=views),
                  builder.primitive(positions + [0, 0, 1], faces, uvs, material=other)])
    mesh = load_mesh(builder.write_glb(tmp_path / "t.glb"))
    files = export_all(mesh, [np.full((8, 8, 3), 90, np.uint8)] * 2, tmp_path / "out", "t")
    assert [p.name for p in files.textures] == ["t_Views_texture.png", "t_other.png"]
    mtl = files.mtl.read_text()
    assert "newmtl Views" in mtl and "map_Kd t_Views_texture.png" in mtl
    assert "Ke " not in mtl and "map_Ke" not in mtl and not files.maps
    material = read_glb(files.glb)[0]["materials"][0]
    assert "emissiveTexture" in material and "emissiveFactor" not in material  # as the input: black


def test_map_placement_options_travel_between_mtl_and_gltf(tmp_path):
    """``norm -o / -s`` of an MTL map becomes the map's KHR_texture_transform in the GLB and comes back as -o / -s
    in the output MTL (it was dropped; new-user test, session 13)."""
    from csdtex.mesh import load_mesh

    normal = np.zeros((8, 8, 3), np.uint8)
    normal[..., 0], normal[..., 1], normal[..., 2] = 120, 135, 250
    normal[::2, :, 0] = 100
    Image.fromarray(normal).save(tmp_path / "n.png")
    Image.fromarray(np.full((8, 8, 3), 60, np.uint8)).save(tmp_path / "kd.png")
    (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd kd.png\nnorm -o 0.25 0.5 0 -s 2 2 1 n.png\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nusemtl a\n"
                                    "f 1/1 2/2 3/3\n")
    carried = load_mesh(tmp_path / "m.obj").materials[0].maps["normal"]
    assert carried.transform == {"offset": [0.25, -1.5], "scale": [2.0, 2.0]}  # v down: 1 - 2 - 0.5
    files = export_all(load_mesh(tmp_path / "m.obj"), [np.full((8, 8, 3), 90, np.uint8)], tmp_path / "out", "m")
    assert "map_Bump -o 0.25 0.5 0 -s 2 2 1 m_normal.png" in files.mtl.read_text()
    assert load_mesh(files.glb).materials[0].maps["normal"].transform == carried.transform


def test_tangents_of_a_material_whose_parts_all_have_them_survive_mixed_files(tmp_path):
    """One material with TANGENT on every part keeps it; another whose parts are mixed gets none, with a warning
    (it was silent, and dropped tangents for every material; new-user test, session 13)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, quad, read_glb

    from csdtex.mesh import load_mesh

    builder = GltfBuilder()
    flat = np.full((4, 3, 3), 0, np.uint8) + np.array([128, 128, 255], np.uint8)
    materials = []
    for name in ("full", "mixed"):
        index = builder.material(name, builder.texture(np.full((4, 4, 3), 90, np.uint8)))
        builder.doc["materials"][index]["normalTexture"] = {"index": builder.texture(flat)}
        materials.append(index)
    positions, faces = quad()
    uvs = positions[:, :2].astype(np.float64)
    primitives = []
    for offset, material, tangent in ((0, 0, True), (1, 1, True), (2, 1, False)):
        primitive = builder.primitive(positions + [0, 0, offset], faces, uvs, material=materials[material])
        primitive["attributes"]["NORMAL"] = builder.accessor(np.tile([0.0, 0.0, 1.0], (4, 1)).astype(np.float32))
        if tangent:
            primitive["attributes"]["TANGENT"] = builder.accessor(np.tile([1.0, 0, 0, 1], (4, 1)).astype(np.float32))
        primitives.append(primitive)
    builder.mesh(primitives)
    mesh = load_mesh(builder.write_glb(tmp_path / "t.glb"))
    assert any("some parts of material(s) 'mixed' have tangents" in w for w in mesh.output_notes), mesh.output_notes
    files = export_all(mesh, [np.full((8, 8, 3), 90, np.uint8)] * 2, tmp_path / "out", "t")
    written = [p["attributes"] for p in read_glb(files.glb)[0]["meshes"][0]["primitives"]]
    assert "TANGENT" in written[0] and "TANGENT" not in written[1]


def test_a_map_shared_by_materials_is_written_once(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, quad

    from csdtex.mesh import load_mesh

    builder = GltfBuilder()
    shared = builder.texture(np.full((4, 4, 3), (128, 128, 255), np.uint8))
    names = []
    for name in ("left", "right"):
        index = builder.material(name, builder.texture(np.full((4, 4, 3), 90, np.uint8)))
        builder.doc["materials"][index]["normalTexture"] = {"index": shared}
        names.append(index)
    positions, faces = quad()
    uvs = positions[:, :2].astype(np.float64)
    builder.mesh([builder.primitive(positions + [0, 0, k], faces, uvs, material=m) for k, m in enumerate(names)])
    files = export_all(load_mesh(builder.write_glb(tmp_path / "s.glb")), [np.zeros((4, 4, 3), np.uint8)] * 2,
                       tmp_path / "out", "s")
    assert [p.name for p in files.maps] == ["s_left_normal.png"]
    assert files.mtl.read_text().count("map_Bump s_left_normal.png") == 2
