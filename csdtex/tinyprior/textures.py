"""Procedural textures of the synthetic training data: :class:`TextureSpec` (what is painted and how captions name it),
:class:`ProceduralTexture` (a texture model that paints specs) and :func:`random_texture_spec`.

:class:`ProceduralTexture` is a texture model (``uses_uvs = False``) over the normalized 3D position of the surface.
Patterns (:data:`~csdtex.tinyprior.vocabulary.PATTERNS`): solid, stripes (horizontal = along +Y, vertical = along a
horizontal axis, diagonal), 3D checkerboard, dots (a 3D lattice of balls cut by the surface), vertical gradient (first
colour at the top) and top/bottom halves (first colour on top). Colours come from
:data:`~csdtex.tinyprior.vocabulary.COLORS` with a small random jitter per object.

Conventions: world +Y up; all texture coordinates are the mesh's *normalized render space* (unit sphere around the
origin); colours are RGB in [0, 1].

Data version 2 (issue #15) adds the materials of :data:`~csdtex.tinyprior.vocabulary.MATERIALS` (wood grain,
marble, brick, camouflage: 3D noise textures in shades of one colour, :func:`material_palette`, :func:`fbm`), pattern
sizes tied to the part they are painted on (:meth:`TextureSpec.scaled`, :func:`part_scale_factor`: thin parts get
finer stripes, cells, dots, bricks...), its own random draw (:func:`random_texture_spec_v2`) and contrasting pairs of
role-bearing textures (:func:`contrast_partner`, :func:`pair_template`). Version-1 specs paint and caption exactly as
before.

Public API: :class:`TextureSpec`, :class:`ProceduralTexture`, :func:`random_texture_spec`,
:func:`random_texture_spec_v2`, :func:`contrast_partner`, :func:`pair_template`, :func:`part_scale_factor`,
:func:`material_palette`, :func:`value_noise`, :func:`fbm`, :func:`oblique_rotation`, :data:`MIN_FEATURE_SIZE`,
:data:`PART_REFERENCE_SIZE`, :data:`PATTERN_WEIGHTS_V2`.
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
    CAPTION_TEMPLATES_V2,
    COLORS,
    DIRECTION_TEMPLATES,
    GENERIC_NOUN,
    MATERIALS,
    NUM_TEMPLATES,
    ONE_COLOR_PATTERNS,
    PATTERNS,
    PATTERNS_V2,
    STRIPE_DIRECTIONS,
    VIEW_SUFFIXES,
    nouns_for,
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
            - dots: ``period`` (lattice spacing), ``radius`` (ball radius), ``offset`` [3] in [0, 1) cells; optional
              ``rotation`` [3][3], an orthonormal matrix applied to the points before the lattice (without it the
              lattice is axis-aligned, as in the training data; a face parallel to the lattice planes then cuts the
              balls in one layer only and can show few or no dots).
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
        if self.pattern not in PATTERNS_V2:
            raise ValueError(f"unknown pattern {self.pattern!r}: choose one of {PATTERNS_V2}")
        self.colors = tuple(self.colors)
        wanted = 1 if self.pattern in ONE_COLOR_PATTERNS else 2
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

    def caption(self, noun: str = GENERIC_NOUN, view_suffix: str = "", template: int = 0, version: int = 1) -> str:
        """The caption of this texture on an object called ``noun``.

        Args:
            noun: a shape word from :data:`SHAPES` or :data:`GENERIC_NOUN` (version 2 also
                :data:`~csdtex.tinyprior.vocabulary.SHAPE_NOUNS_V2`).
            view_suffix: ``""`` or one of :data:`VIEW_SUFFIXES` (appended as is).
            template: index of the phrasing, taken modulo the pattern's number of templates (version 1: see
                :data:`~csdtex.tinyprior.vocabulary.CAPTION_TEMPLATES`, template 1 of stripes names the direction;
                version 2: :data:`~csdtex.tinyprior.vocabulary.CAPTION_TEMPLATES_V2`).
            version: caption data version (1 or 2); material patterns need version 2.
        Returns:
            A lowercase caption using only the version's vocabulary, e.g. ``"a red and blue striped box, side
            view"``.
        """
        nouns = nouns_for(version) + (GENERIC_NOUN,)
        if noun not in nouns:
            raise ValueError(f"noun must be one of {nouns}, got {noun!r}")
        if view_suffix and view_suffix not in VIEW_SUFFIXES:
            raise ValueError(f"view_suffix must be '' or one of {VIEW_SUFFIXES}, got {view_suffix!r}")
        if version == 1:
            if self.pattern not in CAPTION_TEMPLATES:
                raise ValueError(f"pattern {self.pattern!r} has no version-1 caption: use version=2")
            phrasing = CAPTION_TEMPLATES[self.pattern][template % NUM_TEMPLATES]
        else:
            templates = CAPTION_TEMPLATES_V2[self.pattern]
            phrasing = templates[template % len(templates)]
        text = phrasing.format(
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

    def scaled(self, factor: float) -> TextureSpec:
        """This texture with its feature size multiplied by ``factor`` (for a part of an object; data version 2).

        The feature size is the pattern's length parameter (stripes / checkerboard / dots ``period``, material
        ``scale``; dots scale their ``radius`` along). It never drops below :data:`MIN_FEATURE_SIZE` of the pattern
        (features thinner than ~2 pixels of a 64x64 render would not be visible), nor grows above the original:
        the factor applied is ``min(1, max(factor, MIN_FEATURE_SIZE / size))``. Unitless parameters (phases, offsets
        in cells, directions) and gradient / halves / solid textures are unchanged, so parts with the same factor
        get the same texture and the pattern runs on continuously across them.

        Args:
            factor: wanted scale in (0, 1] (e.g. :func:`part_scale_factor` of the part's size).
        Returns:
            a new spec (same pattern, colours, rgb); ``params["part_factor"]`` records the factor applied.
        """
        key = _LENGTH_PARAM.get(self.pattern)
        if key is None:
            return self
        size = float(self.params[key])
        applied = min(1.0, max(float(factor), MIN_FEATURE_SIZE[self.pattern] / max(size, 1e-9)))
        params = dict(self.params)
        params[key] = size * applied
        if self.pattern == "dots":
            params["radius"] = float(self.params["radius"]) * applied
        params["part_factor"] = applied
        return TextureSpec(self.pattern, self.colors, params, self.rgb)


def oblique_rotation(rng: np.random.Generator, max_alignment: float = 0.9) -> list[list[float]]:
    """A random rotation (uniform over rotations, ``det`` +1; 3x3 as nested lists for ``TextureSpec.params``) none
    of whose entries exceeds ``max_alignment`` in magnitude, so no world axis lies near a lattice axis: planar faces
    of an axis-aligned mesh then cut a rotated dot lattice obliquely, through many layers of balls. Drawn by
    rejection from ``rng`` (QR of a Gaussian matrix, signs fixed)."""
    while True:
        q, r = np.linalg.qr(rng.standard_normal((3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        if np.abs(q).max() <= max_alignment:
            return q.tolist()


_PATTERN_ID = {name: index for index, name in enumerate(PATTERNS_V2)}  # PATTERNS first, same indices as version 1

_LENGTH_PARAM: dict[str, str] = {"stripes": "period", "checkerboard": "period", "dots": "period", "wood": "scale",
                                 "marble": "scale", "brick": "scale", "camouflage": "scale"}

MIN_FEATURE_SIZE: dict[str, float] = {"stripes": 0.2, "checkerboard": 0.12, "dots": 0.18, "wood": 0.07,
                                      "marble": 0.25, "brick": 0.18, "camouflage": 0.15}
"""Smallest length parameter, in normalized render units, that :meth:`TextureSpec.scaled` gives each repeating
pattern (stripes: one pair of stripes; checkerboard: a cell; dots: the lattice spacing; wood: one growth ring; marble:
vein spacing; brick: a brick's length; camouflage: the blotch size). At the dataset's cameras one unit is about 30
pixels of a 64x64 render, so each feature (half a stripe pair, a cell, a dot, a brick's height) stays >= ~2 px."""

PART_REFERENCE_SIZE = 0.6
"""Part size (normalized render units) from which patterns keep their full feature size (see
:func:`part_scale_factor`)."""


def part_scale_factor(part_size: float | np.ndarray) -> float | np.ndarray:
    """Feature-size factor of a part of size ``part_size`` (its middle extent in normalized render units, see
    :func:`csdtex.tinyprior.shapes_v2.part_sizes`): ``clip(part_size / PART_REFERENCE_SIZE, 0, 1)``; thin parts
    (legs, handles) get finer patterns, large bodies the full size. :meth:`TextureSpec.scaled` applies it with a
    floor (:data:`MIN_FEATURE_SIZE`)."""
    return np.clip(np.asarray(part_size, dtype=np.float64) / PART_REFERENCE_SIZE, 0.0, 1.0)


def _luminance(rgb: np.ndarray) -> float:
    return float(np.dot(np.asarray(rgb, dtype=np.float64), [0.2126, 0.7152, 0.0722]))


def _shade(rgb: np.ndarray, amount: float) -> np.ndarray:
    """A darker shade of ``rgb`` (by ``amount`` in [0, 1]), or a lighter one for dark colours (luminance < 0.15)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if _luminance(rgb) < 0.15:
        return rgb + (1.0 - rgb) * (0.8 * amount)
    return rgb * (1.0 - amount)


def material_palette(pattern: str, rgb: Sequence[float]) -> np.ndarray:
    """The three tones a material paints with, from its main colour ``rgb`` (float [3] in [0, 1]).

    Returns:
        float64 [3, 3] RGB in [0, 1]: row 0 = the main colour itself; rows 1, 2 = the other tones: wood (dark grain,
        unused), marble (veins: darker, or lighter for dark colours; unused), brick (mortar: light grey tinted by the
        colour, or a darker shade for very light colours; unused), camouflage (shades 0.35 and 0.6 darker, lighter for
        dark colours). Other patterns: the colour three times.
    """
    base = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    if pattern == "wood":
        tones = [base, _shade(base, 0.45), base]
    elif pattern == "marble":
        vein = _shade(base, 0.55) if _luminance(base) >= 0.3 else base + (1.0 - base) * 0.7
        tones = [base, vein, base]
    elif pattern == "brick":
        mortar = 0.8 * np.full(3, 0.82) + 0.2 * base if _luminance(base) < 0.6 else base * 0.55
        tones = [base, mortar, base]
    elif pattern == "camouflage":
        tones = [base, _shade(base, 0.35), _shade(base, 0.6)]
    else:
        tones = [base, base, base]
    return np.clip(np.stack(tones), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- 3D value noise


def _hash3(ix: torch.Tensor, iy: torch.Tensor, iz: torch.Tensor) -> torch.Tensor:
    """Deterministic integer hash of lattice points (int64 tensors of one shape) -> float32 in [0, 1]."""
    mask = 0xFFFFFFFF  # keep 32 bits before each multiplication: no int64 overflow
    h = torch.bitwise_and(ix * 73856093 + iy * 19349663 + iz * 83492791, mask)
    h = torch.bitwise_and(torch.bitwise_xor(h, torch.bitwise_right_shift(h, 13)) * 1274126177, mask)
    h = torch.bitwise_xor(h, torch.bitwise_right_shift(h, 16))
    return torch.bitwise_and(h, 0xFFFF).float() / 65535.0


def value_noise(points: torch.Tensor) -> torch.Tensor:
    """Smooth 3D value noise: float [N, 3] positions (lattice spacing 1) -> float32 [N] in [0, 1].

    Random values at the integer lattice points (:func:`_hash3`), interpolated trilinearly with smoothstep weights;
    the same on every device (integer hash, no random generator)."""
    p = points.float()
    cell = torch.floor(p)
    f = p - cell
    f = f * f * (3.0 - 2.0 * f)
    i = cell.long()
    out = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1.0 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1.0 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1.0 - f[:, 2]
                out = out + wx * wy * wz * _hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz)
    return out


def fbm(points: torch.Tensor, octaves: int = 3) -> torch.Tensor:
    """Fractal sum of :func:`value_noise` (each octave at twice the frequency and half the amplitude):
    float [N, 3] -> float32 [N] in [0, 1] (mean ~0.5; most values within 0.5 +- 0.2)."""
    total = torch.zeros(points.shape[0], dtype=torch.float32, device=points.device)
    amplitude, norm, p = 1.0, 0.0, points.float()
    for octave in range(octaves):
        total = total + amplitude * value_noise(p + 17.0 * octave)
        norm += amplitude
        amplitude *= 0.5
        p = p * 2.0
    return total / norm


class ProceduralTexture(torch.nn.Module):
    """Texture model painting one or several :class:`TextureSpec` as functions of the 3D surface position.

    Follows csdtex's texture-model interface: ``forward(points [N, 3], uvs, materials [N]) -> rgb [N, 3]`` in [0, 1];
    ``uses_uvs = False`` (UVs are ignored). With several specs, ``materials[n]`` selects the spec of point n (the
    batched renderer :func:`render_objects` gives every object its own material index); with one spec every point uses
    it, so the module also works with :func:`csdtex.render.views.render_views` on a single-material mesh.

    The texture has no trainable parameters (its tensors are buffers). The patterns of version 1
    (:data:`PATTERNS`) are fully vectorized: every one is evaluated for every point and the point's own pattern is
    selected, which keeps the GPU path free of host syncs. The materials of data version 2 (:data:`MATERIALS`: wood,
    marble, brick, camouflage; built from :func:`fbm` noise) are evaluated only when some spec is a material, and
    then only at the points of each material present (one boolean selection per material, a host sync on CUDA);
    textures without materials compute exactly what version 1 computed.

    Material formulas (``p`` = position in the normalized render space, ``s`` = the spec's ``scale``):

    - wood: growth rings around the line through ``center`` along ``axis``: ring phase = distance to the line / s
      + 3 * turbulence * (fbm(p / 6s) - 0.5); the darker tone grows over the second half of each ring.
    - marble: veins where sin(pi * t) is near 0, t = p . axis / s + 4 * turbulence * (fbm(p / s) - 0.5), sharpened
      by ``sharpness``, plus a finer second set of veins.
    - brick: a staggered 3D lattice of bricks s long and s * height_ratio high (rotated by ``yaw`` about +Y, shifted
      by ``offset`` cells), mortar joints s * mortar_ratio wide, each brick's brightness varied by +-12%.
    - camouflage: two thresholded fbm fields at blotch size s paint the two other tones over the main colour.

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
        rotation = torch.eye(3).repeat(k, 1, 1)
        self.rotates_lattice = any("rotation" in s.params for s in specs if s.pattern == "dots")
        for i, s in enumerate(specs):
            p = s.params
            if s.pattern == "stripes":
                axis[i] = torch.tensor(p["axis"], dtype=torch.float32)
                period[i], phase[i] = float(p["period"]), float(p["phase"])
            elif s.pattern in ("checkerboard", "dots"):
                period[i] = float(p["period"])
                offset[i] = torch.tensor(p["offset"], dtype=torch.float32)
                radius[i] = float(p.get("radius", 0.0))
                if s.pattern == "dots" and "rotation" in p:
                    rotation[i] = torch.tensor(p["rotation"], dtype=torch.float32)
            elif s.pattern == "gradient":
                y_low[i], y_high[i] = (float(v) for v in p["y_range"])
            elif s.pattern == "halves":
                split_y[i] = float(p["split_y"])
        for name, value in dict(
            pattern=pattern, color_a=color_a, color_b=color_b, axis=axis, period=period, phase=phase, offset=offset,
            radius=radius, y_low=y_low, y_high=y_high, split_y=split_y, rotation=rotation,
        ).items():  # fmt: skip
            self.register_buffer(name, value, persistent=False)
        # Data version 2's materials: parameters and tones, only when a spec uses one.
        self.material_ids = tuple(sorted({_PATTERN_ID[s.pattern] for s in specs if s.pattern in MATERIALS}))
        if self.material_ids:
            scale, turbulence, sharpness = torch.ones(k), torch.zeros(k), torch.ones(k)
            center, yaw = torch.zeros(k, 3), torch.zeros(k)
            tones = torch.zeros(k, 3, 3)
            for i, s in enumerate(specs):
                if s.pattern not in MATERIALS:
                    continue
                p = s.params
                scale[i] = float(p["scale"])
                offset[i] = torch.tensor(p["offset"], dtype=torch.float32)
                axis[i] = torch.tensor(p.get("axis", [0.0, 1.0, 0.0]), dtype=torch.float32)
                center[i] = torch.tensor(p.get("center", [0.0, 0.0, 0.0]), dtype=torch.float32)
                turbulence[i] = float(p.get("turbulence", p.get("height_ratio", 0.0)))
                sharpness[i] = float(p.get("sharpness", p.get("mortar_ratio", 1.0)))
                yaw[i] = float(p.get("yaw", 0.0))
                tones[i] = torch.tensor(material_palette(s.pattern, s.colors_rgb()[0]), dtype=torch.float32)
            buffers = {"m_scale": scale, "m_turbulence": turbulence, "m_sharpness": sharpness, "m_center": center,
                       "m_yaw": yaw, "m_tones": tones}
            for name, value in buffers.items():
                self.register_buffer(name, value, persistent=False)

    def _index(self, points: torch.Tensor, materials: torch.Tensor | None) -> torch.Tensor:
        if len(self.specs) == 1 or materials is None:
            return torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
        return materials.long()

    def _evaluate(self, points: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(second-colour weight float32 [N] in [0, 1], material RGB float32 [N, 3] or None without materials)."""
        p = points.float()
        pattern = self.pattern[index]
        period = self.period[index].unsqueeze(-1)

        along = (p * self.axis[index]).sum(-1) / period[:, 0] + self.phase[index]
        stripes = (torch.remainder(along, 1.0) >= 0.5).float()
        cell = p / period + self.offset[index]
        checker = torch.remainder(torch.floor(cell).sum(-1), 2.0)
        if self.rotates_lattice:  # only then: specs without a rotation keep their exact values
            cell_dots = torch.einsum("nij,nj->ni", self.rotation[index], p) / period + self.offset[index]
        else:
            cell_dots = cell
        nearest = (cell_dots - torch.round(cell_dots)) * period
        dots = (nearest.norm(dim=-1) < self.radius[index]).float()
        y = p[:, 1]
        span = (self.y_high[index] - self.y_low[index]).clamp(min=1e-6)
        gradient = ((self.y_high[index] - y) / span).clamp(0.0, 1.0)
        halves = (y < self.split_y[index]).float()
        zero = torch.zeros_like(y)
        choices = torch.stack([zero, stripes, checker, dots, gradient, halves], dim=-1)  # PATTERNS order
        if not self.material_ids:
            return choices.gather(1, pattern.unsqueeze(-1)).squeeze(-1), None
        weight = choices.gather(1, pattern.clamp(max=len(PATTERNS) - 1).unsqueeze(-1)).squeeze(-1)
        rgb = torch.zeros_like(p)
        for material in self.material_ids:
            rows = torch.nonzero(pattern == material).squeeze(-1)
            if rows.numel() == 0:
                continue
            w, colors = self._material(PATTERNS_V2[material], p[rows], index[rows])
            weight = weight.index_copy(0, rows, w)
            rgb = rgb.index_copy(0, rows, colors)
        return weight, rgb

    def _material(self, name: str, p: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight of the non-main tones float32 [M] in [0, 1], RGB float32 [M, 3]) of material ``name`` at points
        ``p`` (float32 [M, 3]) of specs ``index`` (int64 [M])."""
        scale = self.m_scale[index].unsqueeze(-1)
        offset = self.offset[index]
        tones = self.m_tones[index]  # [M, 3 tones, 3]
        base, second, third = tones[:, 0], tones[:, 1], tones[:, 2]
        turbulence, sharpness = self.m_turbulence[index], self.m_sharpness[index]
        if name == "wood":
            axis = self.axis[index]
            q = p - self.m_center[index]
            along = (q * axis).sum(-1, keepdim=True)
            radial = (q - along * axis).norm(dim=-1)
            warp = fbm(p / (6.0 * scale) + offset, octaves=2) - 0.5
            ring = torch.remainder(radial / scale[:, 0] + 3.0 * turbulence * warp, 1.0)
            w = ((ring - 0.45) / 0.55).clamp(0.0, 1.0) ** 2
            rgb = (base + (0.9 * w).unsqueeze(-1) * (second - base)) * (1.0 + 0.25 * warp).unsqueeze(-1)
        elif name == "marble":
            axis = self.axis[index]
            t = (p * axis).sum(-1) / scale[:, 0] + 4.0 * turbulence * (fbm(p / scale + offset) - 0.5)
            vein = (1.0 - torch.sin(math.pi * t).abs()) ** sharpness
            t2 = 1.9 * t + 4.0 * turbulence * (fbm(1.7 * p / scale + offset + 9.1, octaves=2) - 0.5)
            vein2 = (1.0 - torch.sin(math.pi * t2).abs()) ** (2.0 * sharpness)
            w = (vein + 0.6 * vein2).clamp(0.0, 1.0)
            cloud = 1.0 + 0.16 * (value_noise(0.5 * p / scale + offset + 3.3) - 0.5)
            rgb = (base + w.unsqueeze(-1) * (second - base)) * cloud.unsqueeze(-1)
        elif name == "brick":
            yaw = self.m_yaw[index]
            c, s = torch.cos(yaw), torch.sin(yaw)
            x = c * p[:, 0] - s * p[:, 2]
            z = s * p[:, 0] + c * p[:, 2]
            length = scale[:, 0]
            height = length * turbulence  # height_ratio
            half_joint = 0.5 * length * sharpness  # mortar_ratio
            rows = p[:, 1] / height + offset[:, 1]
            row = torch.floor(rows)
            shift = 0.5 * torch.remainder(row, 2.0)
            u = x / length + shift + offset[:, 0]
            v = z / length + shift + offset[:, 2]
            mortar = (
                ((torch.remainder(rows, 1.0) - 0.5).abs() * height > 0.5 * height - half_joint)
                | ((torch.remainder(u, 1.0) - 0.5).abs() * length > 0.5 * length - half_joint)
                | ((torch.remainder(v, 1.0) - 0.5).abs() * length > 0.5 * length - half_joint)
            )
            variation = 0.88 + 0.24 * _hash3(row.long(), torch.floor(u).long(), torch.floor(v).long())
            w = mortar.float()
            rgb = torch.where(mortar.unsqueeze(-1), second, base * variation.unsqueeze(-1))
        else:  # camouflage
            first = fbm(p / scale + offset) > 0.53
            other = fbm(p / scale + offset + 41.3) > 0.56
            w = torch.where(other, 1.0, torch.where(first, 0.5, 0.0))
            rgb = torch.where(other.unsqueeze(-1), third, torch.where(first.unsqueeze(-1), second, base))
        return w.float(), rgb.clamp(0.0, 1.0)

    def second_color_weight(self, points: torch.Tensor, materials: torch.Tensor | None = None) -> torch.Tensor:
        """Weight of the second colour at each point: float32 [N] in [0, 1] (0 = first colour, 1 = second; for a
        material, the share of its other tones: grain, veins, mortar, or 0 / 0.5 / 1 for the camouflage tones).

        Args:
            points: float [N, 3] positions in the normalized render space.
            materials: int [N] spec index of each point (ignored, may be None, when there is a single spec).
        """
        return self._evaluate(points, self._index(points, materials))[0]

    def forward(self, points: torch.Tensor, uvs: torch.Tensor | None = None, materials: torch.Tensor | None = None):
        """RGB float32 [N, 3] in [0, 1] at ``points`` (float [N, 3], normalized render space); ``uvs`` is ignored,
        ``materials`` (int [N]) selects the spec when the texture holds several."""
        index = self._index(points, materials)
        w, material_rgb = self._evaluate(points, index)
        w = w.unsqueeze(-1)
        rgb = (1.0 - w) * self.color_a[index] + w * self.color_b[index]
        if material_rgb is not None:
            is_material = self.pattern[index] >= len(PATTERNS)
            rgb = torch.where(is_material.unsqueeze(-1), material_rgb, rgb)
        return rgb


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


PATTERN_WEIGHTS_V2: dict[str, float] = {
    "solid": 0.8, "stripes": 1.2, "checkerboard": 1.0, "dots": 1.1, "gradient": 1.1, "halves": 1.2,
    "wood": 0.6, "marble": 0.6, "brick": 0.6, "camouflage": 0.6,
}  # fmt: skip
"""Relative frequency of each pattern in data version 2 (stripes and halves, the weakest patterns of the version-1
prior, drawn a little more often; the four materials together about 27%)."""

TYPICAL_MATERIAL_COLOR_PROBABILITY = 0.6
"""Probability that a material's colour is drawn from its typical colours (:data:`MATERIALS`), else from all."""


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def random_texture_spec_v2(
    rng: np.random.Generator,
    pattern: str | None = None,
    colors: Sequence[str] | None = None,
    y_range: tuple[float, float] = (-1.0, 1.0),
    color_jitter: float = 0.04,
) -> TextureSpec:
    """Draw a random :class:`TextureSpec` of data version 2 (the version-1 draw, :func:`random_texture_spec`, is
    unchanged).

    Differences from version 1: patterns from :data:`PATTERNS_V2` with :data:`PATTERN_WEIGHTS_V2`; base feature sizes
    a little finer (stripes 0.35..1.0 per pair, checkerboard cells 0.22..0.5, dot lattice 0.22..0.45 with radius
    0.22..0.34 of it) since :meth:`TextureSpec.scaled` only ever makes them finer per part; material parameters:

    - wood: ``scale`` (ring spacing) 0.07..0.16, ``axis`` +Y (1/2) or horizontal, ``center`` a point within 0.6 of
      the origin, ``turbulence`` 0.4..1.2, ``offset`` [3] noise offset.
    - marble: ``scale`` (vein spacing) 0.35..0.7, ``axis`` random unit vector, ``turbulence`` 0.3..0.7,
      ``sharpness`` 6..14, ``offset``.
    - brick: ``scale`` (brick length) 0.22..0.4, ``height_ratio`` 0.33..0.45, ``mortar_ratio`` 0.05..0.08, ``yaw``
      (radians, lattice rotation about +Y; :func:`csdtex.tinyprior.synthetic.generate_dataset` aligns it with the
      object's yaw half of the time), ``offset`` [3] in [0, 1) cells.
    - camouflage: ``scale`` (blotch size) 0.2..0.45, ``offset``.

    Args:
        rng: numpy generator (all randomness comes from it).
        pattern: force a pattern of :data:`PATTERNS_V2` (default: drawn with :data:`PATTERN_WEIGHTS_V2`).
        colors: force the colour names (default: two distinct uniform colours for two-colour patterns, one uniform
            colour for solid, for a material one of its typical colours with probability
            :data:`TYPICAL_MATERIAL_COLOR_PROBABILITY`, else any).
        y_range: (low, high) vertical extent of the object in the normalized render space (gradient, halves).
        color_jitter: standard deviation of the per-channel Gaussian jitter of the painted RGB (clipped to [0, 1]).
    Returns:
        A spec with lengths in the normalized render space (unit sphere, +Y up).
    """
    if pattern is None:
        weights = np.array([PATTERN_WEIGHTS_V2[p] for p in PATTERNS_V2])
        pattern = PATTERNS_V2[int(rng.choice(len(PATTERNS_V2), p=weights / weights.sum()))]
    if pattern not in PATTERNS_V2:
        raise ValueError(f"unknown pattern {pattern!r}: choose one of {PATTERNS_V2}")
    names = list(COLORS)
    if colors is None:
        if pattern in MATERIALS and rng.random() < TYPICAL_MATERIAL_COLOR_PROBABILITY:
            typical = MATERIALS[pattern]
            colors = (typical[int(rng.integers(len(typical)))],)
        else:
            count = 1 if pattern in ONE_COLOR_PATTERNS else 2
            colors = tuple(names[int(i)] for i in rng.choice(len(names), size=count, replace=False))
    colors = tuple(colors)
    if pattern in MATERIALS or pattern in ("stripes", "checkerboard", "dots", "gradient", "halves"):
        params = _random_params_v2(rng, pattern, (float(y_range[0]), float(y_range[1])))
    else:
        params = {}
    rgb = tuple(
        tuple(float(v) for v in np.clip(np.array(COLORS[c]) + rng.normal(0.0, color_jitter, 3), 0.0, 1.0))
        for c in colors
    )
    return TextureSpec(pattern=pattern, colors=colors, params=params, rgb=rgb)


def _stripe_axis(rng: np.random.Generator, direction: str) -> list[float]:
    theta = float(rng.uniform(0.0, 2.0 * math.pi))
    horizontal = np.array([math.cos(theta), 0.0, math.sin(theta)])
    if direction == "horizontal":
        return [0.0, 1.0, 0.0]
    if direction == "vertical":
        return _unit(horizontal)
    return _unit(horizontal + np.array([0.0, 1.0 if rng.random() < 0.5 else -1.0, 0.0]))


def _random_params_v2(rng: np.random.Generator, pattern: str, y_range: tuple[float, float]) -> dict[str, Any]:
    low, high = y_range
    offset = [float(v) for v in rng.uniform(0.0, 100.0, 3)]
    if pattern == "stripes":
        direction = STRIPE_DIRECTIONS[int(rng.integers(len(STRIPE_DIRECTIONS)))]
        return {"direction": direction, "axis": _stripe_axis(rng, direction), "period": float(rng.uniform(0.35, 1.0)),
                "phase": float(rng.random())}
    if pattern == "checkerboard":
        return {"period": float(rng.uniform(0.22, 0.5)), "offset": [float(v) for v in rng.random(3)]}
    if pattern == "dots":
        period = float(rng.uniform(0.22, 0.45))
        return {"period": period, "radius": period * float(rng.uniform(0.22, 0.34)),
                "offset": [float(v) for v in rng.random(3)]}
    if pattern == "gradient":
        return {"y_range": [low, high]}
    if pattern == "halves":
        return {"split_y": 0.5 * (low + high) + (high - low) * float(rng.uniform(-0.1, 0.1))}
    if pattern == "wood":
        axis = [0.0, 1.0, 0.0] if rng.random() < 0.5 else _stripe_axis(rng, "vertical")
        center = rng.uniform(-0.6, 0.6, 3)
        return {"scale": float(rng.uniform(0.07, 0.16)), "axis": axis, "center": [float(v) for v in center],
                "turbulence": float(rng.uniform(0.4, 1.2)), "offset": offset}
    if pattern == "marble":
        return {"scale": float(rng.uniform(0.35, 0.7)), "axis": [float(v) for v in _random_unit(rng)],
                "turbulence": float(rng.uniform(0.3, 0.7)), "sharpness": float(rng.uniform(6.0, 14.0)),
                "offset": offset}
    if pattern == "brick":
        return {"scale": float(rng.uniform(0.22, 0.4)), "height_ratio": float(rng.uniform(0.33, 0.45)),
                "mortar_ratio": float(rng.uniform(0.05, 0.08)), "yaw": float(rng.uniform(0.0, 2.0 * math.pi)),
                "offset": [float(v) for v in rng.random(3)]}
    if pattern == "camouflage":
        return {"scale": float(rng.uniform(0.2, 0.45)), "offset": offset}
    return {}


def contrast_partner(spec: TextureSpec, rng: np.random.Generator) -> TextureSpec:
    """The minimal contrasting edit of a role-bearing texture (data version 2's contrasting pairs).

    - dots, gradient, halves: the two colours swapped (names and painted RGB), every other parameter kept: "a yellow
      object with black dots" <-> "a black object with yellow dots", "a red top and a blue bottom" <-> "a blue top
      and a red bottom", so a caption with swapped colour words shows the swapped image.
    - stripes: another direction (drawn from the two others, new axis), same colours, period and phase.
    - other patterns: the colours swapped too (for checkerboards and materials this is only a colour change of the
      same layout; they are not drawn as pairs by the dataset).

    Args:
        spec: the texture (any pattern).
        rng: generator for the new stripe direction / axis.
    Returns:
        a new :class:`TextureSpec`.
    """
    params = dict(spec.params)
    if spec.pattern == "stripes":
        others = [d for d in STRIPE_DIRECTIONS if d != params.get("direction")]
        direction = others[int(rng.integers(len(others)))]
        params.update(direction=direction, axis=_stripe_axis(rng, direction))
        return TextureSpec(spec.pattern, spec.colors, params, spec.rgb)
    if len(spec.colors) == 1:
        return TextureSpec(spec.pattern, spec.colors, params, spec.rgb)
    rgb = None if spec.rgb is None else tuple(reversed(spec.rgb))
    return TextureSpec(spec.pattern, tuple(reversed(spec.colors)), params, rgb)


def pair_template(pattern: str, rng: np.random.Generator) -> int:
    """A data-version-2 caption template of ``pattern`` that names its role (for contrasting pairs): a direction
    template (:data:`DIRECTION_TEMPLATES`) for stripes, any template otherwise."""
    if pattern == "stripes":
        return DIRECTION_TEMPLATES[int(rng.integers(len(DIRECTION_TEMPLATES)))]
    return int(rng.integers(len(CAPTION_TEMPLATES_V2[pattern])))
