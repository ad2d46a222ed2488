"""The shipped built-in prior: found from a checkout and from an installed wheel, the default --model with its own
preset, unknown-word warnings, and a check that its samples show the prompted colour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner

from csdtex import tinyprior as tiny_prior
from csdtex.assets import builtin_prior_folder
from csdtex.cli import main
from csdtex.config import PRESETS
from csdtex.guidance import load_prior
from csdtex.guidance.vocabulary import unknown_words_message
from csdtex.tinyprior import COLORS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prior():
    return load_prior("tiny", "cpu")


def test_builtin_folder_is_complete_and_within_budget():
    folder = builtin_prior_folder()
    assert folder == ROOT / "assets" / "priors" / "tiny"
    assert tiny_prior.folder_weight_bytes(folder) <= tiny_prior.SIZE_LIMIT_BYTES
    for name in ("README.md", "loss_curve.png", "samples.png", "training.json", "tiny_prior_config.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "training.json").read_text())
    assert record["training"]["steps"] > 1000 and record["data"]["train"]["images"] >= 100_000
    readme = (folder / "README.md").read_text()
    assert record["command"] in readme and "loss_curve.png" in readme and "samples.png" in readme


def test_builtin_prior_loads_with_its_preset_and_vocabulary(prior):
    assert prior.kind == "pixel" and prior.preset == "tiny" and prior.render_resolution == 64
    assert {"red", "striped", "sphere", "view", ","} <= prior.vocabulary
    assert "<unk>" not in prior.vocabulary and "vase" not in prior.vocabulary
    assert PRESETS["tiny"].negative_prompt == "" and PRESETS["tiny"].field.log2_hashmap_size == 16


def _colour_share(images: torch.Tensor, rgb: tuple[float, float, float], tolerance: float = 0.2) -> float:
    """Share of pixels within ``tolerance`` (RGB distance) of ``rgb``; images float [N, 3, H, W] in [0, 1]."""
    target = torch.tensor(rgb).view(1, 3, 1, 1)
    return float(((images - target).norm(dim=1) < tolerance).float().mean())


def test_samples_show_the_prompted_colour():
    components = tiny_prior.load_components(builtin_prior_folder())
    prompts = ["a solid red sphere, front view", "a solid blue sphere, front view"]
    images = tiny_prior.sample_images(components, prompts, num_per_prompt=3, steps=20, guidance_scale=4.0, seed=0)
    images = images.permute(0, 3, 1, 2).float() / 255.0  # uint8 [N, 64, 64, 3] -> float [N, 3, 64, 64]
    red, blue = images[:3], images[3:]
    assert _colour_share(red, COLORS["red"]) > 0.08 and _colour_share(red, COLORS["blue"]) < 0.02
    assert _colour_share(blue, COLORS["blue"]) > 0.08 and _colour_share(blue, COLORS["red"]) < 0.02


def test_unknown_words_message_lists_the_known_words(prior):
    assert unknown_words_message("a red and white striped object, side view", prior.vocabulary) is None
    message = unknown_words_message("A weathered bronze vase.", prior.vocabulary)
    assert "'weathered', 'bronze', 'vase'" in message and "'.'" not in message
    assert "colours (black, blue," in message and "shapes (box," in message and "--model sd21" in message
    assert "\n" not in message


def test_paint_without_model_uses_the_builtin_prior(tmp_path):
    mesh_path = tmp_path / "pebble.obj"
    trimesh.creation.icosphere(2).export(mesh_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["paint", str(mesh_path), "a green pebble", "--out", str(out), "--steps", "3",
                                       "--quiet"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "'pebble'" in warnings[0] and "'green'" not in warnings[0]
    record = json.loads((out / "run.json").read_text())
    config = record["config"]
    assert config["model"] == "tiny" and config["texture_size"] == PRESETS["tiny"].texture_size
    assert config["field"]["log2_hashmap_size"] == 16 and config["guidance"]["negative_prompt"] == ""
    assert config["steps"] == 3 and config["render_resolution"] == 64

    # A negative prompt outside the vocabulary is reported too.
    result = CliRunner().invoke(main, ["paint", str(mesh_path), "a green object", "--out", str(tmp_path / "neg"),
                                       "--steps", "1", "--negative", "blurry", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert warnings == [line for line in warnings if "in the negative prompt" in line and "'blurry'" in line]
    assert len(warnings) == 1


def test_wheel_ships_the_builtin_prior(tmp_path):
    """Build a wheel of this checkout, install it into a fresh prefix and find the prior and the attribute classifier
    from there."""
    wheels, prefix = tmp_path / "wheels", tmp_path / "prefix"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("csdtex-*.whl")
    # --ignore-installed: never uninstall the csdtex this test runs from (pip would, for a --prefix install).
    subprocess.run([*pip, "install", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
                   check=True)  # fmt: skip
    (site,) = prefix.glob("lib/python3*/site-packages")
    code = ("import csdtex, csdtex.assets as a; from csdtex.tinyprior import attributes; "
            "print(csdtex.__file__); print(a.builtin_prior_folder()); print(attributes.default_weights_path()); "
            "print(type(attributes.load_classifier()).__name__); print(a.builtin_prior_folder('tiny-materials'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    output = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=True).stdout.split("\n")  # fmt: skip
    assert output[0].startswith(str(site))
    folder = Path(output[1])
    assert folder == prefix / "share" / "csdtex" / "priors" / "tiny"
    shipped = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    source = builtin_prior_folder()
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                 "tokenizer/tokenizer.json", "scheduler/scheduler_config.json", "model_index.json"):
        assert name in shipped
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    assert np.all([(prefix / "share" / "csdtex" / "meshes" / f"{m}.obj").is_file() for m in ("vase", "crate")])
    # The prior's config with its vocabulary, and the attribute classifier, found like the prior and byte-identical.
    assert (folder / "tiny_prior_config.json").read_bytes() == (source / "tiny_prior_config.json").read_bytes()
    # The second built-in prior (--model tiny-materials) beside it, byte-identical too.
    materials = Path(output[4])
    assert materials == prefix / "share" / "csdtex" / "priors" / "tiny-materials"
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                 "tokenizer/tokenizer.json", "tiny_prior_config.json", "model_index.json"):
        assert (materials / name).read_bytes() == (builtin_prior_folder("tiny-materials") / name).read_bytes(), name
    weights = Path(output[2])
    assert weights == prefix / "share" / "csdtex" / "classifier" / "attributes.safetensors"
    assert output[3] == "AttributeClassifier"
    for name in ("attributes.safetensors", "attributes.json", "README.md"):
        assert (weights.parent / name).read_bytes() == (ROOT / "assets" / "classifier" / name).read_bytes(), name


def test_materials_prior_is_shipped_complete_and_loads_by_its_alias():
    folder = builtin_prior_folder("tiny-materials")
    assert folder == ROOT / "assets" / "priors" / "tiny-materials"
    assert tiny_prior.folder_weight_bytes(folder) <= tiny_prior.SIZE_LIMIT_BYTES
    record = json.loads((folder / "training.json").read_text())
    readme = (folder / "README.md").read_text()
    assert record["command"] in readme and "--init-from assets/priors/tiny" in record["command"]
    assert "## Fidelity" in readme  # the measured numbers, beside the default prior's
    materials = load_prior("TINY-MATERIALS", "cpu")
    assert materials.preset == "tiny" and {"wooden", "marble", "brick", "camouflage", "red"} <= materials.vocabulary
    assert materials.vocabulary.groups["materials"] == ("brick", "bricks", "camouflage", "marble", "wood", "wooden")
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0 and "tiny-materials" in result.output


def test_materials_prior_samples_read_as_their_material():
    """Samples of material prompts, read by the label-set-2 attribute classifier: most show the asked material."""
    from csdtex.tinyprior import attributes

    components = tiny_prior.load_components(builtin_prior_folder("tiny-materials"))
    classifier = attributes.load_classifier(attributes.default_weights_path(2))
    materials = {"brick": "a red brick cylinder, front view", "marble": "a gray marble sphere, front view",
                 "camouflage": "a green camouflage box, front view"}  # fmt: skip
    images = tiny_prior.sample_images(components, list(materials.values()), num_per_prompt=3, steps=12,
                                      guidance_scale=4.0, seed=0)  # fmt: skip
    _, pattern_probs = attributes.predict_probabilities(images, classifier)
    read = [classifier.patterns[i] for i in pattern_probs.argmax(axis=1)]
    expected = [material for material in materials for _ in range(3)]
    assert sum(r == e for r, e in zip(read, expected)) >= 6, read


def test_unknown_material_words_point_to_the_materials_prior(prior):
    from csdtex.guidance.loading import builtin_prior_vocabularies

    vocabularies = builtin_prior_vocabularies()
    assert set(vocabularies) == {"tiny", "tiny-materials"}
    message = unknown_words_message("a brown wooden vase", prior.vocabulary, vocabularies)
    assert "'wooden', 'vase'" in message and "(--model tiny-materials knows 'wooden')" in message
    assert unknown_words_message("a brown wooden box", vocabularies["tiny-materials"], vocabularies) is None
    # No suggestion when no built-in prior knows the words.
    assert "--model tiny-materials" not in unknown_words_message("a bronze vase", prior.vocabulary, vocabularies)
