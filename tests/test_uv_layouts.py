"""UV layouts as artists' files have them, and what info and paint say about them before any long work: UVs without
area (one point, a line), UVs squeezed into a corner of the texture, UDIM tiles, broken UVs replaced by --unwrap,
and glTF node trees the outputs flatten."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from csdtex.cli import main
from csdtex.guidance.random_priors import build_tiny_pixel_folder
from csdtex.io import load_mesh
from csdtex.mesh import Mesh
from csdtex.mesh.analysis import analyze_mesh, udim_tiles, uv_area_fractions

FAST = ["--steps", "2", "--views-per-step", "1", "--texture-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return build_tiny_pixel_folder(tmp_path_factory.mktemp("uv_prior") / "pixel")


def sphere_obj(path, uv_of=None, subdivisions=1):
    """An icosphere OBJ with spherical UVs (or ``uv_of(uvs) -> uvs``), one vt per vertex."""
    sphere = trimesh.creation.icosphere(subdivisions)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    uvs = np.column_stack([np.arctan2(vertices[:, 2], vertices[:, 0]) / (2 * np.pi) + 0.5,
                           np.arcsin(np.clip(vertices[:, 1], -1, 1)) / np.pi + 0.5])
    if uv_of is not None:
        uvs = uv_of(uvs)
    lines = [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in vertices] + [f"vt {u:.17g} {v:.17g}" for u, v in uvs]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_info_names_uvs_without_area_and_uvs_in_a_corner(tmp_path):
    point = load_mesh(sphere_obj(tmp_path / "point.obj", lambda uv: np.full_like(uv, 0.3)))
    line = load_mesh(sphere_obj(tmp_path / "line.obj", lambda uv: np.column_stack([uv[:, 0], np.full(len(uv), .5)])))
    corner = load_mesh(sphere_obj(tmp_path / "corner.obj", lambda uv: 0.4 + uv * 0.01))
    good = load_mesh(sphere_obj(tmp_path / "good.obj"))
    assert uv_area_fractions(point) == [("material_0", 0.0)] == uv_area_fractions(line)
    assert 0 < uv_area_fractions(corner)[0][1] < 1e-3 and uv_area_fractions(good)[0][1] > 0.5
    assert any("no area" in p for p in analyze_mesh(point).problems)
    report = analyze_mesh(line)
    assert any("no area" in p for p in report.problems)
    assert report.density_ratio_median is None or np.isfinite(report.density_ratio_median)
    assert "median inf" not in report.to_text()
    assert any("cover only" in p for p in analyze_mesh(corner).problems)
    assert not any("area" in p or "cover only" in p for p in analyze_mesh(good).problems)


def test_a_layout_with_nothing_to_paint_is_refused_before_the_paint(tmp_path, prior, monkeypatch):
    import csdtex.painting as painting

    path = sphere_obj(tmp_path / "point.obj", lambda uv: np.full_like(uv, 0.3))
    monkeypatch.setattr(painting, "optimize", lambda *a, **k: pytest.fail("the optimization must not start"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior), "--out", str(out),
                                       *FAST])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.startswith("error: nothing can be painted: every UV triangle has no area")
    assert "--unwrap" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() or not any(p.suffix in (".obj", ".glb", ".png") for p in out.iterdir())


def test_uvs_in_a_corner_are_painted_with_a_warning(tmp_path, prior):
    path = sphere_obj(tmp_path / "corner.obj", lambda uv: 0.4 + uv * 0.01)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior), "--out", str(out),
                                       "--steps", "2", "--views-per-step", "1", "--texture-size", "256"])
    assert result.exit_code == 0, result.output
    assert "its UVs cover only" in result.output
    assert any("cover only" in note for note in json.loads((out / "run.json").read_text())["input_notes"])


def test_udim_layouts_are_named_with_a_remedy_that_keeps_them(tmp_path, prior):
    # The sphere's left half in tile 1001 (u 0..1), its right half in tile 1002 (u 1..2): faces by their centroid.
    sphere = trimesh.creation.icosphere(2)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    corners = vertices[faces]
    right = corners.mean(axis=1)[:, 0] > 0
    uv_corners = (corners[:, :, [2, 1]] + 1.0) / 2.0 * 0.98 + 0.01  # a planar projection inside one tile
    uv_corners[right, :, 0] += 1.0
    mesh = Mesh(vertices, faces, uvs=uv_corners.reshape(-1, 2), uv_faces=np.arange(3 * len(faces)).reshape(-1, 3))
    assert udim_tiles(mesh) == [1001, 1002]
    assert any("integer tiles 1001, 1002: if that is a UDIM layout" in p for p in analyze_mesh(mesh).problems)
    # A repeating layout that crosses tile borders is not UDIM, nor is a single tile.
    crossing = Mesh(vertices, faces, uvs=uv_corners.reshape(-1, 2) * 3.0, uv_faces=mesh.uv_faces)
    assert udim_tiles(crossing) == []
    folded = uv_corners.copy()
    folded[right, :, 0] -= 1.0
    single = Mesh(vertices, faces, uvs=folded.reshape(-1, 2), uv_faces=mesh.uv_faces)
    assert udim_tiles(single) == []
    path = tmp_path / "udim.obj"
    mesh.source = None
    from csdtex.export import export_obj

    export_obj(mesh, [np.zeros((4, 4, 3), np.uint8)], tmp_path, "udim")
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior),
                                       "--out", str(tmp_path / "out"), *FAST[:-1]])
    assert result.exit_code == 0, result.output
    assert "shared fraction" in result.output and "integer tiles 1001, 1002: if that is a UDIM layout" in result.output


def test_broken_uvs_are_replaced_by_unwrap_instead_of_refused(tmp_path, prior):
    path = sphere_obj(tmp_path / "nan.obj")
    lines = path.read_text().splitlines()
    first_vt = next(i for i, line in enumerate(lines) if line.startswith("vt "))
    lines[first_vt] = "vt nan nan"
    path.write_text("\n".join(lines) + "\n")
    refused = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior),
                                        "--out", str(tmp_path / "a"), *FAST])
    assert refused.exit_code != 0 and "NaN" in refused.output and "pass --unwrap to replace them" in refused.output
    assert load_mesh(path, discard_uvs=True).uvs is None
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior), "--unwrap",
                                       "--out", str(tmp_path / "b"), *FAST])
    assert result.exit_code == 0, result.output
    painted = load_mesh(tmp_path / "b" / "nan.obj")
    assert np.isfinite(painted.uvs).all() and np.array_equal(painted.faces, load_mesh(path, discard_uvs=True).faces)


def test_gltf_node_trees_the_outputs_flatten_are_named(tmp_path):
    from gltf_files import GltfBuilder, quad

    positions, triangles = quad()
    plain = GltfBuilder()
    plain.mesh([plain.primitive(positions, triangles)])
    assert not any("node tree" in note for note in load_mesh(plain.write_glb(tmp_path / "plain.glb")).output_notes)

    scaled = GltfBuilder()  # centimetres under a node that scales to metres and moves the part
    scaled.mesh([scaled.primitive(positions * 100.0, triangles)], node={"scale": [0.01, 0.01, 0.01],
                                                                         "translation": [5.0, 0.0, 0.0]})
    notes = load_mesh(scaled.write_glb(tmp_path / "scaled.glb")).output_notes
    assert any("node transforms of 1 instance applied to the vertices" in note for note in notes)
    assert not any("merged" in note for note in notes)

    shared = GltfBuilder()  # one mesh placed by two nodes
    shared.mesh([shared.primitive(positions, triangles)], node={"translation": [-2.0, 0.0, 0.0]})
    shared.doc["nodes"].append({"mesh": 0, "translation": [2.0, 0.0, 0.0]})
    shared.doc["scenes"][0]["nodes"].append(1)
    notes = load_mesh(shared.write_glb(tmp_path / "shared.glb")).output_notes
    line = next(note for note in notes if "node tree" in note)
    assert "2 mesh instances merged" in line and "1 mesh used by several nodes written once per use" in line


def test_a_z_up_asset_is_turned_upright_in_renders_and_kept_as_it_is_in_the_outputs(tmp_path, prior):
    import torch

    from csdtex.mesh import UP_AXES, up_axis_rotation

    for axis in UP_AXES:
        rotation = up_axis_rotation(axis)
        assert np.isclose(np.linalg.det(rotation), 1.0)
    # A box tall along +Z with its +Z face marked by material 1: with --up +z it stands upright (tall along +Y),
    # its marked face on top, normals turned with it.
    box = trimesh.creation.box(extents=(0.5, 0.5, 2.0))
    vertices, faces = np.asarray(box.vertices), np.asarray(box.faces)
    top = (np.asarray(box.face_normals)[:, 2] > 0.9).astype(np.int64)
    mesh = Mesh(vertices, faces, face_materials=top, materials=[Mesh(vertices, faces).materials[0],
                                                                Mesh(vertices, faces).materials[0]])
    lying, upright = mesh.to_render(), mesh.to_render(up_axis="+z")
    extent = lambda render: (render.positions.amax(0) - render.positions.amin(0)).tolist()  # noqa: E731
    assert extent(lying)[2] > 3 * extent(lying)[1] and extent(upright)[1] > 3 * extent(upright)[2]
    top_normals = upright.normals[torch.as_tensor(faces[top == 1]).reshape(-1)]
    assert (top_normals[:, 1] > 0).all()  # smooth normals at the corners: pointing up, not only up
    # The command line: --up +z reaches the run's config and record; the outputs keep the input's coordinates.
    path = tmp_path / "tall.obj"
    sphere_obj(path)
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior), "--up", "+z",
                                       "--out", str(tmp_path / "out"), *FAST])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["up_axis"] == "+z"
    assert np.array_equal(load_mesh(tmp_path / "out" / "tall.obj").vertices, load_mesh(path).vertices)
    bad = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--up", "z", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "z" in bad.output


def test_parts_far_apart_are_warned_about_before_the_paint(tmp_path, prior):
    near = trimesh.creation.icosphere(1, radius=1.0)
    far = trimesh.creation.icosphere(1, radius=0.5)
    far.apply_translation([100.0, 0.0, 0.0])
    path = tmp_path / "far.obj"
    trimesh.util.concatenate([near, far]).export(path)
    result = CliRunner().invoke(main, ["paint", str(path), "a red ball", "--model", str(prior),
                                       "--out", str(tmp_path / "out"), *FAST[:-1]])
    assert result.exit_code == 0, result.output
    assert "of views that frame it whole (parts far apart, or a long thin shape)" in result.output
    near.export(tmp_path / "near.obj")
    alone = CliRunner().invoke(main, ["paint", str(tmp_path / "near.obj"), "a red ball", "--model", str(prior),
                                      "--out", str(tmp_path / "near"), *FAST[:-1]])
    assert alone.exit_code == 0 and "frame it whole" not in alone.output


def test_inconsistent_winding_is_named_by_info():
    sphere = trimesh.creation.icosphere(2)
    faces = np.asarray(sphere.faces).copy()
    assert not any("winding" in p for p in analyze_mesh(Mesh(np.asarray(sphere.vertices), faces)).problems)
    faces[::2] = faces[::2, ::-1]  # every other face flipped, as scans and bad booleans leave them
    problems = analyze_mesh(Mesh(np.asarray(sphere.vertices), faces)).problems
    assert any("wound in opposite directions (inconsistent winding)" in p for p in problems)
