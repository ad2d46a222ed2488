"""Real-world asset cases (issue #9), each on a small file the test writes itself: tiled UVs, samplers and wrap modes,
sparse accessors, triangle strips and fans, Draco and meshopt compression, KHR_texture_transform, vertex colours,
glTF extensions in ``csdtex info``, unwritable render outputs, output-folder ownership, Unicode names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from csdtex.bake import bake_texture
from csdtex.cli import main
from csdtex.config import PaintConfig
from csdtex.errors import ConfigError, MeshError
from csdtex.export import export_all
from csdtex.mesh import analyze_mesh, load_mesh
from csdtex.mesh.analysis import shared_texel_fractions
from csdtex.painting import paint
from csdtex.pipeline.finalize import UnpaintedTextureError, check_painted
from csdtex.preview import input_texture_model
from csdtex.sampling import (
    CLAMP_TO_EDGE,
    MIRRORED_REPEAT,
    REPEAT,
    TextureSampler,
    TextureTransform,
    baked_samplers,
    sample_texture,
    wrap_uv_triangles,
)
from gltf_files import (
    CLAMP_TO_EDGE as GL_CLAMP,
    NEAREST,
    REPEAT as GL_REPEAT,
    USHORT,
    GltfBuilder,
    box_faces,
    quad,
    read_glb,
)

FAST = PaintConfig(steps=2, views_per_step=1, texture_size=32, preview_frames=2, preview_size=32, device="cpu")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def halves_image(size: int = 8) -> np.ndarray:
    """Left half red, right half blue."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:, : size // 2] = (255, 0, 0)
    image[:, size // 2:] = (0, 0, 255)
    return image


class PositionField(torch.nn.Module):
    """Colour = a smooth function of the 3D position (ignores UVs)."""

    uses_uvs = False

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, points, uvs=None, materials=None):
        return (0.5 + 0.45 * torch.sin(2.5 * points * self.scale)).clamp(0, 1)


# ----------------------------------------------------------------------------------------------------------------------
# sampling: one function, exact glTF wrap and filter modes
# ----------------------------------------------------------------------------------------------------------------------


def reference_sample(image: np.ndarray, u: float, v: float, wrap_s: str, wrap_t: str) -> np.ndarray:
    """Bilinear lookup written out texel by texel, OpenGL's wrap rules (image row 0 = top, v up)."""
    height, width = image.shape[:2]

    def wrap(i: int, n: int, mode: str) -> int:
        if mode == REPEAT:
            return i % n
        if mode == MIRRORED_REPEAT:
            m = i % (2 * n)
            return m if m < n else 2 * n - 1 - m
        return min(max(i, 0), n - 1)

    x, y = u * width - 0.5, (1.0 - v) * height - 0.5
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    value = np.zeros(image.shape[2])
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            value += wx * wy * image[wrap(y0 + dy, height, wrap_t), wrap(x0 + dx, width, wrap_s)]
    return value


@pytest.mark.parametrize("wrap_s, wrap_t", [(REPEAT, REPEAT), (MIRRORED_REPEAT, CLAMP_TO_EDGE),
                                            (CLAMP_TO_EDGE, MIRRORED_REPEAT)])
def test_sample_texture_matches_opengl_wrap_rules(wrap_s, wrap_t):
    image = np.random.default_rng(0).random((5, 7, 3))
    uvs = np.random.default_rng(1).uniform(-3.0, 4.0, size=(200, 2))
    got = sample_texture(torch.as_tensor(image).permute(2, 0, 1), torch.as_tensor(uvs),
                         TextureSampler(wrap_s, wrap_t)).numpy()
    expected = np.stack([reference_sample(image, u, v, wrap_s, wrap_t) for u, v in uvs])
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_sample_texture_nearest_transform_and_border_default():
    image = torch.arange(4.0).view(1, 2, 2)  # rows: [0, 1] (top), [2, 3] (bottom)
    nearest = TextureSampler(REPEAT, REPEAT, "nearest")
    uvs = torch.tensor([[0.25, 0.75], [1.25, 0.75], [0.75, 0.25], [-0.25, -0.25]])
    assert sample_texture(image, uvs, nearest)[:, 0].tolist() == [0.0, 0.0, 3.0, 1.0]
    shift = TextureTransform.from_obj(offset=(0.5, 0.0))
    assert sample_texture(image, uvs[:1], nearest, shift)[:, 0].tolist() == [1.0]
    # no sampler = clamp to edge, exactly grid_sample's border mode
    grid_reference = torch.nn.functional.grid_sample(image[None], torch.tensor([[[[3.0, -3.0]]]]),
                                                     padding_mode="border", align_corners=False)
    assert torch.allclose(sample_texture(image, torch.tensor([[2.0, 2.0]]))[0], grid_reference.reshape(1))


