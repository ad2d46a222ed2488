"""Score distillation: the CSD / SDS update directions, their schedules, and the surrogate loss.

Formulas (docs/design.md; ``eps(x_t; e)`` is the frozen UNet's noise prediction, ``abar_t`` the cumulative alpha)::

    t ~ U{t_min .. t_max}                        (integer timesteps; the range may anneal over the run)
    or t = t_max - (t_max - t_min) * progress    (the "descending" schedule: one t per step, high noise to low)
    x_t = sqrt(abar_t) * x + sqrt(1 - abar_t) * noise
    CSD:  g = w(t) * [ w1 * (eps(x_t; e_y) - eps(x_t; e_0)) - w2 * (eps(x_t; e_neg) - eps(x_t; e_0)) ]
    SDS:  g = w(t) * [ eps(x_t; e_0) + s * (eps(x_t; e_y) - eps(x_t; e_0)) - noise ]
    loss = 0.5 * || x - stopgrad(x - g) ||^2 / B

``||.||^2`` sums over every element of the batch, so ``d loss / d x = g / B``: each sample of the batch receives its
own ``g`` scaled by 1 / B, i.e. the gradient of the batch mean of the per-sample losses
``0.5 ||x_i - sg(x_i - g_i)||^2``.

The pure functions (:func:`csd_direction`, :func:`sds_direction`, :func:`timestep_weights`, :func:`add_noise`,
:func:`distillation_loss`) hold the maths; :class:`ScoreDistillation` wires them to a prior with one stacked UNet batch
per step (one call, or several smaller ones under a low-memory :class:`~csdtex.guidance.priors.MemoryPlan`), and
:class:`GuidanceConfig` carries the options with presets for latent (SD) and pixel (IF-like) priors.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Literal

import torch

from csdtex.devices import to_device
from csdtex.errors import ConfigError, NumericalError
from csdtex.guidance.priors import DEFAULT_PLAN, MemoryPlan
from csdtex.guidance.prompts import DEFAULT_NEGATIVE_PROMPT

Method = Literal["csd", "sds"]
Weighting = Literal["one_minus_alphas_cumprod", "one", "sqrt_one_minus_alphas_cumprod"]
WEIGHTINGS: tuple[str, ...] = ("one_minus_alphas_cumprod", "one", "sqrt_one_minus_alphas_cumprod")
TimestepSampling = Literal["uniform", "descending"]
TIMESTEP_SAMPLINGS: tuple[str, ...] = ("uniform", "descending")


# --------------------------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------------------------


def csd_direction(
    eps_prompt: torch.Tensor,
    eps_empty: torch.Tensor,
    eps_negative: torch.Tensor | None,
    w1: float,
    w2: float,
) -> torch.Tensor:
    """Classifier Score Distillation direction (before the timestep weight w(t)).

    ``w1 * (eps_prompt - eps_empty) - w2 * (eps_negative - eps_empty)``. It uses only the classifier score (differences
    of conditional predictions); the generative term ``eps - noise`` never appears.

    Args:
        eps_prompt: [N, C, h, w] eps(x_t; e_y).
        eps_empty: [N, C, h, w] eps(x_t; e_0), the empty prompt.
        eps_negative: [N, C, h, w] eps(x_t; e_neg), or None when there is no negative prompt; None drops the negative
            term, which is what an empty negative prompt would give (eps_negative == eps_empty).
        w1: weight of the prompt's classifier score (1 in the paper).
        w2: weight of the negative prompt's classifier score (annealed by :class:`GuidanceConfig`).

    Returns:
        [N, C, h, w] in the inputs' dtype.
    """
    direction = w1 * (eps_prompt - eps_empty)
    if eps_negative is not None and w2 != 0:
        direction = direction - w2 * (eps_negative - eps_empty)
    return direction


def sds_direction(
    eps_prompt: torch.Tensor,
    eps_empty: torch.Tensor,
    noise: torch.Tensor,
    cfg_scale: float,
) -> torch.Tensor:
    """Score Distillation Sampling direction with classifier-free guidance (before w(t)); the baseline CSD replaces.

    ``eps_empty + cfg_scale * (eps_prompt - eps_empty) - noise``.

    Args:
        eps_prompt: [N, C, h, w] eps(x_t; e_y).
        eps_empty: [N, C, h, w] eps(x_t; e_0).
        noise: [N, C, h, w] the noise that was added to build x_t.
        cfg_scale: classifier-free guidance scale s (7.5 .. 100).

    Returns:
        [N, C, h, w] in the inputs' dtype.
    """
    return eps_empty + cfg_scale * (eps_prompt - eps_empty) - noise


def timestep_weights(alphas_cumprod_t: torch.Tensor, weighting: str) -> torch.Tensor:
    """w(t) for each sample.

    Args:
        alphas_cumprod_t: float [N], abar_t of each sample's timestep.
        weighting: ``"one_minus_alphas_cumprod"`` (1 - abar_t, the SD default), ``"one"`` (1, the IF default) or
            ``"sqrt_one_minus_alphas_cumprod"`` (sqrt(1 - abar_t)).

    Returns:
        float [N], same dtype and device as ``alphas_cumprod_t``.
    """
    if weighting == "one_minus_alphas_cumprod":
        return 1.0 - alphas_cumprod_t
    if weighting == "one":
        return torch.ones_like(alphas_cumprod_t)
    if weighting == "sqrt_one_minus_alphas_cumprod":
        return (1.0 - alphas_cumprod_t).sqrt()
    raise ValueError(f"unknown weighting {weighting!r}; expected one of {', '.join(WEIGHTINGS)}")


def add_noise(x: torch.Tensor, noise: torch.Tensor, alphas_cumprod_t: torch.Tensor) -> torch.Tensor:
    """DDPM forward process ``x_t = sqrt(abar_t) * x + sqrt(1 - abar_t) * noise``.

    Args:
        x: float [N, C, h, w] clean inputs in the prior's space.
        noise: float [N, C, h, w] standard normal noise.
        alphas_cumprod_t: float [N] abar_t per sample.

    Returns:
        float [N, C, h, w].
    """
    a = alphas_cumprod_t.reshape(-1, *([1] * (x.dim() - 1)))
    return a.sqrt() * x + (1.0 - a).sqrt() * noise


def normalize_per_sample(g: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each sample of ``g`` [N, ...] by its L2 norm over all non-batch dimensions (zero stays zero)."""
    norms = g.flatten(1).norm(dim=1).clamp_min(eps)
    return g / norms.reshape(-1, *([1] * (g.dim() - 1)))


