"""Synthetic captioned renders for training the built-in tiny prior: procedural meshes x procedural textures x views.

Everything here is generated in code from a seed (nothing is downloaded):

- **Meshes**: trimesh primitives (:data:`SHAPES`: sphere, box, cylinder, cone, torus, capsule) with random proportions,
  half of them deformed (twist around +Y, taper, smooth bumps along the normals), each stored as a csdtex
  :class:`~csdtex.mesh.Mesh` and normalized into the unit sphere with :meth:`Mesh.to_render`. Every object then gets a
  random anisotropic scale and a random yaw before it is renormalized into the unit sphere.
- **Textures**: :class:`ProceduralTexture`, a texture model (``uses_uvs = False``) over the normalized 3D position of
  the surface, described by a :class:`TextureSpec` (pattern, colour names, parameters). Patterns (:data:`PATTERNS`):
  solid, stripes (horizontal = along +Y, vertical = along a horizontal axis, diagonal), 3D checkerboard, dots (a 3D
  lattice of balls cut by the surface), vertical gradient (first colour at the top) and top/bottom halves (first
  colour on top). Colours come from :data:`COLORS` with a small random jitter per object.
- **Views**: cameras from :data:`DATA_CAMERAS` (csdtex's training ranges, with the elevation widened to 75 degrees so
  that overhead views occur and the distance to 2.5 so that some views show the whole object), backgrounds white with
  probability 1/2 and a uniform random colour otherwise (as in the paint loop), albedo shading (optionally a share of
  lit renders).
- **Captions**: templates over the fixed vocabulary :data:`VOCABULARY` (see :meth:`TextureSpec.caption`), e.g.
  ``"a red and blue striped box, side view"``, ``"a solid green sphere"``, ``"an object with a yellow top and a black
  bottom, overhead view"``. The view suffix follows DESIGN.md's rule (:func:`csdtex.guidance.prompts.view_suffix`);
  some captions carry no suffix and a share are empty (the unconditional samples of classifier-free guidance).

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

Public API: :data:`COLORS`, :data:`PATTERNS`, :data:`SHAPES`, :data:`STRIPE_DIRECTIONS`, :data:`VIEW_SUFFIXES`,
:data:`VOCABULARY`, :data:`HELD_OUT_COMBOS`, :data:`DATA_CAMERAS`, :class:`TextureSpec`, :class:`ProceduralTexture`,
:func:`make_shape_mesh`, :func:`random_texture_spec`, :func:`caption_words`, :func:`render_objects`,
:func:`generate_dataset`, :func:`save_shard`, :func:`load_shard`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from csdtex.cameras import CameraRanges, Cameras, make_cameras
from csdtex.fileio import atomic_path
from csdtex.guidance.prompts import VIEW_SUFFIXES, view_suffix
from csdtex.mesh import Mesh, RenderMesh
from csdtex.render import rasterize
from csdtex.render.views import composite_on_background, headlight_factor, surface_samples

# ======================================================================================================================
# Vocabulary
# ======================================================================================================================

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.98, 0.88, 0.12),
    "green": (0.12, 0.62, 0.18),
    "blue": (0.10, 0.25, 0.85),
    "purple": (0.50, 0.16, 0.66),
    "pink": (1.00, 0.55, 0.75),
    "brown": (0.50, 0.30, 0.12),
    "black": (0.05, 0.05, 0.05),
    "white": (0.97, 0.97, 0.97),
    "gray": (0.50, 0.50, 0.50),
    "cyan": (0.05, 0.80, 0.85),
}
"""The 12 colour words and their nominal linear RGB in [0, 1] (objects jitter each channel by ~N(0, 0.04))."""

PATTERNS: tuple[str, ...] = ("solid", "stripes", "checkerboard", "dots", "gradient", "halves")
"""Texture patterns. ``solid`` uses one colour, all others two (first = base / top, second = other / bottom)."""

SHAPES: tuple[str, ...] = ("sphere", "box", "cylinder", "cone", "torus", "capsule")
"""Primitive shapes (trimesh.creation); each is also the noun of its captions (or the generic ``"object"``)."""

GENERIC_NOUN = "object"
"""Noun used instead of the shape word in a share of captions, so that prompts about unseen meshes make sense."""

STRIPE_DIRECTIONS: tuple[str, ...] = ("horizontal", "vertical", "diagonal")
"""Stripe directions: horizontal = bands stacked along +Y; vertical = bands along a random horizontal axis;
diagonal = along a random axis at 45 degrees to +Y."""

# Caption templates per pattern; {c0} / {c1} are colour words, {noun} the shape word, {direction} a stripe direction.
# "a" becomes "an" before a vowel. Template 0 is the short form.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "solid": ("a {c0} {noun}", "a solid {c0} {noun}"),
    "stripes": ("a {c0} and {c1} striped {noun}", "a {noun} with {c0} and {c1} {direction} stripes"),
    "checkerboard": ("a {c0} and {c1} checkered {noun}", "a {noun} with a {c0} and {c1} checkerboard pattern"),
    "dots": ("a {c0} {noun} with {c1} dots", "a {c0} and {c1} dotted {noun}"),
    "gradient": ("a {noun} with a {c0} to {c1} gradient", "a {c0} to {c1} gradient {noun}"),
    "halves": ("a {noun} with a {c0} top and a {c1} bottom", "a {noun} that is {c0} on top and {c1} on the bottom"),
}
NUM_TEMPLATES = 2
"""Templates per pattern (indices 0 .. NUM_TEMPLATES - 1 for :meth:`TextureSpec.caption`)."""

_WORD = re.compile(r"[a-z]+|[^\sa-z]")


def caption_words(text: str) -> list[str]:
    """Split a caption into words and punctuation marks the way the vocabulary counts them.

    Lowercases, then returns maximal runs of letters a-z and every other non-space character on its own (so
    ``"a red box, side view"`` -> ``["a", "red", "box", ",", "side", "view"]``).
    """
    return _WORD.findall(text.lower())


def _vocabulary() -> tuple[str, ...]:
    words: set[str] = set(COLORS) | set(SHAPES) | {GENERIC_NOUN, "an"} | set(STRIPE_DIRECTIONS)
    for templates in _TEMPLATES.values():
        for template in templates:
            words.update(caption_words(re.sub(r"\{[a-z0-9]+\}", " ", template)))
    for suffix in VIEW_SUFFIXES:
        words.update(caption_words(suffix))
    return tuple(sorted(words))


VOCABULARY: tuple[str, ...] = _vocabulary()
"""Every word (and punctuation mark) any caption can contain, sorted: colours, shapes, ``object``, pattern words,
stripe directions, template glue words (a, an, and, with, to, that, is, on, the, top, bottom, ...), view words and
``,``."""

VIEW_SUFFIXES = VIEW_SUFFIXES
"""Re-exported from :mod:`csdtex.guidance.prompts`: ``", front view"``, ``", side view"``, ``", back view"``,
``", overhead view"``."""

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
# Textures
# ======================================================================================================================


@dataclass
class TextureSpec:
    """A procedural texture: what :class:`ProceduralTexture` paints and what captions say about it.

    Attributes:
        pattern: one of :data:`PATTERNS`.
        colors: colour names from :data:`COLORS`; one for ``solid``, two otherwise (first = base colour of dots, top
            colour of gradient / halves, first stripe / cell colour).
        params: pattern parameters in the normalized render space (unit sphere), JSON-serializable:
            - stripes: ``direction`` (a :data:`STRIPE_DIRECTIONS` word), ``axis`` [3] unit vector, ``period`` (length
              of one pair of stripes: the first colour fills the first half of each period), ``phase`` in [0, 1)
              periods.
            - checkerboard: ``period`` (cell size), ``offset`` [3] in [0, 1) cells.
            - dots: ``period`` (lattice spacing), ``radius`` (ball radius), ``offset`` [3] in [0, 1) cells.
            - gradient: ``y_range`` [low, high] (the object's vertical extent; first colour at ``high``).
            - halves: ``split_y`` (height of the boundary; first colour above it).
            - solid: nothing.
        rgb: per-colour RGB triples in [0, 1] actually painted (jittered), or None for the nominal :data:`COLORS`.
    """

    pattern: str
    colors: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    rgb: tuple[tuple[float, float, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}: choose one of {PATTERNS}")
        self.colors = tuple(self.colors)
        wanted = 1 if self.pattern == "solid" else 2
        if len(self.colors) != wanted:
            raise ValueError(f"pattern {self.pattern!r} takes {wanted} colour(s), got {self.colors}")
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown:
            raise ValueError(f"unknown colour(s) {unknown}: choose from {tuple(COLORS)}")

    def colors_rgb(self) -> list[tuple[float, float, float]]:
        """RGB in [0, 1] of each colour of the texture (the jittered ``rgb`` if set, else the nominal values)."""
        if self.rgb is not None:
            return [tuple(float(v) for v in c) for c in self.rgb]
        return [COLORS[c] for c in self.colors]

    def caption(self, noun: str = GENERIC_NOUN, view_suffix: str = "", template: int = 0) -> str:
        """The caption of this texture on an object called ``noun``.

        Args:
            noun: a shape word from :data:`SHAPES` or :data:`GENERIC_NOUN`.
            view_suffix: ``""`` or one of :data:`VIEW_SUFFIXES` (appended as is).
            template: index in ``0 .. NUM_TEMPLATES - 1`` of the phrasing (see module docstring); template 1 of
                stripes names the direction.
        Returns:
            A lowercase caption using only :data:`VOCABULARY` words, e.g. ``"a red and blue striped box, side view"``.
        """
        if noun not in SHAPES and noun != GENERIC_NOUN:
            raise ValueError(f"noun must be one of {SHAPES + (GENERIC_NOUN,)}, got {noun!r}")
        if view_suffix and view_suffix not in VIEW_SUFFIXES:
            raise ValueError(f"view_suffix must be '' or one of {VIEW_SUFFIXES}, got {view_suffix!r}")
        text = _TEMPLATES[self.pattern][template % NUM_TEMPLATES].format(
            c0=self.colors[0],
            c1=self.colors[-1],
            noun=noun,
            direction=self.params.get("direction", "horizontal"),
        )
        text = re.sub(r"\ba (?=[aeiou])", "an ", text)
        return text + view_suffix

    def matches(self, shape: str, combo: tuple[str | None, str | None, str | None]) -> bool:
        """Whether this texture on ``shape`` falls under a (shape, pattern, colour) combo (None = any)."""
        want_shape, want_pattern, want_color = combo
        return (
            (want_shape is None or want_shape == shape)
            and (want_pattern is None or want_pattern == self.pattern)
            and (want_color is None or want_color in self.colors)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``pattern``, ``colors``, ``params``, ``rgb``)."""
        return {
            "pattern": self.pattern,
            "colors": list(self.colors),
            "params": self.params,
            "rgb": None if self.rgb is None else [list(c) for c in self.rgb],
        }


_PATTERN_ID = {name: index for index, name in enumerate(PATTERNS)}


class ProceduralTexture(torch.nn.Module):
    """Texture model painting one or several :class:`TextureSpec` as functions of the 3D surface position.

    Follows csdtex's texture-model interface: ``forward(points [N, 3], uvs, materials [N]) -> rgb [N, 3]`` in [0, 1];
    ``uses_uvs = False`` (UVs are ignored). With several specs, ``materials[n]`` selects the spec of point n (the
    batched renderer :func:`render_objects` gives every object its own material index); with one spec every point uses
    it, so the module also works with :func:`csdtex.render.views.render_views` on a single-material mesh.

    The texture has no trainable parameters (its tensors are buffers) and is fully vectorized: every pattern is
    evaluated for every point and the point's own pattern is selected, which keeps the GPU path free of host syncs.

    Args:
        specs: one spec or a sequence of K specs.
    """

    uses_uvs = False

    def __init__(self, specs: TextureSpec | Sequence[TextureSpec]) -> None:
        super().__init__()
        specs = [specs] if isinstance(specs, TextureSpec) else list(specs)
        if not specs:
            raise ValueError("ProceduralTexture needs at least one TextureSpec")
        self.specs = specs
        k = len(specs)
        pattern = torch.tensor([_PATTERN_ID[s.pattern] for s in specs], dtype=torch.long)
        color_a = torch.tensor([s.colors_rgb()[0] for s in specs], dtype=torch.float32)
        color_b = torch.tensor([s.colors_rgb()[-1] for s in specs], dtype=torch.float32)
        axis = torch.zeros(k, 3)
        period = torch.ones(k)
        phase = torch.zeros(k)
        offset = torch.zeros(k, 3)
        radius = torch.zeros(k)
        y_low, y_high = -torch.ones(k), torch.ones(k)
        split_y = torch.zeros(k)
        for i, s in enumerate(specs):
            p = s.params
            if s.pattern == "stripes":
                axis[i] = torch.tensor(p["axis"], dtype=torch.float32)
                period[i], phase[i] = float(p["period"]), float(p["phase"])
            elif s.pattern in ("checkerboard", "dots"):
                period[i] = float(p["period"])
                offset[i] = torch.tensor(p["offset"], dtype=torch.float32)
                radius[i] = float(p.get("radius", 0.0))
            elif s.pattern == "gradient":
                y_low[i], y_high[i] = (float(v) for v in p["y_range"])
            elif s.pattern == "halves":
                split_y[i] = float(p["split_y"])
        for name, value in dict(
            pattern=pattern, color_a=color_a, color_b=color_b, axis=axis, period=period, phase=phase, offset=offset,
            radius=radius, y_low=y_low, y_high=y_high, split_y=split_y,
        ).items():  # fmt: skip
            self.register_buffer(name, value, persistent=False)

    def second_color_weight(self, points: torch.Tensor, materials: torch.Tensor | None = None) -> torch.Tensor:
        """Weight of the second colour at each point: float32 [N] in [0, 1] (0 = first colour, 1 = second).

        Args:
            points: float [N, 3] positions in the normalized render space.
            materials: int [N] spec index of each point (ignored, may be None, when there is a single spec).
        """
        if len(self.specs) == 1 or materials is None:
            index = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
        else:
            index = materials.long()
        p = points.float()
        pattern = self.pattern[index]
        period = self.period[index].unsqueeze(-1)

        along = (p * self.axis[index]).sum(-1) / period[:, 0] + self.phase[index]
        stripes = (torch.remainder(along, 1.0) >= 0.5).float()
        cell = p / period + self.offset[index]
        checker = torch.remainder(torch.floor(cell).sum(-1), 2.0)
        nearest = (cell - torch.round(cell)) * period
        dots = (nearest.norm(dim=-1) < self.radius[index]).float()
        y = p[:, 1]
        span = (self.y_high[index] - self.y_low[index]).clamp(min=1e-6)
        gradient = ((self.y_high[index] - y) / span).clamp(0.0, 1.0)
        halves = (y < self.split_y[index]).float()
        zero = torch.zeros_like(y)
        choices = torch.stack([zero, stripes, checker, dots, gradient, halves], dim=-1)  # PATTERNS order
        return choices.gather(1, pattern.unsqueeze(-1)).squeeze(-1)

    def forward(self, points: torch.Tensor, uvs: torch.Tensor | None = None, materials: torch.Tensor | None = None):
        """RGB float32 [N, 3] in [0, 1] at ``points`` (float [N, 3], normalized render space); ``uvs`` is ignored,
        ``materials`` (int [N]) selects the spec when the texture holds several."""
        if len(self.specs) == 1 or materials is None:
            index = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
        else:
            index = materials.long()
        w = self.second_color_weight(points, index).unsqueeze(-1)
        return (1.0 - w) * self.color_a[index] + w * self.color_b[index]


def _unit(v: np.ndarray) -> list[float]:
    return [float(x) for x in v / np.linalg.norm(v)]


def random_texture_spec(
    rng: np.random.Generator,
    pattern: str | None = None,
    colors: Sequence[str] | None = None,
    y_range: tuple[float, float] = (-1.0, 1.0),
    color_jitter: float = 0.04,
) -> TextureSpec:
    """Draw a random :class:`TextureSpec`.

    Args:
        rng: numpy generator (all randomness comes from it).
        pattern: force a pattern (default: uniform over :data:`PATTERNS`).
        colors: force the colour names (default: uniform, two distinct colours for two-colour patterns).
        y_range: (low, high) vertical extent of the object in the normalized render space, used by ``gradient``
            (spans it) and ``halves`` (boundary near its middle).
        color_jitter: standard deviation of the per-channel Gaussian jitter of the painted RGB (clipped to [0, 1]).
    Returns:
        A spec with parameters in the normalized render space (0.5..1.2 per pair of stripes, 0.3..0.6 per
        checkerboard cell, 0.3..0.5 lattice spacing with radius 0.22..0.34 of it for dots).
    """
    names = list(COLORS)
    pattern = pattern if pattern is not None else PATTERNS[int(rng.integers(len(PATTERNS)))]
    count = 1 if pattern == "solid" else 2
    if colors is None:
        chosen = rng.choice(len(names), size=count, replace=False)
        colors = tuple(names[int(i)] for i in chosen)
    colors = tuple(colors)
    low, high = float(y_range[0]), float(y_range[1])
    params: dict[str, Any] = {}
    if pattern == "stripes":
        direction = STRIPE_DIRECTIONS[int(rng.integers(len(STRIPE_DIRECTIONS)))]
        theta = float(rng.uniform(0.0, 2.0 * math.pi))
        horizontal = np.array([math.cos(theta), 0.0, math.sin(theta)])
        if direction == "horizontal":
            axis = np.array([0.0, 1.0, 0.0])
        elif direction == "vertical":
            axis = horizontal
        else:
            axis = horizontal + np.array([0.0, 1.0 if rng.random() < 0.5 else -1.0, 0.0])
        params = {"direction": direction, "axis": _unit(axis), "period": float(rng.uniform(0.5, 1.2)),
                  "phase": float(rng.random())}
    elif pattern == "checkerboard":
        params = {"period": float(rng.uniform(0.3, 0.6)), "offset": [float(v) for v in rng.random(3)]}
    elif pattern == "dots":
        period = float(rng.uniform(0.3, 0.5))
        params = {"period": period, "radius": period * float(rng.uniform(0.22, 0.34)),
                  "offset": [float(v) for v in rng.random(3)]}
    elif pattern == "gradient":
        params = {"y_range": [low, high]}
    elif pattern == "halves":
        middle = 0.5 * (low + high)
        params = {"split_y": middle + (high - low) * float(rng.uniform(-0.1, 0.1))}
    rgb = tuple(
        tuple(float(v) for v in np.clip(np.array(COLORS[c]) + rng.normal(0.0, color_jitter, 3), 0.0, 1.0))
        for c in colors
    )
    return TextureSpec(pattern=pattern, colors=colors, params=params, rgb=rgb)


# ======================================================================================================================
# Meshes
# ======================================================================================================================


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def make_shape_mesh(shape: str, rng: np.random.Generator, deform: bool | None = None) -> tuple[Mesh, dict]:
    """Build one random primitive of kind ``shape`` as a csdtex :class:`Mesh`, optionally deformed.

    Primitives (trimesh.creation, then subdivided so that edges are at most ~12% of the diagonal, 600..2300
    triangles): icosphere scaled into an ellipsoid, box with random extents, upright cylinder, upright cone (apex up),
    torus lying flat or standing, upright capsule. Deformations (each applied with probability 1/2 when ``deform``):
    twist around +Y (up to +-1.6 radians over the height), taper (horizontal scale changing linearly with height),
    smooth bumps (three random sinusoids displacing vertices along their normals by up to ~6% of the size).

    Args:
        shape: one of :data:`SHAPES`.
        rng: numpy generator.
        deform: apply deformations; None = with probability 1/2.
    Returns:
        (mesh, info): the Mesh (float64 vertices, +Y up, not normalized; no UVs) and a JSON-ready dict with the shape
        and the deformation parameters.
    """
    import trimesh
    from trimesh.remesh import subdivide_to_size

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: choose one of {SHAPES}")
    upright = _rotation_x(-math.pi / 2.0)  # trimesh's +Z axis -> +Y
    info: dict[str, Any] = {"shape": shape}
    if shape == "sphere":
        tm = trimesh.creation.icosphere(subdivisions=3)
        vertices = tm.vertices * rng.uniform(0.7, 1.3, 3)
    elif shape == "box":
        tm = trimesh.creation.box(extents=rng.uniform(0.6, 1.6, 3))
        vertices = tm.vertices
    elif shape == "cylinder":
        tm = trimesh.creation.cylinder(radius=float(rng.uniform(0.3, 0.7)), height=float(rng.uniform(0.8, 2.0)),
                                       sections=32)
        vertices = tm.vertices @ upright.T
    elif shape == "cone":
        tm = trimesh.creation.cone(radius=float(rng.uniform(0.4, 0.8)), height=float(rng.uniform(0.8, 1.8)),
                                   sections=32)
        vertices = tm.vertices @ upright.T
    elif shape == "torus":
        tm = trimesh.creation.torus(major_radius=1.0, minor_radius=float(rng.uniform(0.25, 0.5)),
                                    major_sections=32, minor_sections=16)
        standing = bool(rng.random() < 0.4)
        info["standing"] = standing
        vertices = tm.vertices if standing else tm.vertices @ upright.T
    else:  # capsule
        tm = trimesh.creation.capsule(height=float(rng.uniform(0.6, 1.6)), radius=float(rng.uniform(0.3, 0.6)),
                                      count=[16, 16])
        vertices = tm.vertices @ upright.T
    faces = np.asarray(tm.faces, dtype=np.int64)
    vertices = np.asarray(vertices, dtype=np.float64)
    diagonal = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    vertices, faces = subdivide_to_size(vertices, faces, max_edge=0.12 * diagonal)
    vertices = vertices - 0.5 * (vertices.max(0) + vertices.min(0))

    deform = bool(rng.random() < 0.5) if deform is None else bool(deform)
    info["deformed"] = deform
    if deform:
        from csdtex.mesh import vertex_normals

        height = max(float(vertices[:, 1].max() - vertices[:, 1].min()), 1e-6)
        y = vertices[:, 1] / height  # [-0.5, 0.5]
        if rng.random() < 0.5:
            twist = float(rng.uniform(-1.6, 1.6))
            angle = twist * y
            c, s = np.cos(angle), np.sin(angle)
            x, z = vertices[:, 0].copy(), vertices[:, 2].copy()
            vertices[:, 0], vertices[:, 2] = c * x + s * z, -s * x + c * z
            info["twist"] = twist
        if rng.random() < 0.5:
            taper = float(rng.uniform(-0.6, 0.6))
            vertices[:, [0, 2]] *= (1.0 + taper * y)[:, None]
            info["taper"] = taper
        if rng.random() < 0.5:
            normals = vertex_normals(vertices, faces)
            size = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
            displacement = np.zeros(len(vertices))
            for _ in range(3):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                frequency = float(rng.uniform(1.5, 4.0)) * 2.0 * math.pi / size
                displacement += np.sin(vertices @ direction * frequency + rng.uniform(0.0, 2.0 * math.pi))
            amplitude = float(rng.uniform(0.01, 0.02)) * size
            vertices = vertices + normals * (amplitude * displacement)[:, None]
            info["bumps"] = amplitude / size
    return Mesh(vertices, faces), info


@dataclass
class _PoolMesh:
    positions: np.ndarray  # float64 [V, 3], normalized into the unit sphere
    faces: np.ndarray  # int64 [F, 3]
    normals: np.ndarray  # float64 [V, 3]
    info: dict


def _pool_mesh(seed: int, split_code: int, index: int) -> _PoolMesh:
    rng = np.random.default_rng([seed, split_code, 1, index])
    shape = SHAPES[index % len(SHAPES)]
    mesh, info = make_shape_mesh(shape, rng)
    render = mesh.to_render("cpu")
    return _PoolMesh(render.positions.double().numpy(), mesh.faces, render.normals.double().numpy(), info)


def _transformed(mesh: _PoolMesh, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Random anisotropic scale + yaw, renormalized into the unit sphere: (positions, normals, params)."""
    scale = rng.uniform(0.75, 1.3, 3)
    yaw = float(rng.uniform(0.0, 2.0 * math.pi))
    matrix = _rotation_y(yaw) @ np.diag(scale)
    positions = mesh.positions @ matrix.T
    center = 0.5 * (positions.max(0) + positions.min(0))
    positions = positions - center
    positions /= max(float(np.linalg.norm(positions, axis=1).max()), 1e-12)
    normals = mesh.normals @ np.linalg.inv(matrix)  # inverse-transpose for normals (row vectors)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return positions, normals, {"scale": [float(v) for v in scale], "yaw_deg": math.degrees(yaw)}


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
        meshes: K render meshes on one device (normalized into the unit sphere; only positions, faces and normals are
            used).
        texture: a :class:`ProceduralTexture` with K specs (spec k paints mesh k).
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
    face_object = torch.cat(
        [torch.full((m.faces.shape[0],), k, dtype=torch.int32, device=device) for k, m in enumerate(meshes)]
    )
    vertex_object = torch.cat([torch.full((c,), k, dtype=torch.long, device=device) for k, c in enumerate(counts)])
    combined = RenderMesh(
        positions=positions,
        faces=faces,
        normals=torch.cat([m.normals for m in meshes]),
        uvs=torch.zeros(1, 2, device=device),
        uv_faces=torch.full_like(faces, -1),
        face_materials=face_object,
        num_materials=len(meshes),
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
            view_index = torch.nonzero(fragments.mask, as_tuple=True)[0]
            factor = headlight_factor(samples.normals, fragments, cameras)
            colors = torch.where(lit[view_index].unsqueeze(-1), colors * factor, colors)
        image = composite_on_background(colors, fragments.mask, background)
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
    mesh_pool_size: int = 480,
    cameras: CameraRanges | None = None,
    empty_caption_probability: float = 0.15,
    view_suffix_probability: float = 0.8,
    generic_noun_probability: float = 0.3,
    white_background_probability: float = 0.5,
    lit_probability: float = 0.0,
    backend: str = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, list[str], list[dict]]:
    """Render ``num_images`` captioned views of random textured objects.

    Objects are numbered 0, 1, ...; object i gets ``views_per_object`` consecutive images (the last object fewer if
    ``num_images`` is not a multiple), a mesh from the split's pool (``mesh_pool_size`` meshes, shapes in rotation,
    half deformed) with its own random scale and yaw, a :class:`TextureSpec`, and per view a random camera from
    ``cameras``, a background and a caption: empty with ``empty_caption_probability``; otherwise a random template and
    noun (the shape word, or ``"object"`` with ``generic_noun_probability``) plus, with ``view_suffix_probability``,
    the view suffix of the camera (DESIGN.md's rule via :func:`csdtex.guidance.prompts.view_suffix`).

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
        mesh_pool_size: number of distinct base meshes of the split (built once, 2-10 ms each).
        cameras: camera ranges (default :data:`DATA_CAMERAS`).
        empty_caption_probability, view_suffix_probability, generic_noun_probability: caption choices, per image.
        white_background_probability: per image; other backgrounds are uniform random RGB.
        lit_probability: share of images with headlight diffuse shading instead of plain albedo.
        backend: rasterizer backend (``"auto"`` = nvdiffrast on CUDA when installed, else the torch rasterizer).
        progress: print a progress line every ~10% of the objects.
    Returns:
        ``(images, captions, metadata)``: images uint8 [N, resolution, resolution, 3] (RGB, row 0 at the top);
        captions list of N str (``""`` = unconditional); metadata list of N JSON-ready dicts (split, object, view,
        shape, mesh info, transform, texture spec dict, caption template / noun, camera elevation / azimuth (degrees) /
        distance / fov, view_suffix (the camera's suffix even when the caption has none), background RGB, lit,
        coverage = fraction of pixels covered by the object).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
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
    pool: dict[int, _PoolMesh] = {}
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
                pool[pool_index] = _pool_mesh(seed, split_code, pool_index)
            base = pool[pool_index]
            positions, normals, transform = _transformed(base, rng)
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
            # Draw every view of the object, then keep the ones that fit: a dataset is a prefix of a larger one.
            v_all = views_per_object
            views = min(v_all, end_image - index * v_all)
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
        cams = make_cameras(np.concatenate(elevation), np.concatenate(azimuth), np.concatenate(distance),
                            np.concatenate(fov), device=device)  # fmt: skip
        texture = ProceduralTexture(specs).to(device)
        image, mask = render_objects(
            render_meshes, texture, cams, torch.tensor(view_object, device=device), resolution,
            background=torch.as_tensor(np.concatenate(backgrounds), dtype=torch.float32, device=device),
            shading=torch.as_tensor(np.concatenate(lit_flags), device=device), backend=backend,
        )  # fmt: skip
        start = len(metadata)
        images[start : start + len(records)] = (image * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        coverage = mask.float().mean(dim=(1, 2)).cpu().tolist()
        for record, cover in zip(records, coverage):
            record["coverage"] = float(cover)
        metadata.extend(records)
        done = (first + objects_per_call - first_object) / max(1, num_objects - first_object)
        if progress and done >= next_report:
            print(f"  synthetic data: {len(metadata)}/{num_images} images", flush=True)
            next_report += 0.1
    return images, captions, metadata


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
