"""Guidance: frozen diffusion priors, text conditioning, and the CSD / SDS score-distillation loss.

Modules (one role each):

- :mod:`csdtex.guidance.aliases`: the short model names (``tiny``, ``sd21``, ``sd15``, ``if``) of ``--model``.
- :mod:`csdtex.guidance.loading`: load a prior (Stable Diffusion 1.x/2.x latent layout or DeepFloyd IF stage I pixel
  layout) from an alias, a local diffusers folder or a hub id, with one-line errors.
- :mod:`csdtex.guidance.priors`: the loaded prior: encode text and images, predict noise; ``MemoryPlan`` (how its
  networks run: the default or ``--low-vram``).
- :mod:`csdtex.guidance.vocabulary`: closed vocabularies of tiny priors and the unknown-word warning.
- :mod:`csdtex.guidance.prompts`: view-dependent prompt suffixes and the once-per-run text-embedding cache.
- :mod:`csdtex.guidance.scores`: pure CSD / SDS update directions, the guidance config and presets, and
  :class:`ScoreDistillation` which turns prior inputs into a surrogate loss.
- :mod:`csdtex.guidance.random_priors`: random-weight priors built in code and saved as diffusers folders (tests,
  benchmarks).

Typical use::

    prior = load_prior("sd21", "cuda")
    cfg = default_guidance_config(prior.kind)
    prompts = PromptEmbeddings(prior, "a wooden chair", cfg.negative_prompt, view_dependent=cfg.view_dependent_prompt)
    guidance = ScoreDistillation(prior, cfg)
    x = prior.encode_images(images)                   # images [B, 3, H, W] in [-1, 1]
    loss, metrics = guidance(x, prompts.for_views(elevations, azimuths), progress=step / (steps - 1), generator=gen)
    loss.backward()

Importing this package does not import diffusers or transformers; they are imported when a prior is loaded.
"""

from __future__ import annotations

from csdtex.guidance.aliases import MODEL_ALIASES, list_model_aliases
from csdtex.guidance.loading import load_prior, load_prior_from_folder
from csdtex.guidance.priors import (
    DEFAULT_PLAN,
    LOW_VRAM_PLAN,
    SMALL_GPU_PLAN,
    LatentPrior,
    MemoryPlan,
    PixelPrior,
    Prior,
    eps_from_prediction,
    memory_plan,
)
from csdtex.guidance.prompts import DEFAULT_NEGATIVE_PROMPT, VIEW_SUFFIXES, PromptEmbeddings, view_suffix, wrap_azimuth
from csdtex.guidance.scores import (
    GuidanceConfig,
    ScoreDistillation,
    add_noise,
    csd_direction,
    default_guidance_config,
    distillation_loss,
    latent_guidance_config,
    normalize_per_sample,
    pixel_guidance_config,
    sds_direction,
    timestep_weights,
)

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "DEFAULT_PLAN",
    "LOW_VRAM_PLAN",
    "SMALL_GPU_PLAN",
    "MemoryPlan",
    "MODEL_ALIASES",
    "VIEW_SUFFIXES",
    "GuidanceConfig",
    "LatentPrior",
    "PixelPrior",
    "Prior",
    "PromptEmbeddings",
    "ScoreDistillation",
    "add_noise",
    "csd_direction",
    "default_guidance_config",
    "distillation_loss",
    "eps_from_prediction",
    "latent_guidance_config",
    "list_model_aliases",
    "load_prior",
    "load_prior_from_folder",
    "memory_plan",
    "normalize_per_sample",
    "pixel_guidance_config",
    "sds_direction",
    "timestep_weights",
    "view_suffix",
    "wrap_azimuth",
]