def test_gltf_texture_transform_is_converted_to_bottom_left_uvs():
    # glTF offset (0.5, 0) and scale (0.5, 0.5): glTF uv' = 0.5 uv + (0.5, 0); in csdtex UVs v = 1 - v_gltf.
    transform = TextureTransform.from_gltf(offset=(0.5, 0.0), scale=(0.5, 0.5))
    uv = np.array([[0.2, 0.3]])
    gltf = np.array([0.2, 0.7]) * 0.5 + np.array([0.5, 0.0])
    np.testing.assert_allclose(transform.apply(uv)[0], [gltf[0], 1.0 - gltf[1]])
    rotated = TextureTransform.from_gltf(rotation=np.pi / 2)  # glTF (1, 0) -> (cos, -sin) = (0, -1)
    np.testing.assert_allclose(rotated.apply(np.array([[1.0, 1.0]]))[0], [0.0, 2.0], atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# 1. tiled UVs: bake by the wrap rule, warn about shared texels, never finish unpainted
# ----------------------------------------------------------------------------------------------------------------------


def tiled_obj(folder: Path, v_offset: float = 1.0, extra: str = "", mtl_options: str = "") -> Path:
    """A textured quad whose UVs all lie in v in [v_offset, v_offset + 1] (one tile up)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(halves_image()).save(folder / "tex.png")
    write_text(folder / "tiled.mtl", f"newmtl stone\nKd 1 1 1\nmap_Kd {mtl_options}tex.png\n")
    o = v_offset
    return write_text(folder / "tiled.obj", (
        "mtllib tiled.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        f"vt 0 {o}\nvt 1 {o}\nvt 1 {o + 1}\nvt 0 {o + 1}\nusemtl stone\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n" + extra))


def test_tiled_uvs_bake_through_the_wrap_rule_and_export_a_repeat_sampler(tmp_path):
    mesh = load_mesh(tiled_obj(tmp_path / "in"))
    assert mesh.materials[0].sampler == TextureSampler(REPEAT, REPEAT)
    samplers = baked_samplers(mesh)
    assert (samplers[0].wrap_s, samplers[0].wrap_t) == (CLAMP_TO_EDGE, REPEAT)  # u in [0, 1], v tiled
    baked = bake_texture(mesh, PositionField(), size=32)
    assert baked.coverage[0].mean() > 0.9 and baked.images[0].std() > 5  # painted, not flat grey
    # the texture sampled as the exported sampler says reproduces the field on the surface
    field = PositionField()
    render = mesh.to_render()
    bary = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    faces = torch.tensor([0, 1])
    points = (render.positions[render.faces.long()[faces]] * bary[..., None]).sum(1)
    uvs = (render.uvs[render.uv_faces.long()[faces]] * bary[..., None]).sum(1)
    image = torch.as_tensor(baked.images[0]).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(sample_texture(image, uvs, samplers[0]).numpy(), field(points).detach().numpy(),
                               atol=0.03)
    files = export_all(mesh, baked.images, tmp_path / "out", "tiled")
    document, _ = read_glb(files.glb)
    assert document["samplers"] == [{"magFilter": 9729, "minFilter": 9987, "wrapS": GL_CLAMP, "wrapT": GL_REPEAT}]


def test_wrap_rule_places_straddling_and_mirrored_triangles():
    triangle = np.array([[[0.5, 0.2], [1.5, 0.2], [0.5, 0.8]]])  # straddles u = 1
    copies, source = wrap_uv_triangles(triangle, TextureSampler(REPEAT, REPEAT))
    assert source.tolist() == [0, 0] and copies[:, 0, 0].tolist() == [0.5, -0.5]
    copies, _ = wrap_uv_triangles(np.array([[[1.2, 0.1], [1.8, 0.1], [1.2, 0.9]]]),
                                  TextureSampler(MIRRORED_REPEAT, CLAMP_TO_EDGE))
    np.testing.assert_allclose(copies[0, :, 0], [0.8, 0.2, 0.8])  # tile 1 is mirrored
    np.testing.assert_allclose(copies[0, :, 1], [0.1, 0.1, 0.9])


def test_shared_texels_are_measured_after_the_wrap_rule(tmp_path):
    # a second quad with the same UVs one tile lower: both regions share every texel
    path = tiled_obj(tmp_path / "in", extra="v 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
                                           "f 5/5 6/6 7/7\nf 5/5 7/7 8/8\n")
    mesh = load_mesh(path)
    [(name, fraction)] = shared_texel_fractions(mesh)
    assert name == "stone" and fraction > 0.95
    assert shared_texel_fractions(load_mesh(tiled_obj(tmp_path / "single")))[0][1] < 0.01
    report = analyze_mesh(mesh)
    assert any("shared by more than one surface region" in p for p in report.problems)


def test_paint_warns_once_about_shared_texels_and_paints_tiled_uvs(tmp_path):
    path = tiled_obj(tmp_path / "in", extra="v 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
                                           "f 5/5 6/6 7/7\nf 5/5 7/7 8/8\n")
    warnings: list[str] = []
    result = paint(path, "a red wall", FAST, out_dir=tmp_path / "out", show_progress=False, warn=warnings.append)
    shared = [w for w in warnings if "share the same texels" in w]
    assert len(shared) == 1 and "'stone'" in shared[0] and "--unwrap" in shared[0] and "\n" not in shared[0]
    texture = np.asarray(Image.open(result.files.textures[0]))
    assert (texture != 128).any()  # not the unpainted fill
    document, _ = read_glb(result.files.glb)
    assert document["samplers"][0]["wrapT"] == GL_REPEAT
    record = json.loads(result.run_json.read_text())
    assert record["samplers"][0]["wrapT"] == GL_REPEAT and any("share" in n for n in record["input_notes"])


def test_unpainted_bake_fails_in_one_line_and_writes_nothing(tmp_path):
    # UVs in [2, 3] under a clamping sampler (map_Kd -clamp on): no texel centre is covered
    path = tiled_obj(tmp_path / "in", v_offset=2.0, mtl_options="-clamp on ")
    mesh = load_mesh(path)
    assert mesh.materials[0].sampler.wrap_t == CLAMP_TO_EDGE
    with pytest.raises(UnpaintedTextureError) as info:
        check_painted([np.zeros((4, 4), dtype=bool)], mesh)
    assert "\n" not in str(info.value) and "nothing was written" in str(info.value)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["paint", str(path), "a wall", "--out", str(out), "--steps", "1",
                                       "--texture-size", "16", "--quiet"])
    assert result.exit_code != 0 and "error: the bake painted no texel" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not [p for p in out.iterdir() if p.suffix in (".glb", ".obj", ".png", ".json")
                                    and p.name != "checkpoint.json"]


# ----------------------------------------------------------------------------------------------------------------------
# 2. render honours samplers (REPEAT box with u in [0, 6])
# ----------------------------------------------------------------------------------------------------------------------


def repeating_box(path: Path, wrap: int) -> Path:
    builder = GltfBuilder()
    positions, faces, uvs = box_faces()
    texture = builder.texture(halves_image(), {"wrapS": wrap, "wrapT": wrap, "magFilter": NEAREST})
    material = builder.material("logo", texture)
    builder.mesh([builder.primitive(positions, faces, uvs, material=material)], name="box")
    return builder.write_glb(path)


def test_render_repeats_the_texture_like_viewers(tmp_path):
    colours = {}
    for name, wrap in (("repeat", GL_REPEAT), ("clamp", GL_CLAMP)):
        path = repeating_box(tmp_path / f"{name}.glb", wrap)
        mesh = load_mesh(path)
        assert mesh.materials[0].sampler.mag_filter == "nearest"
        out = tmp_path / f"{name}.png"
        result = invoke("render", str(path), "--out", str(out), "--frames", "1", "--size", "48", "--shading",
                        "albedo")
        assert result.exit_code == 0, result.output
        assert f"wrote {out} (1 frame, 48x48)" in result.output
        pixels = np.asarray(Image.open(out)).reshape(-1, 3).astype(int)
        colours[name] = (int(((pixels[:, 0] > 200) & (pixels[:, 2] < 60)).sum()),
                         int(((pixels[:, 2] > 200) & (pixels[:, 0] < 60)).sum()))
    red, blue = colours["repeat"]
    assert red > 50 and blue > 50  # both halves on every face: the texture repeats
    red, blue = colours["clamp"]
    assert blue > 10 * max(red, 1)  # clamped: u in [1, 6] reads the right edge (blue)


# ----------------------------------------------------------------------------------------------------------------------
# 3-4. sparse accessors, strips and fans
# ----------------------------------------------------------------------------------------------------------------------


def test_sparse_position_accessor_is_applied(tmp_path):
    # the glTF specification's SimpleSparseAccessor idea: a flat grid, three vertices lifted by sparse values
    grid = np.array([[x, y, 0.0] for y in range(3) for x in range(4)], dtype=np.float32)
    faces = []
    for y in range(2):
        for x in range(3):
            a = y * 4 + x
            faces += [[a, a + 1, a + 5], [a, a + 5, a + 4]]
    builder = GltfBuilder()
    lifted = np.array([[1, 1, 2], [2, 1, 3], [1, 2, 4]], dtype=np.float32)
    position = builder.accessor(grid, min_max=True)
    sparse_indices = builder.view(np.array([5, 6, 9], dtype=np.uint16).tobytes())
    sparse_values = builder.view(lifted.tobytes())
    builder.doc["accessors"][position]["sparse"] = {
        "count": 3, "indices": {"bufferView": sparse_indices, "componentType": USHORT},
        "values": {"bufferView": sparse_values}}
    builder.doc["accessors"][position]["max"] = [3.0, 2.0, 4.0]
    indices = builder.accessor(np.array(faces).reshape(-1), dtype=np.uint16)
    builder.mesh([{"attributes": {"POSITION": position}, "indices": indices}])
    mesh = load_mesh(builder.write_glb(tmp_path / "sparse.glb"))
    expected = grid.copy()
    expected[[5, 6, 9]] = lifted
    np.testing.assert_array_equal(mesh.vertices, expected)
    report = analyze_mesh(mesh)
    np.testing.assert_array_equal(report.bbox_max, [3.0, 2.0, 4.0])
    # a sparse accessor without a bufferView starts from zeros
    builder.doc["accessors"][position].pop("bufferView")
    mesh = load_mesh(builder.write_glb(tmp_path / "sparse_zero.glb"))
    assert (mesh.vertices[[0, 1, 11]] == 0).all() and (mesh.vertices[[5, 6, 9]] == lifted).all()


@pytest.mark.parametrize("mode, indices, expected", [
    (6, [0, 1, 2, 3], [[1, 2, 0], [2, 3, 0]]),  # fan: (v_i+1, v_i+2, v_0)
    (5, [0, 1, 3, 2], [[0, 1, 3], [1, 2, 3]]),  # strip: odd triangles swap to keep the winding
    (4, [0, 1, 2, 0, 2, 3], [[0, 1, 2], [0, 2, 3]]),
])
def test_triangle_fans_and_strips_are_triangles(tmp_path, mode, indices, expected):
    builder = GltfBuilder()
    positions, _ = quad()
    builder.mesh([builder.primitive(positions, np.array(indices), mode=mode)])
    mesh = load_mesh(builder.write_glb(tmp_path / f"mode{mode}.glb"))
    np.testing.assert_array_equal(mesh.faces, expected)
    normals = np.cross(mesh.vertices[mesh.faces[:, 1]] - mesh.vertices[mesh.faces[:, 0]],
                       mesh.vertices[mesh.faces[:, 2]] - mesh.vertices[mesh.faces[:, 0]])
    assert (normals[:, 2] > 0).all()  # every triangle faces +Z, as in the file


def test_points_only_gltf_is_refused_in_one_line(tmp_path):
    builder = GltfBuilder()
    builder.mesh([builder.primitive(quad()[0], mode=0)])
    with pytest.raises(MeshError, match=r"no triangle faces \(it holds only points\)"):
        load_mesh(builder.write_glb(tmp_path / "points.glb"))


def test_mesh_outside_the_default_scene_is_named_in_the_error(tmp_path):
    """A mesh that no node of the default scene places is not "no triangle faces" (new-user test, session 12)."""
    builder = GltfBuilder()
    builder.mesh([builder.primitive(*quad())])
    builder.doc["nodes"].append({"name": "empty"})
    builder.doc["scenes"][0]["nodes"] = [1]
    with pytest.raises(MeshError, match=r"has 1 mesh\(es\), but its default scene \(scene 0\) places none"):
        load_mesh(builder.write_glb(tmp_path / "unplaced.glb"))


def srgb_times_linear(image: np.ndarray, factor) -> np.ndarray:
    """What a glTF viewer shows for uint8 sRGB texels under a linear baseColorFactor (reference formula)."""
    c = image.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) * np.asarray(factor, np.float64)
    encoded = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(encoded * 255.0), 0, 255).astype(np.uint8)


def test_base_colour_factor_is_in_the_texels_and_other_material_parts_are_named(tmp_path):
    """Viewers show texture x baseColorFactor; the outputs write factor 1, so the reader multiplies it in (an edit
    would otherwise brighten the parts it leaves alone: (63, 101, 63) became (126, 126, 127) in a new-user test).
    The normal and metallic-roughness maps and the emissive colour are carried (read into ``Material.maps`` and the
    factors), so nothing is named as lost."""
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    builder = GltfBuilder()
    positions, faces = quad()
    uvs = positions[:, :2].astype(np.float64)
    leaf = builder.material("leaf", builder.texture(image), color=(0.5, 0.8, 0.5))
    builder.doc["materials"][leaf].update({
        "normalTexture": {"index": builder.texture(image)}, "alphaMode": "MASK", "emissiveFactor": [0.1, 0.0, 0.0]})
    builder.doc["materials"][leaf]["pbrMetallicRoughness"]["metallicRoughnessTexture"] = {"index": 0}
    plain = builder.material("plain", builder.texture(image))  # factor 1: texels as stored
    builder.mesh([builder.primitive(positions, faces, uvs, material=leaf),
                  builder.primitive(positions + [0, 0, 1], faces, uvs, material=plain)])
    mesh = load_mesh(builder.write_glb(tmp_path / "leaf.glb"))
    np.testing.assert_array_equal(mesh.materials[0].texture, srgb_times_linear(image, (0.5, 0.8, 0.5)))
    np.testing.assert_array_equal(mesh.materials[1].texture, image)
    builder = GltfBuilder()  # no baseColorFactor at all: glTF's default is white, not csdtex's grey
    builder.mesh([builder.primitive(*quad())])
    builder.doc["materials"] = [{"name": "bare"}]
    builder.doc["meshes"][0]["primitives"][0]["material"] = 0
    assert load_mesh(builder.write_glb(tmp_path / "bare.glb")).materials[0].base_color == (1.0, 1.0, 1.0)
    from csdtex.io.gltf_read import _times_factor

    # the factor is linear light (glTF 2.0): a white texel under 0.5 shows as 188, not 128, and a material with a
    # factor only shows (124, 231, 149) for (0.2, 0.8, 0.3) (new-user test, session 16: an edit left them darker)
    assert srgb_times_linear(np.full((1, 1, 3), 255, np.uint8), (0.5, 0.5, 1.0)).tolist() == [[[188, 188, 255]]]
    np.testing.assert_array_equal(srgb_times_linear(np.full((1, 1, 3), 255, np.uint8), (0.5, 0.5, 1.0)),
                                  _times_factor(np.full((1, 1, 3), 255, np.uint8), (0.5, 0.5, 1.0)))
    builder = GltfBuilder()
    builder.mesh([builder.primitive(*quad(), material=builder.material("metal", color=(0.2, 0.8, 0.3)))])
    metal = load_mesh(builder.write_glb(tmp_path / "metal.glb")).materials[0]
    assert metal.texture is None and np.rint(np.array(metal.base_color) * 255).tolist() == [124, 231, 149]
    assert not [w for w in mesh.warnings + mesh.output_notes if "do not carry" in w], mesh.output_notes
    leaf_material = mesh.materials[0]
    assert set(leaf_material.maps) == {"normal", "metallic_roughness"} and leaf_material.emissive_factor == (0.1, 0, 0)
    assert leaf_material.metallic_factor == 1.0 and leaf_material.roughness_factor == 1.0  # glTF's defaults
    # a material painted through TEXCOORD_1: the outputs keep that set only, and say so
    builder = GltfBuilder()
    lightmapped = builder.material("lightmapped", builder.texture(image), tex_coord=1)
    primitive = builder.primitive(positions, faces, uvs, material=lightmapped)
    half = uvs * 0.5  # csdtex UVs of the second set; the file stores (u, 1 - v)
    primitive["attributes"]["TEXCOORD_1"] = builder.accessor(np.stack([half[:, 0], 1.0 - half[:, 1]], 1))
    builder.mesh([primitive])
    mesh = load_mesh(builder.write_glb(tmp_path / "lightmapped.glb"))
    np.testing.assert_allclose(mesh.uvs, half, atol=1e-6)  # the set the texture uses
    assert any("'lightmapped': UV sets TEXCOORD_0" in w for w in mesh.output_notes), mesh.output_notes


def test_skins_and_morph_targets_are_read_at_rest_as_viewers_show_them(tmp_path):
    """A skinned mesh is placed by its joints (rest pose: world(joint) @ inverseBind, blended by the weights), not by
    its own node's transform (glTF 2.0, 3.7.3.3); morph targets are added at their default weights (the node's over
    the mesh's); both, and animations, are named once as output notes (the outputs are static)."""
    positions, faces = quad()
    builder = GltfBuilder()
    # morph: target moves every vertex +1 in z; the mesh says weight 0.25, the node overrides with 0.5
    morph = builder.primitive(positions, faces, positions[:, :2])
    morph["targets"] = [{"POSITION": builder.accessor(np.tile([0.0, 0.0, 1.0], (4, 1)))}]
    builder.mesh([morph], name="morphing", node={"weights": [0.5], "translation": [10.0, 0.0, 0.0]})
    builder.doc["meshes"][-1]["weights"] = [0.25]
    # skin: vertices 0, 1 follow joint A (translated +5 in y), 2, 3 half A half B (B mirrors x and moves -3 in x);
    # the mesh node's own translation (+100 in x) must be ignored
    skinned = builder.primitive(positions, faces, positions[:, :2])
    skinned["attributes"]["JOINTS_0"] = builder.accessor(np.array([[0, 0, 0, 0]] * 2 + [[0, 1, 0, 0]] * 2),
                                                         dtype=np.uint8)
    skinned["attributes"]["WEIGHTS_0"] = builder.accessor(np.array([[1.0, 0, 0, 0]] * 2 + [[0.5, 0.5, 0, 0]] * 2))
    node = builder.mesh([skinned], name="body", node={"translation": [100.0, 0.0, 0.0], "skin": 0})
    builder.doc["nodes"] += [{"translation": [0.0, 5.0, 0.0]}, {"translation": [-3.0, 0.0, 0.0],
                                                                "scale": [-1.0, 1.0, 1.0]}]
    joint_a, joint_b = len(builder.doc["nodes"]) - 2, len(builder.doc["nodes"]) - 1
    builder.doc["scenes"][0]["nodes"] += [joint_a, joint_b]
    inverse_bind = np.stack([np.eye(4), np.eye(4)]).transpose(0, 2, 1).reshape(2, 16)  # column-major identity
    builder.doc["skins"] = [{"joints": [joint_a, joint_b],
                             "inverseBindMatrices": builder.accessor(inverse_bind.reshape(-1))}]
    builder.doc["accessors"][-1]["type"] = "MAT4"
    builder.doc["accessors"][-1]["count"] = 2
    builder.doc["animations"] = [{"channels": [], "samplers": []}]
    mesh = load_mesh(builder.write_glb(tmp_path / "posed.glb"))
    assert node == 1
    np.testing.assert_allclose(mesh.vertices[:4], positions + [10.0, 0.0, 0.5])  # node weight 0.5, not 0.25
    a = positions[2:] + [0.0, 5.0, 0.0]
    b = positions[2:] * [-1.0, 1.0, 1.0] + [-3.0, 0.0, 0.0]
    np.testing.assert_allclose(mesh.vertices[4:6], positions[:2] + [0.0, 5.0, 0.0])
    np.testing.assert_allclose(mesh.vertices[6:], 0.5 * a + 0.5 * b)
    posed, animated = [note for note in mesh.output_notes if "node tree" not in note]
    assert any("node transforms of" in note and "instances applied" in note for note in mesh.output_notes)
    assert "mesh 'morphing' has morph targets; mesh 'body' is skinned: csdtex reads the shape at rest" in posed
    assert "1 animation not carried" in animated and not [w for w in mesh.warnings if "skinned" in w]


@pytest.mark.parametrize("fault, message", [
    ("position_vec2", "POSITION has 2 component(s) per vertex, glTF requires 3 (VEC3)"),
    ("float_indices", "its indices are not unsigned integers"),
    ("short_uvs", "TEXCOORD_0 has 3 entries for 4 vertices"),
])
def test_malformed_accessors_are_named(tmp_path, fault, message):
    """An attribute of the wrong width or length, or float indices, is named in one line (not a numpy error)."""
    positions, faces = quad()
    builder = GltfBuilder()
    primitive = builder.primitive(positions, faces, positions[:, :2])
    if fault == "position_vec2":
        primitive["attributes"]["POSITION"] = builder.accessor(positions[:, :2])
    elif fault == "float_indices":
        primitive["indices"] = builder.accessor(faces.reshape(-1).astype(np.float32))
    else:
        primitive["attributes"]["TEXCOORD_0"] = builder.accessor(positions[:3, :2])
    builder.mesh([primitive])
    path = builder.write_glb(tmp_path / f"{fault}.glb")
    with pytest.raises(MeshError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_mesh(path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1 and message in result.output


# ----------------------------------------------------------------------------------------------------------------------
# 5. Draco and meshopt
# ----------------------------------------------------------------------------------------------------------------------


def test_draco_glb_decodes_silently(tmp_path, capfd):
    DracoPy = pytest.importorskip("DracoPy")
    positions, faces, uvs = box_faces()
    stream = DracoPy.encode(positions, faces.astype(np.uint32), tex_coord=np.stack([uvs[:, 0], 1 - uvs[:, 1]], 1),
                            preserve_order=True, quantization_bits=16)
    decoded = DracoPy.decode(stream)
    ids = {a["attribute_type"]: a["unique_id"] for a in decoded.attributes}  # 0 = position, 3 = tex coord
    builder = GltfBuilder()
    builder.use_extension("KHR_draco_mesh_compression", required=True)
    view = builder.view(stream)
    position = builder.accessor(np.zeros((0, 3)), min=[-0.5] * 3, max=[0.5] * 3)
    builder.doc["accessors"][position]["count"] = len(positions)
    texcoord = builder.accessor(np.zeros((0, 2)))
    builder.doc["accessors"][texcoord]["count"] = len(positions)
    builder.doc["meshes"].append({"primitives": [{
        "attributes": {"POSITION": position, "TEXCOORD_0": texcoord}, "mode": 4,
        "extensions": {"KHR_draco_mesh_compression": {"bufferView": view,
                                                     "attributes": {"POSITION": ids[0], "TEXCOORD_0": ids[3]}}}}]})
    builder.doc["nodes"].append({"mesh": 0})
    builder.doc["scenes"][0]["nodes"].append(0)
    path = builder.write_glb(tmp_path / "draco.glb")
    capfd.readouterr()
    mesh = load_mesh(path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert mesh.num_faces == 12
    np.testing.assert_allclose(mesh.vertices[mesh.faces], positions[faces], atol=1e-4)
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces], uvs[faces], atol=1e-3)
    assert mesh.extensions == {"KHR_draco_mesh_compression": True}

    # without the decoder: one line naming the extension and the remedy
    sys.modules["DracoPy"] = None
    try:
        with pytest.raises(MeshError) as info:
            load_mesh(path)
    finally:
        sys.modules["DracoPy"] = DracoPy
    message = str(info.value)
    assert "KHR_draco_mesh_compression" in message and "pip install" in message and "\n" not in message
    assert "check that it is a valid" not in message  # one remedy, the reader's own

    # attribute ids that do not match the Draco data (POSITION mapped to the 2-component UVs): named, not a numpy error
    extension = builder.doc["meshes"][0]["primitives"][0]["extensions"]["KHR_draco_mesh_compression"]
    extension["attributes"] = {"POSITION": ids[3], "TEXCOORD_0": ids[0]}
    with pytest.raises(MeshError, match=r"Draco attribute \d+, mapped to POSITION, has 2 components where POSITION "
                                        r"needs 3"):
        load_mesh(builder.write_glb(tmp_path / "draco_swapped.glb"))


def test_misnamed_and_empty_files_get_their_own_message(tmp_path):
    """A GLB saved as .obj is named as a GLB; an OBJ with nothing in it says so (new-user test, session 12)."""
    builder = GltfBuilder()
    builder.mesh([builder.primitive(*quad())])
    glb = builder.write_glb(tmp_path / "model.glb")
    (tmp_path / "model.obj").write_bytes(glb.read_bytes())
    with pytest.raises(MeshError, match=r"is a GLB file \(it starts with 'glTF'\), not OBJ: rename it to \.glb$"):
        load_mesh(tmp_path / "model.obj")
    write_text(tmp_path / "blank.obj", "# nothing here\n\n")
    with pytest.raises(MeshError, match="has no vertices and no faces"):
        load_mesh(tmp_path / "blank.obj")
    builder.use_extension("VENDOR_magic", required=True)
    with pytest.raises(MeshError) as info:
        load_mesh(builder.write_glb(tmp_path / "vendor.glb"))
    assert str(info.value).endswith("which csdtex does not support): convert the file without it (e.g. re-export it "
                                    "from Blender)")


def test_meshopt_quantized_glb_decodes(tmp_path):
    meshopt = pytest.importorskip("meshopt")
    positions, faces, uvs = box_faces()
    quantized = np.round((positions + 0.5) * 1000).astype(np.uint16)  # integers, scaled back by the node
    packed_positions = np.concatenate([quantized, np.zeros((len(quantized), 1), np.uint16)], 1)  # 8-byte rows
    texcoords = np.round(np.stack([uvs[:, 0] / 6.0, 1 - uvs[:, 1]], 1) * 65535).astype(np.uint16)
    builder = GltfBuilder()
    for name in ("EXT_meshopt_compression", "KHR_mesh_quantization", "KHR_texture_transform"):
        builder.use_extension(name, required=name != "KHR_texture_transform")
    builder.doc["buffers"] = [{}, {"byteLength": 4096, "extensions": {"EXT_meshopt_compression": {"fallback": True}}}]

    def compressed_view(data: np.ndarray, mode: str, stride: int, count: int, target: int) -> int:
        encoded = meshopt.encode_gltf_buffer(data, mode)
        view = builder.view(encoded)
        view_record = builder.doc["bufferViews"][view]
        builder.doc["bufferViews"][view] = {
            "buffer": 1, "byteLength": stride * count, "byteStride": stride if mode == "ATTRIBUTES" else None,
            "target": target, "extensions": {"EXT_meshopt_compression": {
                "buffer": 0, "byteOffset": view_record["byteOffset"], "byteLength": view_record["byteLength"],
                "byteStride": stride, "count": count, "mode": mode}}}
        if mode != "ATTRIBUTES":
            del builder.doc["bufferViews"][view]["byteStride"]
        return view

    position_view = compressed_view(packed_positions, "ATTRIBUTES", 8, len(positions), 34962)
    uv_view = compressed_view(texcoords, "ATTRIBUTES", 4, len(positions), 34962)
    index_view = compressed_view(faces.reshape(-1).astype(np.uint32), "TRIANGLES", 4, faces.size, 34963)
    builder.doc["accessors"] += [
        {"bufferView": position_view, "componentType": USHORT, "count": len(positions), "type": "VEC3",
         "min": quantized.min(0).tolist(), "max": quantized.max(0).tolist()},
        {"bufferView": uv_view, "componentType": USHORT, "normalized": True, "count": len(positions), "type": "VEC2"},
        {"bufferView": index_view, "componentType": 5125, "count": faces.size, "type": "SCALAR"},
    ]
    texture = builder.texture(halves_image(), {"wrapS": GL_REPEAT, "wrapT": GL_REPEAT})
    material = builder.material("logo", texture, transform={"scale": [6.0, 1.0]})  # dequantizes u
    builder.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2,
                                                  "material": material}]})
    builder.doc["nodes"].append({"mesh": 0, "scale": [0.001] * 3, "translation": [-0.5] * 3})
    builder.doc["scenes"][0]["nodes"].append(0)
    path = builder.write_glb(tmp_path / "meshopt.glb")
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.vertices[mesh.faces], positions[faces], atol=1e-6)
    transformed = mesh.materials[0].texture_transform.apply(mesh.uvs[mesh.uv_faces])
    np.testing.assert_allclose(transformed, uvs[faces], atol=1e-4)
    assert set(mesh.extensions) == {"EXT_meshopt_compression", "KHR_mesh_quantization", "KHR_texture_transform"}


