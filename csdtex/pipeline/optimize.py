"""Stage 2 of a run: optimize a texture model against an objective on random views.

One step: B random cameras and backgrounds (drawn on the CPU from the run's generator, so a seed gives the same views
on every device) -> render the texture model at the prior's resolution -> objective (CSD by default) -> Adam.
The step's metrics stay on the device and are read back every ``config.metrics_every`` steps, so a step costs no
host synchronization beyond the rasterizer's one (the number of covered pixels). A checkpoint every
``config.checkpoint_every`` steps makes the run resumable bit-exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from csdtex.cameras import sample_cameras
from csdtex.devices import to_device
from csdtex.field import TextureModel
from csdtex.guidance.scores import non_finite_error
from csdtex.pipeline.checkpoint import checkpoint_identity, load_checkpoint, mesh_fingerprint, save_checkpoint
from csdtex.pipeline.objectives import Objective, StepViews
from csdtex.pipeline.progress import Progress, SilentProgress
from csdtex.pipeline.run import PreparedRun
from csdtex.render.views import render_views

METRIC_NAMES = ("loss", "grad_norm", "t")


@dataclass
class OptimizeResult:
    """What :func:`optimize` did.

    Attributes:
        start_step: steps already done by the checkpoint it resumed from (0 for a fresh run).
        steps_run: steps run by this call.
        seconds: wall time of the loop.
        history: per-step ``loss``, ``grad_norm`` and ``t`` of the steps run by this call.
    """

    start_step: int
    steps_run: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in METRIC_NAMES})

    def summary(self) -> dict[str, float | int | None]:
        """The metrics ``run.json`` records: steps, final loss, mean gradient norm of the last 10%, s/step."""
        grad_norms = self.history["grad_norm"]
        tail = grad_norms[-max(1, len(grad_norms) // 10):] if grad_norms else []
        return {
            "steps_run": self.steps_run,
            "resumed_from_step": self.start_step,
            "final_loss": self.history["loss"][-1] if self.history["loss"] else None,
            "mean_grad_norm_last_10pct": float(np.mean(tail)) if tail else None,
            "seconds_per_step": self.seconds / max(1, self.steps_run),
        }


def random_backgrounds(batch: int, white_probability: float, generator: torch.Generator) -> torch.Tensor:
    """float32 [B, 3] in [0, 1] on the CPU: white with probability ``white_probability``, else a random colour."""
    colors = torch.rand(batch, 3, generator=generator)
    white = torch.rand(batch, generator=generator) < white_probability
    return torch.where(white.unsqueeze(-1), torch.ones_like(colors), colors)


def sample_step_views(run: PreparedRun, generator: torch.Generator) -> StepViews:
    """The random views of one step: cameras, prompt rows, backgrounds and the lit flag, drawn on the CPU from
    ``generator`` in a fixed order, then copied to the run's device without a host synchronization. The cameras are
    uniform in ``config.cameras``, or come from ``run.camera_sampler`` (coverage sampling) when it has one; the
    prompt rows follow each camera's own elevation and azimuth either way."""
    config = run.config
    if run.camera_sampler is None:
        cameras = sample_cameras(config.views_per_step, generator, config.cameras)
    else:
        cameras = run.camera_sampler.sample(config.views_per_step, generator)
    backgrounds = random_backgrounds(config.views_per_step, config.white_background_probability, generator)
    lit = bool(torch.rand((), generator=generator) < config.lit_probability)
    prompt_rows = run.embeddings.suffix_indices(cameras.elevation_deg, cameras.azimuth_deg)
    return StepViews(cameras=cameras.to(run.device), prompt_rows=prompt_rows,
                     backgrounds=to_device(backgrounds, run.device), lit=lit)


