"""``csdtex.paint``: a texture for an existing mesh from a text prompt.

The run is the three pipeline stages (:mod:`csdtex.pipeline`) with an implicit hash-grid texture field on the
surface and the CSD (or SDS) score distillation of a frozen prior as the objective: prepare -> optimize -> finalize
(bake into the mesh's own UV layout, export OBJ+MTL+PNG and GLB, turntable preview, ``run.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from csdtex.config import PaintConfig
from csdtex.errors import call_with_gpu_memory_errors
from csdtex.field import FieldConfig, ImplicitTextureField, seeded_model
from csdtex.mesh import Mesh
from csdtex.pipeline.finalize import PaintResult, finalize
from csdtex.pipeline.objectives import ScoreObjective
from csdtex.pipeline.optimize import optimize
from csdtex.pipeline.outputs import run_folder_lock
from csdtex.pipeline.prepare import check_call_types, default_output_folder, prepare_run
from csdtex.pipeline.progress import Progress, TqdmProgress

__all__ = ["PaintResult", "paint", "seeded_field"]


def seeded_field(config: FieldConfig, seed: int, device: torch.device | str) -> ImplicitTextureField:
    """An :class:`ImplicitTextureField` initialized from ``seed`` alone, on ``device``.

    The parameters are drawn from a forked copy of the global RNG, seeded with ``seed``, so the global RNG state is
    left as it was and the field does not depend on what ran before in the process.
    """
    return seeded_model(seed, lambda: ImplicitTextureField(config), device)


def paint(
    mesh: Mesh | str | Path,
    prompt: str,
    config: PaintConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    prior=None,
    notify: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> PaintResult:
    """Paint a texture onto ``mesh`` from ``prompt``.

    Args:
        mesh: a :class:`Mesh` or a path to a mesh file (OBJ, glTF/GLB, PLY, STL, OFF).
        prompt: what the texture should look like; must not be empty.
        config: options (defaults: :class:`PaintConfig`; None fields take the prior's preset).
        out_dir: output folder (created); outputs are named after the mesh file. None: ``csdtex-out/<mesh name>``
            (:func:`csdtex.pipeline.prepare.default_output_folder`), as the command line.
        resume: continue from ``out_dir``'s checkpoint (made with the same prompt and options).
        show_progress: show a tqdm progress bar with ETA (ignored when ``progress`` is given).
        prior: an already loaded prior (``csdtex.guidance.load_prior``); default: load ``config.model`` (None = the
            built-in prior, :data:`csdtex.config.DEFAULT_MODEL`).
        notify: called with one-line notices worth showing a user before the long part of the run (UV unwrapping);
            default: ignored.
        warn: called with one-line warnings (problems found while loading the mesh, prompt words the prior does
            not know); default: Python's :func:`warnings.warn` (``UserWarning``).
        progress: receives the optimization's progress (:class:`csdtex.pipeline.progress.Progress`).
    Returns:
        :class:`PaintResult`.
    Raises:
        csdtex.errors.CsdtexError: a one-line user error (bad option, prompt, mesh, model, device, output folder; a
            GPU out-of-memory error becomes :class:`csdtex.errors.GpuOutOfMemoryError`, naming ``--low-vram``;
            another csdtex run writing into ``out_dir``, :func:`csdtex.pipeline.outputs.run_folder_lock`).
    """
    check_call_types(mesh, config, PaintConfig, prompt=prompt, out_dir=out_dir)
    config = config or PaintConfig()
    out_dir = default_output_folder(mesh) if out_dir is None else out_dir

    def run_paint() -> PaintResult:
        run = prepare_run(mesh, prompt, config, out_dir, prior=prior, resume=resume, notify=notify, warn=warn)
        model = seeded_field(run.config.field, run.config.seed, run.device)
        objective = ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan)
        bar = progress if progress is not None else TqdmProgress("painting") if show_progress else None
        optimized = optimize(run, model, objective, resume=resume, progress=bar)
        return finalize(run, model, optimized)

    with run_folder_lock(out_dir):
        return call_with_gpu_memory_errors(run_paint, low_vram=config.low_vram)
