"""Synthetic captioned renders for training the built-in tiny prior: procedural meshes x procedural textures x views.

Everything here is generated in code from a seed (nothing is downloaded):

- **Meshes** (:mod:`csdtex.tinyprior.shapes`): trimesh primitives (:data:`~csdtex.tinyprior.vocabulary.SHAPES`:
  sphere, box, cylinder, cone, torus, capsule) with random proportions, half of them deformed (twist around +Y, taper,
  smooth bumps along the normals), each normalized into the unit sphere. Every object then gets a random anisotropic
  scale and a random yaw before it is renormalized into the unit sphere.
- **Textures** (:mod:`csdtex.tinyprior.textures`): a :class:`~csdtex.tinyprior.textures.ProceduralTexture` over the
  normalized 3D position of the surface, described by a :class:`~csdtex.tinyprior.textures.TextureSpec` (pattern,
  colour names, parameters).
- **Views**: cameras from :data:`DATA_CAMERAS` (csdtex's training ranges, with the elevation widened to 75 degrees so
  that overhead views occur and the distance to 2.5 so that some views show the whole object), backgrounds white with
  probability 1/2 and a uniform random colour otherwise (as in the paint loop), albedo shading (optionally a share of
  lit renders).
- **Captions**: templates over the fixed vocabulary :data:`~csdtex.tinyprior.vocabulary.VOCABULARY` (see
  :meth:`~csdtex.tinyprior.textures.TextureSpec.caption`), e.g. ``"a red and blue striped box, side view"``,
  ``"a solid green sphere"``, ``"an object with a yellow top and a black bottom, overhead view"``. The view suffix
  follows the rule of ``docs/design.md`` (:func:`csdtex.guidance.prompts.view_suffix`); some captions carry no suffix
  and a share are empty (the unconditional samples of classifier-free guidance).

Conventions: world +Y up, azimuth 0 = front (+Z); images uint8 [N, H, W, 3] RGB with row 0 at the top; all texture
coordinates are the mesh's *normalized render space* (unit sphere around the origin).

Determinism: every object draws its choices from its own generator seeded with ``(seed, split, object index)``, and the
mesh pool from ``(seed, split, pool index)``, so a dataset depends only on ``(seed, split, views_per_object,
mesh_pool_size, and the probabilities)``, not on how many objects are rendered together or on the device (up to
floating-point differences of the rasterizer on other hardware); a dataset of N images is the prefix of any larger one
with the same settings.

Splits (:data:`SPLITS`): ``"train"`` and ``"test"`` follow the same distribution from disjoint seed streams (separate
mesh pools too) and never contain a combination listed in :data:`HELD_OUT_COMBOS`; ``"held_out"`` contains only those
combinations, on its own unseen meshes, for measuring generalization.

Public API: :data:`HELD_OUT_COMBOS`, :data:`SPLITS`, :data:`DATA_CAMERAS`, :func:`render_objects`,
:func:`generate_dataset`, :func:`save_shard`, :func:`load_shard`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from csdtex.cameras import CameraRanges, Cameras, make_cameras
from csdtex.fileio import atomic_path
from csdtex.guidance.prompts import view_suffix
from csdtex.mesh import RenderMesh
from csdtex.render import rasterize
from csdtex.render.views import composite_on_background, headlight_factor, surface_samples
from csdtex.tinyprior.shapes import PoolMesh, place_randomly, pool_mesh
from csdtex.tinyprior.textures import ProceduralTexture, TextureSpec, random_texture_spec
from csdtex.tinyprior.vocabulary import COLORS, GENERIC_NOUN, NUM_TEMPLATES, PATTERNS

# Combinations never drawn in the train / test splits; (shape, pattern, colour) with None = any. A colour matches when
# it is one of the texture's colours.
HELD_OUT_COMBOS: tuple[tuple[str | None, str | None, str | None], ...] = (
    ("torus", "checkerboard", None),
    ("cone", "dots", None),
    ("capsule", "stripes", None),
    ("sphere", "halves", None),
    ("box", None, "orange"),
    (None, "solid", "purple"),
)
"""(shape, pattern, colour) combinations reserved for the ``held_out`` split (None = any)."""

SPLITS: dict[str, int] = {"train": 0, "test": 1, "held_out": 2}
"""Split name -> seed-stream index."""

DATA_CAMERAS = CameraRanges(elevation_deg=(-10.0, 75.0), distance=(1.5, 2.5))
"""Camera ranges of the dataset: csdtex's training ranges (fov 40..70, any azimuth) with the distance widened to
1.5..2.5 (so some views show the whole object) and the elevation to -10..75 degrees (so that about 18% of the views
are overhead views, elevation > 60)."""


# ======================================================================================================================
# Rendering several objects at once
# ======================================================================================================================


def render_objects(
    meshes: Sequence[RenderMesh],
    texture: ProceduralTexture,
    cameras: Cameras,
    view_object: torch.Tensor,
    resolution: int,
    background: torch.Tensor | float = 1.0,
    shading: str | torch.Tensor = "albedo",
    backend: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render K single-material meshes with their own textures from B cameras in one rasterization call.

    Equivalent to calling :func:`csdtex.render.views.render_views` once per object (same rasterizer, same surface
    samples, same compositing; tested pixel for pixel), but batched: the meshes are concatenated, face materials
    become the object index (so ``texture`` picks spec k for object k), and in every view the vertices of all other
    objects are moved behind the camera (clip w = -1), which culls their triangles.

    Args:
        meshes: K render meshes on one device (normalized into the unit sphere; only positions, faces, normals and
            face materials are used).
        texture: a :class:`ProceduralTexture` with one spec per material of every mesh, in order: mesh 0's
            ``num_materials`` specs, then mesh 1's, ... (single-material meshes: spec k paints mesh k; data version 2's
            multi-part meshes have one material per part).
        cameras: B cameras on the meshes' device.
        view_object: int64 [B], the object each camera looks at.
        resolution: image side in pixels.
        background: RGB in [0, 1]: a float, float [3] or float [B, 3].
        shading: ``"albedo"`` or ``"lit"`` for all views, or a bool [B] tensor (True = lit) per view; lit multiplies
            the albedo by the two-sided headlight term of ``render_views``.
        backend: rasterizer backend (``"torch"``, ``"nvdiffrast"``, ``"auto"``).
    Returns:
        (images float32 [B, H, W, 3] in [0, 1], masks bool [B, H, W]); no gradient.
    """
    device = meshes[0].positions.device
    batch = len(cameras)
    if isinstance(shading, str):
        if shading not in ("albedo", "lit"):
            raise ValueError(f"shading must be 'albedo' or 'lit', got {shading!r}")
        lit = torch.full((batch,), shading == "lit", dtype=torch.bool, device=device)
    else:
        lit = shading.to(device=device, dtype=torch.bool)
    counts = [int(m.positions.shape[0]) for m in meshes]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    positions = torch.cat([m.positions for m in meshes])
    faces = torch.cat([m.faces.long() + int(o) for m, o in zip(meshes, offsets)]).to(torch.int32)
    material_offsets = np.concatenate([[0], np.cumsum([int(m.num_materials) for m in meshes])[:-1]])
    face_object = torch.cat(
        [m.face_materials.to(device=device, dtype=torch.int32) + int(o) for m, o in zip(meshes, material_offsets)]
    )
    vertex_object = torch.cat([torch.full((c,), k, dtype=torch.long, device=device) for k, c in enumerate(counts)])
    combined = RenderMesh(
        positions=positions,
        faces=faces,
        normals=torch.cat([m.normals for m in meshes]),
        uvs=torch.zeros(1, 2, device=device),
        uv_faces=torch.full_like(faces, -1),
        face_materials=face_object,
        num_materials=int(sum(int(m.num_materials) for m in meshes)),
    )
    with torch.no_grad():
        clip = cameras.project(positions)  # [B, V, 4]
        other = vertex_object.unsqueeze(0) != view_object.to(device).long().unsqueeze(1)
        behind = torch.tensor([0.0, 0.0, 0.0, -1.0], device=device)
        clip = torch.where(other.unsqueeze(-1), behind, clip)
        fragments = rasterize(clip, combined.faces, resolution, resolution, backend=backend)
        need_normals = bool(lit.any())
        samples = surface_samples(combined, fragments, need_normals=need_normals, need_uvs=False)
        colors = texture(samples.points, None, samples.materials)
        if need_normals:
            view_index = samples.view_index(resolution, resolution)
            factor = headlight_factor(samples.normals, fragments, cameras, view_index=view_index)
            colors = torch.where(lit[view_index].unsqueeze(-1), colors * factor, colors)
        image = composite_on_background(colors, fragments.mask, background, pixel_index=samples.pixel_index)
    return image, fragments.mask


