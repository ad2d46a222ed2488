"""Tests of the built-in prior's data version 2 (issue #15): shape families and the held-out irregular shapes,
part-scaled patterns, materials, role-bearing captions and contrasting pairs, the version-2 label set of the
attribute classifier, and that version 1's data is unchanged."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

from csdtex.cameras import make_cameras
from csdtex.mesh import Mesh
from csdtex.render.views import render_views
from csdtex.tinyprior import attributes as A
from csdtex.tinyprior import shapes_v2 as V
from csdtex.tinyprior import synthetic, synthetic_v2
from csdtex.tinyprior import textures as T
from csdtex.tinyprior import vocabulary as W

# Reference values of version 1's data, captured before data version 2 was added (generate_dataset(12, seed=5,
# views_per_object=3) and generate_dataset(8, seed=5, split="held_out", views_per_object=2)).
V1_CAPTIONS = [
    "a cone with a green to blue gradient, overhead view", "an object with a green to blue gradient, overhead view",
    "a green to blue gradient object, overhead view", "a gray object with cyan dots",
    "a gray box with cyan dots, overhead view", "a gray and cyan dotted box",
    "a brown to purple gradient object, side view", "", "an object with a brown to purple gradient, side view",
    "a cylinder with a blue to brown gradient, back view", "a blue to brown gradient object, overhead view", "",
]
V1_METADATA_SHA256 = "06019164864a7183bb47c3b704e012d0c6682b474ec33ff00f6a9858ba42dc32"  # without "coverage"
V1_PIXEL_SUMS = [1610810, 2691507, 1358551, 2171686, 2374999, 2394750, 1037519, 2051971, 2392027, 1185011, 1310416,
                 1725464]  # fmt: skip
V1_HELD_OUT_CAPTIONS = [
    "a purple cylinder", "a solid purple cylinder, front view", "a white and cyan dotted cone",
    "a white cone with cyan dots, back view", "a sphere that is white on top and black on the bottom, overhead view",
    "a sphere with a white top and a black bottom, front view", "a purple object, overhead view", "a purple cone",
]
V1_HELD_OUT_PIXEL_SUMS = [2518584, 1522050, 3092876, 2598300, 3087815, 1821302, 2968086, 1020889]


@pytest.fixture(scope="module")
def dataset_v2():
    """96 version-2 training images (about 1 s on two CPU cores)."""
    return synthetic.generate_dataset(96, seed=4, data_version=2)


def _sphere():
    t = np.linspace(0, np.pi, 24)
    vertices, faces = V._lathe(np.sin(t), -np.cos(t), 48)
    return Mesh(vertices, faces).to_render()


def _render(texture, elevation=15.0, azimuth=30.0, size=48):
    return render_views(_sphere(), texture, make_cameras(elevation, azimuth, 2.4, 50.0), size, background=1.0)


# ----------------------------------------------------------------------------------------------------- version 1


def test_version_1_data_is_unchanged():
    images, captions, metadata = synthetic.generate_dataset(12, seed=5, views_per_object=3)
    assert captions == V1_CAPTIONS
    without_coverage = [{k: v for k, v in m.items() if k != "coverage"} for m in metadata]
    assert hashlib.sha256(json.dumps(without_coverage, sort_keys=True).encode()).hexdigest() == V1_METADATA_SHA256
    sums = images.reshape(12, -1).astype(np.int64).sum(1)
    np.testing.assert_allclose(sums, V1_PIXEL_SUMS, rtol=2e-3)  # exact on the reference machine
    images, captions, _ = synthetic.generate_dataset(8, seed=5, split="held_out", views_per_object=2)
    assert captions == V1_HELD_OUT_CAPTIONS
    np.testing.assert_allclose(images.reshape(8, -1).astype(np.int64).sum(1), V1_HELD_OUT_PIXEL_SUMS, rtol=2e-3)
    assert "data_version" not in metadata[0] and len(W.VOCABULARY) == 48 and W.PATTERNS == W.PATTERNS_V2[:6]


def test_version_1_textures_paint_as_before():
    """A version-1 spec gives the same colours through the extended ProceduralTexture (no material path)."""
    rng = np.random.default_rng(0)
    specs = [T.random_texture_spec(rng, pattern=p) for p in W.PATTERNS]
    texture = T.ProceduralTexture(specs)
    assert texture.material_ids == ()
    points = torch.rand(500, 3) * 2 - 1
    materials = torch.arange(500) % len(specs)
    rgb = texture(points, None, materials)
    for k, spec in enumerate(specs):
        rows = materials == k
        alone = T.ProceduralTexture(spec)(points[rows])
        assert torch.equal(rgb[rows], alone)


# ------------------------------------------------------------------------------------------------------- shapes


def test_pool_meshes_are_deterministic_normalized_and_small():
    families = set()
    for index in range(40):
        mesh = V.pool_mesh_v2(3, 0, index)
        families.add(mesh.info["family"])
        radius = np.linalg.norm(mesh.positions, axis=1)
        assert radius.max() == pytest.approx(1.0, abs=1e-6)
        center = 0.5 * (mesh.positions.max(0) + mesh.positions.min(0))
        np.testing.assert_allclose(center, 0.0, atol=1e-6)
        assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.positions) and len(mesh.faces) <= 5000
        assert mesh.face_parts.shape == (len(mesh.faces),) and set(np.unique(mesh.face_parts)) == set(
            range(mesh.info["parts"]))
        assert np.isfinite(mesh.positions).all() and np.isfinite(mesh.normals).all()
        assert mesh.info["shape"] == V.family_noun(mesh.info)
    assert len(families) >= 7 and not families & set(V.HELD_OUT_FAMILIES)
    again = V.pool_mesh_v2(3, 0, 7)
    assert np.array_equal(again.positions, V.pool_mesh_v2(3, 0, 7).positions)
    assert not np.array_equal(again.positions[:10], V.pool_mesh_v2(3, 1, 7).positions[:10])


@pytest.mark.parametrize("family", V.FAMILIES_V2)
def test_every_family_builds_valid_meshes(family):
    for seed in range(3):
        mesh = V.make_family_mesh(family, np.random.default_rng(seed))
        assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
        assert 0 < len(mesh.faces) <= 5000 and mesh.faces.max() < len(mesh.vertices)
        assert mesh.info["family"] == family and mesh.num_parts >= 1
        assert mesh.info["noun"] in W.nouns_for(2) + (W.GENERIC_NOUN,)


def test_held_out_shapes_are_never_built_for_the_data(monkeypatch):
    assert not set(V.FAMILIES_V2) & set(V.HELD_OUT_FAMILIES) and V.FAMILY_WEIGHTS_V2.keys() == set(V.FAMILIES_V2)

    def forbidden(rng):
        raise AssertionError("a held-out shape was built for the synthetic data")

    for name in V.HELD_OUT_FAMILIES:
        monkeypatch.setitem(V._HELD_OUT_BUILDERS, name, forbidden)
    for split in synthetic.SPLITS:
        _, _, metadata = synthetic.generate_dataset(24, seed=1, split=split, data_version=2, views_per_object=1)
        assert not {m["family"] for m in metadata} & set(V.HELD_OUT_FAMILIES)


def test_held_out_meshes_for_the_benchmark():
    assert V.held_out_names() == ("proc:quadruped", "proc:teapot")
    for name in V.held_out_names():
        mesh = V.held_out_mesh(name)
        assert mesh.info["family"] == name[5:] and 4 <= mesh.num_parts and len(mesh.faces) <= 5000
        assert np.array_equal(mesh.vertices, V.held_out_mesh(name).vertices)  # deterministic
        assert not np.array_equal(mesh.vertices[:50], V.held_out_mesh(name + "-1").vertices[:50])
        render = mesh.to_mesh().to_render()
        assert float(render.positions.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown held-out shape"):
        V.held_out_mesh("proc:cow")
    fidelity = load_benchmark("fidelity")
    assert set(fidelity.IRREGULAR_MESHES) == set(V.held_out_names())
    name, mesh = fidelity.load_benchmark_mesh("proc:teapot")
    assert name == "teapot" and mesh.num_faces == len(V.held_out_mesh("teapot").faces)


def test_part_sizes_and_pattern_scale():
    table = V.make_family_mesh("table", np.random.default_rng(2))
    sizes = V.part_sizes(table.vertices, table.faces, table.face_parts)
    assert sizes[0] > 4 * sizes[1:].max()  # the top is much wider than the (thin) legs
    spec = T.TextureSpec("stripes", ("red", "blue"), {"direction": "horizontal", "axis": [0, 1, 0], "period": 0.8,
                                                       "phase": 0.0})  # fmt: skip
    assert spec.scaled(1.0).params["period"] == 0.8
    assert spec.scaled(0.5).params["period"] == pytest.approx(0.4)
    assert spec.scaled(0.01).params["period"] == pytest.approx(T.MIN_FEATURE_SIZE["stripes"])
    dots = T.TextureSpec("dots", ("red", "blue"), {"period": 0.4, "radius": 0.1, "offset": [0, 0, 0]}).scaled(0.6)
    assert dots.params["radius"] / dots.params["period"] == pytest.approx(0.25)
    assert T.TextureSpec("halves", ("red", "blue"), {"split_y": 0.1}).scaled(0.1).params == {"split_y": 0.1}
    assert T.part_scale_factor(10.0) == 1.0 and 0 < T.part_scale_factor(0.1) < 0.5


def test_render_objects_paints_each_part_with_its_own_spec():
    left = V._box([-0.5, 0, 0], [0.6, 0.6, 0.6])
    right = V._box([0.5, 0, 0], [0.6, 0.6, 0.6])
    mesh = Mesh(np.concatenate([left[0], right[0]]), np.concatenate([left[1], right[1] + 8]),
                face_materials=np.repeat([0, 1], 12))  # fmt: skip
    render = mesh.to_render()
    render.num_materials = 2
    texture = T.ProceduralTexture([T.TextureSpec("solid", ("red",)), T.TextureSpec("solid", ("blue",))])
    image, mask = synthetic.render_objects([render], texture, make_cameras(0.0, 0.0, 3.0, 50.0),
                                           torch.zeros(1, dtype=torch.long), 32)  # fmt: skip
    row = image[0, 16][mask[0, 16]]
    assert bool((row[:3, 0] > 0.7).all()) and bool((row[-3:, 2] > 0.7).all())  # red on the left, blue on the right


# ----------------------------------------------------------------------------------------------------- materials


def test_material_textures_differ_and_keep_their_colour():
    rng = np.random.default_rng(5)
    images = {}
    for material in W.MATERIALS:
        spec = T.random_texture_spec_v2(rng, pattern=material, colors=("brown",), color_jitter=0.0)
        texture = T.ProceduralTexture(spec)
        out = _render(texture)
        pixels = out.image[0][out.mask[0]]
        other = texture.second_color_weight(_sphere().positions) > 0.25
        assert 0.03 < float(other.float().mean()) < 0.75, material  # the pattern is visible, the colour dominates
        median = pixels.median(dim=0).values
        brown = torch.tensor(W.COLORS["brown"])
        assert float((median - brown).abs().max()) < 0.12, (material, median)
        images[material] = out.image[0]
    names = list(images)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert float((images[names[i]] - images[names[j]]).abs().mean()) > 0.01, (names[i], names[j])
    assert T.material_palette("marble", W.COLORS["black"])[1].mean() > 0.5  # black marble: light veins
    assert T.material_palette("marble", W.COLORS["white"])[1].mean() < 0.6  # white marble: grey veins


def test_noise_is_deterministic_and_in_range():
    points = torch.rand(2000, 3) * 20 - 10
    a = T.fbm(points)
    assert torch.equal(a, T.fbm(points.clone())) and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert 0.4 < float(a.mean()) < 0.6 and float(a.std()) > 0.05
    assert float((T.value_noise(points) - T.value_noise(points + 0.5)).abs().mean()) > 0.05


# ------------------------------------------------------------------------------------------------------ captions


def _colour_before(words, targets):
    """The colour word closest before the first of ``targets`` in ``words``."""
    index = min(words.index(t) for t in targets if t in words)
    return next(w for w in reversed(words[:index]) if w in W.COLORS)


def test_role_templates_bind_the_same_role_in_every_word_order():
    halves = T.TextureSpec("halves", ("red", "blue"), {"split_y": 0.0})
    gradient = T.TextureSpec("gradient", ("red", "blue"), {"y_range": [-1.0, 1.0]})
    dots = T.TextureSpec("dots", ("red", "blue"), {"period": 0.3, "radius": 0.08, "offset": [0, 0, 0]})
    for template in range(len(W.CAPTION_TEMPLATES_V2["halves"])):
        assert _colour_before(W.caption_words(halves.caption("cup", "", template, version=2)), ["top"]) == "red"
    for template in range(len(W.CAPTION_TEMPLATES_V2["dots"])):
        words = W.caption_words(dots.caption("cup", "", template, version=2))
        assert _colour_before(words, ["dots", "dotted"]) == "blue"
    for template in range(len(W.CAPTION_TEMPLATES_V2["gradient"])):
        words = W.caption_words(gradient.caption("cup", "", template, version=2))
        first = next(w for w in words if w in W.COLORS)
        assert first == ("blue" if "bottom" in words and words.index("bottom") < words.index("top") else "red")
    assert dots.caption("table", ", side view", 2, version=2) == "blue dots on a red table, side view"
    assert halves.caption("object", "", 2, version=2) == "an object with a blue bottom and a red top"
    with pytest.raises(ValueError, match="version=2"):
        T.TextureSpec("wood", ("brown",), {}).caption("box")
    assert T.TextureSpec("wood", ("brown",), {}).caption("box", version=2) == "a brown wooden box"
    assert T.TextureSpec("marble", ("white",), {}).caption("vase", version=2) == "a white marble vase"


def test_caption_role_swap_changes_the_texture():
    rng = np.random.default_rng(0)
    checks = {
        "dots": lambda img, m: img[m].median(dim=0).values,  # the base colour covers most of the surface
        "halves": lambda img, m: img[m.nonzero()[:, 0].min() + 1][m[m.nonzero()[:, 0].min() + 1]].mean(0),  # top row
        "gradient": lambda img, m: img[m.nonzero()[:, 0].min() + 1][m[m.nonzero()[:, 0].min() + 1]].mean(0),
    }
    for pattern, feature in checks.items():
        spec = T.random_texture_spec_v2(rng, pattern=pattern, colors=("yellow", "black"), y_range=(-1.0, 1.0),
                                        color_jitter=0.0)  # fmt: skip
        partner = T.contrast_partner(spec, rng)
        assert partner.colors == ("black", "yellow") and partner.params == spec.params
        first, second = _render(T.ProceduralTexture(spec)), _render(T.ProceduralTexture(partner))
        a = feature(first.image[0], first.mask[0])
        b = feature(second.image[0], second.mask[0])
        assert float(a.mean()) > 0.45 > float(b.mean()), pattern  # yellow where the first is, black in the partner
        for template in range(len(W.CAPTION_TEMPLATES_V2[pattern])):
            one, other = spec.caption("object", "", template, 2), partner.caption("object", "", template, 2)
            assert one != other and sorted(W.caption_words(one)) == sorted(W.caption_words(other))
    stripes = T.random_texture_spec_v2(rng, pattern="stripes", colors=("red", "white"))
    turned = T.contrast_partner(stripes, rng)
    assert turned.params["direction"] != stripes.params["direction"] and turned.colors == stripes.colors
    for template in W.DIRECTION_TEMPLATES:
        assert turned.params["direction"] in turned.caption("cup", "", template, version=2)
        assert T.pair_template("stripes", rng) in W.DIRECTION_TEMPLATES
    assert float((_render(T.ProceduralTexture(stripes)).image - _render(T.ProceduralTexture(turned)).image)
                 .abs().mean()) > 0.02  # fmt: skip


def test_v2_vocabulary_covers_every_caption_form():
    rng = np.random.default_rng(1)
    vocabulary = set(W.VOCABULARY_V2)
    assert set(W.VOCABULARY) < vocabulary and W.vocabulary_for(1) == W.VOCABULARY and list(W.VOCABULARY_V2) == sorted(
        W.VOCABULARY_V2)
    for pattern in W.PATTERNS_V2:
        spec = T.random_texture_spec_v2(rng, pattern=pattern)
        for template in range(len(W.CAPTION_TEMPLATES_V2[pattern])):
            for noun in W.nouns_for(2) + (W.GENERIC_NOUN,):
                caption = spec.caption(noun, ", side view", template, version=2)
                assert set(W.caption_words(caption)) <= vocabulary, caption
                assert caption == caption.lower() and "  " not in caption
    train_prior = load_benchmark("train_prior")
    for prompt in train_prior.DEFAULT_SAMPLE_PROMPTS_V2:
        assert not W.unknown_words(prompt, W.VOCABULARY_V2), prompt
    groups = W.vocabulary_groups(W.VOCABULARY_V2)
    assert "table" in groups["shapes"] and "table" not in W.vocabulary_groups()["shapes"]


# ------------------------------------------------------------------------------------------------------- dataset


def test_v2_dataset_is_deterministic_and_chunkable():
    a_images, a_captions, a_meta = synthetic.generate_dataset(24, seed=11, batch=4, data_version=2)
    b_images, b_captions, _ = synthetic.generate_dataset(24, seed=11, batch=24, data_version=2)
    assert a_images.shape == (24, 64, 64, 3) and np.array_equal(a_images, b_images) and a_captions == b_captions
    middle, middle_captions, middle_meta = synthetic.generate_dataset(8, seed=11, batch=8, first_image=8,
                                                                      data_version=2)  # fmt: skip
    assert np.array_equal(middle, a_images[8:16]) and middle_captions == a_captions[8:16]
    assert [m["pair"] for m in middle_meta] == [m["pair"] for m in a_meta[8:16]]
    prefix, _, _ = synthetic.generate_dataset(12, seed=11, data_version=2)
    assert np.array_equal(prefix, a_images[:12])
    other, _, _ = synthetic.generate_dataset(24, seed=12, data_version=2)
    assert not np.array_equal(other, a_images)
    v1, _, _ = synthetic.generate_dataset(24, seed=11)
    assert not np.array_equal(v1, a_images)
    with pytest.raises(ValueError, match="data_version"):
        synthetic.generate_dataset(4, data_version=4)  # DATA_VERSIONS = (1, 2, 3)


def test_parallel_generation_matches_one_call_with_metadata():
    """generate_dataset_parallel (what the classifier and prior scripts use) assembles exactly one call's dataset,
    metadata included, for the classifier's options (one view per object, lit views, split test)."""
    options = dict(seed=5, split="test", views_per_object=1, lit_probability=0.3, data_version=2)
    expected = synthetic.generate_dataset(70, **options)
    images, captions, metadata = synthetic.generate_dataset_parallel(70, 2, **options)
    assert np.array_equal(images, expected[0]) and captions == expected[1] and metadata == expected[2]
    with pytest.raises(ValueError, match="first_image"):
        synthetic.generate_dataset_parallel(70, 2, first_image=4)


