"""Procedural textures of the synthetic training data: :class:`TextureSpec` (what is painted and how captions name it),
:class:`ProceduralTexture` (a texture model that paints specs) and :func:`random_texture_spec`.

:class:`ProceduralTexture` is a texture model (``uses_uvs = False``) over the normalized 3D position of the surface.
Patterns (:data:`~csdtex.tinyprior.vocabulary.PATTERNS`): solid, stripes (horizontal = along +Y, vertical = along a
horizontal axis, diagonal), 3D checkerboard, dots (a 3D lattice of balls cut by the surface), vertical gradient (first
colour at the top) and top/bottom halves (first colour on top). Colours come from
:data:`~csdtex.tinyprior.vocabulary.COLORS` with a small random jitter per object.

Conventions: world +Y up; all texture coordinates are the mesh's *normalized render space* (unit sphere around the
origin); colours are RGB in [0, 1].

Public API: :class:`TextureSpec`, :class:`ProceduralTexture`, :func:`random_texture_spec`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from csdtex.tinyprior.vocabulary import (
    CAPTION_TEMPLATES,
    COLORS,
    GENERIC_NOUN,
    NUM_TEMPLATES,
    PATTERNS,
    SHAPES,
    STRIPE_DIRECTIONS,
    VIEW_SUFFIXES,
)


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
            template: index in ``0 .. NUM_TEMPLATES - 1`` of the phrasing (see
                :data:`~csdtex.tinyprior.vocabulary.CAPTION_TEMPLATES`); template 1 of stripes names the direction.
        Returns:
            A lowercase caption using only :data:`VOCABULARY` words, e.g. ``"a red and blue striped box, side view"``.
        """
        if noun not in SHAPES and noun != GENERIC_NOUN:
            raise ValueError(f"noun must be one of {SHAPES + (GENERIC_NOUN,)}, got {noun!r}")
        if view_suffix and view_suffix not in VIEW_SUFFIXES:
            raise ValueError(f"view_suffix must be '' or one of {VIEW_SUFFIXES}, got {view_suffix!r}")
        text = CAPTION_TEMPLATES[self.pattern][template % NUM_TEMPLATES].format(
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
