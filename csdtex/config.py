"""Typed configuration of a paint run, with presets written in Python and loading from TOML.

A :class:`PaintConfig` holds every option of ``csdtex paint``, each in exactly one place:

- top-level fields: what a user sets on the command line or at the top of a TOML file (``guidance_method``,
  ``negative_prompt``, ``steps``, ...);
- ``cameras``, ``coverage`` and ``field``: nested dataclasses (``[cameras]`` / ``[coverage]`` / ``[field]`` tables);
- ``guidance``: the advanced schedule of the score distillation (``[guidance]`` table: ``w1``, ``w2_start``,
  ``t_max_end``, ``weighting``, ...), as overrides of the prior's preset. The method, the negative prompt and the
  view-dependent suffixes are top-level fields, never keys of this table.

Fields left as ``None`` take the preset of the prior (:data:`PRESETS`: ``latent`` = Stable Diffusion family,
``pixel`` = DeepFloyd-IF-like, ``tiny`` = csdtex's built-in prior) when the run starts; see
:func:`resolve_for_prior` and :func:`resolve_guidance`. The resolved values are what ``run.json`` records.

TOML values are checked against the dataclasses' own type hints (:func:`apply_overrides`), so a new option needs
only a new field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

from csdtex.cameras import CameraRanges
from csdtex.coverage import CAMERA_SAMPLINGS, CoverageSampling
from csdtex.errors import ConfigError
from csdtex.field import FieldConfig
from csdtex.guidance.aliases import BUILTIN_MODEL
from csdtex.guidance.scores import GuidanceConfig, default_guidance_config
from csdtex.mesh.types import UP_AXES

GUIDANCE_METHODS = ("csd", "sds")

# Options of GuidanceConfig that PaintConfig holds at the top level (one place per option).
_TOP_LEVEL_GUIDANCE = {"method": "guidance_method", "negative_prompt": "negative_prompt",
                       "view_dependent_prompt": "view_dependent_prompt"}


@dataclass
class PaintConfig:
    """Options of a paint run (``csdtex paint`` / :func:`csdtex.paint`)."""

    model: str | None = None
    """Prior: an alias (``csdtex models``), a local diffusers folder or a hub id; None = the built-in prior
    (:data:`DEFAULT_MODEL`)."""
    negative_prompt: str | None = None
    """Negative prompt for CSD; None takes the preset's ("oversaturated color, ugly, ..."), "" disables."""
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
    """Adam learning rate of the texture model; None = preset (1e-3 as in the released configs)."""
    seed: int = 0
    """Seed of every random choice (views, backgrounds, timesteps, noise, field initialization)."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda' (or 'cuda:N')."""
    renderer: str = "auto"
    """Rasterizer backend (:data:`csdtex.render.BACKENDS`): 'auto', 'torch', 'torch-compiled' or 'nvdiffrast'."""
    low_vram: bool = False
    """Use less GPU memory at some speed, with the same result (:data:`csdtex.guidance.priors.LOW_VRAM_PLAN`): UNet
    calls of at most 4 samples, the VAE encoder's activations recomputed one view at a time in the backward pass, no
    CUDA graphs, and the text encoder in CPU memory except while it encodes (docs/design.md, section 7)."""
    compile_encoder: bool = False
    """Run the VAE encoder of a latent prior (forward and backward) through ``torch.compile``
    (:attr:`csdtex.guidance.priors.MemoryPlan.compile_encoder`), for faster steps on CUDA: the same result up to
    floating-point rounding, the first step slower by the compilation (tens of seconds); ``benchmarks/speed.py
    --compile-encoder`` measures both. Falls back to the eager encoder, with one logged line, if compiling fails.
    Not applied with ``low_vram`` (its encoder passes run one view at a time) nor to pixel priors (no encoder)."""
    unwrap: bool = False
    """Re-unwrap the mesh with xatlas even when it has UVs (meshes without UVs are always unwrapped)."""
    overwrite: bool = False
    """Replace another asset's outputs found in the output folder (they are removed once the new outputs are
    complete); without it such a folder is refused. A rerun of the same asset always replaces its own outputs."""
    white_background_probability: float = 0.5
    """Fraction of views rendered on white; the others get a random solid colour."""
    lit_probability: float = 0.0
    """Fraction of steps rendered with diffuse shading (a light at the camera) over the albedo; the gradient still
    reaches the albedo, and the prior sees shaded rather than flat surfaces. Normal-shaded "textureless" steps of
    the original method optimize geometry only, which csdtex keeps fixed, so they are not offered."""
    view_dependent_prompt: bool = True
    """Append ", front view" / ", side view" / ", back view" / ", overhead view" per camera."""
    seam_erasure: bool = True
    """After baking, adjust the texels next to UV seams so both sides agree at mip levels 0-3
    (:mod:`csdtex.seam_erasure`, a sparse least-squares solve); ``csdtex bench seams`` measures the effect."""
    checkpoint_every: int = 200
    """Save a resumable checkpoint every N steps (0 disables)."""
    metrics_every: int = 10
    """Read the step metrics (loss, gradient norm, timestep) back from the device every N steps; reading them
    every step would stall the GPU with a host synchronization per step."""
    preview_frames: int | None = None
    """Frames of the turntable preview; None = the preset's (24)."""
    preview_size: int | None = None
    """Size of the preview frames in pixels; None = the preset's (256; 192 for the built-in prior)."""
    cameras: CameraRanges = field(default_factory=CameraRanges)
    """Ranges of the random training cameras."""
    camera_sampling: str = "uniform"
    """How a step's cameras are drawn: 'uniform' (uniform in the ``cameras`` ranges) or 'coverage' (a share of the
    views from cameras chosen at prepare time to see the surface that uniform views rarely see: undersides, between
    legs; :mod:`csdtex.coverage`, options in ``coverage``). 'uniform' draws exactly what it drew before the option
    existed."""
    coverage: CoverageSampling = field(default_factory=CoverageSampling)
    """Options of ``camera_sampling = "coverage"`` (``[coverage]`` table); ignored with 'uniform'."""
    up_axis: str = "+y"
    """The mesh's up direction: ``"+y"`` (glTF's, and most tools' OBJ export) or ``"+z"`` / ``"-z"`` / ``"+x"`` /
    ``"-x"`` / ``"-y"`` for assets from Z-up tools (3ds Max, CAD, STL). Renders turn it to +Y, so "top", "bottom",
    overhead views and the view words mean what they say; the outputs keep the input's coordinates either way
    (:data:`csdtex.mesh.UP_AXES`)."""
    field: FieldConfig | None = None
    """Hash-grid texture field; None = the preset's (:class:`FieldConfig` defaults; ``FieldConfig.small()`` for the
    built-in prior, whose 64 px renders cannot use a finer field). A ``[field]`` table in a TOML config starts from
    the :class:`FieldConfig` defaults, whatever the prior."""
    guidance: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Schedule options of the score distillation that replace the prior preset's (``[guidance]`` table): any
    :class:`~csdtex.guidance.scores.GuidanceConfig` field except ``method``, ``negative_prompt`` and
    ``view_dependent_prompt``, which are the top-level ``guidance_method``, ``negative_prompt`` and
    ``view_dependent_prompt``. Checked by :func:`apply_overrides` and :func:`resolve_guidance`."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a one-line message for the first invalid value."""
        _check_types(self)  # first: the range checks below compare numbers
        checks = [
            (self.steps is None or self.steps >= 1, f"steps must be at least 1 (got {self.steps})"),
            (-(2**63) <= self.seed < 2**64, f"seed must be a whole number from -2^63 to 2^64 - 1 (got {self.seed})"),
            (1 <= self.views_per_step <= 64, f"views per step must be in 1..64 (got {self.views_per_step})"),
            (self.texture_size is None or 16 <= self.texture_size <= 16384,
             f"texture size must be in 16..16384 (got {self.texture_size})"),
            (self.render_resolution is None or 16 <= self.render_resolution <= 2048,
             f"render resolution must be in 16..2048 (got {self.render_resolution})"),
            (self.learning_rate is None or self.learning_rate > 0,
             f"learning rate must be positive (got {self.learning_rate})"),
            (self.guidance_method in GUIDANCE_METHODS,
             f"guidance must be 'csd' or 'sds' (got {self.guidance_method!r})"),
            (0.0 <= self.white_background_probability <= 1.0, "white_background_probability must be in [0, 1]"),
            (0.0 <= self.lit_probability <= 1.0, "lit_probability must be in [0, 1]"),
            (self.checkpoint_every >= 0, "checkpoint_every must be 0 (off) or positive"),
            (self.metrics_every >= 1, "metrics_every must be at least 1"),
            (self.preview_frames is None or 1 <= self.preview_frames <= 720, "preview_frames must be in 1..720"),
            (self.preview_size is None or 16 <= self.preview_size <= 4096, "preview_size must be in 16..4096"),
            (self.camera_sampling in CAMERA_SAMPLINGS,
             f"camera_sampling must be 'uniform' or 'coverage' (got {self.camera_sampling!r})"),
            (self.up_axis in UP_AXES, f"up axis must be one of {', '.join(UP_AXES)} (got {self.up_axis!r})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.learning_rate is not None and not math.isfinite(self.learning_rate):
            raise ConfigError(f"learning rate must be a finite positive number (got {self.learning_rate})")
        for problem in (self.coverage.validate(), None if self.field is None else self.field.validate(),
                        _camera_problem(self.cameras)):
            if problem is not None:
                raise ConfigError(problem)
        _check_guidance_keys(self.guidance, "the guidance options")
        for key, value in self.guidance.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"guidance.{key} must be a finite number (got {value})")


DEFAULT_PRESERVE = 0.0
"""Default weight of an edit's anchor to the original texture (:attr:`EditConfig.preserve`)."""


EDIT_GUIDANCE: dict[str, float] = {"w2_start": 1.0, "w2_end": 0.0, "t_min_start": 0.2, "t_min_end": 0.2,
                                   "t_max_start": 0.98, "t_max_end": 0.98}
"""An edit's schedule, on top of the prior's preset: the negative prompt's (the source description's) weight ``w2``
falls linearly from 1 to 0, and the timesteps stay in [0.2, 0.98] of the training range for the whole run.

- ``w2`` 1 -> 0: the term ``-w2 * (eps(e_source) - eps(e_0))`` pushes away from the source colour; it never fades by
  itself (it does not vanish once the texture stopped looking like the source), so with the presets' ``w2`` (latent
  1 -> 0.5, pixel 0 -> 1) edits overshoot past the target to the source's complement (purple -> gray came out olive
  green). Falling to 0, the target's own score has the last word.
- t in [0.2, 0.98] throughout: a paint's schedule narrows to low noise levels as the texture forms (pixel preset:
  t_max 0.98 -> 0.5), but an edit starts from a finished texture whose colour must move, and the prior decides a
  colour at high noise levels: at low ones it denoises towards the colour it sees. Low noise levels (below 0.2) only
  add per-texel grain to an existing texture.

Measured on the built-in prior's edit benchmark (36 edits, one H200, ``benchmarks/README.md``), share of CSD edits
that read the target colour: the first schedule (pixel preset) 52.8%; ``w2`` 1 -> 0 61.1-63.9%; plus t_max held at
0.98 72.2-77.8%; plus t_min 0.2 (this default) 80.6%. SDS (no ``w2``) with the preset's timesteps 41.7%, with
t_max held at 0.98 75.0%, with this default's timesteps 83.3%."""


@dataclass
class EditConfig(PaintConfig):
    """Options of an edit run (``csdtex edit`` / :func:`csdtex.edit`): every paint option, plus the anchor weight.

    The edited texture keeps the input's UV layout and texture resolution, so ``texture_size`` and ``unwrap`` do not
    apply; the negative prompt of an edit is its source description (``csdtex.edit``'s ``source``).
    """

    UNUSED_FIELDS: ClassVar[tuple[str, ...]] = ("texture_size", "seam_erasure")
    """Fields an edit never reads, left out of its record (:func:`to_dict`): an edit writes each texture at the
    input's own resolution and changes no texel outside its region (so it erases no seams)."""

    guidance: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(EDIT_GUIDANCE))
    """Schedule options of the score distillation (as :attr:`PaintConfig.guidance`), starting from
    :data:`EDIT_GUIDANCE`: the source description's weight ``w2`` falls from 1 to 0 over the run and the timesteps stay
    in [0.2, 0.98]. A ``[guidance]`` table (``--config``, or a batch manifest's ``guidance.KEY`` column) changes only the
    keys it names."""

    preserve: float | None = None
    """Weight W of the L2 anchor ``W * mean((render - render_of_the_original)^2)`` over every rendered pixel, which
    holds the edit close to the original texture; None = :data:`DEFAULT_PRESERVE`. 0 leaves only the CSD gradient
    (the mask and the material selection are hard limits either way)."""

    texel_learning_rate_scale: float = 0.1
    """Learning rate of the input texture's texels relative to the residual field's (``learning_rate``). The texels
    are many and independent, so at the field's rate they pick up per-texel noise from single views; the field is
    smooth and continuous across seams. 0 freezes the texels (the edit is then the residual field alone)."""

    def validate(self) -> None:
        super().validate()
        if not self.texel_learning_rate_scale >= 0:
            raise ConfigError(f"texel_learning_rate_scale must be 0 or positive (got {self.texel_learning_rate_scale})")
        if self.preserve is not None and not (self.preserve >= 0 and math.isfinite(self.preserve)):
            raise ConfigError(f"preserve must be a finite number, 0 or positive (got {self.preserve})")
        if self.unwrap:
            raise ConfigError("an edit keeps the mesh's own UVs (its texture is mapped by them): leave unwrap off")


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