def distillation_loss(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Surrogate loss whose gradient w.r.t. ``x`` is ``g / B``.

    ``loss = 0.5 * || x - stopgrad(x - g) ||^2 / B`` with the squared norm summed over the whole batch.

    Args:
        x: float [B, C, h, w] prior inputs, with gradient to the texture parameters.
        g: float [B, C, h, w] update direction (treated as a constant).

    Returns:
        0-dim float tensor; its value is ``0.5 * sum(g**2) / B`` (useful only as a magnitude), its gradient ``g / B``.
    """
    target = (x - g).detach()
    return 0.5 * ((x - target) ** 2).sum() / x.shape[0]


# --------------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------------


def _lerp(start: float, end: float, progress: float) -> float:
    return start + (end - start) * progress


def _check_progress(progress: float) -> float:
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return progress


MAX_GUIDANCE_WEIGHT = 1000.0
"""The largest magnitude of ``w1``, ``w2_start``, ``w2_end`` and ``cfg_scale`` a :class:`GuidanceConfig` takes: the
noise predictions' differences are about 1, so a far larger weight only overflows the gradient (an unpainted
texture) and a sensible one is below 100."""


@dataclass
class GuidanceConfig:
    """Options of the score-distillation guidance. Defaults are the latent (Stable Diffusion) preset.

    Annealed values go linearly from ``*_start`` (progress 0, first step) to ``*_end`` (progress 1, last step).
    """

    method: Method = "csd"
    """``"csd"`` (Classifier Score Distillation, the default) or ``"sds"`` (Score Distillation Sampling baseline)."""

    w1: float = 1.0
    """CSD: weight of the prompt's classifier score ``eps(e_y) - eps(e_0)``."""

    w2_start: float = 1.0
    """CSD: weight of the negative prompt's classifier score at the start of the run."""

    w2_end: float = 0.5
    """CSD: weight of the negative prompt's classifier score at the end of the run."""

    t_min_start: float = 0.02
    """Lower bound of the sampled timestep at the start, as a fraction of ``num_train_timesteps``."""

    t_min_end: float = 0.02
    """Lower bound of the sampled timestep at the end, as a fraction of ``num_train_timesteps``."""

    t_max_start: float = 0.5
    """Upper bound (inclusive) of the sampled timestep at the start, as a fraction of ``num_train_timesteps``."""

    t_max_end: float = 0.5
    """Upper bound (inclusive) of the sampled timestep at the end, as a fraction of ``num_train_timesteps``."""

    weighting: Weighting = "one_minus_alphas_cumprod"
    """w(t): ``"one_minus_alphas_cumprod"`` (1 - abar_t), ``"one"`` or ``"sqrt_one_minus_alphas_cumprod"``."""

    normalize_gradient: bool = False
    """Divide each sample's g by its L2 norm (the pixel-prior recipe); makes the step size independent of w(t)."""

    cfg_scale: float = 100.0
    """SDS only: classifier-free guidance scale s (DreamFusion uses 100)."""

    negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT
    """CSD: negative prompt (for editing: the description of the current texture). None or "" disables the term."""

    view_dependent_prompt: bool = True
    """Append ", front view" / ", side view" / ", back view" / ", overhead view" to the prompt per camera."""

    timestep_sampling: TimestepSampling = "uniform"
    """How each step picks its timestep: ``"uniform"`` (the default and the papers' recipe) draws every view's t
    uniformly from ``[t_min, t_max]`` at the step's progress; ``"descending"`` uses one t for all views of a step,
    falling with the run's progress p as ``t_max(p) - (t_max(p) - t_min(p)) * p`` (from ``t_max_start`` at the first
    step to ``t_min_end`` at the last): the coarse, high-noise decisions (colours, layout) come first and the fine
    ones last, as in a sampler. An approximation for shorter runs, measured in ``benchmarks/README.md``."""

    def __post_init__(self) -> None:
        if self.method not in ("csd", "sds"):
            raise ConfigError(f"unknown guidance method {self.method!r}: use 'csd' or 'sds'")
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise ConfigError(f"unknown timestep sampling {self.timestep_sampling!r}: use one of "
                              f"{', '.join(TIMESTEP_SAMPLINGS)}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown weighting {self.weighting!r}: use one of {', '.join(WEIGHTINGS)}")
        for name in ("t_min_start", "t_min_end", "t_max_start", "t_max_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} = {value} must be a fraction of the training timesteps in [0, 1]")
        for which in ("start", "end"):
            lo, hi = getattr(self, f"t_min_{which}"), getattr(self, f"t_max_{which}")
            if lo > hi:
                raise ConfigError(f"t_min_{which} = {lo} is above t_max_{which} = {hi}: the timestep range is empty")
        if self.method == "sds" and self.cfg_scale <= 0:
            raise ConfigError(f"cfg_scale = {self.cfg_scale} must be positive for SDS (typical: 7.5 to 100)")
        for name in ("w1", "w2_start", "w2_end", "cfg_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or abs(value) > MAX_GUIDANCE_WEIGHT:
                raise ConfigError(f"{name} = {value} is outside [-{MAX_GUIDANCE_WEIGHT:g}, {MAX_GUIDANCE_WEIGHT:g}]: "
                                  "the gradient would overflow and leave the texture unpainted (typical: w1, w2 about "
                                  "1; cfg_scale 7.5 to 100)")

    def w2_at(self, progress: float) -> float:
        """The negative-prompt weight w2 at ``progress`` in [0, 1] (linear from w2_start to w2_end)."""
        return _lerp(self.w2_start, self.w2_end, _check_progress(progress))

    def t_range_at(self, progress: float) -> tuple[float, float]:
        """``(t_min, t_max)`` as fractions of the training timesteps at ``progress`` in [0, 1] (linear anneal)."""
        progress = _check_progress(progress)
        return _lerp(self.t_min_start, self.t_min_end, progress), _lerp(self.t_max_start, self.t_max_end, progress)

    def descending_t_at(self, progress: float) -> float:
        """The ``"descending"`` schedule's timestep at ``progress`` in [0, 1], as a fraction of the training timesteps:
        ``t_max(p) - (t_max(p) - t_min(p)) * p``, non-increasing in p whenever the bounds are (every preset)."""
        t_min, t_max = self.t_range_at(progress)
        return t_max - (t_max - t_min) * progress


def latent_guidance_config(**overrides) -> GuidanceConfig:
    """Preset for latent priors (Stable Diffusion 2.1-base), as in the authors' released configs.

    CSD, ``w(t) = 1 - abar_t``, t in [0.02, 0.5] of the training timesteps (20 .. 500 of 1000), ``w1 = 1``, ``w2``
    annealed 1 -> 0.5, no gradient normalization. Keyword arguments override fields.
    """
    fields = dict(
        method="csd", w1=1.0, w2_start=1.0, w2_end=0.5,
        t_min_start=0.02, t_min_end=0.02, t_max_start=0.5, t_max_end=0.5,
        weighting="one_minus_alphas_cumprod", normalize_gradient=False,
    )  # fmt: skip
    fields.update(overrides)
    return GuidanceConfig(**fields)


def pixel_guidance_config(**overrides) -> GuidanceConfig:
    """Preset for pixel priors (DeepFloyd IF stage I and IF-like priors), as in the authors' released configs.

    CSD, ``w(t) = 1``, each sample's gradient divided by its L2 norm, ``w1 = 1``, ``w2`` annealed 0 -> 1, t_min 0.02,
    t_max annealed 0.98 -> 0.5. Keyword arguments override fields.
    """
    fields = dict(
        method="csd", w1=1.0, w2_start=0.0, w2_end=1.0,
        t_min_start=0.02, t_min_end=0.02, t_max_start=0.98, t_max_end=0.5,
        weighting="one", normalize_gradient=True,
    )  # fmt: skip
    fields.update(overrides)
    return GuidanceConfig(**fields)


def default_guidance_config(kind: str, **overrides) -> GuidanceConfig:
    """The preset for a prior kind: ``"latent"`` -> :func:`latent_guidance_config`, ``"pixel"`` ->
    :func:`pixel_guidance_config`."""
    if kind == "latent":
        return latent_guidance_config(**overrides)
    if kind == "pixel":
        return pixel_guidance_config(**overrides)
    raise ValueError(f"unknown prior kind {kind!r}; expected 'latent' or 'pixel'")


# --------------------------------------------------------------------------------------------------------------------
# The stateful wrapper
# --------------------------------------------------------------------------------------------------------------------


class ScoreDistillation:
    """Turns prior inputs ``x`` into a CSD (or SDS) surrogate loss, one stacked UNet call per step.

    Args:
        prior: a loaded :class:`~csdtex.guidance.priors.Prior`.
        config: the guidance options; see :func:`default_guidance_config` for the per-kind presets.
        plan: how the prior runs its UNet (:class:`~csdtex.guidance.priors.MemoryPlan`; default
            :data:`~csdtex.guidance.priors.DEFAULT_PLAN`); the loss and its gradient do not depend on it.

    Randomness: timesteps and noise are drawn from the ``generator`` passed to :meth:`__call__`, on that generator's
    device, then moved to the prior's device. Pass a CPU ``torch.Generator`` for results that are identical across
    devices (CUDA generators draw different streams); with ``generator=None`` the global CPU RNG is used.
    """

    def __init__(self, prior, config: GuidanceConfig, plan: MemoryPlan = DEFAULT_PLAN) -> None:
        self.prior = prior
        self.config = config
        self.plan = plan

    def timestep_bounds(self, progress: float) -> tuple[int, int]:
        """Inclusive integer timestep range ``(lo, hi)`` at ``progress``, clamped to [0, T - 1].

        ``lo = round(t_min * T)``, ``hi = round(t_max * T)`` with T = ``prior.num_train_timesteps`` (e.g. 20 and 500
        for the latent preset with T = 1000).
        """
        t_min, t_max = self.config.t_range_at(progress)
        last = self.prior.num_train_timesteps - 1
        lo = min(max(int(round(t_min * self.prior.num_train_timesteps)), 0), last)
        hi = min(max(int(round(t_max * self.prior.num_train_timesteps)), lo), last)
        return lo, hi

    def sample_timesteps(self, batch: int, progress: float, generator: torch.Generator | None) -> torch.Tensor:
        """int64 [batch] timesteps on the prior's device for one step at ``progress`` (no host synchronization).

        ``"uniform"``: each drawn uniformly from :meth:`timestep_bounds`, with ``generator`` (on its device);
        ``"descending"``: all equal to ``round(GuidanceConfig.descending_t_at(progress) * T)`` within those bounds.
        """
        lo, hi = self.timestep_bounds(progress)
        if self.config.timestep_sampling == "descending":
            value = int(round(self.config.descending_t_at(progress) * self.prior.num_train_timesteps))
            return torch.full((batch,), min(max(value, lo), hi), dtype=torch.long, device=self.prior.device)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return to_device(torch.randint(lo, hi + 1, (batch,), generator=generator, device=gen_device),
                         self.prior.device)

    def step(
        self,
        x: torch.Tensor,
        embeddings: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
        progress: float,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One guidance step without any host synchronization (what an optimization loop calls).

        Args: as :meth:`__call__`.

        Returns:
            ``(loss, metrics)``: ``loss`` a 0-dim float32 tensor with ``d loss / d x = g / B``; ``metrics`` 0-dim
            float32 tensors on the prior's device: ``grad_norm`` (mean over samples of the L2 norm of g after w(t),
            before any normalization), ``t`` (mean sampled timestep) and ``finite`` (1.0 when g has no NaN/Inf, else
            0.0: the caller checks it when it reads the metrics, see :func:`non_finite_error`).
        """
        cfg = self.config
        prior = self.prior
        e_y, e_0, e_neg = embeddings
        b = x.shape[0]
        if e_y.shape[0] != b or e_0.shape[0] != b or (e_neg is not None and e_neg.shape[0] != b):
            raise ValueError(f"embeddings must have batch {b} like x; got {e_y.shape[0]}, {e_0.shape[0]}")
        w2 = cfg.w2_at(progress)
        t = self.sample_timesteps(b, progress, generator)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = to_device(torch.randn(x.shape, generator=generator, device=gen_device, dtype=torch.float32),
                          prior.device)

        abar = prior.alphas_cumprod[t]
        x_t = add_noise(x.detach().float(), noise, abar)
        conditions = [e_y, e_0]
        use_negative = cfg.method == "csd" and e_neg is not None and w2 != 0
        if use_negative:
            conditions.append(e_neg)
        k = len(conditions)
        eps = prior.predict_noise(torch.cat([x_t] * k), t.repeat(k), torch.cat(conditions), plan=self.plan).chunk(k)

        if cfg.method == "csd":
            direction = csd_direction(eps[0], eps[1], eps[2] if use_negative else None, cfg.w1, w2)
        else:
            direction = sds_direction(eps[0], eps[1], noise, cfg.cfg_scale)
        g = timestep_weights(abar, cfg.weighting).reshape(-1, 1, 1, 1) * direction
        norms = g.flatten(1).norm(dim=1)
        if cfg.normalize_gradient:
            g = normalize_per_sample(g)
        loss = distillation_loss(x, g.to(x.dtype))
        # an overflowing norm (finite g, inf squares) would make Adam's update 0: no paint at all, so not "finite"
        finite = torch.isfinite(g).all() & torch.isfinite(norms).all()
        metrics = {"grad_norm": norms.mean().float(), "t": t.float().mean(), "finite": finite.float()}
        return loss, metrics

    def __call__(
        self,
        x: torch.Tensor,
        embeddings: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
        progress: float,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float | str]]:
        """One guidance step, with its metrics read back as Python numbers (one host synchronization).

        Args:
            x: float32 [B, C, h, w] prior inputs from ``prior.encode_images`` (with gradient to the texture).
            embeddings: ``(e_y, e_0, e_neg)`` each [B, L, D] from ``PromptEmbeddings.for_views``; ``e_neg`` may be
                None (no negative prompt). SDS ignores ``e_neg``.
            progress: position in the run, 0 (first step) .. 1 (last step); drives the w2 and t-range schedules.
            generator: source of t and noise (see the class docstring).

        Returns:
            ``(loss, metrics)``: ``loss`` a 0-dim float32 tensor with ``d loss / d x = g / B``; ``metrics`` with
            ``grad_norm`` (mean over samples of the L2 norm of g after w(t), before any normalization), ``t`` (mean
            sampled timestep), ``t_min`` / ``t_max`` (integer bounds used), ``w2`` (scheduled value) and ``method``.

        Raises:
            RuntimeError: g contains NaN or Inf (the prior produced non-finite predictions).
        """
        loss, device_metrics = self.step(x, embeddings, progress, generator)
        finite, grad_norm, t_mean = torch.stack(
            [device_metrics["finite"], device_metrics["grad_norm"], device_metrics["t"]]
        ).tolist()
        lo, hi = self.timestep_bounds(progress)
        if not finite:
            raise non_finite_error(self.prior, (lo, hi))
        metrics: dict[str, float | str] = {
            "grad_norm": grad_norm,
            "t": t_mean,
            "t_min": float(lo),
            "t_max": float(hi),
            "w2": self.config.w2_at(progress),
            "method": self.config.method,
        }
        return loss, metrics


def non_finite_error(prior, timestep_range: tuple[int, int] | None = None) -> NumericalError:
    """The error raised when the guidance gradient has NaN/Inf values: with a half-precision prior its predictions
    overflowed (remedy: a wider dtype); with a float32 prior an option is extreme (learning rate, guidance scale, an
    edit's preserve weight)."""
    where = f"t in [{timestep_range[0]}, {timestep_range[1]}], " if timestep_range else ""
    if getattr(prior, "dtype", None) in (torch.float16, torch.bfloat16):
        remedy = "the prior's predictions overflowed; try a higher-precision dtype (bf16 or fp32)"
    else:
        remedy = "an option is too extreme for the numbers to stay finite; lower the learning rate, guidance scale " \
                 "or preserve weight"
    return NumericalError(f"the guidance gradient has NaN/Inf values ({where}prior dtype {prior.dtype}): {remedy}")
