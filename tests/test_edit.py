"""`csdtex edit`: the region limits are exact, the input round-trips, bad input gets one line, and with the built-in
prior an edit from "a red object" to "a blue object" moves the edited texels from red to blue."""

from __future__ import annotations

import colorsys
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

import csdtex
from csdtex.cli import main
from csdtex.config import EditConfig, PaintConfig
from csdtex.editing.region import feathered
from csdtex.export import export_all
from csdtex.guidance.random_priors import build_tiny_latent_folder
from csdtex.mesh import Material, Mesh, load_mesh

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def gradient_texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def two_material_box(folder: Path, fmt: str = "obj") -> Path:
    """A box whose +Y half of the faces uses material "lid" (32x32 texture) and the rest "body" (16x32, wide)."""
    box = trimesh.creation.box()
    faces = np.asarray(box.faces)
    vertices = np.asarray(box.vertices)
    uvs, uv_faces = [], []
    for index, face in enumerate(faces):  # every triangle gets its own UV triangle in a 4x4 grid of cells
        cell_u, cell_v = (index % 4) / 4.0, (index // 4) / 4.0
        base = len(uvs)
        uvs += [(cell_u + 0.02, cell_v + 0.02), (cell_u + 0.23, cell_v + 0.02), (cell_u + 0.02, cell_v + 0.23)]
        uv_faces.append((base, base + 1, base + 2))
    lid = vertices[faces].mean(axis=1)[:, 1] > 0.25
    mesh = Mesh(vertices, faces, np.array(uvs), np.array(uv_faces), face_materials=np.where(lid, 0, 1),
                materials=[Material("lid"), Material("body")])
    files = export_all(mesh, [gradient_texture(32, 32, 1), gradient_texture(16, 32, 2)], folder, "box")
    return files.obj if fmt == "obj" else files.glb


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    return build_tiny_latent_folder(tmp_path_factory.mktemp("edit_prior") / "latent")


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Path:
    return two_material_box(tmp_path_factory.mktemp("box"))


def quick(prior: Path, **overrides) -> EditConfig:
    values = dict(model=str(prior), steps=3, views_per_step=2, preview_frames=2, preview_size=32,
                  learning_rate=0.2)
    values.update(overrides)
    return EditConfig(**values)


def half_mask(path: Path, height: int, width: int, rgba: bool = False) -> Path:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, : width // 2] = 255  # left half (u < 0.5) editable
    image = Image.fromarray(np.stack([np.zeros_like(mask)] * 3 + [mask], -1), "RGBA") if rgba else Image.fromarray(mask)
    image.save(path)
    return path


def test_feather_ramps_in_over_two_texels():
    region = np.zeros((1, 8), dtype=bool)
    region[0, 2:] = True
    assert feathered(region)[0].tolist() == [0, 0, 0.5, 1, 1, 1, 1, 1]
    assert feathered(np.ones((3, 3), dtype=bool)).min() == 1.0


@pytest.mark.parametrize("fmt", ["obj", "glb"])
def test_edit_keeps_layout_sizes_and_the_outside_of_the_mask_exactly(tmp_path, prior, fmt):
    source = two_material_box(tmp_path / "in", fmt)
    original = load_mesh(source)
    mask = half_mask(tmp_path / "mask.png", 64, 64, rgba=(fmt == "glb"))  # resized to the 32x32 lid; RGBA: alpha
    result = csdtex.edit(source, "a blue box", "a red box", quick(prior), out_dir=tmp_path / "out", mask=mask,
                         materials=["lid"], show_progress=False)
    edited = load_mesh(result.files.obj)
    assert np.array_equal(edited.faces, original.faces) and np.array_equal(edited.uv_faces, original.uv_faces)
    assert np.allclose(edited.vertices, original.vertices) and np.allclose(edited.uvs, original.uvs)
    glb = load_mesh(result.files.glb)
    assert len(glb.faces) == len(original.faces)
    lid, body = (np.asarray(Image.open(png).convert("RGB")) for png in result.files.textures)
    assert lid.shape == (32, 32, 3) and body.shape == (16, 32, 3)
    assert np.array_equal(body, original.materials[1].texture), "a material outside --material changed"
    before = original.materials[0].texture
    assert np.array_equal(lid[:, 16:], before[:, 16:]), "outside the mask changed"
    assert (lid[:, :16] != before[:, :16]).any(), "nothing changed inside the mask"
    assert result.metrics["changed_outside"] == 0 and result.metrics["changed_inside"] > 0
    assert result.metrics["fit_error_max"] == 0.0
    record = json.loads(result.run_json.read_text())
    assert record["edit"]["source"] == "a red box" and record["config"]["guidance"]["negative_prompt"] == "a red box"
    assert record["edit"]["mask"]["sha256"] and len(record["edit"]["source_textures"]) == 2
    assert record["edit"]["materials"] == ["lid"]
    assert result.before_after.exists() and Image.open(result.before_after_sheet).size == (2 * 32, 2 * 32)


def test_material_limit_leaves_other_materials_byte_identical(tmp_path, prior, box):
    original = load_mesh(box)
    result = csdtex.edit(box, "a blue box", "a red box", quick(prior), out_dir=tmp_path, materials=["body"],
                         show_progress=False)
    lid, body = (np.asarray(Image.open(p).convert("RGB")) for p in result.files.textures)
    assert np.array_equal(lid, original.materials[0].texture)
    assert not np.array_equal(body, original.materials[1].texture)


def test_an_edit_without_steps_of_any_size_reproduces_the_input(tmp_path, prior, box):
    original = load_mesh(box)
    result = csdtex.edit(box, "a blue box", "a red box", quick(prior, steps=1, learning_rate=1e-12),
                         out_dir=tmp_path, show_progress=False)
    assert result.metrics["fit_error_max"] == 0.0 and result.metrics["fit_error_rms"] == 0.0
    for before, after in zip(original.materials, result.textures):
        assert np.array_equal(before.texture, after)


def test_edit_cli_writes_outputs_and_reports_the_fit(tmp_path, prior, box):
    out = tmp_path / "out"
    result = invoke("edit", str(box), "a blue box", "--source", "a red box", "--model", str(prior), "--steps", "2",
                    "--views-per-step", "1", "--material", "lid", "--preserve", "5", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "start-up fit:  max 0" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["box.glb", "box.mtl", "box.obj", "box_before_after.gif", "box_before_after.png", "box_body.png",
                     "box_lid.png", "box_turntable.gif", "box_views.png", "run.json"]
    record = json.loads((out / "run.json").read_text())
    assert record["edit"]["materials"] == ["lid"] and record["edit"]["preserve"] == 5.0


def test_bad_edit_inputs_get_one_line_and_write_nothing(tmp_path, prior, box):
    untextured = tmp_path / "plain.obj"
    trimesh.creation.box().export(untextured)
    not_image = tmp_path / "mask.png"
    not_image.write_text("not an image")
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(black)
    tall = tmp_path / "tall.png"
    Image.fromarray(np.full((64, 16), 255, dtype=np.uint8)).save(tall)
    unused = np.zeros((32, 32), dtype=np.uint8)
    unused[:4] = 255  # v > 0.875: the box's UV cells end at v = 0.73
    Image.fromarray(unused).save(tmp_path / "unused.png")
    broken_texture = tmp_path / "broken"
    broken_texture.mkdir()
    for name in ("box.obj", "box.mtl"):
        (broken_texture / name).write_bytes((box.parent / name).read_bytes())
    for png in box.parent.glob("box_*.png"):
        (broken_texture / png.name).write_bytes(b"\x89PNG broken")
    cases = [
        ([str(untextured), "a blue box", "--source", "a red box"], "no texture to edit"),
        ([str(broken_texture / "box.obj"), "a blue box", "--source", "a red box"], "no texture to edit"),
        ([str(box), "a blue box", "--source", "a red box", "--mask", str(not_image)], "is not an image"),
        ([str(box), "a blue box", "--source", "a red box", "--mask", str(tmp_path / "none.png")], "does not exist"),
        ([str(box), "a blue box", "--source", "a red box", "--mask", str(black), "--material", "lid"], "leaves nothing"),
        ([str(box), "a blue box", "--source", "a red box", "--mask", str(tall), "--material", "lid"], "aspect ratio"),
        ([str(box), "a blue box", "--source", "a red box", "--mask", str(tmp_path / "unused.png"), "--material",
          "lid"], "all lie where no face uses the texture"),
        ([str(box), "a blue box", "--source", "a red box", "--preserve", "inf"], "preserve must be a finite"),
        ([str(box), "a blue box", "--source", "a red box", "--material", "lidd"], "'lid', 'body'"),
        ([str(box), "  ", "--source", "a red box"], "prompt is empty"),
        ([str(box), "a blue box", "--source", " "], "source description is empty"),
        ([str(box), "a Blue  box", "--source", "a blue box"], "are the same"),
        ([str(box), "a blue box.", "--source", "a blue box"], "are the same"),
        ([str(box), "a blue box", "--source", "a red box", "--unwrap"], "No such option"),
    ]
    out = tmp_path / "out"
    for args, message in cases:
        result = invoke("edit", *args, "--model", str(prior), "--out", str(out), "--quiet")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        if message != "No such option":
            assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
        assert " object at 0x" not in result.output and "''" not in result.output, result.output  # no reprs
        assert not out.exists(), args
    # a mask kept in the output folder under an output's name was replaced by the edited texture with --overwrite
    # (new-user test, session 16): it is an input like the mesh
    out.mkdir()
    Image.fromarray(np.full((32, 32), 255, dtype=np.uint8)).save(out / "box_lid.png")
    kept = (out / "box_lid.png").read_bytes()
    result = invoke("edit", str(box), "a blue box", "--source", "a red box", "--mask", str(out / "box_lid.png"),
                    "--material", "lid", "--model", str(prior), "--out", str(out), "--overwrite", "--quiet")
    assert result.exit_code == 2 and "holds the input file 'box_lid.png'" in result.output, result.output
    assert (out / "box_lid.png").read_bytes() == kept and sorted(p.name for p in out.iterdir()) == ["box_lid.png"]


def test_edit_outputs_keep_each_input_textures_sampler_and_transform(tmp_path, prior, box):
    """An edit writes textures in their inputs' own image space, so each keeps its sampler (nearest filtering,
    mirrored repeat) and a material left out with --material keeps its texture transform: in the GLB (samplers,
    KHR_texture_transform) and, as far as MTL can state it, in the MTL (-o / -s); what MTL cannot state is a
    warning. The default output folder is csdtex-out/<name>_edit, and editing a painted output in its own folder
    works."""
    from csdtex.sampling import TextureSampler, TextureTransform
    from gltf_files import read_glb

    mesh = load_mesh(box)
    lid, body = mesh.materials
    lid.sampler = TextureSampler("mirrored_repeat", "repeat", "nearest", "nearest")
    body.texture_transform = TextureTransform.from_gltf((0.25, 0.0), 0.0, (2.0, 2.0))
    notes: list[str] = []
    result = csdtex.edit(mesh, "a blue box", "a red box", quick(prior), out_dir=tmp_path / "out", materials=["lid"],
                         show_progress=False, warn=notes.append)
    document, _ = read_glb(result.files.glb)
    by_name = {m["name"]: m["pbrMetallicRoughness"]["baseColorTexture"] for m in document["materials"]}
    lid_sampler = document["samplers"][document["textures"][by_name["lid"]["index"]]["sampler"]]
    assert lid_sampler == {"magFilter": 9728, "minFilter": 9728, "wrapS": 33648, "wrapT": 10497}
    assert by_name["body"]["extensions"]["KHR_texture_transform"] == {"offset": [0.25, 0.0], "scale": [2.0, 2.0]}
    assert "KHR_texture_transform" in document["extensionsUsed"]
    mtl = result.files.mtl.read_text()
    assert "map_Kd -o 0.25 -1 0 -s 2 2 1 box_body.png" in mtl
    assert any("material 'lid' uses mirrored repeat and nearest filtering, which MTL cannot state" in n
               for n in notes), notes
    again = load_mesh(result.files.glb)  # read back: the same sampling as the input
    assert again.materials[1].texture_transform.matrix == pytest.approx(body.texture_transform.matrix)
    assert again.materials[0].sampler == lid.sampler


def test_edit_default_output_folder_does_not_collide_with_the_paint(tmp_path, prior, monkeypatch):
    """`csdtex paint crate.obj` writes csdtex-out/crate; `csdtex edit csdtex-out/crate/crate.obj` without --out
    writes csdtex-out/crate_edit, and editing that result again writes csdtex-out/crate_edit_2."""
    monkeypatch.chdir(tmp_path)
    two_material_box(tmp_path / "csdtex-out" / "crate", "obj").rename(tmp_path / "csdtex-out" / "crate" / "crate.obj")
    first = invoke("edit", "csdtex-out/crate/crate.obj", "a blue box", "--source", "a red box", "--model", str(prior),
                   "--steps", "1", "--quiet")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "csdtex-out" / "crate_edit" / "crate.glb").is_file()
    second = invoke("edit", "csdtex-out/crate_edit/crate.obj", "a green box", "--source", "a blue box", "--model",
                    str(prior), "--steps", "1", "--quiet")
    assert second.exit_code == 0, second.output
    assert (tmp_path / "csdtex-out" / "crate_edit_2" / "crate.glb").is_file()
    # the third edit of the chain replaced the first one's outputs, and another crate.obj edited later replaced
    # them too (new-user test, session 16): a default folder holding a run of another mesh file is skipped
    first_record = (tmp_path / "csdtex-out" / "crate_edit" / "run.json").read_bytes()
    third = invoke("edit", "csdtex-out/crate_edit_2/crate.obj", "a red box", "--source", "a green box", "--model",
                   str(prior), "--steps", "1", "--quiet")
    assert third.exit_code == 0, third.output
    assert (tmp_path / "csdtex-out" / "crate_edit_3" / "crate.glb").is_file()
    (tmp_path / "elsewhere").mkdir()
    shutil.copytree(tmp_path / "csdtex-out" / "crate", tmp_path / "elsewhere", dirs_exist_ok=True)
    other = invoke("edit", "elsewhere/crate.obj", "a blue box", "--source", "a red box", "--model", str(prior),
                   "--steps", "1", "--quiet")
    assert other.exit_code == 0, other.output
    assert (tmp_path / "csdtex-out" / "crate_edit_4" / "crate.glb").is_file()
    assert (tmp_path / "csdtex-out" / "crate_edit" / "run.json").read_bytes() == first_record
    again = invoke("edit", "csdtex-out/crate/crate.obj", "a blue box", "--source", "a red box", "--model", str(prior),
                   "--steps", "1", "--quiet")  # a rerun of the first edit: its own folder
    assert again.exit_code == 0 and not (tmp_path / "csdtex-out" / "crate_edit_5").exists(), again.output


def mean_hue(texture: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """Circular mean hue in degrees and mean saturation of RGB texels (optionally only ``where``)."""
    pixels = texture.reshape(-1, 3).astype(np.float64) / 255.0
    if where is not None:
        pixels = pixels[where.reshape(-1)]
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels[:: max(1, len(pixels) // 4000)]])
    angles = hsv[:, 0] * 2 * np.pi
    weights = hsv[:, 1]
    hue = np.degrees(np.arctan2((np.sin(angles) * weights).sum(), (np.cos(angles) * weights).sum())) % 360
    return float(hue), float(weights.mean())


def is_red(hue: float) -> bool:
    return hue < 30 or hue > 330


def is_blue(hue: float) -> bool:
    return 190 < hue < 270


@pytest.fixture(scope="module")
def red_vase(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("red_vase")
    config = PaintConfig(steps=80, texture_size=64, preview_frames=2, preview_size=32, seed=1)
    result = csdtex.paint(ROOT / "assets" / "meshes" / "vase.obj", "a red object", config, out_dir=out,
                          show_progress=False)
    assert is_red(mean_hue(result.textures[0])[0]), mean_hue(result.textures[0])
    return result.files.obj


def test_builtin_prior_edit_moves_red_to_blue_and_a_half_mask_moves_only_its_half(tmp_path, red_vase):
    before = load_mesh(red_vase).materials[0].texture
    config = EditConfig(steps=80, preview_frames=2, preview_size=32, seed=2)
    whole = csdtex.edit(red_vase, "a blue object", "a red object", config, out_dir=tmp_path / "whole",
                        show_progress=False)
    hue, saturation = mean_hue(whole.textures[0])
    assert is_blue(hue) and saturation > 0.2, (hue, saturation)

    height, width = before.shape[:2]
    mask = half_mask(tmp_path / "half.png", height, width)
    half = csdtex.edit(red_vase, "a blue object", "a red object", config, out_dir=tmp_path / "half", mask=mask,
                       show_progress=False)
    left = np.zeros((height, width), dtype=bool)
    left[:, : width // 2 - 2] = True  # inside the mask, past the 2-texel feather
    right = np.zeros((height, width), dtype=bool)
    right[:, width // 2:] = True
    assert is_blue(mean_hue(half.textures[0], left)[0]), mean_hue(half.textures[0], left)
    assert np.array_equal(half.textures[0][right], before[right])
    assert is_red(mean_hue(half.textures[0], right)[0])


def test_edit_schedule_lets_the_source_term_fade_and_merges_with_user_tables(tmp_path):
    from csdtex.batch.tasks import edit_config
    from csdtex.config import EDIT_GUIDANCE, apply_overrides, load_config_file, resolve_guidance

    guidance = resolve_guidance(EditConfig(), "tiny")
    assert (guidance.w2_start, guidance.w2_end) == (1.0, 0.0)
    # the whole run at high noise levels, where the prior decides a colour (a paint narrows to low ones)
    assert guidance.t_range_at(0.0) == guidance.t_range_at(1.0) == (0.2, 0.98)
    assert resolve_guidance(PaintConfig(), "tiny").t_range_at(1.0) == (0.02, 0.5)
    assert resolve_guidance(PaintConfig(), "tiny").w2_end == 1.0  # paint keeps the prior preset's schedule
    # A [guidance] table or an override changes only the keys it names.
    changed = apply_overrides(EditConfig(), {"guidance": {"t_max_end": 0.4}})
    assert changed.guidance == {**EDIT_GUIDANCE, "t_max_end": 0.4}
    table = tmp_path / "edit.toml"
    table.write_text("[guidance]\nw2_end = 0.25\n")
    loaded = resolve_guidance(load_config_file(table, EditConfig()), "latent")
    assert (loaded.w2_start, loaded.w2_end) == (1.0, 0.25)
    # A batch's edit row: the row's paint options, the edit schedule under the row's own guidance keys.
    row = edit_config(PaintConfig(steps=7, guidance={"t_max_end": 0.3}))
    assert row.steps == 7 and row.guidance == {**EDIT_GUIDANCE, "t_max_end": 0.3}


def test_sixteen_bit_greyscale_masks_read_like_eight_bit_ones(tmp_path):
    """A 16-bit greyscale mask's dark half (2000 / 65535, about 3% grey) was read as editable: convert("L") clips
    16-bit values to white (new-user test, session 12)."""
    from PIL import Image

    from csdtex.editing.region import read_uv_mask

    sixteen = np.zeros((8, 8), np.uint16)
    sixteen[:, :4], sixteen[:, 4:] = 65535, 2000
    Image.fromarray(sixteen).save(tmp_path / "mask16.png")
    eight = np.zeros((8, 8), np.uint8)
    eight[:, :4], eight[:, 4:] = 255, 8
    Image.fromarray(eight).save(tmp_path / "mask8.png")
    assert Image.open(tmp_path / "mask16.png").mode.startswith("I")
    np.testing.assert_array_equal(read_uv_mask(tmp_path / "mask16.png")[0], read_uv_mask(tmp_path / "mask8.png")[0])
    editable = read_uv_mask(tmp_path / "mask16.png")[0]
    assert editable[:, :4].all() and not editable[:, 4:].any()
    # a dark 16-bit image whose values all stay <= 255 is near-black, not 8-bit grey (new-user test, session 16)
    from csdtex.io._common import image_to_rgb8

    Image.fromarray(np.array([[100, 200]], np.uint16)).save(tmp_path / "dark16.png")
    with Image.open(tmp_path / "dark16.png") as dark:
        assert image_to_rgb8(dark)[..., 0].tolist() == [[0, 1]]


def test_indexed_masks_with_png_transparency_lock_their_transparent_part(tmp_path):
    """A palette PNG (pngquant, GIMP's indexed export) keeps its transparency in a tRNS chunk, not in an alpha band:
    read as luminance, its light-coloured transparent half was editable (new-user test, session 13). An L image with
    a tRNS colour key likewise."""
    from PIL import Image

    from csdtex.editing.region import read_uv_mask

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: luminance alone would make all of it editable
    rgba[:, :4, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").quantize(colors=4).save(tmp_path / "indexed.png")
    with Image.open(tmp_path / "indexed.png") as image:
        assert image.mode == "P" and "transparency" in image.info
    keyed = np.full((8, 8), 255, np.uint8)
    keyed[:, 4:] = 200  # light grey: editable by luminance, but it is the transparent colour key
    Image.fromarray(keyed).save(tmp_path / "keyed.png", transparency=200)
    for name in ("indexed.png", "keyed.png"):
        editable = read_uv_mask(tmp_path / name)[0]
        assert editable[:, :4].all() and not editable[:, 4:].any(), name


def test_a_config_file_shared_with_paint_works_for_an_edit(tmp_path, prior, box):
    """A TOML file shared by `csdtex paint` and `csdtex edit` (texture_size, unwrap = true, low_vram = true, a negative
    prompt, preserve): each command ignores the other's options with a note, and --no-low-vram turns off the file's
    flag."""
    config = tmp_path / "shared.toml"
    config.write_text("texture_size = 256\nunwrap = true\nlow_vram = true\nsteps = 2\nviews_per_step = 1\n"
                      "negative_prompt = \"blurry\"\npreserve = 0.5\n")
    out = tmp_path / "out"
    result = invoke("edit", str(box), "a blue box", "--source", "a red box", "--model", str(prior), "--config",
                    str(config), "--no-low-vram", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert f"note: texture_size, unwrap, negative_prompt in {config} do not apply to an edit" in result.output
    record = json.loads((out / "run.json").read_text())
    assert record["edit"]["preserve"] == 0.5
    # The same file serves a paint: the edit-only preserve is ignored with a note.
    result = invoke("paint", str(box), "a blue box", "--model", str(prior), "--config", str(config), "--texture-size",
                    "32", "--out", str(tmp_path / "painted"), "--quiet")
    assert result.exit_code == 0, result.output
    assert f"note: preserve in {config} applies to an edit only: ignored" in result.output
    assert record["config"]["low_vram"] is False and record["config"]["unwrap"] is False
    assert "texture_size" not in record["config"]  # an edit keeps each texture's own size: nothing to record
    assert Image.open(out / "box_lid.png").size == Image.open(box.parent / "box_lid.png").size  # not 256


def test_an_edit_that_collapsed_to_black_is_refused():
    """"a red object with white dots" -> "a blue object with white dots" came out black, dots included, exit 0
    (new-user test, session 16): an edit whose editable texels went near-black without the target asking for it is
    an error; a target asking for black, a texture black before, or texels outside the region do not trip it."""
    import types

    from csdtex.editing.run import check_not_collapsed_to_black
    from csdtex.errors import UnpaintedTextureError

    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 220
    black = np.full((4, 4, 3), 3, np.uint8)
    everywhere = types.SimpleNamespace(weights=[np.ones((4, 4), np.float32)])
    with pytest.raises(UnpaintedTextureError, match="turned 100% of the editable texels black"):
        check_not_collapsed_to_black("a blue object with white dots", [red], [black], everywhere)
    check_not_collapsed_to_black("a black object", [red], [black], everywhere)
    check_not_collapsed_to_black("a blue object", [black], [black], everywhere)
    left_half = types.SimpleNamespace(weights=[np.repeat([[1.0, 1.0, 0.0, 0.0]], 4, axis=0)])
    half_black = red.copy()
    half_black[:, :2] = 3
    with pytest.raises(UnpaintedTextureError):
        check_not_collapsed_to_black("a blue object", [red], [half_black], left_half)
    check_not_collapsed_to_black("a blue object", [red], [np.where(np.arange(4)[None, :, None] < 1, 3, red)
                                                          .astype(np.uint8)], left_half)  # half the region only