def test_unsupported_required_extension_is_refused_and_info_lists_extensions(tmp_path):
    builder = GltfBuilder()
    builder.mesh([builder.primitive(*quad())])
    builder.use_extension("KHR_materials_clearcoat")
    builder.use_extension("KHR_materials_unlit", required=True)
    path = builder.write_glb(tmp_path / "ext.glb")
    result = invoke("info", str(path))
    assert result.exit_code == 0
    assert "glTF extensions:" in result.output and "not supported, ignored: KHR_materials_clearcoat" in result.output
    report = json.loads(invoke("info", str(path), "--json").output)
    assert report["gltf_extensions"] == {"KHR_materials_clearcoat": "ignored", "KHR_materials_unlit": "ignored"}
    builder.use_extension("EXT_made_up_geometry", required=True)
    result = CliRunner().invoke(main, ["info", str(builder.write_glb(tmp_path / "req.glb"))])
    assert result.exit_code != 0 and "EXT_made_up_geometry" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------------------------------
# 6. KHR_texture_transform and vertex colours
# ----------------------------------------------------------------------------------------------------------------------


def test_texture_transform_and_vertex_colours_are_read_and_rendered(tmp_path):
    builder = GltfBuilder()
    positions, faces = quad()
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    texture = builder.texture(halves_image(), {"wrapS": GL_CLAMP, "wrapT": GL_CLAMP, "magFilter": NEAREST})
    # offset 0.5 along u, scale 0.5: the quad shows only the right (blue) half of the image
    material = builder.material("tile", texture, transform={"offset": [0.5, 0.0], "scale": [0.5, 1.0]})
    colors = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
    builder.mesh([builder.primitive(positions, faces, uvs, material=material, colors=colors)])
    path = builder.write_glb(tmp_path / "transformed.glb")
    mesh = load_mesh(path)
    assert mesh.materials[0].texture_transform is not None
    np.testing.assert_allclose(mesh.vertex_colors, colors)
    model = input_texture_model(mesh)
    sampled = model(None, torch.tensor([[0.1, 0.5], [0.9, 0.5]]))
    assert (sampled[:, 2] > 0.9).all() and (sampled[:, 0] < 0.1).all()  # blue everywhere: the transform applies
    out = tmp_path / "render.png"
    assert invoke("render", str(path), "--out", str(out), "--frames", "1", "--size", "32", "--shading",
                  "albedo").exit_code == 0
    pixels = np.asarray(Image.open(out)).reshape(-1, 3).astype(int)
    red = (pixels[:, 0] > pixels[:, 2] + 60) & (pixels[:, 0] > pixels[:, 1] + 60)
    blue = (pixels[:, 2] > pixels[:, 0] + 60) & (pixels[:, 2] > pixels[:, 1] + 60)
    dark = pixels.max(1) < 40  # blue times green vertex colours
    assert not red.any() and blue.any() and dark.any()
    # paint reports the vertex colours and records the dropped transform
    warnings: list[str] = []
    result = paint(path, "a blue tile", FAST, out_dir=tmp_path / "out", show_progress=False, warn=warnings.append)
    assert any("vertex colours" in w for w in warnings)
    notes = json.loads(result.run_json.read_text())["input_notes"]
    assert any("KHR_texture_transform" in n and "no texture transform" in n for n in notes)
    document, _ = read_glb(result.files.glb)
    assert "KHR_texture_transform" not in json.dumps(document)


