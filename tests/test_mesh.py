"""Tests for csdtex.mesh and csdtex.io: loading (OBJ/MTL, PLY, STL, OFF, GLB/glTF), validation, xatlas unwrapping,
seam edges, analysis.

Test meshes are trimesh's procedural shapes and small OBJ/MTL/PNG files written by hand into ``tmp_path``.

UV convention checked here: ``Mesh.uvs`` has (0, 0) at the bottom-left of the image. A GLB stores ``TEXCOORD_0`` with
(0, 0) at the top-left, i.e. ``v_file = 1 - v``; trimesh's glTF loader undoes that flip, so ``load_mesh`` uses
trimesh's ``visual.uv`` as it is (``test_glb_uv_convention`` reads the raw accessor to prove it).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from csdtex.errors import ConfigError, MeshError
from csdtex.mesh import (
    SUPPORTED_EXTENSIONS,
    Material,
    Mesh,
    MeshReport,
    SeamEdges,
    analyze_mesh,
    degenerate_faces,
    load_mesh,
    seam_edges,
    unwrap_uvs,
    uv_overlap_fraction,
    validate_mesh,
    weld_positions,
)
from csdtex.mesh.unwrap import _match_atlas_faces

# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def two_row_image() -> np.ndarray:
    """4x2 image: top row red, bottom row blue."""
    image = np.zeros((2, 4, 3), dtype=np.uint8)
    image[0] = [255, 0, 0]
    image[1] = [0, 0, 255]
    return image


def corner_positions(vertices: np.ndarray, faces: np.ndarray, decimals: int = 5) -> np.ndarray:
    """Face-corner positions as a sorted [F, 9] array (independent of vertex order and of face order)."""
    corners = np.round(np.asarray(vertices)[np.asarray(faces)], decimals).reshape(len(faces), 3, 3)
    rows = []
    for tri in corners:  # rotate each triangle so its smallest corner comes first (keeps winding)
        start = min(range(3), key=lambda k: tuple(tri[k]))
        rows.append(np.roll(tri, -start, axis=0).reshape(-1))
    rows = np.array(rows) + 0.0  # -0.0 -> 0.0
    return rows[np.lexsort(rows.T[::-1])]


def box_with_six_charts() -> Mesh:
    """Unit box whose 6 sides each have their own 4 UV vertices in a 3x2 grid of cells (6 charts, 12 seam edges)."""
    box = trimesh.creation.box()
    faces = box.faces
    normals = np.round(box.face_normals).astype(int)
    side_keys = [tuple(n) for n in normals]
    sides = sorted(set(side_keys))
    uvs, uv_faces = [], np.zeros_like(faces)
    for s, side in enumerate(sides):
        cell = np.array([s % 3, s // 3], dtype=float)
        idx = [i for i, key in enumerate(side_keys) if key == side]
        verts = sorted(set(faces[idx].reshape(-1).tolist()))
        axis = [k for k in range(3) if side[k] == 0]
        local = {}
        for v in verts:
            p = box.vertices[v][axis] + 0.5  # in [0, 1]
            local[v] = len(uvs)
            uvs.append((cell + 0.1 + 0.8 * p) / np.array([3.0, 2.0]))
        for i in idx:
            uv_faces[i] = [local[v] for v in faces[i]]
    return Mesh(box.vertices, faces, np.array(uvs), uv_faces)


def glb_json(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    json_length = struct.unpack("<I", data[12:16])[0]
    document = json.loads(data[20 : 20 + json_length])
    return document, data[20 + json_length + 8 :]


# ----------------------------------------------------------------------------------------------------------------------
# OBJ
# ----------------------------------------------------------------------------------------------------------------------

SQUARE_VERTICES = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 2 1 0\nv 1.5 2 0\n"


def test_obj_quads_and_pentagon_fan_triangulated(tmp_path):
    path = write(tmp_path / "ngons.obj", SQUARE_VERTICES + "f 1 2 3 4\nf 2 5 6 7 3\nf 1 2 4\n")
    mesh = load_mesh(path)
    assert mesh.num_faces == 2 + 3 + 1
    np.testing.assert_array_equal(
        mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 6], [1, 6, 2], [0, 1, 3]]
    )
    assert mesh.uvs is None and mesh.uv_faces is None
    assert mesh.source == path and mesh.warnings == []
    assert [m.name for m in mesh.materials] == ["material_0"]
    np.testing.assert_array_equal(mesh.face_materials, np.zeros(6))


def test_obj_negative_indices_equal_positive(tmp_path):
    positive = load_mesh(write(tmp_path / "pos.obj", SQUARE_VERTICES + "vt 0 0\nvt 1 0\nvt 1 1\nf 1/1 2/2 3/3\n"))
    negative = load_mesh(write(
        tmp_path / "neg.obj",
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nf -3/-3 -2/-2 -1/-1\n"
        "v 0 1 0\nv 2 0 0\nv 2 1 0\nv 1.5 2 0\n",
    ))
    np.testing.assert_array_equal(negative.faces, positive.faces)
    np.testing.assert_array_equal(negative.uv_faces, positive.uv_faces)
    np.testing.assert_array_equal(negative.vertices, positive.vertices)


def test_obj_face_forms_and_partial_uvs(tmp_path):
    text = (
        "# a comment\no thing\ng group\ns 1\n"
        "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\n"  # trailing vertex colours
        "vt 0.25 0.5\nvt 0.75 0.5 0.0\nvt 0.75\n"  # u v / u v w / u only
        "vn 0 0 1\n"
        "f 1/1/1 2/2/1 3/3/1\n"  # v/vt/vn
        "f 1//1 3//1 4//1\n"  # v//vn
        "f 1 2 4\n"  # v
        "f 2/2 3/3 \\\n 4/1\n"  # v/vt with a line continuation
    )
    mesh = load_mesh(write(tmp_path / "forms.obj", text))
    np.testing.assert_array_equal(mesh.vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [0, 1, 3], [1, 2, 3]])
    np.testing.assert_array_equal(mesh.uvs, [[0.25, 0.5], [0.75, 0.5], [0.75, 0.0]])
    np.testing.assert_array_equal(mesh.uv_faces, [[0, 1, 2], [-1, -1, -1], [-1, -1, -1], [1, 2, 0]])
    assert not mesh.has_uvs


def test_obj_keeps_vertices_and_uvs_exactly(tmp_path):
    rng = np.random.default_rng(1)
    sphere = trimesh.creation.icosphere(subdivisions=1)
    vertices = sphere.vertices[rng.permutation(len(sphere.vertices))] * 123.456 + 1e-3
    uvs = rng.random((len(vertices) + 5, 2))
    faces = rng.permutation(sphere.faces)
    uv_faces = rng.integers(0, len(uvs), size=faces.shape)
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices.tolist()]
    lines += [f"vt {u!r} {v!r}" for u, v in uvs.tolist()]
    lines += [f"f {a+1}/{ta+1} {b+1}/{tb+1} {c+1}/{tc+1}" for (a, b, c), (ta, tb, tc) in zip(faces, uv_faces)]
    mesh = load_mesh(write(tmp_path / "exact.obj", "\n".join(lines) + "\n"))
    np.testing.assert_array_equal(mesh.vertices, vertices)
    np.testing.assert_array_equal(mesh.faces, faces)
    np.testing.assert_array_equal(mesh.uvs, uvs)
    np.testing.assert_array_equal(mesh.uv_faces, uv_faces)
    assert mesh.has_uvs
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64


def test_obj_usemtl_groups_and_texture_orientation(tmp_path):
    write_png(tmp_path / "tex" / "wood grain.png", two_row_image())
    write(
        tmp_path / "scene.mtl",
        "newmtl red\nKd 1 0 0\nnewmtl textured\nKd 0.5 0.5 0.5\nmap_Kd -s 1 1 1 -clamp on tex\\wood grain.png\n"
        "newmtl unused\nKd 0 1 0\n",
    )
    text = (
        "mtllib scene.mtl\n" + SQUARE_VERTICES + "vt 0 0\nvt 1 0\nvt 1 1\n"
        "f 1 2 3\n"  # before any usemtl -> default material
        "usemtl textured\nf 1/1 2/2 3/3\nf 1/1 3/3 4/2\n"
        "usemtl red\nf 2 5 6\n"
        "usemtl textured\nf 2/1 6/2 7/3\n"
        "usemtl nowhere\nf 5 6 7\n"
    )
    mesh = load_mesh(write(tmp_path / "scene.obj", text))
    assert [m.name for m in mesh.materials] == ["default", "textured", "red", "nowhere"]
    np.testing.assert_array_equal(mesh.face_materials, [0, 1, 1, 2, 1, 3])
    assert mesh.materials[2].base_color == (1.0, 0.0, 0.0)
    textured = mesh.materials[1]
    assert textured.texture.dtype == np.uint8 and textured.texture.shape == (2, 4, 3)
    np.testing.assert_array_equal(textured.texture[0, 0], [255, 0, 0])  # row 0 = top of the image
    np.testing.assert_array_equal(textured.texture[1, 0], [0, 0, 255])
    assert textured.texture_source.name == "wood grain.png"
    assert mesh.materials[0].texture is None
    assert any("nowhere" in w for w in mesh.warnings)


def test_obj_hash_in_names_is_part_of_the_name(tmp_path):
    """3ds Max names materials 'Material #25': a '#' in a usemtl / newmtl name or a map file name belongs to the name
    (two such materials stay two, the texture 'wood#2.png' loads), while after numbers it still starts a comment."""
    write_png(tmp_path / "wood#2.png", two_row_image())
    write(tmp_path / "max.mtl", "# exported\nnewmtl Material #25\nKd 1 0 0 # red\nnewmtl Material #26\n"
                                "map_Kd wood#2.png\n")
    text = ("mtllib max.mtl\n" + SQUARE_VERTICES + "vt 0 0 # first\nvt 1 0\nvt 1 1\n"
            "usemtl Material #25\nf 1/1 2/2 3/3 # a comment\nusemtl Material #26\nf 1/1 3/3 4/2\n")
    mesh = load_mesh(write(tmp_path / "max.obj", text))
    assert [m.name for m in mesh.materials] == ["Material #25", "Material #26"]
    np.testing.assert_array_equal(mesh.face_materials, [0, 1])
    assert mesh.materials[0].base_color == (1.0, 0.0, 0.0) and mesh.materials[1].texture is not None
    assert not mesh.warnings


def test_obj_from_windows_tools_cp1252_names_and_absolute_texture_paths(tmp_path):
    """A Windows-1252 MTL keeps its letters ('Grün'); a texture named by an absolute path from the artist's machine
    (or one outside the folder) is found by its file name next to the MTL, with a note; a texture outside the folder
    whose file name is not next to the MTL is still not read."""
    write_png(tmp_path / "grün.png", two_row_image())
    write_png(tmp_path / "wood.png", two_row_image())
    (tmp_path / "kiste.mtl").write_bytes("newmtl Grün\nmap_Kd grün.png\nnewmtl Holz\n"
                                         "map_Kd C:\\Users\\artist\\Kiste\\wood.png\nnewmtl Fremd\n"
                                         "map_Kd ../elsewhere.png\n".encode("cp1252"))
    write_png(tmp_path.parent / "elsewhere.png", two_row_image())
    text = ("mtllib kiste.mtl\n" + SQUARE_VERTICES + "vt 0 0\nvt 1 0\nvt 1 1\n"
            "usemtl Grün\nf 1/1 2/2 3/3\nusemtl Holz\nf 1/1 3/3 4/2\nusemtl Fremd\nf 2/1 5/2 6/3\n")
    (tmp_path / "kiste.obj").write_bytes(text.encode("cp1252"))
    mesh = load_mesh(tmp_path / "kiste.obj")
    assert [m.name for m in mesh.materials] == ["Grün", "Holz", "Fremd"]
    assert mesh.materials[0].texture is not None and mesh.materials[1].texture is not None
    assert mesh.materials[2].texture is None
    assert any("'C:/Users/artist/Kiste/wood.png' is not at that path; 'wood.png' next to the MTL" in w
               for w in mesh.warnings), mesh.warnings
    assert any("'../elsewhere.png' lies outside the mesh folder" in w for w in mesh.warnings), mesh.warnings


def test_obj_rgba_and_palette_textures_become_rgb(tmp_path):
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 7
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(two_row_image()).convert("P").save(tmp_path / "p.png")
    write(tmp_path / "m.mtl", "newmtl a\nmap_Kd a.png\nnewmtl p\nmap_Kd p.png\n")
    text = "mtllib m.mtl\n" + SQUARE_VERTICES + "usemtl a\nf 1 2 3\nusemtl p\nf 1 3 4\n"
    mesh = load_mesh(write(tmp_path / "m.obj", text))
    np.testing.assert_array_equal(mesh.materials[0].texture, rgba[..., :3])
    np.testing.assert_array_equal(mesh.materials[1].texture, two_row_image())


def test_obj_assets_outside_folder_are_not_read(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    write_png(outside / "tex.png", two_row_image())
    write(outside / "evil.mtl", "newmtl a\nKd 1 0 0\n")
    inside = tmp_path / "model"
    write(inside / "good.mtl",
          f"newmtl b\nKd 0 1 0\nmap_Kd ../outside/tex.png\nnewmtl c\nmap_Kd {outside / 'tex.png'}\n")
    obj = write(
        inside / "m.obj",
        f"mtllib ../outside/evil.mtl\nmtllib {outside / 'evil.mtl'}\nmtllib good.mtl\n"
        + SQUARE_VERTICES + "usemtl a\nf 1 2 3\nusemtl b\nf 1 3 4\nusemtl c\nf 2 5 6\n",
    )
    opened: list[str] = []
    original_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(str(fp)) or original_open(fp, *a, **k))
    mesh = load_mesh(obj)
    assert all("outside" not in p for p in opened)
    assert mesh.materials[0].base_color == (0.8, 0.8, 0.8)  # evil.mtl not read
    assert mesh.materials[1].base_color == (0.0, 1.0, 0.0)  # good.mtl read ...
    assert mesh.materials[1].texture is None and mesh.materials[2].texture is None  # ... but not its textures
    outside_warnings = [w for w in mesh.warnings if "outside the mesh folder" in w]
    assert len(outside_warnings) == 4
    assert any("evil.mtl" in w for w in outside_warnings) and any("tex.png" in w for w in outside_warnings)


def test_obj_symlink_to_outside_texture_is_not_read(tmp_path):
    write_png(tmp_path / "outside" / "tex.png", two_row_image())
    inside = tmp_path / "model"
    inside.mkdir()
    try:
        (inside / "link.png").symlink_to(tmp_path / "outside" / "tex.png")
    except OSError:
        pytest.skip("symbolic links not available")
    write(inside / "m.mtl", "newmtl a\nmap_Kd link.png\n")
    mesh = load_mesh(write(inside / "m.obj", "mtllib m.mtl\n" + SQUARE_VERTICES + "usemtl a\nf 1 2 3\n"))
    assert mesh.materials[0].texture is None
    assert any("outside the mesh folder" in w for w in mesh.warnings)


def test_obj_missing_or_broken_mtl_and_texture_warn(tmp_path):
    write(tmp_path / "m.mtl", "newmtl a\nmap_Kd nothere.png\nnewmtl b\nmap_Kd broken.png\n")
    write(tmp_path / "broken.png", "this is not a png")
    mesh = load_mesh(write(
        tmp_path / "m.obj",
        "mtllib m.mtl\nmtllib gone.mtl\n" + SQUARE_VERTICES + "usemtl a\nf 1 2 3\nusemtl b\nf 1 3 4\n",
    ))
    assert mesh.num_faces == 2
    assert all(m.texture is None for m in mesh.materials)
    text = " | ".join(mesh.warnings)
    assert "gone.mtl" in text and "nothere.png" in text and "broken.png" in text


# ----------------------------------------------------------------------------------------------------------------------
# PLY / STL / OFF / GLB / glTF
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".ply", ".stl", ".off", ".glb"])
def test_trimesh_formats_round_trip(tmp_path, ext):
    source = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3, major_sections=12, minor_sections=8)
    source.apply_translation([0.5, -2.0, 3.0])
    path = tmp_path / f"torus{ext}"
    source.export(path)
    mesh = load_mesh(path)
    assert mesh.num_faces == len(source.faces)
    decimals = 4 if ext == ".stl" else 5  # STL stores float32
    np.testing.assert_allclose(
        corner_positions(mesh.vertices, mesh.faces, decimals),
        corner_positions(source.vertices, source.faces, decimals),
        atol=2e-4,
    )
    np.testing.assert_allclose(mesh.vertices.min(axis=0), source.bounds[0], atol=1e-5)
    assert len(mesh.materials) == 1
    if ext != ".stl":  # STL has no shared vertices; the others keep trimesh's (unprocessed) vertex order
        np.testing.assert_allclose(mesh.vertices, source.vertices, atol=1e-6)
        np.testing.assert_array_equal(mesh.faces, source.faces)


def test_ply_uvs_kept(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    uv = np.random.default_rng(0).random((len(sphere.vertices), 2))
    textured = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv))
    path = tmp_path / "uv.ply"
    textured.export(path)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, sphere.faces)
    np.testing.assert_allclose(mesh.uvs, uv, atol=1e-12)
    np.testing.assert_array_equal(mesh.uv_faces, mesh.faces)
    assert mesh.has_uvs


def two_part_glb(path: Path, image: np.ndarray) -> tuple[trimesh.Trimesh, np.ndarray, trimesh.Trimesh, np.ndarray]:
    """GLB with a textured icosphere (UVs + image) and a translated plain box (no UVs)."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    uv = np.random.default_rng(3).random((len(sphere.vertices), 2))
    textured = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(image)))
    box = trimesh.creation.box()
    plain = trimesh.Trimesh(box.vertices, box.faces, process=False)
    transform = trimesh.transformations.translation_matrix([3.0, 0.0, 0.0])
    scene = trimesh.Scene()
    scene.add_geometry(textured, geom_name="textured")
    scene.add_geometry(plain, geom_name="plain", transform=transform)
    scene.export(path)
    return textured, uv, plain, transform