def test_v2_dataset_captions_and_metadata(dataset_v2):
    images, captions, metadata = dataset_v2
    vocabulary = set(W.VOCABULARY_V2)
    assert images.dtype == np.uint8 and len(captions) == len(metadata) == 96
    for caption, meta in zip(captions, metadata):
        assert meta["data_version"] == 2 and meta["caption"] == caption
        assert set(W.caption_words(caption)) <= vocabulary, caption
        assert len(meta["part_factors"]) == meta["mesh"]["parts"]
        assert all(0.0 < f <= 1.0 for f in meta["part_factors"])
        if caption:
            words = W.caption_words(caption)
            assert meta["noun"] in words and set(meta["texture"]["colors"]) <= set(words)
        spec = T.TextureSpec(meta["texture"]["pattern"], tuple(meta["texture"]["colors"]))
        assert not any(spec.matches(meta["shape"], combo) for combo in synthetic_v2.HELD_OUT_COMBOS_V2)
    assert len({m["family"] for m in metadata}) >= 6
    assert len({m["texture"]["pattern"] for m in metadata}) >= 7
    assert 0.2 < np.mean([m["coverage"] for m in metadata]) < 0.9


def test_v2_dataset_contrasting_pairs(dataset_v2):
    _, _, metadata = dataset_v2
    objects = {m["object"]: m for m in metadata}
    pairs = [(o, m) for o, m in objects.items() if m["pair"] and m["pair"]["role"] == "partner"]
    assert pairs, "no contrasting pair among 24 objects"
    for index, partner in pairs:
        first = objects[index - 1]
        assert first["pair"] == {"role": "first", "partner": index}
        assert first["mesh_pool_index"] == partner["mesh_pool_index"] and first["transform"] == partner["transform"]
        a, b = first["texture"], partner["texture"]
        assert a["pattern"] == b["pattern"] and a["pattern"] in W.ROLE_PATTERNS
        if a["pattern"] == "stripes":
            assert a["params"]["direction"] != b["params"]["direction"] and a["colors"] == b["colors"]
        else:
            assert a["colors"] == b["colors"][::-1] and a["params"] == b["params"]
    _, _, held = synthetic.generate_dataset(16, seed=4, split="held_out", data_version=2)
    assert all(m["pair"] is None for m in held)
    for m in held:
        spec = T.TextureSpec(m["texture"]["pattern"], tuple(m["texture"]["colors"]))
        assert any(spec.matches(m["shape"], combo) for combo in synthetic_v2.HELD_OUT_COMBOS_V2)