def test_obj_map_options_and_vertex_colours(tmp_path):
    path = tiled_obj(tmp_path / "in", v_offset=0.0, mtl_options="-o 0.5 0 -s 2 2 ")
    text = path.read_text().replace("v 0 0 0\n", "v 0 0 0 1 0 0\n").replace("v 1 0 0\n", "v 1 0 0 0 1 0\n")
    text = text.replace("v 1 1 0\n", "v 1 1 0 0 0 1\n").replace("v 0 1 0\n", "v 0 1 0 1 1 1\n")
    path.write_text(text)
    mesh = load_mesh(path)
    transform = mesh.materials[0].texture_transform
    np.testing.assert_allclose(transform.apply(np.array([[0.25, 0.25]])), [[1.0, 0.5]])
    np.testing.assert_allclose(mesh.vertex_colors, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])


# ----------------------------------------------------------------------------------------------------------------------
# 7. render into an unwritable place
# ----------------------------------------------------------------------------------------------------------------------


def test_render_unwritable_output_is_one_line(tmp_path, monkeypatch):
    path = repeating_box(tmp_path / "box.glb", GL_REPEAT)
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(main, ["render", str(path), "--out", str(tmp_path / "file" / "x.png"), "--frames", "1",
                                       "--size", "16"])
    assert result.exit_code != 0 and result.output.startswith("error: cannot write to output folder")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1

    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # what a read-only folder does to the temporary file
    result = CliRunner().invoke(main, ["render", str(path), "--out", str(tmp_path / "ro" / "x.png"), "--frames", "1",
                                       "--size", "16"])
    assert result.exit_code != 0 and "Permission denied" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "ro" / "x.png").exists()