def test_glb_two_primitives_then_unwrap(tmp_path):
    image = np.random.default_rng(4).integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    textured, uv, plain, _ = two_part_glb(tmp_path / "two.glb", image)
    mesh = load_mesh(tmp_path / "two.glb")
    assert len(mesh.materials) == 2 and mesh.num_faces == len(textured.faces) + len(plain.faces)
    by_name = {m.name: i for i, m in enumerate(mesh.materials)}
    t_index, p_index = by_name["textured"], by_name["plain"]
    t_faces = mesh.face_materials == t_index
    p_faces = mesh.face_materials == p_index
    assert t_faces.sum() == len(textured.faces) and p_faces.sum() == len(plain.faces)
    assert (mesh.uv_faces[p_faces] == -1).all() and (mesh.uv_faces[t_faces] >= 0).all()
    # trimesh writes baseColorFactor 0.4 beside the texture: the texels come back as viewers show them (times 0.4
    # in linear light)
    c = image.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) * 0.4
    shown = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    np.testing.assert_array_equal(mesh.materials[t_index].texture, np.rint(shown * 255.0).astype(np.uint8))
    assert mesh.materials[p_index].texture is None
    # the textured part's UVs, per face corner, are what was written (float32 in the file)
    t_rows = np.flatnonzero(t_faces)
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces[t_rows]], uv[textured.faces], atol=1e-6)
    # the plain part is translated by its node transform
    np.testing.assert_allclose(mesh.vertices[np.unique(mesh.faces[p_faces])].mean(axis=0), [3.0, 0.0, 0.0], atol=1e-6)

    unwrapped = unwrap_uvs(mesh, texture_size=256)
    assert unwrapped.has_uvs
    np.testing.assert_array_equal(unwrapped.vertices, mesh.vertices)
    np.testing.assert_array_equal(unwrapped.faces, mesh.faces)
    assert len(unwrapped.materials) == 3 and unwrapped.materials[:2] == mesh.materials
    np.testing.assert_array_equal(unwrapped.face_materials[t_faces], mesh.face_materials[t_faces])
    assert (unwrapped.face_materials[p_faces] == 2).all()
    np.testing.assert_array_equal(unwrapped.uv_faces[t_faces], mesh.uv_faces[t_faces])
    np.testing.assert_array_equal(unwrapped.uvs[: len(mesh.uvs)], mesh.uvs)
    new = unwrapped.uvs[unwrapped.uv_faces[p_faces]]
    assert new.min() >= 0.0 and new.max() <= 1.0
    assert mesh.uv_faces is not None and (mesh.uv_faces[p_faces] == -1).all()  # input untouched