def render_step_views(run: PreparedRun, model: TextureModel, views: StepViews) -> torch.Tensor:
    """float32 [B, H, W, 3] in [0, 1]: ``model`` rendered from ``views`` (their backgrounds and shading) at the
    run's render resolution; differentiable w.r.t. the model's parameters. Costs one host synchronization (the
    rasterizer's covered-pixel count; see ``PreparedRun.candidate_budget``)."""
    rendered = render_views(
        run.render_mesh, model, views.cameras, run.config.render_resolution, background=views.backgrounds,
        shading="lit" if views.lit else "albedo", backend=run.backend, candidate_budget=run.candidate_budget,
    )
    return rendered.image


def training_step(run: PreparedRun, model: TextureModel, objective: Objective, views: StepViews, progress: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render ``model`` from ``views`` at the run's render resolution and evaluate ``objective``: (loss, metrics)."""
    return objective(render_step_views(run, model, views), views, progress, generator)


def make_optimizer(model: TextureModel, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with the released configs' betas (0.9, 0.99) and eps 1e-15 (hash-grid friendly), over the model's
    :meth:`~csdtex.field.TextureModel.optimizer_groups`."""
    return torch.optim.Adam(model.optimizer_groups(learning_rate), lr=learning_rate, betas=(0.9, 0.99), eps=1e-15)


def optimize(
    run: PreparedRun,
    model: TextureModel,
    objective: Objective,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    identity_extra: dict | None = None,
) -> OptimizeResult:
    """Optimize ``model`` for ``run.config.steps`` steps against ``objective``.

    Args:
        run: from :func:`~csdtex.pipeline.prepare.prepare_run`.
        model: the texture model, on ``run.device``; its parameters are optimized with Adam at
            ``run.config.learning_rate``.
        objective: the loss of a step's rendered views (:class:`~csdtex.pipeline.objectives.ScoreObjective`).
        resume: continue from the checkpoint in ``run.out_dir`` (its identity must match this run's).
        progress: receives the progress (default: nothing shown).
        identity_extra: more entries that a checkpoint must match (e.g. an edit's source texture hashes).
    Returns:
        :class:`OptimizeResult`; ``run.timings`` gains ``optimize``.
    Raises:
        csdtex.errors.NumericalError: the objective's gradient became NaN/Inf (checked whenever metrics are read).
        csdtex.errors.ConfigError: a checkpoint that does not match.
    """
    config = run.config
    progress = progress or SilentProgress()
    optimizer = make_optimizer(model, config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    identity = checkpoint_identity(run.prompt, config, run.guidance, type(model).__name__,
                                   {"mesh": mesh_fingerprint(run.mesh), **(identity_extra or {})})
    start_step = load_checkpoint(run.out_dir, model, optimizer, generator, identity, config.steps) if resume else 0

    result = OptimizeResult(start_step=start_step, steps_run=0, seconds=0.0)
    pending: list[torch.Tensor] = []

    def read_metrics() -> dict[str, float] | None:
        if not pending:
            return None
        rows = torch.stack(pending).tolist()  # the loop's only host read: every metrics_every steps
        pending.clear()
        for row in rows:
            if not row[-1]:
                raise non_finite_error(run.prior)
            for name, value in zip(METRIC_NAMES, row):
                result.history[name].append(value)
        return dict(zip(METRIC_NAMES, rows[-1]))

    start = time.perf_counter()
    progress.start(config.steps, start_step)
    try:
        for step in range(start_step, config.steps):
            fraction = step / max(config.steps - 1, 1)
            views = sample_step_views(run, generator)
            loss, metrics = training_step(run, model, objective, views, fraction, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            pending.append(torch.stack([loss.detach().float(), metrics["grad_norm"], metrics["t"], metrics["finite"]]))
            done = step + 1
            read = done % config.metrics_every == 0 or done == config.steps
            checkpoint = config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps
            latest = read_metrics() if read or checkpoint else None
            if checkpoint:
                save_checkpoint(run.out_dir, model, optimizer, generator, done, identity)
            result.steps_run += 1
            progress.update(done, latest)
    finally:
        progress.close()
    result.seconds = time.perf_counter() - start
    run.timings.add("optimize", result.seconds)
    return result
