"""Tests of csdtex.tinyprior's synthetic data: vocabulary and captions, procedural textures and meshes, batched
rendering, datasets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from csdtex import tinyprior as S
from csdtex.cameras import make_cameras
from csdtex.guidance.prompts import VIEW_SUFFIXES, view_suffix
from csdtex.render.views import render_views


@pytest.fixture(scope="module")
def dataset():
    """400 training images (about 2 s on two CPU cores)."""
    return S.generate_dataset(400, seed=7)


def _sphere(device="cpu"):
    mesh, _ = S.make_shape_mesh("sphere", np.random.default_rng(0), deform=False)
    return mesh.to_render(device)


# ------------------------------------------------------------------------------------------------------- vocabulary


def test_vocabulary_contents():
    assert len(S.COLORS) == 12
    assert all(len(rgb) == 3 and all(0.0 <= v <= 1.0 for v in rgb) for rgb in S.COLORS.values())
    vocabulary = set(S.VOCABULARY)
    assert set(S.COLORS) <= vocabulary and set(S.SHAPES) <= vocabulary and set(S.STRIPE_DIRECTIONS) <= vocabulary
    assert {"front", "side", "back", "overhead", "view", ",", "object", "a", "an"} <= vocabulary
    assert S.VIEW_SUFFIXES == VIEW_SUFFIXES
    assert list(S.VOCABULARY) == sorted(S.VOCABULARY)


def test_every_caption_form_uses_only_the_vocabulary():
    rng = np.random.default_rng(0)
    vocabulary = set(S.VOCABULARY)
    for pattern in S.PATTERNS:
        for _ in range(20):
            spec = S.random_texture_spec(rng, pattern=pattern)
            for template in range(S.NUM_TEMPLATES):
                for noun in S.SHAPES + (S.GENERIC_NOUN,):
                    for suffix in ("",) + VIEW_SUFFIXES:
                        caption = spec.caption(noun, suffix, template)
                        assert set(S.caption_words(caption)) <= vocabulary, caption
                        assert caption == caption.lower() and "  " not in caption


def test_caption_examples_and_articles():
    striped = S.TextureSpec("stripes", ("red", "blue"), {"direction": "vertical", "axis": [1, 0, 0], "period": 0.4,
                                                          "phase": 0.0})  # fmt: skip
    assert striped.caption("box", ", side view") == "a red and blue striped box, side view"
    assert striped.caption("box", "", 1) == "a box with red and blue vertical stripes"
    assert S.TextureSpec("solid", ("green",)).caption("sphere", "", 1) == "a solid green sphere"
    assert S.TextureSpec("solid", ("orange",)).caption("cone") == "an orange cone"
    halves = S.TextureSpec("halves", ("yellow", "black"), {"split_y": 0.0})
    expected = "an object with a yellow top and a black bottom, overhead view"
    assert halves.caption("object", ", overhead view") == expected
    with pytest.raises(ValueError):
        S.TextureSpec("stripes", ("red",))
    with pytest.raises(ValueError):
        S.TextureSpec("solid", ("teal",))
    with pytest.raises(ValueError):
        striped.caption("vase")


# ---------------------------------------------------------------------------------------------------------- textures


def test_texture_patterns_as_functions_of_position():
    red, blue = np.array(S.COLORS["red"]), np.array(S.COLORS["blue"])

    def paint(spec, points):
        return S.ProceduralTexture(spec)(torch.tensor(points, dtype=torch.float32)).numpy()

    stripes = S.TextureSpec("stripes", ("red", "blue"), {"direction": "horizontal", "axis": [0, 1, 0],
                                                          "period": 0.4, "phase": 0.0})  # fmt: skip
    out = paint(stripes, [[0.3, 0.05, 0.1], [-0.5, 0.25, 0.7], [0.0, 0.45, 0.0]])
    np.testing.assert_allclose(out, [red, blue, red], atol=1e-6)  # bands of 0.2 stacked along +Y
    checker = S.TextureSpec("checkerboard", ("red", "blue"), {"period": 0.5, "offset": [0, 0, 0]})
    out = paint(checker, [[0.1, 0.1, 0.1], [0.6, 0.1, 0.1], [0.6, 0.6, 0.1]])
    np.testing.assert_allclose(out, [red, blue, red], atol=1e-6)
    dots = S.TextureSpec("dots", ("red", "blue"), {"period": 0.4, "radius": 0.1, "offset": [0, 0, 0]})
    out = paint(dots, [[0.4, 0.0, 0.0], [0.2, 0.2, 0.2]])
    np.testing.assert_allclose(out, [blue, red], atol=1e-6)  # lattice point = dot colour, between = base colour
    gradient = S.TextureSpec("gradient", ("red", "blue"), {"y_range": [-0.5, 0.5]})
    out = paint(gradient, [[0, 0.5, 0], [0, 0.0, 0], [0, -0.5, 0]])
    np.testing.assert_allclose(out, [red, (red + blue) / 2, blue], atol=1e-6)  # first colour at the top
    halves = S.TextureSpec("halves", ("red", "blue"), {"split_y": 0.1})
    np.testing.assert_allclose(paint(halves, [[0, 0.2, 0], [0, 0.0, 0]]), [red, blue], atol=1e-6)


def test_multi_spec_texture_selects_by_material():
    texture = S.ProceduralTexture([S.TextureSpec("solid", ("red",)), S.TextureSpec("solid", ("cyan",))])
    points = torch.zeros(4, 3)
    out = texture(points, None, torch.tensor([0, 1, 1, 0]))
    expected = torch.tensor([S.COLORS["red"], S.COLORS["cyan"], S.COLORS["cyan"], S.COLORS["red"]])
    torch.testing.assert_close(out, expected)
    assert S.ProceduralTexture.uses_uvs is False


def test_renders_show_the_texture_colours():
    mesh = _sphere()
    cameras = make_cameras(0.0, 0.0, 2.4, 50.0)
    red = render_views(mesh, S.ProceduralTexture(S.TextureSpec("solid", ("red",))), cameras, 48, background=1.0)
    covered = red.image[red.mask]
    assert red.mask.float().mean() > 0.2
    torch.testing.assert_close(covered.mean(0), torch.tensor(S.COLORS["red"]), atol=1e-5, rtol=0)
    assert torch.all(red.image[~red.mask] == 1.0)

    halves = S.TextureSpec("halves", ("yellow", "blue"), {"split_y": 0.0})
    out = render_views(mesh, S.ProceduralTexture(halves), cameras, 48, background=1.0)
    rows = torch.nonzero(out.mask[0])[:, 0]
    top = out.image[0][out.mask[0] & (torch.arange(48)[:, None] < rows.float().mean() - 4)]
    bottom = out.image[0][out.mask[0] & (torch.arange(48)[:, None] > rows.float().mean() + 4)]
    torch.testing.assert_close(top.mean(0), torch.tensor(S.COLORS["yellow"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(bottom.mean(0), torch.tensor(S.COLORS["blue"]), atol=1e-5, rtol=0)

    spec = S.TextureSpec("stripes", ("red", "blue"), {"direction": "vertical", "axis": [1, 0, 0], "period": 0.5,
                                                       "phase": 0.0})  # fmt: skip
    out = render_views(mesh, S.ProceduralTexture(spec), cameras, 48, background=1.0)
    colors = out.image[out.mask]
    is_red = (colors - torch.tensor(S.COLORS["red"])).abs().amax(-1) < 1e-5
    is_blue = (colors - torch.tensor(S.COLORS["blue"])).abs().amax(-1) < 1e-5
    assert bool((is_red | is_blue).all()) and 0.2 < is_red.float().mean() < 0.8


# ------------------------------------------------------------------------------------------------------------ meshes


@pytest.mark.parametrize("shape", S.SHAPES)
def test_shapes_build_valid_meshes(shape):
    for deform in (False, True):
        mesh, info = S.make_shape_mesh(shape, np.random.default_rng(1), deform=deform)
        assert info["shape"] == shape and info["deformed"] is deform
        assert 100 < mesh.num_faces < 3000 and np.isfinite(mesh.vertices).all()
        assert mesh.faces.min() >= 0 and mesh.faces.max() < mesh.num_vertices
        render = mesh.to_render()
        assert float(render.positions.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)


def test_render_objects_matches_render_views():
    rng = np.random.default_rng(3)
    meshes = [S.make_shape_mesh(s, rng)[0].to_render() for s in ("box", "torus")]
    specs = [S.random_texture_spec(rng, pattern="checkerboard"), S.random_texture_spec(rng, pattern="stripes")]
    cameras = make_cameras([10.0, 40.0, -5.0], [0.0, 120.0, -60.0], [1.8, 2.0, 1.6], [50.0, 60.0, 45.0])
    view_object = torch.tensor([0, 1, 1])
    backgrounds = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.3, 0.4], [0.9, 0.1, 0.5]])
    for shading in ("albedo", "lit"):
        images, masks = S.render_objects(meshes, S.ProceduralTexture(specs), cameras, view_object, 40,
                                         background=backgrounds, shading=shading)  # fmt: skip
        for b in range(3):
            k = int(view_object[b])
            single = make_cameras(cameras.elevation_deg[b], cameras.azimuth_deg[b], cameras.distance[b],
                                  cameras.fov_deg[b])  # fmt: skip
            ref = render_views(meshes[k], S.ProceduralTexture(specs[k]), single, 40, background=backgrounds[b],
                               shading=shading)  # fmt: skip
            assert torch.equal(masks[b], ref.mask[0])
            torch.testing.assert_close(images[b], ref.image[0], atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------------------- dataset


def test_dataset_is_deterministic_and_independent_of_batching():
    a_images, a_captions, a_meta = S.generate_dataset(20, seed=11, batch=4)
    b_images, b_captions, b_meta = S.generate_dataset(20, seed=11, batch=20)
    assert a_images.dtype == np.uint8 and a_images.shape == (20, 64, 64, 3)
    assert np.array_equal(a_images, b_images) and a_captions == b_captions
    assert [m["texture"] for m in a_meta] == [m["texture"] for m in b_meta]
    prefix_images, prefix_captions, _ = S.generate_dataset(10, seed=11, batch=8)
    assert np.array_equal(prefix_images, a_images[:10]) and prefix_captions == a_captions[:10]
    c_images, _, _ = S.generate_dataset(20, seed=12, batch=4)
    assert not np.array_equal(a_images, c_images)
    d_images, _, _ = S.generate_dataset(20, seed=11, split="test", batch=4)
    assert not np.array_equal(a_images, d_images)


def test_dataset_chunks_are_slices_of_the_whole():
    whole, captions, meta = S.generate_dataset(20, seed=11, batch=8)
    middle, middle_captions, middle_meta = S.generate_dataset(10, seed=11, batch=8, first_image=8)
    assert np.array_equal(middle, whole[8:18]) and middle_captions == captions[8:18]
    assert [m["object"] for m in middle_meta] == [m["object"] for m in meta[8:18]]
    with pytest.raises(ValueError, match="multiple of views_per_object"):
        S.generate_dataset(4, seed=11, first_image=2)


def test_dataset_captions(dataset):
    images, captions, metadata = dataset
    assert len(images) == len(captions) == len(metadata) == 400
    vocabulary = set(S.VOCABULARY)
    empty = np.mean([c == "" for c in captions])
    assert 0.10 <= empty <= 0.20
    suffixes_seen = set()
    for caption, meta in zip(captions, metadata):
        assert meta["caption"] == caption
        assert meta["view_suffix"] == view_suffix(meta["elevation"], meta["azimuth"])
        assert set(S.caption_words(caption)) <= vocabulary, caption
        carried = [s for s in VIEW_SUFFIXES if caption.endswith(s)]
        if carried:
            assert carried == [meta["view_suffix"]], (caption, meta["elevation"], meta["azimuth"])
            suffixes_seen.add(carried[0])
        if caption:
            noun = meta["noun"]
            assert noun in (meta["shape"], S.GENERIC_NOUN) and noun in S.caption_words(caption)
            assert all(c in S.caption_words(caption) for c in meta["texture"]["colors"])
    assert suffixes_seen == set(VIEW_SUFFIXES)
    with_suffix = np.mean([any(c.endswith(s) for s in VIEW_SUFFIXES) for c in captions if c])
    assert 0.7 < with_suffix < 0.9
    assert {m["texture"]["pattern"] for m in metadata} == set(S.PATTERNS)
    assert {m["shape"] for m in metadata} == set(S.SHAPES)


def test_dataset_images_follow_their_metadata(dataset):
    images, _, metadata = dataset
    coverage = np.array([m["coverage"] for m in metadata])
    assert 0.2 < coverage.mean() < 0.9
    for i, meta in enumerate(metadata):
        if meta["texture"]["pattern"] != "solid" or meta["lit"] or meta["coverage"] < 0.1:
            continue
        image = images[i].astype(np.float64) / 255.0
        background = np.array(meta["background"])
        color = np.array(meta["texture"]["rgb"][0])
        object_pixels = np.abs(image - background).max(-1) > 2.5 / 255  # pixels that are not background
        if object_pixels.mean() < 0.05:
            continue  # object and background happen to share the colour
        np.testing.assert_allclose(np.median(image[object_pixels], axis=0), color, atol=2.5 / 255)
    whites = [i for i, m in enumerate(metadata) if m["background"] == [1.0, 1.0, 1.0]]
    assert 0.4 < len(whites) / len(metadata) < 0.6
    corners = images[whites][:, [0, 0, -1, -1], [0, -1, 0, -1]]
    uncovered = [m["coverage"] < 0.5 for m in np.array(metadata)[whites]]
    assert (corners[uncovered] == 255).mean() > 0.9


def test_solid_colours_differ_as_expected():
    images = {}
    for color in ("red", "blue"):
        mesh = _sphere()
        texture = S.ProceduralTexture(S.TextureSpec("solid", (color,)))
        images[color] = render_views(mesh, texture, make_cameras(20.0, 30.0, 2.2, 50.0), 32, background=1.0)
    mask = images["red"].mask[0]
    red, blue = images["red"].image[0], images["blue"].image[0]
    assert torch.equal(mask, images["blue"].mask[0])
    assert torch.all(red[~mask] == blue[~mask])
    assert bool((red[mask][:, 0] > 0.7).all() and (red[mask][:, 2] < 0.2).all())
    assert bool((blue[mask][:, 2] > 0.7).all() and (blue[mask][:, 0] < 0.2).all())


def test_held_out_split():
    _, _, train = S.generate_dataset(48, seed=2, split="train", views_per_object=2)
    _, _, held = S.generate_dataset(48, seed=2, split="held_out", views_per_object=2)

    def combos(meta):
        spec = S.TextureSpec(meta["texture"]["pattern"], tuple(meta["texture"]["colors"]))
        return [c for c in S.HELD_OUT_COMBOS if spec.matches(meta["shape"], c)]

    assert all(not combos(m) for m in train)
    assert all(combos(m) for m in held)
    assert len({m["texture"]["pattern"] for m in held}) >= 3


def test_shard_round_trip(tmp_path, dataset):
    images, captions, metadata = dataset
    path = S.save_shard(tmp_path / "shard", images[:10], captions[:10], metadata[:10])
    assert path.suffix == ".npz"
    loaded_images, loaded_captions, loaded_meta = S.load_shard(path)
    assert np.array_equal(loaded_images, images[:10]) and loaded_captions == captions[:10]
    assert loaded_meta == [dict(m) for m in metadata[:10]]
    S.save_shard(tmp_path / "plain.npz", images[:3], captions[:3])
    _, _, none = S.load_shard(tmp_path / "plain.npz")
    assert none is None
    with pytest.raises(ValueError):
        S.save_shard(tmp_path / "bad.npz", images[:3].astype(np.float32), captions[:3])


def test_view_suffix_rule_is_the_design_rule():
    assert view_suffix(0.0, 10.0) == ", front view"
    assert view_suffix(70.0, 10.0) == ", overhead view"
    assert view_suffix(0.0, 170.0) == ", back view"
    assert view_suffix(0.0, -90.0) == ", side view"
    assert math.isclose(S.DATA_CAMERAS.elevation_deg[1], 75.0)