def test_glb_uv_convention(tmp_path):
    """The GLB file holds 1 - v; trimesh (and so load_mesh) gives back bottom-left-origin v."""
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    uv = np.array([[0.1, 0.2], [0.9, 0.2], [0.1, 0.7]])
    image = Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8))
    visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    tri = trimesh.Trimesh(vertices, [[0, 1, 2]], process=False, visual=visual)
    path = tmp_path / "tri.glb"
    tri.export(path)
    document, binary = glb_json(path)
    accessor = document["accessors"][document["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]]
    view = document["bufferViews"][accessor["bufferView"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    raw = np.frombuffer(binary[start : start + 8 * accessor["count"]], dtype=np.float32).reshape(-1, 2)
    np.testing.assert_allclose(raw, np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1), atol=1e-6)  # file: top-left
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces[0]], uv, atol=1e-6)  # Mesh: bottom-left


def test_glb_mirrored_node_keeps_outward_winding(tmp_path):
    box = trimesh.creation.box()
    scene = trimesh.Scene()
    scene.add_geometry(box, geom_name="box", transform=np.diag([-1.0, 1.0, 1.0, 1.0]))
    scene.export(tmp_path / "mirror.glb")
    mesh = load_mesh(tmp_path / "mirror.glb")
    loaded = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert loaded.volume > 0.99  # positive signed volume: faces still point outwards


def test_gltf_external_image_outside_folder_is_not_read(tmp_path):
    image = two_row_image()
    files = trimesh.Scene(trimesh.Trimesh(
        [[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False,
        visual=trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [0, 1]], image=Image.fromarray(image)),
    )).export(file_type="gltf")
    model = tmp_path / "model"
    model.mkdir()
    document = json.loads(files["model.gltf"])
    for name, data in files.items():
        if name != "model.gltf":
            (model / name).write_bytes(data)
    assert document["images"][0].get("uri") is not None or "bufferView" in document["images"][0]
    # make the image an external file outside the folder
    write_png(tmp_path / "outside" / "tex.png", image)
    document["images"][0] = {"uri": "../outside/tex.png"}
    (model / "model.gltf").write_text(json.dumps(document))
    mesh = load_mesh(model / "model.gltf")
    assert mesh.num_faces == 1 and mesh.has_uvs
    assert all(m.texture is None for m in mesh.materials)
    assert any("outside the mesh folder" in w for w in mesh.warnings)


# ----------------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------------

BAD_OBJ = {
    "unparsable.obj": "v 0 0 zero\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
    "zero_index.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n",
    "no_faces.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\n",
    "nan.obj": "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n",
    "inf.obj": "v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n",
    "missing_vertex.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n",
    "degenerate.obj": "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n",
    "uv_range.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/2 3/1\n",
    "uv_nan.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt nan 0\nf 1/1 2/2 3/1\n",
    "binary.obj": b"\x00\x01\x02 garbage \xff\xfe",
}


@pytest.mark.parametrize("name", sorted(BAD_OBJ))
def test_bad_obj_files_raise_mesh_error(tmp_path, name):
    path = tmp_path / name
    content = BAD_OBJ[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    message = str(info.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize(
    "name, content",
    [
        ("missing.obj", None),
        ("empty.obj", b""),
        ("empty.glb", b""),
        ("model.fbx", b"whatever"),
        ("noext", b"v 0 0 0"),
        ("junk.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\nabc\n"),
        ("junk.stl", b"solid x\n facet normal oops\n"),
        ("junk.off", b"OFF\n3 1 0\n0 0 0\n"),
        ("junk.glb", b"glTF\x02\x00\x00\x00garbagegarbage"),
        ("junk.gltf", b"{not json"),
        ("points.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                       b"property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n"),
    ],
)
def test_bad_files_raise_mesh_error(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_directory_and_unsupported_messages(tmp_path):
    with pytest.raises(MeshError, match="is a directory"):
        load_mesh(tmp_path)
    (tmp_path / "a.fbx").write_text("x")
    with pytest.raises(MeshError) as info:
        load_mesh(tmp_path / "a.fbx")
    assert all(ext in str(info.value) for ext in SUPPORTED_EXTENSIONS)


def test_glb_with_missing_external_buffer(tmp_path):
    files = trimesh.creation.box().export(file_type="gltf")
    document = json.loads(files["model.gltf"])
    document["buffers"][0]["uri"] = "../elsewhere.bin"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "box.gltf").write_text(json.dumps(document))
    (tmp_path / "elsewhere.bin").write_bytes(files[next(k for k in files if k.endswith(".bin"))])
    with pytest.raises(MeshError) as info:
        load_mesh(tmp_path / "m" / "box.gltf")
    assert "box.gltf" in str(info.value) and "outside the mesh folder" in str(info.value)


def test_validate_mesh_on_meshes_built_in_code():
    box = trimesh.creation.box()
    validate_mesh(Mesh(box.vertices, box.faces))
    bad = [
        (Mesh(np.zeros((3, 3)), np.zeros((0, 3))), "no faces"),
        (Mesh(box.vertices, box.faces + 1), "missing vertices"),
        (Mesh(box.vertices, -box.faces), "missing vertices"),
        (Mesh(np.full((3, 3), np.nan), [[0, 1, 2]]), "NaN"),
        (Mesh(np.zeros((3, 3)), [[0, 1, 2]]), "degenerate"),
        (Mesh(box.vertices, box.faces, np.zeros((4, 2)), np.full_like(box.faces, 4)), "texture coordinates"),
        (Mesh(box.vertices, box.faces, np.full((8, 2), np.inf), box.faces), "NaN or infinite"),
        (Mesh(box.vertices, box.faces, np.zeros((8, 2)), None), "both"),
        (Mesh(box.vertices, box.faces, face_materials=np.ones(12)), "face_materials"),
        (Mesh(box.vertices, box.faces, materials=[Material("a", texture=np.zeros((2, 2)))]), "uint8"),
    ]
    for mesh, expected in bad:
        with pytest.raises(MeshError, match=expected) as info:
            validate_mesh(mesh)
        assert str(info.value).startswith("mesh") and "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------------------------------
# unwrapping
# ----------------------------------------------------------------------------------------------------------------------


def test_unwrap_keeps_geometry_and_makes_clean_atlas():
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.35, major_sections=24, minor_sections=12)
    mesh = Mesh(torus.vertices * 10.0 + 100.0, torus.faces, materials=[Material("skin", base_color=(1.0, 0.5, 0.0))])
    unwrapped = unwrap_uvs(mesh, texture_size=512)
    np.testing.assert_array_equal(unwrapped.vertices, mesh.vertices)
    np.testing.assert_array_equal(unwrapped.faces, mesh.faces)
    assert unwrapped.has_uvs and unwrapped.uvs.dtype == np.float64
    assert unwrapped.uvs.min() >= 0.0 and unwrapped.uvs.max() <= 1.0
    assert [m.name for m in unwrapped.materials] == ["skin"] and unwrapped.materials[0].base_color == (1.0, 0.5, 0.0)
    report = analyze_mesh(unwrapped)
    assert report.problems == []  # in particular no overlapping UVs
    assert report.num_charts >= 1 and report.num_seam_edges > 0
    assert uv_overlap_fraction(unwrapped.uvs[unwrapped.uv_faces], 512) == 0.0
    # charts use a good part of the square (uniform scale, fixed texture size)
    assert unwrapped.uvs.max(axis=0).min() > 0.5
    # every UV vertex stands for one input vertex (charts are cut from the surface, never glued across vertices)
    pairs = np.unique(np.stack([unwrapped.uv_faces.reshape(-1), unwrapped.faces.reshape(-1)], axis=1), axis=0)
    assert len(np.unique(pairs[:, 0])) == len(pairs)
    assert mesh.uvs is None  # input untouched


def test_unwrap_respects_existing_uvs_unless_forced():
    mesh = box_with_six_charts()
    mesh.materials = [Material("boxy", texture=np.zeros((4, 4, 3), dtype=np.uint8), base_color=(0.1, 0.2, 0.3))]
    assert unwrap_uvs(mesh) is mesh
    forced = unwrap_uvs(mesh, texture_size=128, force=True)
    assert forced is not mesh and forced.has_uvs
    assert not np.array_equal(forced.uvs, mesh.uvs) or not np.array_equal(forced.uv_faces, mesh.uv_faces)
    assert len(forced.materials) == 1 and forced.materials[0].name == "boxy"
    assert forced.materials[0].texture is None and forced.materials[0].base_color == (0.1, 0.2, 0.3)
    np.testing.assert_array_equal(forced.faces, mesh.faces)
    np.testing.assert_array_equal(forced.vertices, mesh.vertices)


def test_unwrap_multi_material_mesh_without_uvs_gives_one_material():
    box = trimesh.creation.box()
    mesh = Mesh(box.vertices, box.faces, face_materials=np.arange(12) % 2, materials=[Material("a"), Material("b")])
    unwrapped = unwrap_uvs(mesh, texture_size=64)
    assert unwrapped.has_uvs and [m.name for m in unwrapped.materials] == ["a"]
    np.testing.assert_array_equal(unwrapped.face_materials, np.zeros(12))


def test_unwrap_partial_obj_uvs_into_new_material(tmp_path):
    text = SQUARE_VERTICES + "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\nf 2 5 6\nf 2 6 7 3\n"
    mesh = load_mesh(write(tmp_path / "partial.obj", text))
    assert not mesh.has_uvs
    out = unwrap_uvs(mesh, texture_size=64)
    assert [m.name for m in out.materials] == ["material_0", "unwrapped"]
    np.testing.assert_array_equal(out.face_materials, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(out.uv_faces[:2], mesh.uv_faces[:2])
    np.testing.assert_array_equal(out.uvs[:4], mesh.uvs)
    assert (out.uv_faces[2:] >= 4).all()


def test_unwrap_survives_degenerate_faces():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    vertices = np.concatenate([sphere.vertices, sphere.vertices[:2]])  # duplicates of vertices 0 and 1
    v = len(sphere.vertices)
    degenerate = np.array([[0, 0, 1], [5, 5, 5], [0, v, 1], [v, v + 1, 0], [3, 4, 3]])
    faces = np.concatenate([sphere.faces, degenerate])
    mesh = Mesh(vertices, faces)
    assert degenerate_faces(vertices, faces)[-5:].all() and not degenerate_faces(vertices, faces)[:-5].any()
    unwrapped = unwrap_uvs(mesh, texture_size=256)
    assert unwrapped.has_uvs and np.isfinite(unwrapped.uvs).all()
    np.testing.assert_array_equal(unwrapped.faces, faces)
    report = analyze_mesh(unwrapped)
    assert any("5 degenerate" in p for p in report.problems)


def test_unwrap_partial_with_only_degenerate_faces_missing():
    box = trimesh.creation.box()
    vertices = np.concatenate([box.vertices, [[5.0, 5.0, 5.0]]])
    faces = np.concatenate([box.faces, [[0, 0, 8], [1, 2, 2]]])
    mesh = box_with_six_charts()
    mesh = Mesh(vertices, faces, mesh.uvs, np.concatenate([mesh.uv_faces, np.full((2, 3), -1)]))
    out = unwrap_uvs(mesh)  # xatlas gets nothing: zero-area UV triangles, no crash
    assert out.has_uvs and len(out.materials) == 2
    np.testing.assert_array_equal(out.uv_faces[:12], mesh.uv_faces[:12])
    tri = out.uvs[out.uv_faces[12:]]
    assert np.isfinite(tri).all() and uv_overlap_fraction(tri) == 0.0


def test_unwrap_crash_becomes_mesh_error(monkeypatch):
    import sys

    import csdtex.mesh.unwrap as unwrap_module

    segfault = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(unwrap_module, "_xatlas_child_command", lambda: segfault)
    box = trimesh.creation.box()
    with pytest.raises(MeshError, match="xatlas failed") as info:
        unwrap_uvs(Mesh(box.vertices, box.faces, source=Path("crate.obj")))
    assert "crate.obj" in str(info.value) and "\n" not in str(info.value)
    error = [sys.executable, "-c", "raise RuntimeError('out of cheese')"]
    monkeypatch.setattr(unwrap_module, "_xatlas_child_command", lambda: error)
    with pytest.raises(MeshError, match="out of cheese"):
        unwrap_uvs(Mesh(box.vertices, box.faces))


def test_unwrap_rejects_bad_texture_size():
    box = trimesh.creation.box()
    for size in (0, 8, 1.5, True, 100000):
        with pytest.raises(ConfigError):
            unwrap_uvs(Mesh(box.vertices, box.faces), texture_size=size)


def test_match_atlas_faces_fallback_handles_reordering():
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 4, 2], [4, 4, 4]])
    # an "atlas" that duplicated vertex 2, rotated/reordered faces and dropped the last (degenerate) one
    vmapping = np.array([2, 0, 1, 3, 4, 2])
    indices = np.array([[4, 5, 3], [0, 1, 2], [3, 2, 0]])  # = faces 2, 0, 1 with corner rotations
    uv_faces = _match_atlas_faces(faces, vmapping, indices)
    np.testing.assert_array_equal(vmapping[uv_faces[:3]], faces[:3])
    np.testing.assert_array_equal(uv_faces[1], [0, 2, 3])
    assert vmapping[uv_faces[3]].tolist() == [4, 4, 4]


# ----------------------------------------------------------------------------------------------------------------------
# analysis
# ----------------------------------------------------------------------------------------------------------------------


def test_analyze_box_with_six_charts():
    mesh = box_with_six_charts()
    report = analyze_mesh(mesh)
    assert isinstance(report, MeshReport)
    assert (report.num_vertices, report.num_faces, report.num_materials) == (8, 12, 1)
    assert report.has_uvs and report.num_charts == 6 and report.num_seam_edges == 12
    np.testing.assert_array_equal(report.bbox_min, [-0.5, -0.5, -0.5])
    np.testing.assert_array_equal(report.bbox_max, [0.5, 0.5, 0.5])
    assert report.problems == []
    data = json.loads(json.dumps(report.to_dict()))
    assert data["num_charts"] == 6 and data["bbox_max"] == [0.5, 0.5, 0.5] and data["problems"] == []
    lines = report.to_text().splitlines()
    assert "faces:         12" in lines and "UV charts:     6" in lines and "problems:      none" in lines
    value_columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(value_columns) == 1  # values start in one column


def test_analyze_counts_seams_on_welded_positions():
    """Unwelded box (24 vertices, one UV per vertex, each side its own chart): same charts and seams as welded."""
    welded = box_with_six_charts()
    corners = welded.faces.reshape(-1)
    # split every vertex per side: new vertex per UV index
    _, first = np.unique(welded.uv_faces.reshape(-1), return_index=True)
    vertices = welded.vertices[corners[first]]
    mesh = Mesh(vertices, welded.uv_faces, welded.uvs, welded.uv_faces)
    report = analyze_mesh(mesh)
    assert report.num_vertices == 24 and report.num_charts == 6 and report.num_seam_edges == 12
    assert report.problems == []


def test_analyze_uv_sphere_and_no_uvs():
    sphere = trimesh.creation.uv_sphere(radius=2.0, count=[16, 16])
    report = analyze_mesh(Mesh(sphere.vertices, sphere.faces))
    assert report.num_charts is None and report.num_seam_edges is None and not report.has_uvs
    np.testing.assert_array_equal(report.bbox_min, sphere.bounds[0])
    np.testing.assert_array_equal(report.bbox_max, sphere.bounds[1])
    assert report.bbox_min[2] == -2.0 and report.bbox_max[2] == 2.0
    assert "UV charts:" in report.to_text() and report.to_dict()["num_charts"] is None
    unwrapped = unwrap_uvs(Mesh(sphere.vertices, sphere.faces), texture_size=256)
    report = analyze_mesh(unwrapped)
    assert report.num_charts >= 1 and report.num_seam_edges > 0


def test_analyze_reports_problems():
    box = trimesh.creation.box()
    vertices = np.concatenate([box.vertices, [[2.0, 2.0, 2.0]]])
    faces = np.concatenate([box.faces, box.faces[:1], [[0, 1, 8]], [[0, 0, 1]]])  # duplicate, fin, degenerate
    uvs = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [1.5, 1.0]])
    uv_faces = np.tile([[0, 1, 2]], (len(faces), 1))  # every face on the same UV triangle
    uv_faces[-2] = [0, 1, 3]
    mesh = Mesh(vertices, faces, uvs, uv_faces, warnings=["something odd"])
    problems = " | ".join(analyze_mesh(mesh).problems)
    assert "1 degenerate" in problems
    assert "1 duplicate faces" in problems
    assert "non-manifold" in problems
    assert "outside [0, 1]" in problems
    assert "overlapping" in problems or "more than one triangle" in problems
    assert "something odd" in problems


