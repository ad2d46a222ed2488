"""What an optimization minimizes: rendered views in, a scalar loss and device-side metrics out.

An :class:`Objective` sees the rendered images of one step and the views they came from. :class:`ScoreObjective`
is the CSD / SDS score distillation of a frozen prior (paint, and edit with the source description as the negative
prompt); other objectives (an edit's anchor to the original texture, say) wrap or extend it.
:class:`PhotometricObjective` fits a known reference instead (no prior): the mean squared difference to renders of
the reference from the same views (``csdtex bench seams --target procedural``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from csdtex.cameras import Cameras
from csdtex.guidance.priors import DEFAULT_PLAN, MemoryPlan
from csdtex.guidance.prompts import PromptEmbeddings
from csdtex.guidance.scores import GuidanceConfig, ScoreDistillation


@dataclass
class StepViews:
    """The random views of one optimization step.

    Attributes:
        cameras: B cameras on the run's device.
        prompt_rows: int64 [B] (CPU) row of :attr:`PromptEmbeddings.prompt` for each view (its view suffix),
            computed while the cameras were still on the CPU.
        backgrounds: float32 [B, 3] in [0, 1] on the run's device, one solid colour per view.
        lit: True when this step renders with diffuse shading instead of the plain albedo.
    """

    cameras: Cameras
    prompt_rows: torch.Tensor
    backgrounds: torch.Tensor
    lit: bool


class Objective(Protocol):
    """A loss over one step's rendered views."""

    def __call__(
        self, images: torch.Tensor, views: StepViews, progress: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one step.

        Args:
            images: float32 [B, H, W, 3] renders in [0, 1] (row 0 = top), differentiable w.r.t. the texture model.
            views: the step's views (cameras, prompt rows, backgrounds).
            progress: position in the run, 0 (first step) .. 1 (last step), for annealed schedules.
            generator: the run's CPU generator, for any randomness (timesteps, noise).
        Returns:
            ``(loss, metrics)``: a 0-dim float32 tensor to minimize, and 0-dim float32 tensors on the device
            (``grad_norm``, ``t``, ``finite`` at least); nothing is read back to the host here.
        """
        ...


class ScoreObjective:
    """Score distillation (CSD or SDS, :class:`GuidanceConfig`) of a frozen prior on the rendered views.

    Args:
        prior: a loaded prior (``encode_images`` [B, 3, H, W] in [-1, 1] -> x; ``predict_noise``).
        guidance: the complete guidance options of the run.
        embeddings: the run's text embeddings (prompt with view suffixes, empty prompt, negative prompt).
        plan: how the prior's networks run (:func:`csdtex.guidance.priors.memory_plan` of the run's ``low_vram``);
            the loss and its gradient do not depend on it.
    """

    def __init__(self, prior, guidance: GuidanceConfig, embeddings: PromptEmbeddings,
                 plan: MemoryPlan = DEFAULT_PLAN) -> None:
        self.prior = prior
        self.embeddings = embeddings
        self.plan = plan
        self.distillation = ScoreDistillation(prior, guidance, plan)

    def __call__(
        self, images: torch.Tensor, views: StepViews, progress: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.prior.encode_images(images.permute(0, 3, 1, 2) * 2.0 - 1.0, plan=self.plan)
        return self.distillation.step(x, self.embeddings.for_rows(views.prompt_rows), progress, generator)


class PhotometricObjective:
    """Photometric L2 to a known reference: ``mean((images - reference)^2)`` over every pixel and channel, where
    ``reference`` renders the reference texture from the step's views (same cameras, backgrounds and shading, so the
    silhouettes and backgrounds agree exactly and only the texture differs).

    Args:
        render_reference: views -> float32 [B, H, W, 3] in [0, 1], the reference rendered like ``images`` (e.g.
            ``lambda views: render_step_views(run, reference_model, views)``); called without gradient.

    Metrics (0-dim float32 on the images' device): ``grad_norm`` = mean over views of the L2 norm of the loss's
    gradient with respect to that view's image (``2 (image - reference) / numel``), ``t`` = 0 (no timestep),
    ``finite`` = 1.0 when the loss is finite, ``rmse`` = ``sqrt(loss)`` (in [0, 1] units).
    """

    def __init__(self, render_reference: Callable[[StepViews], torch.Tensor]) -> None:
        self.render_reference = render_reference

    def __call__(
        self, images: torch.Tensor, views: StepViews, progress: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            reference = self.render_reference(views)
        if reference.shape != images.shape:
            raise ValueError(f"reference renders have shape {tuple(reference.shape)}, the images "
                             f"{tuple(images.shape)}: render both at the run's resolution from the same views")
        difference = images - reference.to(images.dtype)
        loss = difference.square().mean()
        with torch.no_grad():
            gradient = 2.0 * difference.detach() / difference.numel()
            metrics = {"grad_norm": gradient.flatten(1).norm(dim=1).mean().float(),
                       "t": torch.zeros((), dtype=torch.float32, device=images.device),
                       "finite": torch.isfinite(loss).float(), "rmse": loss.detach().sqrt().float()}
        return loss, metrics