def _preset(preset_name: str) -> Preset:
    if preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {preset_name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[preset_name]


def resolve_for_prior(config: PaintConfig, preset_name: str, prior_resolution: int) -> PaintConfig:
    """A copy of ``config`` with every None field filled from ``PRESETS[preset_name]`` (see :class:`Preset`) and
    ``render_resolution`` from the prior; ``guidance`` is left as given (see :func:`resolve_guidance`)."""
    preset = _preset(preset_name)

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
        negative_prompt=pick(config.negative_prompt, preset.negative_prompt),
        render_resolution=config.render_resolution or prior_resolution,
    )


def resolve_guidance(config: PaintConfig, preset_name: str) -> GuidanceConfig:
    """The complete :class:`GuidanceConfig` of a run: the prior kind's preset, then ``config.guidance``'s schedule
    overrides, then the top-level ``guidance_method`` / ``negative_prompt`` / ``view_dependent_prompt`` (a None
    negative prompt keeps the preset's)."""
    preset = _preset(preset_name)
    _check_guidance_keys(config.guidance, "the guidance options")
    overrides: dict[str, Any] = dict(config.guidance)
    overrides["method"] = config.guidance_method
    overrides["view_dependent_prompt"] = config.view_dependent_prompt
    negative = config.negative_prompt if config.negative_prompt is not None else preset.negative_prompt
    if negative is not None:
        overrides["negative_prompt"] = negative
    return default_guidance_config(preset.guidance_kind, **overrides)


