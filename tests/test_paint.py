"""End-to-end `csdtex paint` on tiny random priors (built here, never downloaded), resume, and bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner
from PIL import Image

from csdtex import painting as paint_module
from csdtex.pipeline import optimize as optimize_module
from csdtex.pipeline.checkpoint import checkpoint_identity, save_checkpoint
from csdtex.cli import main
from csdtex.config import PaintConfig, load_config_file
from csdtex.errors import ConfigError
from csdtex.guidance.random_priors import build_tiny_latent_folder, build_tiny_pixel_folder

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "meshes"
FAST = ["--steps", "4", "--views-per-step", "2", "--texture-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def priors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paint_priors")
    return {"latent": build_tiny_latent_folder(root / "latent"), "pixel": build_tiny_pixel_folder(root / "pixel")}


@pytest.fixture(scope="module")
def small_mesh(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("meshes") / "ball.obj"
    trimesh.creation.icosphere(2).export(path)  # no UVs: exercises the unwrap path
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("kind", ["latent", "pixel"])
def test_paint_cli_writes_every_output_and_they_load(tmp_path, priors, small_mesh, kind):
    out = tmp_path / "out"
    result = invoke("paint", str(small_mesh), "a red ball", "--model", str(priors[kind]), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert "note: unwrapping UVs with xatlas: it has no UVs" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ball.glb", "ball.mtl", "ball.obj", "ball.png", "ball_turntable.gif", "ball_views.png", "run.json"]
    texture = np.asarray(Image.open(out / "ball.png"))
    assert texture.shape == (64, 64, 3) and texture.std() > 0
    scene = trimesh.load(out / "ball.glb")
    assert sum(len(g.faces) for g in scene.geometry.values()) == 320
    assert len(trimesh.load(out / "ball.obj", process=False).faces) == 320
    gif = Image.open(out / "ball_turntable.gif")
    assert gif.n_frames == 24
    record = json.loads((out / "run.json").read_text())
    assert record["prompt"] == "a red ball" and record["prior"]["kind"] == kind
    assert record["metrics"]["steps_run"] == 4 and len(record["history"]["loss"]) == 4
    assert {"optimize", "bake", "export", "preview"} <= set(record["timings_s"])
    assert record["versions"]["torch"]
    assert not list(out.glob("*.tmp*")) and not (out / "checkpoint.json").exists()


def test_mesh_with_uvs_keeps_its_uvs_and_vertex_order(tmp_path, priors):
    import csdtex

    config = csdtex.PaintConfig(model=str(priors["pixel"]), steps=2, views_per_step=1, texture_size=32,
                                preview_frames=2, preview_size=32)
    result = csdtex.paint(ASSETS / "vase.obj", "a blue vase", config, out_dir=tmp_path, show_progress=False)
    assert isinstance(result, csdtex.PaintResult)
    from csdtex.mesh import load_mesh

    original, exported = load_mesh(ASSETS / "vase.obj"), load_mesh(result.files.obj)
    assert np.array_equal(original.faces, exported.faces)
    assert np.allclose(original.vertices, exported.vertices)
    assert np.array_equal(original.uv_faces, exported.uv_faces) and np.allclose(original.uvs, exported.uvs)


def test_same_seed_gives_the_same_texture(tmp_path, priors, small_mesh):
    config = PaintConfig(model=str(priors["latent"]), steps=3, views_per_step=2, texture_size=32, seed=7,
                         preview_frames=2, preview_size=32)
    first = paint_module.paint(small_mesh, "a green ball", config, out_dir=tmp_path / "a", show_progress=False)
    second = paint_module.paint(small_mesh, "a green ball", config, out_dir=tmp_path / "b", show_progress=False)
    other = paint_module.paint(small_mesh, "a green ball", PaintConfig(**{**config.__dict__, "seed": 8}),
                               out_dir=tmp_path / "c", show_progress=False)
    assert np.array_equal(first.textures[0], second.textures[0])
    assert not np.array_equal(first.textures[0], other.textures[0])


def test_resume_continues_from_the_checkpoint_exactly(tmp_path, priors, small_mesh, monkeypatch):
    config = PaintConfig(model=str(priors["latent"]), steps=6, views_per_step=2, texture_size=32, checkpoint_every=2,
                         preview_frames=2, preview_size=32)
    straight = paint_module.paint(small_mesh, "a ball", config, out_dir=tmp_path / "straight", show_progress=False)

    real_step, calls = optimize_module.training_step, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(optimize_module, "training_step", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        paint_module.paint(small_mesh, "a ball", config, out_dir=out, show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", "checkpoint.safetensors"]
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "checkpoint.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # like every output, not 0600
    monkeypatch.setattr(optimize_module, "training_step", real_step)

    # Forgetting --resume starts over, and says so before the long part (a copy: this one is resumed below).
    forgot = tmp_path / "forgot"
    shutil.copytree(out, forgot)
    result = invoke("paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--out", str(forgot),
                    "--steps", "6", "--views-per-step", "2", "--texture-size", "32", "--quiet")
    assert result.exit_code == 0, result.output
    assert "holds the checkpoint of an interrupted run at step 4; this run starts over" in result.output
    assert "--resume to continue from it" in result.output

    result = invoke("paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--out", str(out),
                    "--steps", "6", "--views-per-step", "2", "--texture-size", "32", "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    resumed_texture = np.asarray(Image.open(out / "ball.png"))
    assert np.array_equal(resumed_texture, straight.textures[0])
    record = json.loads((out / "run.json").read_text())
    assert record["metrics"]["resumed_from_step"] == 4 and record["metrics"]["steps_run"] == 2

    # A checkpoint from another prompt is refused, naming what differs.
    save_checkpoint(out, torch.nn.Linear(1, 1), torch.optim.Adam(torch.nn.Linear(1, 1).parameters()),
                    torch.Generator(), 2, checkpoint_identity("another prompt", config, None, "ImplicitTextureField"))
    result = invoke("paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--out", str(out),
                    "--steps", "6", "--resume", "--quiet")
    assert result.exit_code != 0 and "made with other settings (not the same: prompt" in result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "0"], "steps must be at least 1"),
        (["--views-per-step", "0"], "views per step"),
        (["--texture-size", "4"], "texture size"),
        (["--device", "tpu"], "unknown device"),
        (["--resume"], "no checkpoint"),
    ],
)
def test_bad_options_give_one_clear_line(tmp_path, priors, small_mesh, extra, message):
    out = tmp_path / "out"
    result = invoke("paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--out", str(out), *extra)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_bad_inputs_give_one_clear_line_and_write_nothing(tmp_path, priors, small_mesh):
    out = tmp_path / "out"
    cases = [
        (["paint", str(small_mesh), "   ", "--model", str(priors["latent"])], "prompt is empty"),
        (["paint", str(small_mesh), "a ball", "--model", "no-such-model"], "unknown model"),
        (["paint", str(small_mesh), "a ball", "--model", str(tmp_path)], ""),
        (["paint", str(tmp_path / "missing.obj"), "a ball", "--model", str(priors["latent"])], "does not exist"),
    ]
    if not torch.cuda.is_available():
        cases.append((["paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--device", "cuda"],
                      "no CUDA"))
    for args, message in cases:
        result = invoke(*args, "--out", str(out), "--quiet")
        assert result.exit_code != 0, args
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
        assert message in result.output
        assert not out.exists()

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = invoke("paint", str(small_mesh), "a ball", "--model", str(priors["latent"]), "--out", str(blocker / "sub"))
    assert result.exit_code == 2 and "cannot write to output folder" in result.output


def test_missing_builtin_prior_is_one_clear_line(tmp_path, small_mesh, monkeypatch):
    from csdtex import assets as assets_module

    monkeypatch.setattr(assets_module, "asset_roots", lambda: [tmp_path / "nowhere"])
    out = tmp_path / "out"
    result = invoke("paint", str(small_mesh), "a ball", "--out", str(out), "--quiet")
    assert result.exit_code == 2 and result.output.startswith("error: the built-in prior is missing")
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_gpu_out_of_memory_is_reported_with_what_to_lower(tmp_path, small_mesh, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(paint_module, "paint", out_of_memory)
    result = invoke("paint", str(small_mesh), "a ball", "--model", "sd21", "--out", str(tmp_path / "o"))
    assert result.exit_code == 3
    assert "ran out of memory" in result.output and "--views-per-step" in result.output


def test_config_file_sets_options_and_rejects_unknown_keys(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('steps = 12\nguidance_method = "sds"\n[field]\nlog2_hashmap_size = 14\n[cameras]\nfov_deg = [30, 40]\n')
    config = load_config_file(good)
    assert config.steps == 12 and config.guidance_method == "sds" and config.field.log2_hashmap_size == 14
    assert config.cameras.fov_deg == (30, 40)
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    with pytest.raises(ConfigError, match="unknown option 'stepz'"):
        load_config_file(bad)
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('steps = "many"\n')
    with pytest.raises(ConfigError, match="must be int"):
        load_config_file(wrong_type)
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(broken)


def test_models_lists_the_aliases():
    result = invoke("models")
    assert result.exit_code == 0
    assert "sd21" in result.output and "stabilityai/stable-diffusion-2-1-base" in result.output


def test_one_run_at_a_time_writes_into_an_output_folder(tmp_path, priors, small_mesh):
    """While a run holds the output folder (here: this process, through the same lock a paint takes), a second paint
    into it fails at once with one line; the folder is free again afterwards and no lock file is left behind."""
    from csdtex.pipeline.outputs import RUN_LOCK, run_folder_lock

    out = tmp_path / "out"
    with run_folder_lock(out):
        result = CliRunner().invoke(main, ["paint", str(small_mesh), "a red ball", "--model", str(priors["pixel"]),
                                           "--out", str(out), *FAST])  # fmt: skip
        assert result.exit_code != 0 and result.exception is not None
        assert "another csdtex run is writing into" in result.output and "choose another --out" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
        assert [p.name for p in out.iterdir()] == [RUN_LOCK]
    assert not out.exists()  # the lock created the folder and nothing else was written: removed again

    # A lock file left by a killed run (no process holds it) does not block the next run.
    out.mkdir()
    (out / RUN_LOCK).write_text("")
    result = invoke("paint", str(small_mesh), "a red ball", "--model", str(priors["pixel"]), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert RUN_LOCK not in {p.name for p in out.iterdir()} and (out / "run.json").is_file()


def test_a_run_that_fails_early_leaves_no_output_folder(tmp_path, priors):
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nf 1 2 3\n")  # a face with missing vertices
    out = tmp_path / "new" / "out"
    result = CliRunner().invoke(main, ["paint", str(broken), "a red ball", "--model", str(priors["pixel"]),
                                       "--out", str(out), *FAST])  # fmt: skip
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_paint_keeps_the_inputs_normal_and_pbr_maps_unless_it_unwraps(tmp_path, priors):
    """A glTF with a normal map and a metallic-roughness map: the painted GLB carries both (same image bytes), the
    OBJ's MTL names them, run.json lists them; painting again with --unwrap drops them with a warning and removes the
    earlier run's map files."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, box_faces, png_bytes, read_glb

    positions, faces, uvs = box_faces()
    normal = np.full((8, 8, 3), (128, 128, 255), np.uint8)
    builder = GltfBuilder()
    material = builder.material("steel", builder.texture(np.full((8, 8, 3), 90, np.uint8)))
    builder.doc["materials"][material]["normalTexture"] = {"index": builder.texture(normal)}
    builder.doc["materials"][material]["pbrMetallicRoughness"].update(
        {"metallicRoughnessTexture": {"index": builder.texture(np.full((8, 8, 3), 200, np.uint8))},
         "metallicFactor": 1.0, "roughnessFactor": 0.4})
    builder.mesh([builder.primitive(positions.astype(np.float32), faces, uvs / 6.0, material=material)])
    mesh_path = builder.write_glb(tmp_path / "steel.glb")
    out = tmp_path / "out"
    result = invoke("paint", str(mesh_path), "a red box", "--model", str(priors["pixel"]), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    document, binary = read_glb(out / "steel.glb")
    painted = document["materials"][0]
    assert painted["pbrMetallicRoughness"]["roughnessFactor"] == 0.4 and "metallicRoughnessTexture" in (
        painted["pbrMetallicRoughness"])
    view = document["bufferViews"][document["images"][document["textures"][painted["normalTexture"]["index"]][
        "source"]]["bufferView"]]
    assert binary[view["byteOffset"]: view["byteOffset"] + view["byteLength"]] == png_bytes(normal)
    record = json.loads((out / "run.json").read_text())
    assert sorted(record["outputs"]["maps"]) == ["steel_metallic.png", "steel_normal.png", "steel_roughness.png"]
    assert "map_Bump steel_normal.png" in (out / "steel.mtl").read_text()

    result = invoke("paint", str(mesh_path), "a red box", "--model", str(priors["pixel"]), "--out", str(out), *FAST,
                    "--unwrap")
    assert result.exit_code == 0, result.output
    assert "the UVs were unwrapped anew, so the input's other maps" in result.output
    assert "'steel': normal map, metallic-roughness map" in result.output
    unwrapped = read_glb(out / "steel.glb")[0]["materials"][0]
    assert "normalTexture" not in unwrapped and unwrapped["pbrMetallicRoughness"]["roughnessFactor"] == 0.4
    assert not (out / "steel_normal.png").exists()
    assert json.loads((out / "run.json").read_text())["outputs"]["maps"] == []


def test_a_checkpoint_interrupted_between_its_two_files_resumes_consistently(tmp_path, monkeypatch):
    """The tensors file carries its own step and identity: an interrupt after it was replaced but before
    checkpoint.json was left step-N metadata beside step N+k state, and --resume trusted the metadata (new-user
    test, session 13: up to 43 levels off an uninterrupted run)."""
    from csdtex.pipeline import checkpoint as checkpoint_module

    model, identity = torch.nn.Linear(2, 2), {"prompt": "a ball"}
    optimizer, generator = torch.optim.Adam(model.parameters()), torch.Generator()
    checkpoint_module.save_checkpoint(tmp_path, model, optimizer, generator, 2, identity)
    with torch.no_grad():
        model.weight.add_(1.0)
    expected = model.weight.detach().clone()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "write_text_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_module.save_checkpoint(tmp_path, model, optimizer, generator, 4, identity)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 2  # the stale summary
    restored = torch.nn.Linear(2, 2)
    step = checkpoint_module.load_checkpoint(tmp_path, restored, torch.optim.Adam(restored.parameters()),
                                             torch.Generator(), identity, 10)
    assert step == 4 and torch.equal(restored.weight, expected) and checkpoint_module.checkpoint_step(tmp_path) == 4


def test_prompt_warnings_name_what_the_prior_cannot_read(tmp_path, priors, small_mesh):
    args = ["--steps", "1", "--views-per-step", "1", "--texture-size", "32", "--out"]
    # The built-in prior's tokenizer reads 'red-and-blue' as one unknown token: 'and' and 'blue' would be lost.
    result = invoke("paint", str(small_mesh), "a red-and-blue object", *args, str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert "'red-and-blue' with 'and', 'blue' lost in an unknown token" in result.output
    assert "('red and blue')" in result.output
    # A prompt longer than the text encoder's window: the dropped words and the lost view words are named.
    long_prompt = "a red ball " + " ".join(["with many tiny white dots"] * 20)
    result = invoke("paint", str(small_mesh), long_prompt, "--model", str(priors["latent"]), *args, str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert "tokens long but the text encoder reads 16" in result.output and "view words" in result.output
    assert "Token indices sequence length" not in result.output
    # --negative with SDS has no effect: said, not silently ignored.
    result = invoke("paint", str(small_mesh), "a red ball", "--model", str(priors["latent"]), "--guidance", "sds",
                    "--negative", "blue", *args, str(tmp_path / "c"))
    assert result.exit_code == 0 and "--negative has no effect with --guidance sds" in result.output
    record = json.loads((tmp_path / "c" / "run.json").read_text())
    assert record["prior"]["source"] == str(priors["latent"].resolve())


def test_an_empty_model_option_is_an_error_not_the_builtin_prior(tmp_path, small_mesh):
    result = invoke("paint", str(small_mesh), "a red ball", "--model", "", "--out", str(tmp_path / "out"), *FAST)
    assert result.exit_code != 0 and result.output.startswith("error: --model is empty")
    assert not (tmp_path / "out").exists()