# ----------------------------------------------------------------------------------------------------------------------
# seam edges
# ----------------------------------------------------------------------------------------------------------------------


def cross_unfolded_cube() -> Mesh:
    """Unit box unfolded into one cross-shaped chart in a 4x3 grid of cells (+Z in the middle, -Z at the right end).

    The cross keeps 5 cube edges joined (+Z with +X, -X, +Y, -Y, and +X with -Z) and cuts the other 7. Every face
    corner gets its own UV row; corners at the same net point get bit-identical coordinates.
    """
    box = trimesh.creation.box()
    net = {  # side normal -> (u, v) in cell units of a 3D point (x, y, z) on that side
        (0, 0, 1): lambda x, y, z: (1.5 + x, 1.5 + y),
        (1, 0, 0): lambda x, y, z: (2.5 - z, 1.5 + y),
        (0, 0, -1): lambda x, y, z: (3.5 - x, 1.5 + y),
        (-1, 0, 0): lambda x, y, z: (0.5 + z, 1.5 + y),
        (0, 1, 0): lambda x, y, z: (1.5 + x, 2.5 - z),
        (0, -1, 0): lambda x, y, z: (1.5 + x, 0.5 + z),
    }
    uvs = []
    for face, normal in zip(box.faces, np.round(box.face_normals).astype(int)):
        unfold = net[tuple(normal)]
        uvs += [np.array(unfold(*box.vertices[v])) / np.array([4.0, 3.0]) for v in face]
    return Mesh(box.vertices, box.faces, np.array(uvs), np.arange(3 * len(box.faces)).reshape(-1, 3))


