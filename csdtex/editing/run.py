"""``csdtex.edit``: change an existing texture by text, inside a region, into the asset's own UV layout.

The run is the paint pipeline's stages (:mod:`csdtex.pipeline`) with two substitutions: the texture model is an
:class:`~csdtex.editing.texture.EditableTexture` (the input texture plus a residual field, limited to the editable
region) and the objective is CSD with the target prompt as ``e_y`` and the source description as the negative
prompt ``e_neg`` (the negative-prompt weight follows the prior preset's schedule), plus an optional L2 anchor to the
original rendering (``preserve``). The result is baked at each input texture's own size; texels outside the region
keep their input bytes exactly.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from csdtex.bake import bake_material_values
from csdtex.config import DEFAULT_PRESERVE, EditConfig
from csdtex.errors import UnpaintedTextureError, call_with_gpu_memory_errors
from csdtex.export import ExportedFiles, export_all
from csdtex.field import seeded_model
from csdtex.fileio import staged_outputs
from csdtex.mesh import Mesh, load_mesh
from csdtex.editing.region import (EditRegion, check_edit_prompts, check_mask_reaches_the_surface, edit_region,
                                   texture_records)
from csdtex.editing.texture import EditableTexture, OriginalTextureView, apply_logit_change
from csdtex.pipeline.checkpoint import remove_checkpoint
from csdtex.pipeline.finalize import remove_stale_outputs, write_previews, write_run_record
from csdtex.pipeline.objectives import ScoreObjective, StepViews
from csdtex.pipeline.optimize import optimize, render_step_views
from csdtex.pipeline.outputs import check_inputs_kept, run_folder_lock
from csdtex.pipeline.prepare import (check_call_types, default_output_folder, output_name, prepare_run,
                                     python_warning)
from csdtex.pipeline.progress import Progress, TqdmProgress
from csdtex.pipeline.run import PreparedRun
from csdtex.preview import material_texture_images, turntable_frames, write_preview
from csdtex.sampling import TextureSampler, TextureTransform, baked_samplers

__all__ = ["EditResult", "edit"]


@dataclass
class EditResult:
    """What an edit run produced.

    Attributes:
        files: exported OBJ/MTL/PNG/GLB paths (one PNG per material, at each input texture's size).
        preview: turntable GIF of the edited asset; preview_sheet: its 6-view PNG.
        before_after: side-by-side turntable GIF (input left, edit right); before_after_sheet: its 6-view PNG.
        run_json: path of run.json.
        textures: uint8 [H_m, W_m, 3] per material (row 0 = top).
        timings: seconds per phase.
        metrics: the optimization's metrics plus ``fit_error_max`` / ``fit_error_rms`` (8-bit levels between the
            input and the texture model before any step) and ``changed_inside`` / ``changed_outside`` (fraction of
            editable texels that changed; number of texels outside the region that changed, always 0).
        mesh: the mesh as exported (the input's vertices, faces and UVs).
    """

    files: ExportedFiles
    preview: Path
    preview_sheet: Path
    before_after: Path
    before_after_sheet: Path
    run_json: Path
    textures: list[np.ndarray]
    timings: dict[str, float]
    metrics: dict
    mesh: Mesh


class EditObjective:
    """CSD of the target prompt against the source description, plus ``preserve * mean((image - reference)^2)``
    over every rendered pixel, where ``reference`` renders the original texture from the same views.

    Args:
        score: the score-distillation objective (its negative prompt is the source description).
        preserve: the anchor weight W (0 = no anchor, and no reference render).
        render_reference: views -> float32 [B, H, W, 3] renders of the original texture.
    """

    def __init__(self, score: ScoreObjective, preserve: float,
                 render_reference: Callable[[StepViews], torch.Tensor]) -> None:
        self.score, self.preserve, self.render_reference = score, float(preserve), render_reference

    def __call__(self, images: torch.Tensor, views: StepViews, progress: float, generator: torch.Generator):
        loss, metrics = self.score(images, views, progress, generator)
        if self.preserve > 0:
            with torch.no_grad():
                reference = self.render_reference(views)
            anchor = ((images - reference) ** 2).mean()
            loss = loss + self.preserve * anchor
            metrics = {**metrics, "anchor": anchor.detach()}
        return loss, metrics


def edit(
    mesh: Mesh | str | Path,
    prompt: str,
    source: str,
    config: EditConfig | None = None,
    out_dir: str | Path | None = None,
    mask: str | Path | None = None,
    materials: tuple[str, ...] | list[str] = (),
    resume: bool = False,
    show_progress: bool = True,
    prior=None,
    notify: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> EditResult:
    """Edit the texture of ``mesh`` so that it matches ``prompt``, starting from what ``source`` describes.

    Args:
        mesh: a textured mesh (OBJ+MTL+texture images, or glTF/GLB with base-colour textures) or its path.
        prompt: the target description, e.g. "a blue object".
        source: a description of the texture as it is now, e.g. "a red object" (the negative prompt).
        config: options (:class:`EditConfig`; None fields take the prior's preset).
        out_dir: output folder; outputs are named after the mesh file. None: ``csdtex-out/<mesh name>_edit``
            (:func:`csdtex.pipeline.prepare.default_output_folder`).
        mask: a UV-space PNG (white = editable; see :mod:`csdtex.editing.region`), or None for the whole texture.
        materials: names of the materials to edit (OBJ ``usemtl`` / glTF material names; one string is one name);
            empty = every textured material. Combines with ``mask``.
        resume, show_progress, prior, notify, warn, progress: as for :func:`csdtex.paint`.
    Returns:
        :class:`EditResult`.
    Raises:
        csdtex.errors.CsdtexError: one-line user errors (no texture, unknown material, bad mask, empty or identical
            prompts, another run writing into ``out_dir``, ...), before any long work; a GPU out-of-memory error
            becomes :class:`csdtex.errors.GpuOutOfMemoryError`, naming ``--low-vram``.
    """
    check_call_types(mesh, config, EditConfig, prompt=prompt, source=source, out_dir=out_dir, mask=mask)
    if isinstance(materials, str):  # one name, not its letters
        materials = (materials,)
    config = config or EditConfig()
    out_dir = default_output_folder(mesh, edit=True) if out_dir is None else out_dir
    with run_folder_lock(out_dir):
        return call_with_gpu_memory_errors(
            lambda: _edit(mesh, prompt, source, config, out_dir, mask, materials, resume, show_progress, prior, notify,
                          warn, progress),
            low_vram=config.low_vram, texture_option=False)


def _edit(mesh: Mesh | str | Path, prompt: str, source: str, config: EditConfig, out_dir: str | Path,
          mask: str | Path | None, materials: tuple[str, ...] | list[str], resume: bool, show_progress: bool, prior,
          notify: Callable[[str], None] | None, warn: Callable[[str], None] | None,
          progress: Progress | None) -> EditResult:
    """The body of :func:`edit` (same arguments, ``config`` given)."""
    config.validate()
    prompt, source = check_edit_prompts(prompt, source)
    mesh = mesh if isinstance(mesh, Mesh) else load_mesh(mesh)
    region = edit_region(mesh, mask, tuple(materials))
    if mask is not None:
        check_mask_reaches_the_surface(mesh, region)
    config = dataclasses.replace(config, negative_prompt=source)
    if mask is not None:  # an input like the mesh: never replaced by an output of the same name, --overwrite or not
        check_inputs_kept(out_dir, output_name(mesh), [Path(mask)])
    run = prepare_run(mesh, prompt, config, out_dir, prior=prior, resume=resume, notify=notify, warn=warn)

    images = material_texture_images(run.mesh)
    samplers = [(m.sampler or TextureSampler()) if m.texture is not None else None for m in run.mesh.materials]
    model = seeded_model(run.config.seed, lambda: EditableTexture(
        images, region.weights, run.config.field, samplers,
        texel_learning_rate_scale=run.config.texel_learning_rate_scale), run.device)
    fit_max, fit_rms = _fit_error(model, images, region)
    reference = OriginalTextureView(model)
    preserve = DEFAULT_PRESERVE if config.preserve is None else config.preserve
    objective = EditObjective(ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan), preserve,
                              lambda views: render_step_views(run, reference, views))
    sources = texture_records(run.mesh)
    identity = {"edit.source_textures": [r["sha256"] for r in sources], "edit.materials": region.materials,
                "edit.mask": region.mask_record["sha256"] if region.mask_record else None}
    if progress is None:
        progress = TqdmProgress("editing") if show_progress else None
    optimized = optimize(run, model, objective, resume=resume, progress=progress, identity_extra=identity)

    with staged_outputs():  # every output appears together at the end, or none does (Ctrl-C included)
        textures = run.timings.run("bake", bake_edit, run, model, region, images)
        check_not_collapsed_to_black(prompt, images, textures, region)
        written_samplers, transforms = written_sampling(run.mesh)
        files = run.timings.run("export", export_all, run.mesh, textures, run.out_dir, run.name, written_samplers,
                                transforms)
        preview, sheet = write_previews(run, textures, written_samplers, transforms)
        before_after, before_after_sheet = run.timings.run("preview", write_before_after, run, images, textures,
                                                           written_samplers, transforms)
        changed_inside, changed_outside = _changes(images, textures, region)
        metrics = {**optimized.summary(), "fit_error_max": fit_max, "fit_error_rms": fit_rms,
                   "changed_inside": changed_inside, "changed_outside": changed_outside}
        record = {"edit": {"source": source, "preserve": preserve, "source_textures": sources,
                           "materials": region.materials, "mask": region.mask_record,
                           "editable_fraction": region.editable_fraction,
                           "fit_error_8bit": {"max": fit_max, "rms": fit_rms},
                           "changed_inside_fraction": changed_inside, "changed_outside_texels": changed_outside,
                           "before_after": before_after.name}}
        run_json = write_run_record(run, optimized, files, preview, extra=record)
    for note in files.notes:
        (warn or python_warning)(note)
    remove_stale_outputs(run)
    remove_checkpoint(run.out_dir)
    return EditResult(files=files, preview=preview, preview_sheet=sheet, before_after=before_after,
                      before_after_sheet=before_after_sheet, run_json=run_json, textures=textures,
                      timings=run.timings.timings, metrics=metrics, mesh=run.mesh)


@torch.no_grad()
def bake_edit(run: PreparedRun, model: EditableTexture, region: EditRegion,
              originals: list[np.ndarray]) -> list[np.ndarray]:
    """The edited textures, uint8 [H_m, W_m, 3] per material at the input textures' sizes: ``sigmoid(logit(E_m) +
    M_m * R(p_texel))`` inside the region (``R`` baked with the gutter rule of :mod:`csdtex.bake`), the input bytes
    wherever the weight is 0."""
    model.eval()
    samplers = baked_samplers(run.mesh)
    textures = []
    for material, (original, weight) in enumerate(zip(originals, region.weights)):
        if not (weight > 0).any():
            textures.append(original)
            continue
        height, width = weight.shape
        residual, _, _ = bake_material_values(run.render_mesh, model.residual, material, height, width,
                                              backend=run.backend, sampler=samplers[material],
                                              only=torch.as_tensor(weight > 0))
        texels = model.texels(material)[0].permute(1, 2, 0)  # [H, W, 3]
        weights = model.weight(material)[0, 0, :, :, None]
        edited = texels if residual is None else apply_logit_change(texels, weights * residual)
        edited_u8 = (edited.clamp(0.0, 1.0) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
        textures.append(np.where(weight[..., None] > 0, edited_u8, original).astype(np.uint8))
    return textures


def written_sampling(mesh: Mesh) -> tuple[list[TextureSampler], list[TextureTransform | None]]:
    """How an edit's output textures are sampled, per material: a material with an input texture keeps its sampler
    and transform (the edit writes its texels in that image's own space: tiles, pixel-art filtering and texture
    transforms stay as they were); one without keeps the paint bake's sampler (:func:`baked_samplers`), no
    transform."""
    baked = baked_samplers(mesh)
    samplers = [(m.sampler or TextureSampler()) if m.texture is not None else baked[i]
                for i, m in enumerate(mesh.materials)]
    transforms = [m.texture_transform if m.texture is not None else None for m in mesh.materials]
    return samplers, transforms


def write_before_after(run: PreparedRun, before: list[np.ndarray], after: list[np.ndarray],
                       samplers: list[TextureSampler] | None = None,
                       transforms: list[TextureTransform | None] | None = None) -> tuple[Path, Path]:
    """``<name>_before_after.gif`` (input left, edit right, one orbit) and a 6-view sheet ``<name>_before_after.png``
    (the input in the top row, the edit below), both sampled as ``samplers`` / ``transforms`` say (as viewers show
    the input and the output: :func:`written_sampling`)."""
    from csdtex.field import UVTexture

    frames = [
        turntable_frames(run.render_mesh, UVTexture.from_images(images, samplers=samplers,
                                                                transforms=transforms).to(run.device),
                         num_frames=run.config.preview_frames, resolution=run.config.preview_size,
                         backend=run.backend)
        for images in (before, after)
    ]
    gif = write_preview(np.concatenate(frames, axis=2), run.out_dir / f"{run.name}_before_after.gif")
    above_below = np.concatenate(frames, axis=1)  # each sheet column: the input above, the edit below
    sheet = write_preview(above_below[:: max(1, len(above_below) // 6)][:6], run.out_dir / f"{run.name}_before_after.png")
    return gif, sheet


def _fit_error(model: EditableTexture, originals: list[np.ndarray], region: EditRegion) -> tuple[float, float]:
    """Max and RMS difference in 8-bit levels between the input textures and the model's texels before any step,
    over the editable materials (the residual field starts at exactly 0)."""
    worst, squares, count = 0.0, 0.0, 0
    with torch.no_grad():
        for material, (original, weight) in enumerate(zip(originals, region.weights)):
            if not (weight > 0).any():
                continue
            texels = (model.texels(material)[0].permute(1, 2, 0).clamp(0, 1) * 255.0 + 0.5).floor().cpu().numpy()
            difference = texels - original.astype(np.float64)
            worst = max(worst, float(np.abs(difference).max()))
            squares += float((difference**2).sum())
            count += difference.size
    return worst, (squares / max(1, count)) ** 0.5


DARK_WORDS = ("black", "dark", "charcoal", "ebony", "onyx", "coal", "soot", "jet", "night", "shadow")
"""Words of a target description that ask for a (near-)black result: :func:`check_not_collapsed_to_black` then
lets one through."""
NEAR_BLACK_LEVEL = 12
"""An 8-bit texel whose three channels are all at most this is near-black."""


def check_not_collapsed_to_black(prompt: str, before: list[np.ndarray], after: list[np.ndarray],
                                 region: EditRegion, share: float = 0.9) -> None:
    """Refuse an edit whose editable texels ended (at least ``share`` of them) near-black (:data:`NEAR_BLACK_LEVEL`)
    when they were not before and the target does not ask for black (:data:`DARK_WORDS`): with the built-in prior,
    "a red object with white dots" -> "a blue object with white dots" went black, white dots included, and said
    "changed 100% of the editable texels", exit 0 (new-user test, session 16). ``before`` / ``after``: uint8
    [H, W, 3] per material; only texels with region weight > 0 count.

    Raises:
        UnpaintedTextureError: one line with what to try instead; nothing is written (the outputs are staged).
    """
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    if words & set(DARK_WORDS):
        return
    black_after = black_before = total = 0
    for original, edited, weight in zip(before, after, region.weights):
        inside = weight > 0
        total += int(inside.sum())
        black_after += int(((edited.max(axis=-1) <= NEAR_BLACK_LEVEL) & inside).sum())
        black_before += int(((original.max(axis=-1) <= NEAR_BLACK_LEVEL) & inside).sum())
    if total and black_after >= share * total and black_before < 0.5 * total:
        raise UnpaintedTextureError(
            f"the edit turned {100.0 * black_after / total:.0f}% of the editable texels black, which \"{prompt}\" does "
            "not ask for: nothing was written; describe only the change (e.g. \"a blue object\" from \"a red "
            "object\"), or paint the mesh again with the new description (csdtex paint)")


def _changes(before: list[np.ndarray], after: list[np.ndarray], region: EditRegion) -> tuple[float, int]:
    """(fraction of editable texels whose bytes changed, number of texels outside the region that changed)."""
    inside_changed = inside_total = outside_changed = 0
    for original, edited, weight in zip(before, after, region.weights):
        changed = (original != edited).any(axis=-1)
        inside = weight > 0
        inside_changed += int((changed & inside).sum())
        inside_total += int(inside.sum())
        outside_changed += int((changed & ~inside).sum())
    return inside_changed / max(1, inside_total), outside_changed