def to_dict(config: PaintConfig, guidance: GuidanceConfig | None = None) -> dict[str, Any]:
    """JSON-ready nested dict of a config, without the fields its kind of run never reads (``UNUSED_FIELDS``: an
    edit's ``texture_size``); with ``guidance``, its ``"guidance"`` entry is that resolved config."""
    record = dataclasses.asdict(config)
    for name in getattr(config, "UNUSED_FIELDS", ()):
        record.pop(name, None)
    if guidance is not None:
        record["guidance"] = dataclasses.asdict(guidance)
    return record


# ----------------------------------------------------------------------------------------------------------------
# TOML and overrides, checked against the dataclasses' type hints.


def load_config_file(path: str | Path, base: PaintConfig | None = None) -> PaintConfig:
    """Read a TOML file of PaintConfig fields (nested tables ``[cameras]``, ``[field]``, ``[guidance]``).

    Unknown keys and wrong types are :class:`ConfigError` with the offending key named.
    """
    return apply_overrides(base or PaintConfig(), read_config_table(path), source=str(Path(path)))


EDIT_ONLY_OPTIONS: tuple[str, ...] = ("preserve", "texel_learning_rate_scale")
"""The :class:`EditConfig` fields a paint does not have (a config file shared by paint and edit may set them)."""