def check_seam_layout(mesh: Mesh, seams: SeamEdges) -> None:
    """Every array of ``seams`` agrees with ``mesh`` as documented in SeamEdges."""
    count = len(seams)
    assert seams.faces.shape == (count, 2) and seams.faces.dtype == np.int64
    assert seams.vertices.shape == (count, 2) and seams.vertices.dtype == np.int64
    assert seams.positions.shape == (count, 2, 3) and seams.positions.dtype == np.float64
    assert seams.lengths.shape == (count,) and seams.lengths.dtype == np.float64
    assert seams.uv_indices.shape == (count, 2, 2) and seams.uv_indices.dtype == np.int64
    assert seams.uvs.shape == (count, 2, 2, 2) and seams.uvs.dtype == np.float64
    assert seams.materials.shape == (count, 2) and seams.materials.dtype == np.int64
    assert (seams.faces[:, 0] < seams.faces[:, 1]).all() and (seams.vertices[:, 0] < seams.vertices[:, 1]).all()
    assert [tuple(v) for v in seams.vertices] == sorted(tuple(v) for v in seams.vertices)
    np.testing.assert_array_equal(seams.positions, mesh.vertices[seams.vertices])
    np.testing.assert_allclose(seams.lengths, np.linalg.norm(seams.positions[:, 1] - seams.positions[:, 0], axis=1))
    if mesh.uvs is not None:
        np.testing.assert_array_equal(seams.uvs, mesh.uvs[seams.uv_indices])
    np.testing.assert_array_equal(seams.materials, mesh.face_materials[seams.faces])
    welded = weld_positions(mesh.vertices)
    for s in range(count):
        for side in range(2):
            face = seams.faces[s, side]
            corners = welded[mesh.faces[face]].tolist()
            for end in range(2):  # the UV the face uses at that 3D end
                assert seams.uv_indices[s, side, end] == mesh.uv_faces[face, corners.index(seams.vertices[s, end])]