# ======================================================================================================================
# Dataset
# ======================================================================================================================


def _choose_spec(rng: np.random.Generator, shape: str, split: str, y_range: tuple[float, float]) -> TextureSpec:
    """A texture for an object of ``shape``: outside every held-out combo (train / test) or inside one (held_out)."""
    if split == "held_out":
        matching = [c for c in HELD_OUT_COMBOS if c[0] in (None, shape)]
        if not matching:
            raise RuntimeError(f"no held-out combination covers shape {shape!r}: check HELD_OUT_COMBOS")
        _, pattern, color = matching[int(rng.integers(len(matching)))]
        pattern = pattern if pattern is not None else PATTERNS[int(rng.integers(len(PATTERNS)))]
        colors = None
        if color is not None:
            others = [c for c in COLORS if c != color]
            other = others[int(rng.integers(len(others)))]
            colors = (color,) if pattern == "solid" else ((color, other) if rng.random() < 0.5 else (other, color))
        return random_texture_spec(rng, pattern=pattern, colors=colors, y_range=y_range)
    for _ in range(1000):
        spec = random_texture_spec(rng, y_range=y_range)
        if not any(spec.matches(shape, combo) for combo in HELD_OUT_COMBOS):
            return spec
    raise RuntimeError(f"every texture of shape {shape!r} is held out: check HELD_OUT_COMBOS")