# ----------------------------------------------------------------------------------------------------------------------
# 8-9. output folders hold one asset; Unicode names stay readable
# ----------------------------------------------------------------------------------------------------------------------


def two_material_obj(folder: Path, name: str, materials: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0 1 0", "v 2 0 0", "v 2 1 0",
             "vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    lines += ["usemtl a", "f 1/1 2/2 3/3", "f 1/1 3/3 4/4", f"usemtl {'b' if materials == 2 else 'a'}",
              "f 2/1 5/2 6/3", "f 2/1 6/3 3/4"]
    return write_text(folder / f"{name}.obj", "\n".join(lines) + "\n")


def test_python_api_default_output_folder_is_per_mesh_like_the_cli(tmp_path, monkeypatch):
    """csdtex.paint without out_dir writes csdtex-out/<mesh name> in the working directory, as the command line
    does, so painting two meshes one after the other does not make the second refuse the first's folder."""
    monkeypatch.chdir(tmp_path)
    notes: list[str] = []
    chair = paint(two_material_obj(tmp_path / "in", "chair"), "red", FAST, show_progress=False, warn=notes.append)
    table = paint(two_material_obj(tmp_path / "in", "table"), "blue", FAST, show_progress=False, warn=notes.append)
    assert chair.files.glb.resolve() == (tmp_path / "csdtex-out" / "chair" / "chair.glb").resolve()
    assert table.files.glb.resolve() == (tmp_path / "csdtex-out" / "table" / "table.glb").resolve()
    assert chair.files.glb.exists()