def read_config_table(path: str | Path) -> dict[str, Any]:
    """The parsed TOML table of a config file (no option checked yet; :func:`load_config_file` applies it).

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML (one line).
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
    return data


def apply_overrides(config: PaintConfig, values: dict[str, Any], source: str = "options") -> PaintConfig:
    """A copy of ``config`` with ``values`` (field name -> value, nested dicts for nested tables) applied.

    Each value is checked against the type hint of its field (for a nested dataclass, of its own fields); a nested
    table replaces only the keys it names. ``guidance`` tables merge into the existing guidance overrides.
    """
    return _apply(config, values, source, prefix="")


def _apply(instance: Any, values: dict[str, Any], source: str, prefix: str) -> Any:
    cls = type(instance)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = prefix + key
        if key not in known:
            raise ConfigError(f"unknown option {name!r} in {source}: valid keys are {', '.join(sorted(known))}")
        hint = hints[key]
        nested = _dataclass_in(hint)
        if isinstance(instance, PaintConfig) and key == "guidance":
            if not isinstance(value, dict):
                raise ConfigError(f"guidance in {source} must be a table of options")
            changes[key] = {**instance.guidance, **_checked_guidance(value, source)}
        elif nested is not None and isinstance(value, dict):
            current = getattr(instance, key) or nested()
            changes[key] = _apply(current, value, source, prefix=name + ".")
        elif nested is not None and not isinstance(value, nested):
            raise ConfigError(f"{name} in {source} must be a table of options")
        else:
            changes[key] = _checked_value(value, hint, name, source)
    try:
        return dataclasses.replace(instance, **changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid options in {source}: {error}") from None


_INT_FIELDS = ("steps", "views_per_step", "texture_size", "render_resolution", "seed", "checkpoint_every",
               "metrics_every", "preview_frames", "preview_size")
_FLOAT_FIELDS = ("learning_rate", "white_background_probability", "lit_probability")
_BOOL_FIELDS = ("low_vram", "compile_encoder", "unwrap", "overwrite", "view_dependent_prompt", "seam_erasure")
_STRING_FIELDS = ("guidance_method", "device", "renderer", "camera_sampling", "up_axis")
_OPTIONAL_STRING_FIELDS = ("model", "negative_prompt")


def _check_types(config: "PaintConfig") -> None:
    """One-line :class:`ConfigError` for a PaintConfig built in Python with a value of the wrong type (``steps="2"``,
    ``low_vram="no"``, a dict for ``cameras``), which would otherwise fail deep in a library or, for a flag, count
    as true."""
    def fail(name: str, kind: str) -> None:
        raise ConfigError(f"{name} must be {kind} (got {getattr(config, name)!r})")

    for name in _INT_FIELDS:  # numbers.Integral: numpy integers count too
        value = getattr(config, name)
        if value is not None and (isinstance(value, (bool, _numpy_bool_types())) or not isinstance(value, Integral)):
            fail(name, "a whole number")
    for name in _FLOAT_FIELDS:
        value = getattr(config, name)
        if value is not None and (isinstance(value, (bool, _numpy_bool_types())) or not isinstance(value, Real)):
            fail(name, "a number")
    for name in _BOOL_FIELDS:
        if not isinstance(getattr(config, name), (bool, _numpy_bool_types())):
            fail(name, "True or False")
    for name in _STRING_FIELDS:
        if not isinstance(getattr(config, name), str):
            fail(name, "a string")
    for name in _OPTIONAL_STRING_FIELDS:
        if getattr(config, name) is not None and not isinstance(getattr(config, name), (str, os.PathLike)):
            fail(name, "a string or None")
    if not isinstance(config.coverage, CoverageSampling):
        fail("coverage", "a csdtex.config.CoverageSampling")
    if isinstance(config.guidance, dict):  # the same checks as a [guidance] table of a config file
        _checked_guidance(dict(config.guidance), "the guidance options")
    for name in ("preserve", "texel_learning_rate_scale"):  # EditConfig's own numbers
        value = getattr(config, name, None)
        if value is not None and (isinstance(value, (bool, _numpy_bool_types())) or not isinstance(value, Real)):
            fail(name, "a number")
    if not isinstance(config.cameras, CameraRanges):
        fail("cameras", "a csdtex.cameras.CameraRanges")
    if config.field is not None and not isinstance(config.field, FieldConfig):
        fail("field", "a csdtex.field.FieldConfig or None")
    if not isinstance(config.guidance, dict):
        fail("guidance", "a dict of guidance options")


def _numpy_bool_types() -> tuple[type, ...]:
    """numpy's bool type when numpy is imported already (it is not imported for this check), else ()."""
    numpy = sys.modules.get("numpy")
    return (numpy.bool_,) if numpy is not None else ()