# ----------------------------------------------------------------------------------------- text encoder, classifier


def test_text_encoder_sees_word_order():
    """The T5 encoder has relative position biases: swapping two words changes the states of the other words too
    (a position-free encoder would give the word "dots" the same state in both captions)."""
    from csdtex.tinyprior.model import build_tiny_prior, encode_captions

    prior = build_tiny_prior(seed=0, words=W.VOCABULARY_V2)
    assert "\u2581wooden" in prior.tokenizer.get_vocab() and len(prior.tokenizer) == len(W.VOCABULARY_V2) + 3
    assert prior.text_encoder.config.relative_attention_num_buckets > 0
    with torch.no_grad():
        states = encode_captions(prior.tokenizer, prior.text_encoder,
                                 ["a yellow object with black dots", "a black object with yellow dots"])  # fmt: skip
    dots = 5  # a, yellow / black, object, with, black / yellow, dots
    assert float((states[0, dots] - states[1, dots]).abs().max()) > 1e-3
    swapped = states[1, [0, 4, 2, 3, 1, 5]]  # the second caption's states, its words put back in the first's order
    assert float((states[0, :6] - swapped).abs().max()) > 1e-3


def test_classifier_label_set_2_round_trip(tmp_path):
    assert A.label_version(W.PATTERNS) == 1 and A.label_version(W.PATTERNS_V2) == 2
    with pytest.raises(ValueError):
        A.label_version(("solid", "wood"))
    torch.manual_seed(0)
    model = A.AttributeClassifier((8, 8), 16, patterns=A.LABEL_SETS[2]).eval()
    weights, _ = A.save_classifier(model, tmp_path / "attributes.safetensors")
    loaded = A.load_classifier(weights)
    assert loaded.patterns == W.PATTERNS_V2
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    prediction = A.classify_views(frames, loaded)
    assert prediction.pattern_probs.shape == (10,) and prediction.pattern in W.PATTERNS_V2
    assert set(prediction.to_dict()["pattern_probs"]) == set(W.PATTERNS_V2)
    assert set(prediction.score(("brown",), "wood")) >= {"color_correct", "pattern_correct"}
    shipped = A.load_classifier()  # version 1 still loads, with its 6 patterns
    assert A.label_version(shipped.patterns) == 1


def test_caption_table_hides_v2_nouns():
    from csdtex.tinyprior.model import build_tokenizer
    from csdtex.tinyprior.training import CaptionTable

    tokenizer = build_tokenizer(W.VOCABULARY_V2)
    table = CaptionTable(tokenizer, ["a brown wooden table", "a red sphere"], torch.device("cpu"), W.nouns_for(2))
    unk = tokenizer.unk_token_id
    table_id = tokenizer.convert_tokens_to_ids("\u2581table")
    assert (table.ids == table_id).any() and not (table.ids_unk == table_id).any()
    assert int((table.ids_unk == unk).sum()) == 2  # "table" and "sphere"