def test_output_folder_holds_one_asset(tmp_path):
    out = tmp_path / "out"
    first = paint(two_material_obj(tmp_path / "in", "chair"), "red", FAST, out_dir=out, show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["chair.obj", "chair.mtl", "chair_a.png", "chair_b.png", "chair.glb", "chair_turntable.gif",
         "chair_views.png", "run.json"])
    # another asset into the same folder: refused before any work, one line
    other = two_material_obj(tmp_path / "in", "модель", materials=1)
    result = CliRunner().invoke(main, ["paint", str(other), "blue", "--out", str(out), "--steps", "1", "--quiet"])
    assert result.exit_code != 0 and "another asset 'chair'" in result.output and "--overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1 and first.files.glb.exists()
    # --overwrite replaces them: only the new asset's outputs remain, with its readable Unicode name
    result = CliRunner().invoke(main, ["paint", str(other), "blue", "--out", str(out), "--steps", "1",
                                       "--texture-size", "16", "--quiet", "--overwrite"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["модель.obj", "модель.mtl", "модель.png", "модель.glb", "модель_turntable.gif",
                            "модель_views.png", "run.json"])
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["glb"] == "модель.glb" and "chair.glb" in record["replaced_outputs"]
    # a rerun of the same asset replaces its own outputs, stale ones included
    again = two_material_obj(tmp_path / "in2", "модель", materials=2)
    paint(again, "green", FAST, out_dir=out, show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["модель.obj", "модель.mtl", "модель_a.png", "модель_b.png", "модель.glb", "модель_turntable.gif",
         "модель_views.png", "run.json"])


def test_claim_refuses_foreign_csdtex_glb_without_record(tmp_path):
    from csdtex.pipeline.outputs import claim_output_folder

    out = tmp_path / "out"
    mesh = load_mesh(two_material_obj(tmp_path / "in", "table"))
    export_all(mesh, [np.zeros((4, 4, 3), np.uint8)] * 2, out, "table")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="another asset 'table'"):
        claim_output_folder(out, "chair")
    replaced = claim_output_folder(out, "chair", overwrite=True)
    assert sorted(replaced) == ["table.glb", "table.mtl", "table.obj", "table_a.png", "table_b.png"]
    assert claim_output_folder(out, "table") and "notes.txt" not in claim_output_folder(out, "table")


def test_outputs_never_replace_the_input_files(tmp_path):
    """``--out`` = the mesh's own folder would rename the painted ``scene.glb`` / ``chair.obj`` over the artist's
    source file (found by a new-user test, session 12): refused before any work, one line, the input untouched. An
    input texture named like an output (``chair.png`` read by another mesh's MTL) is refused the same way."""
    folder = tmp_path / "asset"
    source = two_material_obj(folder, "chair")
    before = source.read_bytes()
    for out in (folder, tmp_path / "asset" / "."):
        result = CliRunner().invoke(main, ["paint", str(source), "red", "--out", str(out), "--steps", "1", "--quiet"])
        assert result.exit_code != 0 and "input file 'chair.obj'" in result.output and "--out" in result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert source.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["chair.obj"]
    # a GLB painted next to itself
    glb = folder / "scene.glb"
    export_all(load_mesh(source), [np.zeros((4, 4, 3), np.uint8)] * 2, tmp_path / "made", "scene")
    glb.write_bytes((tmp_path / "made" / "scene.glb").read_bytes())
    result = CliRunner().invoke(main, ["paint", str(glb), "red", "--out", str(folder), "--steps", "1", "--quiet"])
    assert result.exit_code != 0 and "input file 'scene.glb'" in result.output
    def refused_and_kept(name: str, mtl: str, kept: Path) -> None:
        """Painting ``<folder>/<name>.obj`` (its MTL: ``mtl``) into ``kept``'s folder is refused; ``kept`` unchanged."""
        write_text(folder / f"{name}.mtl", mtl)
        mesh = write_text(folder / f"{name}.obj", f"mtllib {name}.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\n"
                                                  "vt 1 1\nusemtl a\nf 1/1 2/2 3/3\n")
        before = kept.read_bytes()
        with pytest.raises(ConfigError, match=f"input file '{kept.name}'"):
            paint(mesh, "red", FAST, out_dir=kept.parent, show_progress=False)
        assert kept.read_bytes() == before

    # an input texture with an output's name (found once the mesh is loaded): box.obj reads textures/box.png
    textures = folder / "textures"
    textures.mkdir()
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(textures / "box.png")
    refused_and_kept("box", "newmtl a\nmap_Kd textures/box.png\n", textures / "box.png")
    assert sorted(p.name for p in textures.iterdir()) == ["box.png"]
    # a map read from a file (an OBJ's map_Bump; a glTF's external image likewise) with an output's name (session 13)
    (folder / "maps").mkdir()
    Image.fromarray(np.full((4, 4, 3), (128, 128, 255), np.uint8)).save(folder / "maps" / "panel_normal.png")
    refused_and_kept("panel", "newmtl a\nmap_Kd textures/box.png\nmap_Bump maps/panel_normal.png\n",
                     folder / "maps" / "panel_normal.png")
    # another folder is fine
    result = CliRunner().invoke(main, ["paint", str(source), "red", "--out", str(tmp_path / "o"), "--steps", "1",
                                       "--texture-size", "16", "--quiet"])
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------------------------------------------------
# 10. the input's shading normals are kept (hard edges, custom normals)
# ----------------------------------------------------------------------------------------------------------------------


