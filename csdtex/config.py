"""Typed configuration of a paint run, with presets written in Python and loading from TOML.

A ``PaintConfig`` holds every option of ``csdtex paint``. Fields left as ``None`` take the preset of the prior
(:data:`PRESETS`: ``latent`` = Stable Diffusion family, ``pixel`` = DeepFloyd-IF-like, ``tiny`` = csdtex's built-in
prior) when the run starts; see :func:`resolve_for_prior`. The resolved config is what ``run.json`` records.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from csdtex.cameras import CameraRanges
from csdtex.errors import ConfigError
from csdtex.field import FieldConfig
from csdtex.guidance.priors import BUILTIN_MODEL
from csdtex.guidance.scores import GuidanceConfig, default_guidance_config


@dataclass
class PaintConfig:
    """Options of a paint run (``csdtex paint`` / :func:`csdtex.paint`)."""

    model: str | None = None
    """Prior: an alias (``csdtex models``), a local diffusers folder or a hub id; None = the built-in prior
    (:data:`DEFAULT_MODEL`)."""
    negative_prompt: str | None = None
    """Negative prompt for CSD; None takes the guidance preset's ("oversaturated color, ugly, ..."), "" disables."""
    guidance_method: str = "csd"
    """'csd' (Classifier Score Distillation) or 'sds' (Score Distillation Sampling baseline)."""
    steps: int | None = None
    """Optimization steps; None = the preset's (1000; fewer for the built-in prior)."""
    views_per_step: int = 4
    """Random views rendered per step (batch size of the prior)."""
    texture_size: int | None = None
    """Width and height of the baked texture in texels; None = the preset's (1024; 512 for the built-in prior)."""
    render_resolution: int | None = None
    """Render size seen by the prior; None = the prior's own (512 for latent priors, 64 for pixel priors)."""
    learning_rate: float | None = None
    """Adam learning rate of the texture field; None = preset (1e-3 as in the released configs)."""
    seed: int = 0
    """Seed of every random choice (views, backgrounds, timesteps, noise, field initialization)."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda' (or 'cuda:N')."""
    renderer: str = "auto"
    """Rasterizer backend: 'auto', 'torch' or 'nvdiffrast'."""
    unwrap: bool = False
    """Re-unwrap the mesh with xatlas even when it has UVs (meshes without UVs are always unwrapped)."""
    white_background_probability: float = 0.5
    """Fraction of views rendered on white; the others get a random solid colour."""
    lit_probability: float = 0.0
    """Fraction of steps rendered with diffuse shading (a light at the camera) over the albedo; the gradient still
    reaches the albedo, and the prior sees shaded rather than flat surfaces. Normal-shaded "textureless" steps of
    the original method optimize geometry only, which csdtex keeps fixed, so they are not offered."""
    view_dependent_prompt: bool = True
    """Append ", front view" / ", side view" / ", back view" / ", overhead view" per camera."""
    checkpoint_every: int = 200
    """Save a resumable checkpoint every N steps (0 disables)."""
    preview_frames: int | None = None
    """Frames of the turntable preview; None = the preset's (24)."""
    preview_size: int | None = None
    """Size of the preview frames in pixels; None = the preset's (256; 192 for the built-in prior)."""
    cameras: CameraRanges = field(default_factory=CameraRanges)
    """Ranges of the random training cameras."""
    field: FieldConfig | None = None
    """Hash-grid texture field; None = the preset's (:class:`FieldConfig` defaults; ``FieldConfig.small()`` for the
    built-in prior, whose 64 px renders cannot use a finer field). A ``[field]`` table in a TOML config starts from
    the :class:`FieldConfig` defaults, whatever the prior."""
    guidance: GuidanceConfig | None = None
    """Guidance options; None = the preset of the prior kind with ``guidance_method`` and ``negative_prompt``."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a one-line message for the first invalid value."""
        checks = [
            (self.steps is None or self.steps >= 1, f"steps must be at least 1 (got {self.steps})"),
            (1 <= self.views_per_step <= 64, f"views per step must be in 1..64 (got {self.views_per_step})"),
            (self.texture_size is None or 16 <= self.texture_size <= 16384,
             f"texture size must be in 16..16384 (got {self.texture_size})"),
            (self.render_resolution is None or 16 <= self.render_resolution <= 2048,
             f"render resolution must be in 16..2048 (got {self.render_resolution})"),
            (self.learning_rate is None or self.learning_rate > 0,
             f"learning rate must be positive (got {self.learning_rate})"),
            (self.guidance_method in ("csd", "sds"), f"guidance must be 'csd' or 'sds' (got {self.guidance_method!r})"),
            (0.0 <= self.white_background_probability <= 1.0, "white_background_probability must be in [0, 1]"),
            (0.0 <= self.lit_probability <= 1.0, "lit_probability must be in [0, 1]"),
            (self.checkpoint_every >= 0, "checkpoint_every must be 0 (off) or positive"),
            (self.preview_frames is None or 1 <= self.preview_frames <= 720, "preview_frames must be in 1..720"),
            (self.preview_size is None or 16 <= self.preview_size <= 4096, "preview_size must be in 16..4096"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


DEFAULT_MODEL = BUILTIN_MODEL
"""The prior used when ``model`` is None: csdtex's built-in tiny prior (its alias, ``"tiny"``)."""


@dataclass(frozen=True)
class Preset:
    """Values of the :class:`PaintConfig` fields left as None, for one kind of prior."""

    guidance_kind: str
    """Guidance preset (:func:`csdtex.guidance.default_guidance_config`): ``"latent"`` or ``"pixel"``."""
    learning_rate: float
    steps: int
    texture_size: int
    preview_frames: int
    preview_size: int
    field: FieldConfig
    negative_prompt: str | None
    """None = the guidance preset's negative prompt."""


PRESETS: dict[str, Preset] = {
    # Stable Diffusion family and DeepFloyd IF: the released configs' learning rate and step count.
    "latent": Preset("latent", 1e-3, 1000, 1024, 24, 256, FieldConfig(), None),
    "pixel": Preset("pixel", 1e-3, 1000, 1024, 24, 256, FieldConfig(), None),
    # The built-in prior: a short CPU-friendly run. Its 64 px renders see nothing a 2^16-entry field with finest
    # resolution 512 cannot hold; its vocabulary has no words for the default negative prompt, so there is none.
    "tiny": Preset("pixel", 1e-2, 200, 512, 24, 192, FieldConfig.small(), ""),
}


def resolve_for_prior(config: PaintConfig, preset_name: str, prior_resolution: int) -> PaintConfig:
    """A copy of ``config`` with every None field filled from ``PRESETS[preset_name]`` (see :class:`Preset`)."""
    if preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {preset_name!r}: use one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    guidance = config.guidance
    if guidance is None:
        overrides: dict[str, Any] = {"method": config.guidance_method,
                                     "view_dependent_prompt": config.view_dependent_prompt}
        negative = config.negative_prompt if config.negative_prompt is not None else preset.negative_prompt
        if negative is not None:
            overrides["negative_prompt"] = negative
        guidance = default_guidance_config(preset.guidance_kind, **overrides)

    def pick(value, default):
        return default if value is None else value

    return dataclasses.replace(
        config,
        learning_rate=pick(config.learning_rate, preset.learning_rate),
        steps=pick(config.steps, preset.steps),
        texture_size=pick(config.texture_size, preset.texture_size),
        preview_frames=pick(config.preview_frames, preset.preview_frames),
        preview_size=pick(config.preview_size, preset.preview_size),
        field=pick(config.field, preset.field),
        render_resolution=config.render_resolution or prior_resolution,
        guidance=guidance,
    )


def to_dict(config: PaintConfig) -> dict[str, Any]:
    """JSON-ready nested dict of a config."""
    return dataclasses.asdict(config)


_NESTED = {"cameras": CameraRanges, "field": FieldConfig, "guidance": GuidanceConfig}


def load_config_file(path: str | Path, base: PaintConfig | None = None) -> PaintConfig:
    """Read a TOML file of PaintConfig fields (nested tables ``[cameras]``, ``[field]``, ``[guidance]``).

    Unknown keys and wrong types are :class:`ConfigError` with the offending key named.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    return apply_overrides(base or PaintConfig(), data, source=str(path))


def apply_overrides(config: PaintConfig, values: dict[str, Any], source: str = "options") -> PaintConfig:
    """A copy of ``config`` with ``values`` (field name -> value, nested dicts for nested configs) applied."""
    known = {f.name: f for f in fields(PaintConfig)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown option {key!r} in {source}: valid keys are {', '.join(sorted(known))}")
        if key in _NESTED:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {source} must be a table of options")
            nested_type = _NESTED[key]
            nested_known = {f.name for f in fields(nested_type)}
            unknown = set(value) - nested_known
            if unknown:
                raise ConfigError(
                    f"unknown option {key}.{sorted(unknown)[0]} in {source}: valid keys are {', '.join(sorted(nested_known))}"
                )
            current = getattr(config, key) or nested_type()
            value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            try:
                changes[key] = dataclasses.replace(current, **value)
            except TypeError as error:
                raise ConfigError(f"invalid {key} options in {source}: {error}") from None
        else:
            expected = _SCALAR_TYPES[key]
            if value is not None and not _is_instance(value, expected):
                names = " or ".join(t.__name__ for t in expected)
                raise ConfigError(f"option {key!r} in {source} must be {names}, got {value!r}")
            changes[key] = float(value) if float in expected and isinstance(value, int) else value
    return dataclasses.replace(config, **changes)


def _is_instance(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in expected:
        return False
    if isinstance(value, int) and float in expected:
        return True
    return isinstance(value, expected)


_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "negative_prompt": (str,), "guidance_method": (str,), "steps": (int,),
    "views_per_step": (int,), "texture_size": (int,), "render_resolution": (int,), "learning_rate": (float,),
    "seed": (int,), "device": (str,), "renderer": (str,), "unwrap": (bool,),
    "white_background_probability": (float,), "lit_probability": (float,), "view_dependent_prompt": (bool,),
    "checkpoint_every": (int,), "preview_frames": (int,), "preview_size": (int,),
}
