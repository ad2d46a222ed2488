"""Tests of the built-in prior's data version 3: version 1's data, object for object, with a share of the train / test
objects repainted with a material and captioned with its words (``generate_dataset(..., data_version=3)``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

from csdtex.tinyprior import synthetic
from csdtex.tinyprior import vocabulary as W
from csdtex.tinyprior.model import build_tokenizer
from csdtex.tinyprior.textures import TextureSpec, random_texture_spec_v2
from csdtex.tinyprior.training import IGNORE_ROLE, CaptionTable

V3_KEYS = ("data_version", "material")
SUFFIXES = ("",) + tuple(W.VIEW_SUFFIXES)


def _without_v3_keys(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in V3_KEYS}


@pytest.fixture(scope="module")
def pair():
    """64 images (16 objects) at 32 px of versions 1 and 3 with the same seed; seed 3 repaints 3 of the 16."""
    options = dict(seed=3, resolution=32)
    return synthetic.generate_dataset(64, **options), synthetic.generate_dataset(64, data_version=3, **options)


def _material_words(caption: str) -> set[str]:
    """The material words of ``caption``."""
    return set(W.caption_words(caption)) & {"wooden", "wood", "marble", "brick", "bricks", "camouflage"}


def _material_caption_words() -> set[str]:
    """Every word any version-3 material caption can contain (all materials, colours, templates, nouns, suffixes)."""
    words: set[str] = set()
    for material in W.MATERIALS:
        for colour in W.COLORS:
            spec = TextureSpec(material, (colour,))
            for template in range(len(W.CAPTION_TEMPLATES_V2[material])):
                for noun in W.nouns_for(3) + (W.GENERIC_NOUN,):
                    for suffix in SUFFIXES:
                        words.update(W.caption_words(spec.caption(noun, suffix, template, version=2)))
    return words


# ----------------------------------------------------------------------------------------------- same as version 1


def test_objects_without_a_material_are_version_1s(pair):
    (images1, captions1, meta1), (images3, captions3, meta3) = pair
    material = np.array([m["material"] for m in meta3])
    assert 0 < material.sum() < len(material)  # the seed repaints some objects, not all
    assert all(m["data_version"] == 3 for m in meta3) and all("data_version" not in m for m in meta1)
    assert np.array_equal(images3[~material], images1[~material])
    for caption1, caption3, m1, m3 in zip(captions1, captions3, meta1, meta3):
        if not m3["material"]:
            assert caption3 == caption1 and _without_v3_keys(m3) == m1
            continue
        # a repainted object keeps everything but its texture and the pattern words of its captions
        assert m3["texture"]["pattern"] in W.MATERIALS and len(m3["texture"]["colors"]) == 1
        same = {k: v for k, v in _without_v3_keys(m3).items() if k not in ("texture", "caption", "coverage")}
        assert same == {k: v for k, v in m1.items() if k not in ("texture", "caption", "coverage")}
        assert (caption3 == "") == (caption1 == "") and caption3 == m3["caption"]
        if caption3:  # same noun, same view suffix (or none), the material's words
            assert caption3 != caption1 and m3["noun"] in caption3 and m3["texture"]["colors"][0] in caption3
            assert caption3.endswith(m3["view_suffix"]) == caption1.endswith(m1["view_suffix"])
            assert _material_words(caption3)
    assert not np.array_equal(images3[material], images1[material])
    json.dumps(meta3)  # JSON-ready


def test_material_probability_zero_and_one():
    images1, captions1, meta1 = synthetic.generate_dataset(16, seed=8, resolution=16)
    images0, captions0, meta0 = synthetic.generate_dataset(16, seed=8, resolution=16, data_version=3,
                                                           material_probability=0.0)  # fmt: skip
    assert np.array_equal(images0, images1) and captions0 == captions1
    assert [_without_v3_keys(m) for m in meta0] == meta1 and not any(m["material"] for m in meta0)
    _, captions_all, meta_all = synthetic.generate_dataset(16, seed=8, resolution=16, data_version=3,
                                                           material_probability=1.0)  # fmt: skip
    assert all(m["material"] and m["texture"]["pattern"] in W.MATERIALS for m in meta_all)
    for caption, caption1 in zip(captions_all, captions1):
        assert (caption == "") == (caption1 == "")
        assert not caption or _material_words(caption), caption
    with pytest.raises(ValueError, match="material_probability"):
        synthetic.generate_dataset(4, data_version=3, material_probability=1.5)
    with pytest.raises(ValueError, match="data_version"):
        synthetic.generate_dataset(4, data_version=4)


def test_held_out_split_is_version_1s():
    options = dict(seed=5, split="held_out", views_per_object=2, resolution=32)
    images1, captions1, meta1 = synthetic.generate_dataset(8, **options)
    images3, captions3, meta3 = synthetic.generate_dataset(8, data_version=3, material_probability=1.0, **options)
    assert np.array_equal(images3, images1) and captions3 == captions1
    assert [_without_v3_keys(m) for m in meta3] == meta1 and not any(m["material"] for m in meta3)
    assert synthetic.draw_material_spec(5, "held_out", 0, "box", (-1.0, 1.0), 0.0, 1.0) is None


def test_deterministic_and_chunkable(pair):
    _, (images, captions, meta) = pair
    again, again_captions, _ = synthetic.generate_dataset(64, seed=3, resolution=32, data_version=3, batch=64)
    assert np.array_equal(again, images) and again_captions == captions
    middle, middle_captions, middle_meta = synthetic.generate_dataset(
        24, seed=3, resolution=32, data_version=3, first_image=8, batch=4)
    assert np.array_equal(middle, images[8:32]) and middle_captions == captions[8:32]
    assert [m["material"] for m in middle_meta] == [m["material"] for m in meta[8:32]]
    other, _, other_meta = synthetic.generate_dataset(64, seed=4, resolution=32, data_version=3)
    assert not np.array_equal(other, images)


# ------------------------------------------------------------------------------------------------- material draws


def test_material_share_and_draws():
    """The replacement draw alone (no rendering): share within a binomial range, every material drawn, colours as
    version 2 draws them, no held-out combination in train / test, and the dataset uses exactly these draws."""
    n = 400
    specs = [synthetic.draw_material_spec(0, "train", i, "box", (-0.8, 0.9), 30.0) for i in range(n)]
    drawn = [s for s in specs if s is not None]
    p = synthetic.MATERIAL_PROBABILITY_V3
    assert p == 0.15
    sigma = (n * p * (1 - p)) ** 0.5  # 7.1
    assert abs(len(drawn) - n * p) < 4 * sigma, len(drawn)
    assert {s.pattern for s in drawn} == set(W.MATERIALS)
    assert all(len(s.colors) == 1 and "part_factor" not in s.params for s in drawn)
    typical = sum(s.colors[0] in W.MATERIALS[s.pattern] for s in drawn) / len(drawn)
    assert typical > 0.6  # 0.6 drawn from the typical colours, plus the typical ones among the rest
    # an orange box is version 1's held-out combo ("box", any, "orange"): never in train / test
    forced = [synthetic.draw_material_spec(1, "test", i, "box", (-1.0, 1.0), 0.0, 1.0) for i in range(300)]
    assert not any("orange" in s.colors for s in forced)
    assert any("orange" in s.colors for s in
               (synthetic.draw_material_spec(1, "test", i, "sphere", (-1.0, 1.0), 0.0, 1.0) for i in range(300)))
    # the brick lattice follows the object's yaw about half the time
    bricks = [s for s in forced if s.pattern == "brick"]
    aligned = sum(s.params["yaw"] == pytest.approx(0.0) for s in bricks)
    assert 0 < aligned < len(bricks)
    # a version-2 draw of the same material is a valid spec of the same kind
    assert set(random_texture_spec_v2(np.random.default_rng(0), pattern="wood").params) == set(
        next(s for s in drawn if s.pattern == "wood").params)


def test_dataset_material_flags_match_the_draw(pair):
    _, (_, _, meta) = pair
    for m in meta[::4]:  # the y range only matters to gradient / halves, never drawn here
        spec = synthetic.draw_material_spec(3, "train", m["object"], m["shape"], (-1.0, 1.0),
                                            m["transform"]["yaw_deg"])
        assert (spec is not None) == m["material"]
        if spec is not None:
            assert spec.to_dict() == m["texture"]


# ------------------------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_v3_is_version_1s_plus_the_material_words(pair):
    v3 = W.vocabulary_for(3)
    assert isinstance(v3, tuple) and list(v3) == sorted(set(v3)) and v3 == W.VOCABULARY_V3
    assert set(v3) == set(W.VOCABULARY) | _material_caption_words()
    assert sorted(set(v3) - set(W.VOCABULARY)) == ["brick", "bricks", "camouflage", "made", "marble", "of", "wood",
                                                   "wooden"]  # fmt: skip
    assert set(W.MATERIAL_WORDS) == set(v3) - set(W.VOCABULARY) - {"made", "of"}
    assert W.vocabulary_groups(v3)["materials"] == list(W.MATERIAL_WORDS) and "materials" not in W.vocabulary_groups()
    assert W.patterns_for(3) == W.PATTERNS + tuple(W.MATERIALS) and W.nouns_for(3) == W.SHAPES
    assert W.DATA_VERSIONS == (1, 2, 3) and W.vocabulary_for(1) == W.VOCABULARY
    assert W.caption_templates_for(3) == W.CAPTION_TEMPLATES_V3
    for caption in pair[1][1]:
        assert set(W.caption_words(caption)) <= set(v3), caption
    with pytest.raises(ValueError, match="data_version"):
        W.vocabulary_for(4)


def test_fidelity_material_prompts_and_sample_prompts_are_in_the_v3_vocabulary():
    """fidelity.py --prompt-set materials --data-version 2 asks a version-3 prior only words it knows (with the
    default --noun object), and the version-3 sample prompts too."""
    fidelity = load_benchmark("fidelity")
    prompts = fidelity.select_prompts(["materials"], 2)
    assert len(prompts) == 12
    for _, prompt in prompts:
        text = prompt.text()
        assert not W.unknown_words(text, W.vocabulary_for(3)), text
    train_prior = load_benchmark("train_prior")
    assert train_prior.DEFAULT_SAMPLE_PROMPTS_V3[-1] == ""
    assert set(train_prior.DEFAULT_SAMPLE_PROMPTS) < set(train_prior.DEFAULT_SAMPLE_PROMPTS_V3)
    for prompt in train_prior.DEFAULT_SAMPLE_PROMPTS_V3:
        assert not W.unknown_words(prompt, W.vocabulary_for(3)), prompt
    assert sum(any(w in prompt for w in ("wooden", "brick", "marble", "camouflage"))
               for prompt in train_prior.DEFAULT_SAMPLE_PROMPTS_V3) == 2


# ----------------------------------------------------------------------------------------------------- role labels


def test_role_labels_of_version_3_captions():
    # material captions: the one colour is the base
    for material in W.MATERIALS:
        spec = TextureSpec(material, ("yellow",))
        for template in range(len(W.CAPTION_TEMPLATES_V2[material])):
            for suffix in ("", ", side view"):
                caption = spec.caption("box", suffix, template, version=2)
                roles = W.caption_color_roles(caption, 3)
                words = W.caption_words(caption)
                assert {w: r for w, r in zip(words, roles) if r != W.NO_ROLE} == {"yellow": 0}, caption
                assert all(r == W.NO_ROLE for r in W.caption_color_roles(caption, 1))
    # version-1 captions: what version 1 gives
    checked = 0
    for pattern in W.PATTERNS:
        for colours in (("red", "blue"), ("orange", "gray")):
            spec = TextureSpec(pattern, colours[:1] if pattern == "solid" else colours, {"direction": "diagonal"})
            for template in range(W.NUM_TEMPLATES):
                for noun in W.SHAPES + (W.GENERIC_NOUN,):
                    for suffix in SUFFIXES:
                        caption = spec.caption(noun, suffix, template)
                        assert W.caption_color_roles(caption, 3) == W.caption_color_roles(caption, 1), caption
                        checked += 1
    assert checked == 6 * 2 * 2 * 7 * 5


def test_caption_table_labels_material_captions():
    tokenizer = build_tokenizer(W.vocabulary_for(3))
    captions = ["a box made of red bricks, side view", "a green camouflage object", "a red and blue striped box"]
    table = CaptionTable(tokenizer, captions, torch.device("cpu"), W.nouns_for(3), data_version=3, role_labels=True)
    rows = table.roles[table.index]
    assert rows[0, 4] == 0 and int((rows[0] != IGNORE_ROLE).sum()) == 1  # "red"
    assert rows[1, 1] == 0 and int((rows[1] != IGNORE_ROLE).sum()) == 1  # "green"
    assert bool((rows[2] == IGNORE_ROLE).all())
    assert not bool((table.ids[table.index] == tokenizer.unk_token_id).any())  # one known token per word


# ---------------------------------------------------------------------------------------------------- train_prior


def test_train_prior_accepts_data_version_3(tmp_path):
    """A 3-step CPU run on 48 version-3 images with the role loss: the tokenizer is VOCABULARY_V3's, the samples use
    the version-3 prompts."""
    train_prior = load_benchmark("train_prior")
    out = tmp_path / "tiny_v3"
    argv = ["--out", str(out), "--device", "cpu", "--images", "48", "--steps", "3", "--batch", "8",
            "--eval-images", "0", "--sample-steps", "1", "--samples-per-prompt", "1", "--checkpoint-every", "0",
            "--data-version", "3", "--role-loss", "0.5", "--quiet"]  # fmt: skip
    record = train_prior.main(argv)
    assert record["args"]["data_version"] == 3 and record["data"]["train"]["data_version"] == 3
    assert record["training"]["steps"] == 3 and np.isfinite(record["training"]["final_role_loss"])
    assert record["samples"]["prompts"] == list(train_prior.DEFAULT_SAMPLE_PROMPTS_V3)
    config = json.loads((out / "tiny_prior_config.json").read_text())
    assert config["vocabulary"] == list(W.VOCABULARY_V3)
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--data-version", "4"])