def _corner_normals(mesh) -> np.ndarray:
    table, corners = mesh.export_normals()
    return table[corners]  # [F, 3, 3]


def test_obj_and_glb_normals_survive_export_hard_edges_included(tmp_path):
    """A hard-edged box (its own flat normals on split vertices) came out smooth-shaded like a sphere: exports wrote
    smooth normals over welded positions (new-user test, session 12). Now the file's normals are written back."""
    positions, faces, uvs = box_faces()
    positions, uvs = positions.astype(np.float64), uvs.astype(np.float64)
    flat = np.cross(positions[faces[:, 1]] - positions[faces[:, 0]], positions[faces[:, 2]] - positions[faces[:, 0]])
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    elements = [f"v {x!r} {y!r} {z!r}" for x, y, z in positions.tolist()]
    elements += [f"vt {u!r} {v!r}" for u, v in (uvs / 6.0).tolist()]
    normal_lines = [f"vn {x!r} {y!r} {z!r}" for x, y, z in flat.tolist()]
    with_normals = ["f " + " ".join(f"{v + 1}/{v + 1}/{f + 1}" for v in face) for f, face in enumerate(faces)]
    mesh = load_mesh(write_text(tmp_path / "box.obj", "\n".join(elements + normal_lines + with_normals) + "\n"))
    assert mesh.normals is not None and mesh.normal_faces.shape == faces.shape
    np.testing.assert_allclose(_corner_normals(mesh), np.repeat(flat[:, None], 3, axis=1), atol=1e-12)
    files = export_all(mesh, [np.zeros((4, 4, 3), np.uint8)], tmp_path / "out", "box")
    for path in (files.obj, files.glb):
        back = load_mesh(path)
        np.testing.assert_allclose(_corner_normals(back), np.repeat(flat[:, None], 3, axis=1), atol=1e-6)
        np.testing.assert_allclose(back.vertices[back.faces], positions[faces], atol=1e-6)  # geometry as before
    # without normals in the file: smooth ones, as before (no vn lines)
    without = ["f " + " ".join(f"{v + 1}/{v + 1}" for v in face) for face in faces]
    plain = load_mesh(write_text(tmp_path / "plain.obj", "\n".join(elements + without) + "\n"))
    assert plain.normals is None
    files = export_all(plain, [np.zeros((4, 4, 3), np.uint8)], tmp_path / "plain_out", "plain")
    assert "\nvn " not in files.obj.read_text()


def test_gltf_normals_are_read_in_world_space_and_missing_ones_fall_back(tmp_path):
    """NORMAL goes through the node's inverse transpose (a non-uniform scale and a mirror here); a primitive
    without NORMAL and a zero normal get the smooth normal in the exports."""
    builder = GltfBuilder()
    positions, faces = quad()
    uvs = positions[:, :2].astype(np.float64)
    with_normals = builder.primitive(positions, faces, uvs)
    tilted = np.array([[0.0, 0.6, 0.8]] * 3 + [[0.0, 0.0, 0.0]], dtype=np.float32)  # the last one unusable
    with_normals["attributes"]["NORMAL"] = builder.accessor(tilted)
    builder.mesh([with_normals], node={"scale": [2.0, 1.0, -1.0]})  # stretch x, mirror z
    builder.mesh([builder.primitive(positions + [0, 0, 3], faces, uvs)], name="plain")
    mesh = load_mesh(builder.write_glb(tmp_path / "normals.glb"))
    expected = np.array([0.0, 0.6, -0.8])  # n M^-1 with M = diag(2, 1, -1), normalized
    table, corners = mesh.export_normals()
    first = table[corners[:2]]  # the two triangles of the scaled quad
    own = np.abs(first - expected).max(axis=-1) < 1e-6  # float32 in the file
    assert own.sum() == 5  # five corners use one of the three tilted normals, the one at vertex 3 falls back
    np.testing.assert_allclose(np.linalg.norm(table[corners], axis=-1), 1.0, atol=1e-12)  # every used one
    smooth = mesh.copy_with(normals=None, normal_faces=None).export_normals()
    np.testing.assert_allclose(table[corners[2:]], smooth[0][smooth[1][2:]], atol=1e-12)  # the plain quad: smooth
    np.testing.assert_allclose(first[~own], smooth[0][smooth[1][:2]][~own], atol=1e-12)