class ViewDraws(NamedTuple):
    """The random choices of one object's views (each array has one entry per kept view)."""

    elevation: np.ndarray
    azimuth: np.ndarray
    distance: np.ndarray
    fov: np.ndarray
    background: np.ndarray
    """float [V, 3] in [0, 1]: white, or a uniform random colour."""
    lit: np.ndarray
    empty: np.ndarray
    with_suffix: np.ndarray
    generic: np.ndarray


def draw_views(rng: np.random.Generator, cameras: CameraRanges, views_per_object: int, views: int,
               white_background_probability: float, lit_probability: float, empty_caption_probability: float,
               view_suffix_probability: float, generic_noun_probability: float) -> ViewDraws:
    """Draw every view of an object (``views_per_object``), then keep the first ``views``: a dataset is then a
    prefix of a larger one. The draws come from ``rng`` in a fixed order (cameras, background, lighting, caption
    choices), which both data versions share."""
    v_all = views_per_object
    el = rng.uniform(*cameras.elevation_deg, v_all)[:views]
    az = rng.uniform(*cameras.azimuth_deg, v_all)[:views]
    dist = rng.uniform(*cameras.distance, v_all)[:views]
    fv = rng.uniform(*cameras.fov_deg, v_all)[:views]
    white = rng.random(v_all)[:views] < white_background_probability
    colors = rng.random((v_all, 3))[:views]
    bg = np.where(white[:, None], 1.0, colors)
    lit = rng.random(v_all)[:views] < lit_probability
    empty = rng.random(v_all)[:views] < empty_caption_probability
    with_suffix = rng.random(v_all)[:views] < view_suffix_probability
    generic = rng.random(v_all)[:views] < generic_noun_probability
    return ViewDraws(el, az, dist, fv, bg, lit, empty, with_suffix, generic)


