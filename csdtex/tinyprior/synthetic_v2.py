"""Synthetic captioned renders of data version 2 (issue #15): :func:`generate_dataset_v2`, reached through
``csdtex.tinyprior.synthetic.generate_dataset(..., data_version=2)``.

What changes from version 1 (:mod:`csdtex.tinyprior.synthetic`, unchanged and still the default):

- **Meshes**: pools of :func:`csdtex.tinyprior.shapes_v2.pool_mesh_v2` (version-1 primitives, some bent, plus tubes,
  bowls, cups, vases, tables, chairs, thin-limbed creatures and stacked assemblies; :data:`MESH_POOL_SIZE_V2` meshes
  per split), each placed with the version-1 random scale and yaw. The held-out irregular shapes
  (:data:`csdtex.tinyprior.shapes_v2.HELD_OUT_FAMILIES`: quadruped, teapot) are in no split.
- **Pattern scale tied to the surface**: every part of a mesh gets the object's texture with its feature size
  multiplied by :func:`csdtex.tinyprior.textures.part_scale_factor` of the part's size
  (:func:`csdtex.tinyprior.shapes_v2.part_sizes`, measured after placement), floored at
  :data:`csdtex.tinyprior.textures.MIN_FEATURE_SIZE`: legs and handles show finer stripes / dots / cells than the
  body, all still >= ~2 px. Gradient and halves stay global (the object's vertical extent).
- **Textures**: :func:`csdtex.tinyprior.textures.random_texture_spec_v2` (materials: wood, marble, brick,
  camouflage); brick lattices follow the object's yaw half of the time.
- **Captions**: :data:`csdtex.tinyprior.vocabulary.CAPTION_TEMPLATES_V2` (role-bearing phrasings in both word
  orders, materials, new nouns) over :data:`csdtex.tinyprior.vocabulary.VOCABULARY_V2`.
- **Contrasting pairs**: with probability ``contrast_pair_probability`` an even-numbered object 2i and the next
  object 2i + 1 form a pair: the same mesh, placement and pattern parameters, a role-bearing pattern
  (:data:`csdtex.tinyprior.vocabulary.ROLE_PATTERNS`), and the partner's texture is
  :func:`csdtex.tinyprior.textures.contrast_partner` of the first (colours swapped for dots / gradient / halves,
  another direction for stripes); both are captioned with templates naming the role
  (:func:`csdtex.tinyprior.textures.pair_template`), so "a yellow object with black dots" and "a black object with
  yellow dots" come as a minimal pair. Pairs are only drawn in the ``train`` and ``test`` splits.
- **Cameras**: :data:`DATA_CAMERAS_V2` (elevation down to -25 degrees, so undersides are seen more often).
- **Held-out combinations**: :data:`HELD_OUT_COMBOS_V2` (version 1's plus four over the new shapes / materials).

Determinism: object i draws from generators seeded with ``(seed, split, 20, i)`` (mesh, placement, texture; a
partner replays its first object's stream), ``(seed, split, 22, i)`` (views and captions), pool meshes with
``(seed, split, 21, index)``; so, as in version 1, a dataset depends only on the seed, the split and the settings, is
independent of the batching and of ``first_image`` chunking, and N images are the prefix of any larger dataset.

Conventions: world +Y up, azimuth 0 = front (+Z); images uint8 [N, H, W, 3] RGB with row 0 at the top; texture
coordinates in the normalized render space (unit sphere around the origin).

Public API: :func:`generate_dataset_v2`, :data:`HELD_OUT_COMBOS_V2`, :data:`DATA_CAMERAS_V2`,
:data:`MESH_POOL_SIZE_V2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from csdtex.cameras import CameraRanges
from csdtex.guidance.prompts import view_suffix
from csdtex.mesh import RenderMesh
from csdtex.tinyprior.shapes import PoolMesh, place_randomly
from csdtex.tinyprior.shapes_v2 import part_sizes, pool_mesh_v2
from csdtex.tinyprior.synthetic import HELD_OUT_COMBOS, SPLITS, draw_views, render_batch
from csdtex.tinyprior.textures import (
    TextureSpec,
    contrast_partner,
    pair_template,
    part_scale_factor,
    random_texture_spec_v2,
)
from csdtex.tinyprior.vocabulary import (
    CAPTION_TEMPLATES_V2,
    COLORS,
    GENERIC_NOUN,
    ONE_COLOR_PATTERNS,
    PATTERNS_V2,
    ROLE_PATTERNS,
)

HELD_OUT_COMBOS_V2: tuple[tuple[str | None, str | None, str | None], ...] = HELD_OUT_COMBOS + (
    ("table", "dots", None),
    ("tube", "checkerboard", None),
    ("cup", "halves", None),
    (None, "wood", "blue"),
)
"""(shape noun, pattern, colour) combinations reserved for data version 2's ``held_out`` split (None = any):
version 1's :data:`csdtex.tinyprior.synthetic.HELD_OUT_COMBOS` plus dotted tables, checkered tubes, cups with halves
and blue wood."""

DATA_CAMERAS_V2 = CameraRanges(elevation_deg=(-25.0, 75.0), distance=(1.5, 2.5))
"""Camera ranges of data version 2: version 1's (:data:`csdtex.tinyprior.synthetic.DATA_CAMERAS`) with the
elevation widened down to -25 degrees, so the undersides of tables, creatures and bowls appear in the data."""

MESH_POOL_SIZE_V2 = 1536
"""Default number of distinct base meshes per split in data version 2 (built lazily, ~1-8 ms each)."""


@dataclass
class _Object:
    """One drawn object: its pool mesh, placement, texture and pair role."""

    pool_index: int
    base: PoolMesh
    positions: np.ndarray
    normals: np.ndarray
    transform: dict
    spec: TextureSpec
    pair: dict | None


def _allowed(spec: TextureSpec, shape: str, split: str) -> bool:
    """Whether ``spec`` on ``shape`` belongs to ``split`` (inside a held-out combo for held_out, outside otherwise)."""
    inside = any(spec.matches(shape, combo) for combo in HELD_OUT_COMBOS_V2)
    return inside if split == "held_out" else not inside


def _choose_spec(rng: np.random.Generator, shape: str, split: str, y_range: tuple[float, float],
                 patterns: tuple[str, ...] | None = None) -> TextureSpec:
    """A version-2 texture for an object called ``shape`` (outside every held-out combo for train / test, inside one
    for held_out); ``patterns`` restricts the pattern (contrasting pairs)."""
    if split == "held_out":
        matching = [c for c in HELD_OUT_COMBOS_V2 if c[0] in (None, shape)]
        _, pattern, color = matching[int(rng.integers(len(matching)))]
        if pattern is None:
            pattern = PATTERNS_V2[int(rng.integers(len(PATTERNS_V2)))]
        colors = None
        if color is not None:
            others = [c for c in COLORS if c != color]
            other = others[int(rng.integers(len(others)))]
            if pattern in ONE_COLOR_PATTERNS:
                colors = (color,)
            else:
                colors = (color, other) if rng.random() < 0.5 else (other, color)
        return random_texture_spec_v2(rng, pattern=pattern, colors=colors, y_range=y_range)
    for _ in range(1000):
        pattern = None if patterns is None else patterns[int(rng.integers(len(patterns)))]
        spec = random_texture_spec_v2(rng, pattern=pattern, y_range=y_range)
        if _allowed(spec, shape, split):
            return spec
    raise RuntimeError(f"every texture of shape {shape!r} is held out: check HELD_OUT_COMBOS_V2")


def _draw(rng: np.random.Generator, split: str, pool: dict[int, PoolMesh], pool_size: int, seed: int,
          split_code: int, paired: bool) -> _Object:
    """Mesh, placement and texture of one object from its generator (after its pair draw)."""
    pool_index = int(rng.integers(pool_size))
    if pool_index not in pool:
        pool[pool_index] = pool_mesh_v2(seed, split_code, pool_index)
    base = pool[pool_index]
    positions, normals, transform = place_randomly(base, rng)
    y_range = (float(positions[:, 1].min()), float(positions[:, 1].max()))
    spec = _choose_spec(rng, base.info["shape"], split, y_range, ROLE_PATTERNS if paired else None)
    if spec.pattern == "brick" and rng.random() < 0.5:  # bricks along the object's own axes
        spec = TextureSpec(spec.pattern, spec.colors, {**spec.params, "yaw": math.radians(transform["yaw_deg"])},
                           spec.rgb)
    return _Object(pool_index, base, positions, normals, transform, spec, None)


def _object(index: int, seed: int, split: str, pool: dict[int, PoolMesh], pool_size: int,
            pair_probability: float) -> _Object:
    """Object ``index`` of the dataset (see the module docstring for the seeding and the pairs)."""
    split_code = SPLITS[split]
    rng = np.random.default_rng([seed, split_code, 20, index])
    pairs = split != "held_out" and pair_probability > 0.0
    own_pair = bool(rng.random() < pair_probability) and pairs and index % 2 == 0
    if pairs and index % 2 == 1:
        first_rng = np.random.default_rng([seed, split_code, 20, index - 1])
        if first_rng.random() < pair_probability:
            first = _draw(first_rng, split, pool, pool_size, seed, split_code, paired=True)
            first.spec = contrast_partner(first.spec, rng)
            first.pair = {"role": "partner", "partner": index - 1}
            return first
    drawn = _draw(rng, split, pool, pool_size, seed, split_code, paired=own_pair)
    if own_pair:
        drawn.pair = {"role": "first", "partner": index + 1}
    return drawn


def generate_dataset_v2(
    num_images: int,
    seed: int = 0,
    resolution: int = 64,
    device: torch.device | str = "cpu",
    batch: int | None = None,
    *,
    split: str = "train",
    first_image: int = 0,
    views_per_object: int = 4,
    mesh_pool_size: int | None = None,
    cameras: CameraRanges | None = None,
    empty_caption_probability: float = 0.15,
    view_suffix_probability: float = 0.8,
    generic_noun_probability: float = 0.3,
    white_background_probability: float = 0.5,
    lit_probability: float = 0.0,
    backend: str = "auto",
    progress: bool = False,
    contrast_pair_probability: float = 0.3,
    data_version: int = 2,
) -> tuple[np.ndarray, list[str], list[dict]]:
    """Render ``num_images`` captioned views of data version 2 (see the module docstring).

    Arguments as :func:`csdtex.tinyprior.synthetic.generate_dataset` (``mesh_pool_size`` None =
    :data:`MESH_POOL_SIZE_V2`, ``cameras`` None = :data:`DATA_CAMERAS_V2`), plus:

    Args:
        contrast_pair_probability: probability that an even-numbered object and the next one form a contrasting
            pair (train / test splits; 0 disables pairs).
        data_version: must be 2.
    Returns:
        ``(images, captions, metadata)``: images uint8 [N, resolution, resolution, 3] (RGB, row 0 at the top);
        captions list of N str (``""`` = unconditional); metadata list of N JSON-ready dicts: as version 1's (split,
        object, view, shape = the caption noun of the mesh, mesh_pool_index, mesh info with ``family`` and ``parts``,
        transform, texture (the object's spec), template, noun, elevation, azimuth, distance, fov, view_suffix,
        background, lit, caption, coverage) plus ``data_version`` (2), ``family``, ``part_factors`` (the feature-size
        factor applied to each part) and ``pair`` (None, or ``{"role": "first" | "partner", "partner": object}``).
    """
    if data_version != 2:
        raise ValueError(f"data_version must be 1 or 2, got {data_version!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    device = torch.device(device)
    if batch is None:
        batch = 64 if device.type == "cuda" else 16
    pool_size = MESH_POOL_SIZE_V2 if mesh_pool_size is None else int(mesh_pool_size)
    if num_images < 0 or views_per_object < 1 or batch < 1 or pool_size < 1:
        raise ValueError("num_images must be >= 0 and views_per_object, batch, mesh_pool_size >= 1")
    if first_image < 0 or first_image % views_per_object:
        raise ValueError(f"first_image must be a non-negative multiple of views_per_object, got {first_image}")
    if not 0.0 <= contrast_pair_probability <= 1.0:
        raise ValueError(f"contrast_pair_probability must be in [0, 1], got {contrast_pair_probability}")
    cameras = cameras or DATA_CAMERAS_V2
    split_code = SPLITS[split]
    first_object = first_image // views_per_object
    end_image = first_image + num_images
    num_objects = first_object + -(-num_images // views_per_object)
    pool: dict[int, PoolMesh] = {}
    objects_per_call = max(1, batch // views_per_object)

    images = np.zeros((num_images, resolution, resolution, 3), dtype=np.uint8)
    captions: list[str] = []
    metadata: list[dict] = []
    next_report = 0.1
    for first in range(first_object, num_objects, objects_per_call):
        render_meshes, specs, view_object = [], [], []
        elevation, azimuth, distance, fov, backgrounds, lit_flags = [], [], [], [], [], []
        records: list[dict] = []
        for k, index in enumerate(range(first, min(first + objects_per_call, num_objects))):
            obj = _object(index, seed, split, pool, pool_size, contrast_pair_probability)
            base = obj.base
            faces = base.faces
            face_parts = base.face_parts if base.face_parts is not None else np.zeros(len(faces), np.int64)
            factors = part_scale_factor(part_sizes(obj.positions, faces, face_parts))
            part_specs = [obj.spec.scaled(float(f)) for f in np.atleast_1d(factors)]
            specs.extend(part_specs)
            render_meshes.append(
                RenderMesh(
                    positions=torch.as_tensor(obj.positions, dtype=torch.float32, device=device),
                    faces=torch.as_tensor(faces, dtype=torch.int32, device=device),
                    normals=torch.as_tensor(obj.normals, dtype=torch.float32, device=device),
                    uvs=torch.zeros(1, 2, device=device),
                    uv_faces=torch.full(faces.shape, -1, dtype=torch.int32, device=device),
                    face_materials=torch.as_tensor(face_parts, dtype=torch.int32, device=device),
                    num_materials=len(part_specs),
                )
            )
            shape = base.info["shape"]
            rng = np.random.default_rng([seed, split_code, 22, index])
            v_all = views_per_object
            views = min(v_all, end_image - index * v_all)
            el, az, dist, fv, bg, lit, empty, with_suffix, generic = draw_views(
                rng, cameras, v_all, views, white_background_probability, lit_probability, empty_caption_probability,
                view_suffix_probability, generic_noun_probability)
            count = len(CAPTION_TEMPLATES_V2[obj.spec.pattern])
            template = rng.integers(0, count, v_all)[:views]
            if obj.pair is not None:
                template = np.array([pair_template(obj.spec.pattern, rng) for _ in range(v_all)])[:views]
            spec_dict = obj.spec.to_dict()
            part_factors = [float(s.params.get("part_factor", 1.0)) for s in part_specs]
            for v in range(views):
                suffix = view_suffix(float(el[v]), float(az[v]))
                noun = GENERIC_NOUN if generic[v] else shape
                caption = "" if empty[v] else obj.spec.caption(
                    noun, suffix if with_suffix[v] else "", int(template[v]), version=2
                )  # fmt: skip
                records.append({
                    "split": split, "object": index, "view": v, "shape": shape, "mesh_pool_index": obj.pool_index,
                    "mesh": dict(base.info), "transform": obj.transform, "texture": spec_dict,
                    "template": int(template[v]), "noun": noun, "elevation": float(el[v]), "azimuth": float(az[v]),
                    "distance": float(dist[v]), "fov": float(fv[v]), "view_suffix": suffix,
                    "background": [float(c) for c in bg[v]], "lit": bool(lit[v]), "caption": caption,
                    "data_version": 2, "family": base.info.get("family"), "part_factors": part_factors,
                    "pair": obj.pair,
                })  # fmt: skip
                captions.append(caption)
            elevation.append(el), azimuth.append(az), distance.append(dist), fov.append(fv)
            backgrounds.append(bg), lit_flags.append(lit)
            view_object += [k] * views
        rendered, coverage = render_batch(render_meshes, specs, view_object, (elevation, azimuth, distance, fov),
                                          backgrounds, lit_flags, resolution, device, backend)
        start = len(metadata)
        images[start : start + len(records)] = rendered
        for record, cover in zip(records, coverage):
            record["coverage"] = float(cover)
        metadata.extend(records)
        done = (first + objects_per_call - first_object) / max(1, num_objects - first_object)
        if progress and done >= next_report:
            print(f"  synthetic data (v2): {len(metadata)}/{num_images} images", flush=True)
            next_report += 0.1
    return images, captions, metadata