def _camera_problem(cameras: CameraRanges) -> str | None:
    """The first nonsensical training-camera range as one line, or None: each a pair (low, high) of finite numbers,
    low <= high; distance > 0; field of view in (0, 180) degrees; elevation in [-90, 90]."""
    bounds = {"elevation_deg": (-90.0, 90.0, True), "azimuth_deg": (-720.0, 720.0, True),
              "distance": (0.0, 1e6, False), "fov_deg": (0.0, 180.0, False)}
    for name, (low, high, inclusive) in bounds.items():
        pair = getattr(cameras, name)
        try:
            a, b = (float(v) for v in pair)
        except (TypeError, ValueError):
            return f"cameras.{name} must be a pair of numbers [low, high] (got {pair!r})"
        inside = (low <= a <= high and low <= b <= high) if inclusive else (low < a < high and low < b < high)
        if not (math.isfinite(a) and math.isfinite(b)) or a > b or not inside:
            where = f"[{low:g}, {high:g}]" if inclusive else f"({low:g}, {high:g})"
            return f"cameras.{name} must be finite numbers low <= high within {where} (got {list(pair)})"
    return None


def _check_guidance_keys(values: dict[str, Any], source: str) -> None:
    valid = sorted(f.name for f in fields(GuidanceConfig) if f.name not in _TOP_LEVEL_GUIDANCE)
    for key in values:
        if key in _TOP_LEVEL_GUIDANCE:
            raise ConfigError(f"guidance.{key} in {source}: set {_TOP_LEVEL_GUIDANCE[key]} at the top level instead "
                              f"(on the command line: --guidance / --negative)")
        if key not in valid:
            raise ConfigError(f"unknown option 'guidance.{key}' in {source}: valid keys are {', '.join(valid)}")