def test_alpha_cutouts_survive_paint_and_edit(tmp_path):
    """A leaf card (RGBA texture, alphaMode MASK) came out opaque: the outputs dropped the alpha (new-user test,
    session 12). Now paint and edit write RGBA PNGs with the input's alpha (resized with nearest for MASK) and keep
    alphaMode / alphaCutoff in the GLB and map_d in the MTL; the RGB stays what was painted."""
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[4:12, 4:12, 3] = 255  # an opaque square in a transparent card
    builder = GltfBuilder()
    positions, faces = quad()
    leaf = builder.material("leaf", builder.texture(rgba))
    builder.doc["materials"][leaf].update({"alphaMode": "MASK", "alphaCutoff": 0.3})
    builder.mesh([builder.primitive(positions, faces, positions[:, :2].astype(np.float64), material=leaf)])
    source = builder.write_glb(tmp_path / "leaf.glb")
    mesh = load_mesh(source)
    assert mesh.materials[0].alpha_mode == "MASK" and mesh.materials[0].alpha_cutoff == pytest.approx(0.3)
    np.testing.assert_array_equal(mesh.materials[0].alpha, rgba[..., 3])
    assert not any("alpha" in w for w in mesh.warnings)  # carried, so not in the not-carried warning
    config = PaintConfig(steps=1, views_per_step=1, texture_size=32, preview_frames=2, preview_size=32, device="cpu")
    painted = paint(source, "a green object", config, out_dir=tmp_path / "painted", show_progress=False)
    image = np.asarray(Image.open(painted.files.textures[0]))
    assert image.shape == (32, 32, 4)
    expected = np.asarray(Image.fromarray(rgba[..., 3]).resize((32, 32), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(image[..., 3], expected)
    document, _ = read_glb(painted.files.glb)
    assert document["materials"][0]["alphaMode"] == "MASK" and document["materials"][0]["alphaCutoff"] == 0.3
    assert "map_d leaf_alpha.png" in painted.files.mtl.read_text()
    # the MTL's cut-out is its own grey-and-alpha PNG (three.js reads an alpha map's green channel, others its alpha)
    coverage = np.asarray(Image.open(painted.files.mtl.parent / "leaf_alpha.png"))
    assert coverage.shape == (32, 32, 2)
    assert (coverage[..., 0] == expected).all() and (coverage[..., 1] == expected).all()
    np.testing.assert_array_equal(load_mesh(painted.files.obj).materials[0].alpha, expected)  # the OBJ reads back
    # an edit of the painted GLB keeps the alpha byte for byte
    from csdtex.config import EditConfig
    from csdtex.editing import edit

    edit_config = EditConfig(steps=1, views_per_step=1, preview_frames=2, preview_size=32, device="cpu")
    edited = edit(painted.files.glb, "a blue object", "a green object", edit_config, tmp_path / "edited",
                  show_progress=False)
    np.testing.assert_array_equal(np.asarray(Image.open(edited.files.textures[0]))[..., 3], image[..., 3])


def test_renders_shade_with_the_files_normals(tmp_path):
    """Previews and ``csdtex render`` shaded a hard-edged box with smooth normals (gradients across flat faces)
    while its exports kept the flat ones (new-user test, session 12): lit renders now use the file's normals."""
    from csdtex.field import UVTexture
    from csdtex.preview import turntable_frames

    positions, faces, _ = box_faces()
    positions = positions.astype(np.float64)
    flat = np.cross(positions[faces[:, 1]] - positions[faces[:, 0]], positions[faces[:, 2]] - positions[faces[:, 0]])
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    builder = GltfBuilder()
    split = positions[faces].reshape(-1, 3)  # unshared corners, each with its face's normal
    primitive = builder.primitive(split.astype(np.float32), np.arange(len(split)).reshape(-1, 3),
                                  np.full((len(split), 2), 0.5))  # one texel colour everywhere
    primitive["attributes"]["NORMAL"] = builder.accessor(np.repeat(flat, 3, axis=0).astype(np.float32))
    builder.mesh([primitive])
    mesh = load_mesh(builder.write_glb(tmp_path / "box.glb"))
    grey = UVTexture.from_images([np.full((4, 4, 3), 200, np.uint8)])
    own = turntable_frames(mesh.to_render("cpu"), grey, num_frames=1, resolution=64, shading="lit")[0]
    smooth = turntable_frames(mesh.copy_with(normals=None, normal_faces=None).to_render("cpu"), grey, num_frames=1,
                              resolution=64, shading="lit")[0]
    front = own[24:40, 28:36].astype(float)  # the middle of the front face
    assert front.std() < 1.0 < smooth[24:40, 28:36].astype(float).std()  # one flat tone vs a smooth gradient


def test_gltf_index_and_uv_set_mistakes_are_named(tmp_path):
    """Found by a new-user test (session 12): trailing indices were dropped silently, a missing TEXCOORD_1 fell back
    unannounced, and a material index past the list was a bare IndexError."""
    positions, faces = quad()
    builder = GltfBuilder()
    builder.mesh([builder.primitive(positions, np.append(faces.reshape(-1), [0, 1]))])  # 8 indices
    mesh = load_mesh(builder.write_glb(tmp_path / "count.glb"))
    assert mesh.num_faces == 2 and any("8 indices, not a multiple of 3; the last 2 were ignored" in w
                                       for w in mesh.warnings)
    builder = GltfBuilder()
    material = builder.material("m", builder.texture(np.zeros((4, 4, 3), np.uint8)), tex_coord=1)
    builder.mesh([builder.primitive(positions, faces, positions[:, :2], material=material)])
    mesh = load_mesh(builder.write_glb(tmp_path / "set.glb"))
    assert any("has no TEXCOORD_1, which its base-colour texture names; TEXCOORD_0 is used" in w
               for w in mesh.warnings)
    # TEXCOORD_0 is the set in use, not a lost one
    assert not any("UV sets" in w for w in mesh.warnings + mesh.output_notes)
    builder = GltfBuilder()
    builder.mesh([builder.primitive(positions, faces, material=7)])
    with pytest.raises(MeshError, match="mesh 0 names material 7, but the file has 0 material"):
        load_mesh(builder.write_glb(tmp_path / "material.glb"))


def test_a_cutout_read_through_a_texture_transform_keeps_its_shape_in_a_paint(tmp_path):
    """A MASK whose alpha the input reads through KHR_texture_transform (scale 0.5): the painted texture lives in raw
    UV space, so its alpha is looked up through the transform (new-user test, session 14: it was only resized, and
    the cut-out shrank from 75% of the quad to 44%)."""
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[:8, :, 3] = 255  # the image's top half and left quarter opaque; the quad shows only its top-left quarter
    rgba[:, :4, 3] = 255
    builder = GltfBuilder()
    positions, faces = quad()
    card = builder.material("card", builder.texture(rgba, {"magFilter": 9728, "minFilter": 9728}),
                            transform={"scale": [0.5, 0.5]})
    builder.doc["materials"][card]["alphaMode"] = "MASK"
    builder.mesh([builder.primitive(positions, faces, positions[:, :2].astype(np.float64), material=card)])
    painted = paint(builder.write_glb(tmp_path / "card.glb"), "a green object", FAST, out_dir=tmp_path / "out",
                    show_progress=False)
    alpha = np.asarray(Image.open(painted.files.textures[0]))[..., 3]
    # glTF UV (s, t) -> (0.5 s, 0.5 t): the quad shows the image's top-left quarter, which is all opaque (a plain
    # resize gave the top half and the left quarter)
    assert alpha.shape == (FAST.texture_size, FAST.texture_size) and (alpha == 255).all(), (alpha == 255).mean()


def test_obj_map_d_cutouts_survive_paint(tmp_path):
    """An OBJ leaf card (map_Kd RGBA + map_d) lost its alpha silently (new-user test, session 12): map_d is read and
    the painted outputs keep the cut-out (RGBA PNG, map_d in the MTL)."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1], rgba[2:6, 2:6, 3] = 150, 255
    Image.fromarray(rgba).save(tmp_path / "leaf.png")
    write_text(tmp_path / "leaf.mtl", "newmtl leaf\nmap_Kd leaf.png\nmap_d leaf.png\n")
    mesh_path = write_text(tmp_path / "leaf.obj", "mtllib leaf.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
                           "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl leaf\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    material = load_mesh(mesh_path).materials[0]
    assert material.alpha_mode == "MASK"
    np.testing.assert_array_equal(material.alpha, rgba[..., 3])
    painted = paint(mesh_path, "a green object", FAST, out_dir=tmp_path / "out", show_progress=False)
    image = np.asarray(Image.open(painted.files.textures[0]))
    expected = np.asarray(Image.fromarray(rgba[..., 3]).resize(image.shape[1::-1], Image.Resampling.NEAREST))
    np.testing.assert_array_equal(image[..., 3], expected)
    assert "map_d leaf_alpha.png" in painted.files.mtl.read_text()
    # without map_d the RGBA texture's alpha is not used (viewers ignore it too)
    write_text(tmp_path / "leaf.mtl", "newmtl leaf\nmap_Kd leaf.png\n")
    assert load_mesh(mesh_path).materials[0].alpha is None


def _png_rgb16(path: Path, pixels: np.ndarray) -> Path:
    """Write uint16 [H, W, 3] as a 48-bit PNG (Pillow cannot write one): signature, IHDR, one IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_sixteen_bit_colour_textures_are_named(tmp_path):
    """Pillow reads a 48-bit PNG as 8-bit RGB without a word; csdtex says that its outputs hold the 8-bit version."""
    pixels = (np.arange(4 * 4 * 3).reshape(4, 4, 3) * 4000).astype(np.uint16)
    _png_rgb16(tmp_path / "deep.png", pixels)
    (tmp_path / "m.mtl").write_text("newmtl deep\nmap_Kd deep.png\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nusemtl deep\n"
                                    "f 1/1 2/2 3/3\n")
    mesh = load_mesh(tmp_path / "m.obj")
    assert mesh.materials[0].texture.shape == (4, 4, 3)
    assert any("texture 'deep.png' has 16 bits per channel" in w for w in mesh.warnings), mesh.warnings
    builder = GltfBuilder()  # the same image as a glTF base colour
    builder.doc["images"] = [{"bufferView": builder.view((tmp_path / "deep.png").read_bytes()),
                              "mimeType": "image/png"}]
    builder.doc["textures"] = [{"source": 0}]
    positions, faces = quad()
    builder.mesh([builder.primitive(positions, faces, positions[:, :2].astype(np.float64),
                                    material=builder.material("deep", 0))])
    gltf_mesh = load_mesh(builder.write_glb(tmp_path / "deep.glb"))
    assert any("the base colour image of material 'deep' has 16 bits" in w for w in gltf_mesh.warnings)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "deep.png")  # 16-bit greyscale: named too
    assert any("texture 'deep.png' has 16 bits" in w for w in load_mesh(tmp_path / "m.obj").warnings)
    Image.fromarray((pixels >> 8).astype(np.uint8)).save(tmp_path / "deep.png")  # 8-bit: no warning
    assert not any("16 bits" in w for w in load_mesh(tmp_path / "m.obj").warnings)