def render_batch(render_meshes: list[RenderMesh], specs: list[TextureSpec], view_object: list[int],
                 cameras: tuple[list, list, list, list], backgrounds: list[np.ndarray], lit_flags: list[np.ndarray],
                 resolution: int, device: torch.device | str, backend: str) -> tuple[np.ndarray, list[float]]:
    """Render one batch of objects' views (the shared tail of both data versions' generators).

    Args:
        render_meshes: the batch's placed meshes; specs: one texture spec per mesh.
        view_object: int per view, the index of its mesh in ``render_meshes``.
        cameras: ``(elevations, azimuths, distances, fovs)``, each a list of float arrays (degrees, render units)
            whose concatenation has one entry per view.
        backgrounds: list of float [n, 3] arrays in [0, 1] (one row per view once concatenated); lit_flags: list of
            bool [n] arrays.
    Returns:
        (uint8 [V, resolution, resolution, 3] images, the covered fraction of each view's pixels).
    """
    elevation, azimuth, distance, fov = (np.concatenate(part) for part in cameras)
    cams = make_cameras(elevation, azimuth, distance, fov, device=device)
    texture = ProceduralTexture(specs).to(device)
    image, mask = render_objects(
        render_meshes, texture, cams, torch.tensor(view_object, device=device), resolution,
        background=torch.as_tensor(np.concatenate(backgrounds), dtype=torch.float32, device=device),
        shading=torch.as_tensor(np.concatenate(lit_flags), device=device), backend=backend,
    )  # fmt: skip
    images = (image * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return images, mask.float().mean(dim=(1, 2)).cpu().tolist()


def generate_dataset(
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
    data_version: int = 1,
    contrast_pair_probability: float = 0.3,
) -> tuple[np.ndarray, list[str], list[dict]]:
    """Render ``num_images`` captioned views of random textured objects.

    ``data_version`` 1 (the default) is the shipped prior's data, described here and unchanged; ``data_version`` 2
    is issue #15's data (multi-part shape families, part-scaled patterns, materials, contrasting pairs), generated by
    :func:`csdtex.tinyprior.synthetic_v2.generate_dataset_v2` with the same arguments and the same determinism
    (see there).

    Objects are numbered 0, 1, ...; object i gets ``views_per_object`` consecutive images (the last object fewer if
    ``num_images`` is not a multiple), a mesh from the split's pool (``mesh_pool_size`` meshes, shapes in rotation,
    half deformed) with its own random scale and yaw, a :class:`TextureSpec`, and per view a random camera from
    ``cameras``, a background and a caption: empty with ``empty_caption_probability``; otherwise a random template and
    noun (the shape word, or ``"object"`` with ``generic_noun_probability``) plus, with ``view_suffix_probability``,
    the view suffix of the camera (the rule of ``docs/design.md``, :func:`csdtex.guidance.prompts.view_suffix`).

    Args:
        num_images: N, number of images.
        seed: dataset seed (see the module docstring for what the result depends on).
        resolution: image side in pixels (64 for the tiny prior).
        device: where to render (``"cuda"`` is much faster for large N).
        batch: views rendered per rasterization call, rounded down to whole objects (at least one). The batched
            rasterizer sets up every triangle of every object in every view, so the cost per call grows with
            batch squared: None picks 16 on the CPU (fastest there) and 64 on CUDA (amortizes launch overhead).
        split: ``"train"``, ``"test"`` or ``"held_out"`` (see :data:`SPLITS`, :data:`HELD_OUT_COMBOS`).
        first_image: index of the first image (a multiple of ``views_per_object``): the result is images
            ``[first_image, first_image + num_images)`` of the dataset, identical to that slice of one large call, so
            a dataset can be rendered in chunks by several processes (``metadata["object"]`` counts from the start).
        views_per_object: images per object (consecutive in the output).
        mesh_pool_size: number of distinct base meshes of the split (built once, 2-10 ms each); None = 480 (version
            2: :data:`csdtex.tinyprior.synthetic_v2.MESH_POOL_SIZE_V2`).
        cameras: camera ranges (default :data:`DATA_CAMERAS`).
        empty_caption_probability, view_suffix_probability, generic_noun_probability: caption choices, per image.
        white_background_probability: per image; other backgrounds are uniform random RGB.
        lit_probability: share of images with headlight diffuse shading instead of plain albedo.
        backend: rasterizer backend (``"auto"`` = nvdiffrast on CUDA when installed, else the torch rasterizer).
        progress: print a progress line every ~10% of the objects.
        data_version: 1 or 2 (see above).
        contrast_pair_probability: data version 2 only: share of even-numbered objects whose next object is their
            contrasting partner (ignored by version 1).
    Returns:
        ``(images, captions, metadata)``: images uint8 [N, resolution, resolution, 3] (RGB, row 0 at the top);
        captions list of N str (``""`` = unconditional); metadata list of N JSON-ready dicts (split, object, view,
        shape, mesh info, transform, texture spec dict, caption template / noun, camera elevation / azimuth (degrees) /
        distance / fov, view_suffix (the camera's suffix even when the caption has none), background RGB, lit,
        coverage = fraction of pixels covered by the object).
    """
    if data_version != 1:
        from csdtex.tinyprior.synthetic_v2 import generate_dataset_v2

        return generate_dataset_v2(
            num_images, seed, resolution, device, batch, split=split, first_image=first_image,
            views_per_object=views_per_object, mesh_pool_size=mesh_pool_size, cameras=cameras,
            empty_caption_probability=empty_caption_probability, view_suffix_probability=view_suffix_probability,
            generic_noun_probability=generic_noun_probability,
            white_background_probability=white_background_probability, lit_probability=lit_probability,
            backend=backend, progress=progress, contrast_pair_probability=contrast_pair_probability,
            data_version=data_version,
        )  # fmt: skip
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    if mesh_pool_size is None:
        mesh_pool_size = 480
    device = torch.device(device)
    if batch is None:
        batch = 64 if device.type == "cuda" else 16
    if num_images < 0 or views_per_object < 1 or batch < 1 or mesh_pool_size < 1:
        raise ValueError("num_images must be >= 0 and views_per_object, batch, mesh_pool_size >= 1")
    if first_image < 0 or first_image % views_per_object:
        raise ValueError(f"first_image must be a non-negative multiple of views_per_object, got {first_image}")
    cameras = cameras or DATA_CAMERAS
    split_code = SPLITS[split]
    first_object = first_image // views_per_object
    end_image = first_image + num_images
    num_objects = first_object + -(-num_images // views_per_object)
    pool_size = mesh_pool_size  # meshes are built lazily, when an object first uses them
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
            rng = np.random.default_rng([seed, split_code, 0, index])
            pool_index = int(rng.integers(pool_size))
            if pool_index not in pool:
                pool[pool_index] = pool_mesh(seed, split_code, pool_index)
            base = pool[pool_index]
            positions, normals, transform = place_randomly(base, rng)
            shape = base.info["shape"]
            spec = _choose_spec(rng, shape, split, (float(positions[:, 1].min()), float(positions[:, 1].max())))
            specs.append(spec)
            render_meshes.append(
                RenderMesh(
                    positions=torch.as_tensor(positions, dtype=torch.float32, device=device),
                    faces=torch.as_tensor(base.faces, dtype=torch.int32, device=device),
                    normals=torch.as_tensor(normals, dtype=torch.float32, device=device),
                    uvs=torch.zeros(1, 2, device=device),
                    uv_faces=torch.full(base.faces.shape, -1, dtype=torch.int32, device=device),
                    face_materials=torch.zeros(len(base.faces), dtype=torch.int32, device=device),
                    num_materials=1,
                )
            )
            v_all = views_per_object
            views = min(v_all, end_image - index * v_all)
            el, az, dist, fv, bg, lit, empty, with_suffix, generic = draw_views(
                rng, cameras, v_all, views, white_background_probability, lit_probability, empty_caption_probability,
                view_suffix_probability, generic_noun_probability)
            template = rng.integers(0, NUM_TEMPLATES, v_all)[:views]
            for v in range(views):
                suffix = view_suffix(float(el[v]), float(az[v]))
                noun = GENERIC_NOUN if generic[v] else shape
                caption = "" if empty[v] else spec.caption(noun, suffix if with_suffix[v] else "", int(template[v]))
                records.append({
                    "split": split, "object": index, "view": v, "shape": shape, "mesh_pool_index": pool_index,
                    "mesh": dict(base.info), "transform": transform, "texture": spec.to_dict(),
                    "template": int(template[v]), "noun": noun, "elevation": float(el[v]), "azimuth": float(az[v]),
                    "distance": float(dist[v]), "fov": float(fv[v]), "view_suffix": suffix,
                    "background": [float(c) for c in bg[v]], "lit": bool(lit[v]), "caption": caption,
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
            print(f"  synthetic data: {len(metadata)}/{num_images} images", flush=True)
            next_report += 0.1
    return images, captions, metadata


def _generate_chunk(job: tuple[int, int, dict]) -> tuple[int, np.ndarray, list[str], list[dict]]:
    """Worker of :func:`generate_dataset_parallel`: images ``[first, first + count)`` of one dataset."""
    first, count, options = job
    torch.set_num_threads(1)
    images, captions, metadata = generate_dataset(count, first_image=first, **options)
    return first, images, captions, metadata


def generate_dataset_parallel(
    num_images: int, workers: int, *, progress: bool = False, **options
) -> tuple[np.ndarray, list[str], list[dict]]:
    """:func:`generate_dataset` rendered in chunks by ``workers`` spawned processes; the result is identical to one
    ``generate_dataset(num_images, **options)`` call (chunks are slices of the same dataset, see ``first_image``).

    Args:
        num_images: N, number of images.
        workers: processes (1, or N too small to split: one in-process call).
        progress: print a line after each chunk.
        **options: any other keyword of :func:`generate_dataset` except ``first_image`` (``seed``, ``split``,
            ``views_per_object``, ``cameras``, ``data_version``, ...). ``device="cuda"`` renders on the GPU in every
            worker (data generation is bound by per-object Python work, so several processes keep one GPU busy).
    Returns:
        ``(images, captions, metadata)`` as :func:`generate_dataset`: uint8 [N, R, R, 3], N captions, N dicts.
    """
    views = int(options.get("views_per_object", 4))
    if "first_image" in options:
        raise ValueError("generate_dataset_parallel renders a whole dataset: first_image is not an option")
    if workers <= 1 or num_images < 64 * views:
        return generate_dataset(num_images, progress=progress, **options)
    import multiprocessing

    options = {**options, "device": str(options.get("device", "cpu"))}
    chunk = max(views, -(-num_images // (workers * 6)) // views * views)  # ~6 chunks per worker balances the load
    jobs = [(first, min(chunk, num_images - first), options) for first in range(0, num_images, chunk)]
    parts: dict[int, tuple[np.ndarray, list[str], list[dict]]] = {}
    done = 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for first, images, captions, metadata in pool.imap_unordered(_generate_chunk, jobs):
            parts[first] = (images, captions, metadata)
            done += len(images)
            if progress:
                print(f"  synthetic data: {done}/{num_images} images", flush=True)
    ordered = [parts[first] for first in sorted(parts)]  # at least one chunk: num_images >= 64 * views here
    return (np.concatenate([p[0] for p in ordered]), [c for p in ordered for c in p[1]],
            [m for p in ordered for m in p[2]])


# ======================================================================================================================
# Shards on disk
# ======================================================================================================================


def save_shard(
    path: str | os.PathLike, images: np.ndarray, captions: Sequence[str], metadata: Sequence[dict] | None = None
) -> Path:
    """Write a dataset shard as an uncompressed ``.npz`` (readable with ``np.load(..., allow_pickle=False)``).

    Arrays: ``images`` uint8 [N, H, W, 3]; ``captions`` unicode [N]; ``metadata`` unicode [N] of JSON strings (empty
    strings when ``metadata`` is None). Written atomically (temporary file + rename), so a shard on disk is always
    complete.

    Returns:
        the path written (``.npz`` appended if missing).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    if len(captions) != len(images) or (metadata is not None and len(metadata) != len(images)):
        raise ValueError("images, captions and metadata must have the same length")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = [json.dumps(m, separators=(",", ":")) for m in metadata] if metadata is not None else [""] * len(images)
    with atomic_path(path) as temporary:
        np.savez(temporary, images=images, captions=np.asarray(list(captions), dtype=np.str_),
                 metadata=np.asarray(meta, dtype=np.str_))  # fmt: skip
    return path


def load_shard(path: str | os.PathLike, with_metadata: bool = True) -> tuple[np.ndarray, list[str], list[dict] | None]:
    """Read a shard written by :func:`save_shard`.

    Returns:
        (images uint8 [N, H, W, 3], captions list of N str, metadata list of N dicts or None when ``with_metadata``
        is False or the shard has none).
    """
    with np.load(Path(path), allow_pickle=False) as data:
        images = data["images"]
        captions = [str(c) for c in data["captions"]]
        metadata = None
        if with_metadata and "metadata" in data.files:
            raw = [str(m) for m in data["metadata"]]
            metadata = [json.loads(m) for m in raw] if all(raw) else None
    return images, captions, metadata