def _checked_guidance(values: dict[str, Any], source: str) -> dict[str, Any]:
    _check_guidance_keys(values, source)
    hints = typing.get_type_hints(GuidanceConfig)
    return {key: _checked_value(value, hints[key], f"guidance.{key}", source) for key, value in values.items()}


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type in ``hint`` (``X`` or ``X | None``), else None."""
    candidates = typing.get_args(hint) if _is_union(hint) else (hint,)
    for candidate in candidates:
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _checked_value(value: Any, hint: Any, name: str, source: str) -> Any:
    """``value`` converted to ``hint`` (ints widen to float, lists become tuples), or a :class:`ConfigError`."""
    converted = _convert(value, hint)
    if converted is _INVALID:
        raise ConfigError(f"option {name!r} in {source} must be {_describe(hint)}, got {value!r}")
    return converted


_INVALID = object()


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if _is_union(hint):
        for option in typing.get_args(hint):
            converted = _convert(value, option)
            if converted is not _INVALID:
                return converted
        return _INVALID
    if hint is type(None):
        return None if value is None else _INVALID
    if origin is typing.Literal:
        return value if value in typing.get_args(hint) else _INVALID
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            return _INVALID
        converted = tuple(_convert(v, h) for v, h in zip(value, items))
        return _INVALID if any(c is _INVALID for c in converted) else converted
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    return value if isinstance(hint, type) and isinstance(value, hint) else _INVALID


def _describe(hint: Any) -> str:
    if _is_union(hint):
        return " or ".join(_describe(option) for option in typing.get_args(hint) if option is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {len(typing.get_args(hint))} numbers"
    return getattr(hint, "__name__", str(hint))