def test_seam_edges_cube_with_one_chart_per_side():
    """Each square side is a chart: the 12 cube edges are seams, the 6 side diagonals are not."""
    mesh = box_with_six_charts()
    seams = seam_edges(mesh)
    assert isinstance(seams, SeamEdges) and len(seams) == 12
    check_seam_layout(mesh, seams)
    np.testing.assert_allclose(seams.lengths, 1.0)
    normals = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).face_normals
    side_a, side_b = normals[seams.faces[:, 0]], normals[seams.faces[:, 1]]
    np.testing.assert_allclose(np.einsum("ij,ij->i", side_a, side_b), 0.0, atol=1e-12)  # perpendicular sides
    assert (seams.uvs[:, 0] != seams.uvs[:, 1]).any(axis=(1, 2)).all()
    assert analyze_mesh(mesh).num_seam_edges == 12


def test_seam_edges_cube_with_one_chart_per_triangle():
    """Each triangle is a chart: all 18 edges (12 cube edges of length 1, 6 diagonals of length sqrt 2) are seams,
    welded (8 vertices) or not (36 vertices, 3 per triangle)."""
    box = trimesh.creation.box()
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
    uvs = np.concatenate([(uvs + [i % 4, i // 4]) / 4.0 for i in range(12)])  # 12 separate triangles in a 4x3 grid
    uv_faces = np.arange(36).reshape(12, 3)
    welded = Mesh(box.vertices, box.faces, uvs, uv_faces)
    unwelded = Mesh(box.vertices[box.faces.reshape(-1)], uv_faces, uvs, uv_faces)
    for mesh in (welded, unwelded):
        seams = seam_edges(mesh)
        assert len(seams) == 18
        check_seam_layout(mesh, seams)
        np.testing.assert_allclose(np.sort(seams.lengths), [1.0] * 12 + [np.sqrt(2.0)] * 6)
        report = analyze_mesh(mesh)
        assert report.num_charts == 12 and report.num_seam_edges == 18


def test_seam_edges_cube_unfolded_into_a_cross():
    """One cross-shaped chart: 7 cut cube edges are seams; with the +X side in a second material, its 2 joined edges
    become seams too (9)."""
    mesh = cross_unfolded_cube()
    uv_triangles = mesh.uvs[mesh.uv_faces]
    ab, ac = uv_triangles[:, 1] - uv_triangles[:, 0], uv_triangles[:, 2] - uv_triangles[:, 0]
    signed = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    assert (signed > 0).all() and uv_overlap_fraction(uv_triangles) == 0.0  # a proper unfolding
    seams = seam_edges(mesh)
    assert len(seams) == 7
    check_seam_layout(mesh, seams)
    np.testing.assert_allclose(seams.lengths, 1.0)
    report = analyze_mesh(mesh)
    assert report.num_charts == 1 and report.num_seam_edges == 7 and report.problems == []

    plus_x = np.isclose(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).face_normals[:, 0], 1.0)
    two_materials = mesh.copy_with(face_materials=plus_x.astype(np.int64), materials=[Material("a"), Material("b")])
    seams = seam_edges(two_materials)
    assert len(seams) == 9
    check_seam_layout(two_materials, seams)
    assert (seams.materials[:, 0] != seams.materials[:, 1]).sum() == 4  # 2 joined + 2 cut edges around +X


def test_seam_edges_without_seams_or_uvs():
    box = trimesh.creation.box()
    one_uv_per_vertex = Mesh(box.vertices, box.faces, box.vertices[:, :2] + 0.5, box.faces)
    no_uvs = Mesh(box.vertices, box.faces)
    for mesh in (one_uv_per_vertex, no_uvs):
        seams = seam_edges(mesh)
        assert len(seams) == 0
        check_seam_layout(mesh, seams)
    assert analyze_mesh(one_uv_per_vertex).num_seam_edges == 0 and analyze_mesh(no_uvs).num_seam_edges is None


def test_uv_overlap_fraction():
    square = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], dtype=float)
    assert uv_overlap_fraction(square) == 0.0  # shared diagonal is not counted twice
    assert uv_overlap_fraction(np.concatenate([square, square[:1]])) == pytest.approx(0.5, abs=0.01)
    cells = [(i / 8, j / 8, (i + 1) / 8, (j + 1) / 8) for i in range(8) for j in range(8)]
    grid = np.array([[[u0, v0], [u1, v0], [u1, v1]] for u0, v0, u1, v1 in cells]
                    + [[[u0, v0], [u1, v1], [u0, v1]] for u0, v0, u1, v1 in cells])
    assert uv_overlap_fraction(grid) == 0.0
    assert uv_overlap_fraction(np.zeros((0, 3, 2))) == 0.0


def test_obj_concave_polygons_are_triangulated_inside_their_outline(tmp_path):
    """An L-shaped hexagon (area 3) and a dart-shaped quad: a fan from the first corner covered area outside them
    and flipped a triangle (new-user test, session 13); ear clipping keeps the area and the winding. Convex faces keep
    the fan, and a bow tie (it crosses itself) keeps the fan with a warning."""
    from csdtex.io.obj import polygon_triangles

    obj = ("v 0 0 0\nv 2 0 0\nv 2 1 0\nv 1 1 0\nv 1 2 0\nv 0 2 0\n"  # L shape, corners 1-6, reflex corner 4
           "v 5 0 0\nv 6 2 0\nv 5 1 0\nv 4 2 0\n"  # dart, corners 7-10, reflex corner 9
           "v 0 0 1\nv 1 1 1\nv 1 0 1\nv 0 1 1\n"  # bow tie, corners 11-14
           "f 3 4 5 6 1 2\nf 7 8 9 10\nf 11 12 13 14\n")
    mesh = load_mesh(write(tmp_path / "concave.obj", obj))
    corners = mesh.vertices[mesh.faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert mesh.num_faces == 4 + 2 + 2
    assert abs(0.5 * np.linalg.norm(normals[:4], axis=1).sum() - 3.0) < 1e-12 and (normals[:4, 2] > 0).all()
    assert abs(0.5 * np.linalg.norm(normals[4:6], axis=1).sum() - 1.0) < 1e-12 and (normals[4:6, 2] > 0).all()
    assert set(mesh.faces[:4].ravel()) == set(range(6))
    np.testing.assert_array_equal(mesh.faces[6:], [[10, 11, 12], [10, 12, 13]])  # the bow tie's fan, as written
    assert any("1 polygon(s) with more than 3 corners cross themselves" in w for w in mesh.warnings), mesh.warnings
    # The same L shape in the other planes and windings (each axis dropped, both orientations), and every shipped
    # mesh's quads: triangulated by shape with no warning.
    ell = np.array([[2, 1], [1, 1], [1, 2], [0, 2], [0, 0], [2, 0]], dtype=np.float64)
    for axis in range(3):
        for winding in (1, -1):
            points = np.insert(ell[::winding], axis, 0.5, axis=1)
            order = polygon_triangles(points)
            corners = points[np.asarray(order)]
            area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
            assert abs(area.sum() - 3.0) < 1e-12, (axis, winding, order)
    for shipped in sorted((Path(__file__).resolve().parents[1] / "assets" / "meshes").glob("*.obj")):
        assert not [w for w in load_mesh(shipped).warnings if "cross themselves" in w], shipped


def test_obj_objects_and_groups_merged_into_one_are_named(tmp_path):
    """An OBJ's objects / groups come out as one object; that was not said (new-user test, session 16)."""
    path = tmp_path / "two.obj"
    path.write_text("o Table\ng Table_group\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\no Chair\nv 0 0 1\nv 1 0 1\n"
                    "v 0 1 1\nf 4 5 6\n")
    notes = load_mesh(path).output_notes
    assert len(notes) == 1 and "3 objects / groups (Table, Table_group, Chair) are merged" in notes[0]
    path.write_text("o Only\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert load_mesh(path).output_notes == []
