"""Tests of csdtex.tinyprior.attributes (the shipped attribute classifier, the scoring rule) and
benchmarks/fidelity.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csdtex import tinyprior as S
from csdtex.tinyprior import attributes as A
from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _fidelity_module():
    return load_benchmark("fidelity")


# ------------------------------------------------------------------------------------------------ shipped classifier


def test_shipped_classifier_is_small_and_loads():
    path = A.default_weights_path()
    assert path == ROOT / "assets" / "classifier" / "attributes.safetensors"
    assert path.stat().st_size < 2 * 1024 * 1024
    config = json.loads((path.parent / A.CONFIG_NAME).read_text())
    assert config["architecture"]["colors"] == list(S.COLORS) and config["architecture"]["patterns"] == list(S.PATTERNS)
    model = A.load_classifier()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert A.load_classifier(path.parent).state_dict().keys() == model.state_dict().keys()  # a folder works too


def test_shipped_classifier_reads_fresh_renders():
    """40 renders (20 objects x 2 views) from a seed the classifier never saw, white and coloured backgrounds."""
    config = json.loads((A.default_weights_path().parent / A.CONFIG_NAME).read_text())
    seed = 4242
    assert seed not in (config["training"]["data"]["train"]["seed"], config["training"]["data"]["eval"]["seed"])
    images, _, metadata = S.generate_dataset(40, seed=seed, split="test", views_per_object=2)
    color_probs, pattern_probs = A.predict_probabilities(images)
    assert color_probs.shape == (40, 12) and pattern_probs.shape == (40, 6)
    assert np.allclose(pattern_probs.sum(1), 1.0, atol=1e-5) and (color_probs >= 0).all() and (color_probs <= 1).all()
    color_ok = [A.colors_correct(c, m["texture"]["colors"]) for c, m in zip(color_probs, metadata)]
    pattern_ok = [A.pattern_correct(p, m["texture"]["pattern"]) for p, m in zip(pattern_probs, metadata)]
    assert np.mean(color_ok) >= 0.8, np.mean(color_ok)
    assert np.mean(pattern_ok) >= 0.8, np.mean(pattern_ok)


def test_shipped_label_set_2_classifier_reads_fresh_version_2_renders():
    """assets/classifier_v2 (issue #15's ten patterns): 80 data-version-2 renders (40 objects x 2 views, per-object
    probabilities averaged) from a seed it never saw; the fidelity benchmark takes it for --data-version 2."""
    path = A.default_weights_path(2)
    assert path == ROOT / "assets" / "classifier_v2" / "attributes.safetensors" and path.stat().st_size < 2 * 1024**2
    model = A.load_classifier(path)
    assert model.patterns == A.LABEL_SETS[2]
    config = json.loads((path.parent / A.CONFIG_NAME).read_text())
    seed = 4242
    assert seed not in (config["training"]["data"]["train"]["seed"], config["training"]["data"]["eval"]["seed"])
    images, _, metadata = S.generate_dataset(80, seed=seed, split="test", views_per_object=2, data_version=2)
    color_probs, pattern_probs = A.predict_probabilities(images, model)
    color_probs, pattern_probs = color_probs.reshape(40, 2, -1).mean(1), pattern_probs.reshape(40, 2, -1).mean(1)
    objects = metadata[::2]
    color_ok = [A.colors_correct(c, m["texture"]["colors"]) for c, m in zip(color_probs, objects)]
    pattern_ok = [A.pattern_correct(p, m["texture"]["pattern"], model.patterns) for p, m in zip(pattern_probs, objects)]
    assert np.mean(color_ok) >= 0.85 and np.mean(pattern_ok) >= 0.75, (np.mean(color_ok), np.mean(pattern_ok))
    fidelity = load_benchmark("fidelity")
    args = fidelity.parse_args(["--methods", "reference", "--data-version", "2"])
    assert Path(args.classifier) == Path("assets/classifier_v2/attributes.safetensors")
    assert fidelity.parse_args(["--methods", "reference"]).classifier is None
    with pytest.raises(ValueError, match="label_set"):
        A.default_weights_path(3)


def test_classify_views_averages_views_and_accepts_float_and_other_sizes():
    images, _, metadata = S.generate_dataset(4, seed=4243, split="test", views_per_object=4)
    model = A.load_classifier()
    prediction = A.classify_views(images, model)
    color_probs, pattern_probs = A.predict_probabilities(images, model)
    assert prediction.num_views == 4
    assert prediction.color_probs.shape == (12,) and prediction.pattern_probs.shape == (6,)
    assert np.allclose(prediction.color_probs, color_probs.mean(0)) and np.allclose(prediction.pattern_probs,
                                                                                    pattern_probs.mean(0))
    as_float = A.classify_views(images.astype(np.float32) / 255.0, model)
    assert np.allclose(as_float.color_probs, prediction.color_probs, atol=1e-6)
    doubled = A.classify_views(torch.from_numpy(images).repeat_interleave(2, 1).repeat_interleave(2, 2), model)
    assert np.allclose(doubled.color_probs, prediction.color_probs, atol=1e-5)  # 128 px -> area-resized to 64
    spec = metadata[0]["texture"]
    score = prediction.score(spec["colors"], spec["pattern"])
    assert set(score) == {"color_correct", "pattern_correct", "predicted_colors", "predicted_pattern"}
    assert len(score["predicted_colors"]) == len(set(spec["colors"]))
    assert json.dumps(prediction.to_dict())
    with pytest.raises(ValueError):
        A.classify_views(images[:0], model)


# ------------------------------------------------------------------------------------------------------- scoring rule


def _probs(**named: float) -> np.ndarray:
    probs = np.full(12, 0.01, np.float32)
    for name, value in named.items():
        probs[A.COLOR_NAMES.index(name)] = value
    return probs


def test_color_rule_is_top_k_set_equality():
    two = _probs(red=0.9, blue=0.6, green=0.3)
    assert A.colors_correct(two, ["red", "blue"]) and A.colors_correct(two, ["blue", "red"])  # order ignored
    assert not A.colors_correct(two, ["red", "green"])  # green is third
    assert A.colors_correct(two, ["red"]) and not A.colors_correct(two, ["blue"])  # k = 1 for one colour
    assert A.colors_correct(two, ["red", "red"])  # duplicates count once (k = 1)
    only_red = _probs(red=0.95)
    assert not A.colors_correct(only_red, ["red", "blue"])  # a missing second colour is wrong
    # probabilities need not be calibrated: only the ranking matters
    assert A.colors_correct(_probs(white=0.2, black=0.15), ["black", "white"])
    assert A.top_colors(two, 3) == ("red", "blue", "green")
    with pytest.raises(ValueError):
        A.colors_correct(two, [])
    with pytest.raises(ValueError):
        A.colors_correct(two, ["red", "magenta"])


def test_pattern_rule_is_argmax():
    probs = np.array([0.1, 0.5, 0.2, 0.1, 0.05, 0.05])
    assert A.pattern_correct(probs, "stripes") and not A.pattern_correct(probs, "checkerboard")
    with pytest.raises(ValueError):
        A.pattern_correct(probs, "zigzag")
    targets = A.color_targets([("red",), ("blue", "white")])
    assert targets.shape == (2, 12) and targets.sum() == 3 and targets[1, A.COLOR_NAMES.index("white")] == 1


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = A.AttributeClassifier(channels=(8, 8, 16), hidden=16).eval()
    weights, config = A.save_classifier(model, tmp_path / "c" / A.WEIGHTS_NAME, extra={"note": "test"})
    assert weights.read_bytes()[:8] and json.loads(config.read_text())["note"] == "test"
    loaded = A.load_classifier(weights)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values() if v.is_floating_point())
    with torch.no_grad():  # the file holds float16 weights: compare with the model rounded to float16
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ours, theirs = A.predict_probabilities(images, model), A.predict_probabilities(images, loaded)
    assert np.allclose(ours[0], theirs[0], atol=1e-6) and np.allclose(ours[1], theirs[1], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="train_attribute_classifier"):
        A.load_classifier(tmp_path / "missing")
    data = json.loads(config.read_text())
    data["architecture"]["colors"] = data["architecture"]["colors"][::-1]
    config.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="vocabulary"):
        A.load_classifier(weights)


# ------------------------------------------------------------------------------------------------- fidelity benchmark


def test_benchmark_prompts_and_meshes():
    fidelity = _fidelity_module()
    prompts = fidelity.PROMPTS
    assert len(prompts) >= 30 and len(set(prompts)) == len(prompts)
    for prompt in prompts:
        spec = S.TextureSpec(prompt.pattern, prompt.colors)  # valid vocabulary
        words = S.caption_words(prompt.text())
        assert set(words) <= set(S.VOCABULARY) and set(prompt.colors) <= set(words)
        assert not any(spec.matches(shape, combo) for shape in ("vase",) for combo in S.HELD_OUT_COMBOS)
    assert {p.pattern for p in prompts[: len(S.PATTERNS)]} == set(S.PATTERNS)  # any prefix covers the patterns
    assert prompts[1].text("vase") == "a red and white striped vase"
    assert prompts[4].text("object") == "an object with a red to yellow gradient"
    assert not set(fidelity.BENCHMARK_MESHES) & set(S.SHAPES)
    assert all((fidelity.MESH_DIR / f"{name}.obj").exists() for name in fidelity.BENCHMARK_MESHES)


def test_fidelity_smoke_runs_end_to_end(tmp_path):
    """2 prompts x 1 mesh x {csd, sds, reference}, 3 paint steps on a tiny random pixel prior."""
    from csdtex.guidance.random_priors import build_tiny_pixel_folder

    fidelity = _fidelity_module()
    prior = build_tiny_pixel_folder(tmp_path / "prior")
    out = tmp_path / "results"
    record = fidelity.main([
        "--model", str(prior), "--prompts", "2", "--meshes", "crate", "--steps", "3", "--views-per-step", "1",
        "--texture-size", "32", "--frames", "4", "--grid-views", "2", "--device", "cpu", "--out", str(out),
    ])
    data = json.loads((out / "fidelity.json").read_text())
    assert data["summary"].keys() == {"csd", "sds", "reference"}
    assert len(data["runs"]) == 6 and {r["method"] for r in data["runs"]} == {"csd", "sds", "reference"}
    for method, summary in data["summary"].items():
        assert summary["n"] == 2, method
        assert 0.0 <= summary["color_accuracy"] <= 1.0 and 0.0 <= summary["pattern_accuracy"] <= 1.0
    assert set(data["targets_met"]) == {"csd_color_accuracy>=0.80", "csd_pattern_accuracy>=0.60",
                                        "csd_color>=sds_color", "csd_pattern>=sds_pattern"}
    assert data["settings"]["steps"] == 3 and data["settings"]["meshes"] == ["crate"]
    assert record["summary"] == data["summary"]
    # the ground-truth textures of the first two prompts are read correctly by the shipped classifier
    assert data["summary"]["reference"]["color_accuracy"] == 1.0
    grid = np.asarray(Image.open(out / "fidelity_grid.png"))
    assert grid.ndim == 3 and grid.shape[0] >= 2 * 128 and grid.shape[1] >= 300 + 3 * 2 * 128
