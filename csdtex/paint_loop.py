"""The paint loop: optimize a texture field on a mesh with CSD, then bake, export and preview.

One step: B random cameras -> render the field (albedo, random backgrounds) at the prior's resolution ->
``prior.encode_images`` -> CSD (or SDS) surrogate loss -> Adam on the field. After the last step the field is baked
into the mesh's own UV layout (unwrapped first only when it has none, or when asked) and exported as OBJ+MTL+PNG and
GLB, with a turntable preview of the baked result and ``run.json``.

Every output is written to a temporary file and renamed into place, so an interrupted run leaves no half-written
file; a checkpoint (``checkpoint.safetensors`` + ``checkpoint.json``) every N steps makes it resumable.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from csdtex import __version__
from csdtex.bake import bake_texture
from csdtex.cameras import Cameras, sample_cameras
from csdtex.config import DEFAULT_MODEL, PaintConfig, resolve_for_prior, to_dict
from csdtex.devices import resolve_device
from csdtex.errors import ConfigError
from csdtex.export import ExportedFiles, export_all, safe_asset_name
from csdtex.field import ImplicitTextureField, UVTexture
from csdtex.fileio import atomic_path, write_text_atomic
from csdtex.mesh import Mesh, load_mesh, unwrap_uvs
from csdtex.preview import turntable_frames, write_preview
from csdtex.render import resolve_backend
from csdtex.render.views import render_views

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


@dataclass
class PaintResult:
    """What a paint run produced.

    Attributes:
        files: exported OBJ/MTL/PNG/GLB paths.
        preview: turntable GIF of the baked texture; preview_sheet: PNG contact sheet of the same frames.
        run_json: path of run.json (config, versions, timings, metrics).
        textures: the baked textures, uint8 [S, S, 3] per material (row 0 = top).
        timings: seconds per phase.
        metrics: final and averaged metrics of the optimization.
        mesh: the mesh as exported (with UVs).
    """

    files: ExportedFiles
    preview: Path
    preview_sheet: Path
    run_json: Path
    textures: list[np.ndarray]
    timings: dict[str, float]
    metrics: dict[str, float]
    mesh: Mesh


@dataclass
class _Phases:
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, function: Callable, *args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)


def _python_warning(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


def random_backgrounds(batch: int, white_probability: float, generator: torch.Generator) -> torch.Tensor:
    """float32 [B, 3] in [0, 1]: white with probability ``white_probability``, else a uniform random colour."""
    colors = torch.rand(batch, 3, generator=generator)
    white = torch.rand(batch, generator=generator) < white_probability
    return torch.where(white.unsqueeze(-1), torch.ones_like(colors), colors)


def paint(
    mesh: Mesh | str | Path,
    prompt: str,
    config: PaintConfig | None = None,
    out_dir: str | Path = "csdtex-out",
    resume: bool = False,
    show_progress: bool = True,
    prior=None,
    notify: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> PaintResult:
    """Paint a texture onto ``mesh`` from ``prompt`` (see module docstring).

    Args:
        mesh: a :class:`Mesh` or a path to a mesh file.
        prompt: what the texture should look like; must not be empty.
        config: options (defaults: :class:`PaintConfig`).
        out_dir: output folder (created); outputs are named after the mesh file.
        resume: continue from ``out_dir``'s checkpoint if present.
        show_progress: show a progress bar with ETA (tqdm).
        prior: an already loaded prior (``csdtex.guidance.load_prior``); default: load ``config.model`` (None = the
            built-in prior, :data:`csdtex.config.DEFAULT_MODEL`).
        notify: called with one-line notices worth showing a user before the long part of the run (UV unwrapping);
            default: ignored.
        warn: called with one-line warnings (problems found while loading the mesh, prompt words the prior does
            not know); default: Python's :func:`warnings.warn` (``UserWarning``).
    Returns:
        :class:`PaintResult`.
    """
    config = config or PaintConfig()
    config.validate()
    if not prompt or not prompt.strip():
        raise ConfigError("the prompt is empty: describe the texture, e.g. \"a weathered bronze statue\"")
    prompt = prompt.strip()
    out_dir = Path(out_dir)
    _check_writable(out_dir)
    phases = _Phases()
    device = resolve_device(config.device)
    backend = resolve_backend(config.renderer, device)

    if resume and not (out_dir / CHECKPOINT_META).exists():
        raise ConfigError(f"--resume: no checkpoint in {out_dir}; run without --resume to start from scratch")
    if prior is None and not config.model:
        config = dataclasses.replace(config, model=DEFAULT_MODEL)

    # Everything that can fail on the user's input fails here, before notices and long work.
    if isinstance(mesh, Mesh):
        source_mesh, name = mesh, safe_asset_name(mesh.source.stem if mesh.source else "mesh")
    else:
        source_mesh = phases.run("load_mesh", load_mesh, mesh)
        name = safe_asset_name(Path(mesh).stem)
    if prior is None:
        from csdtex.guidance import load_prior

        prior = phases.run("load_prior", load_prior, config.model, device)
    config = resolve_for_prior(config, prior.preset, prior.render_resolution)

    notify = notify or (lambda message: None)
    warn = warn or _python_warning
    for warning in source_mesh.warnings:
        warn(warning)
    if prior.vocabulary:
        from csdtex.guidance.vocabulary import unknown_words_message

        negative = config.guidance.negative_prompt if config.guidance.method == "csd" else None
        for text, where in ((prompt, ""), (negative, "in the negative prompt: ")):
            message = unknown_words_message(text, prior.vocabulary) if text else None
            if message:
                warn(where + message)
    if config.unwrap or not source_mesh.has_uvs:
        reason = "as asked (--unwrap)" if config.unwrap else "it has no UVs" if source_mesh.uv_faces is None else (
            "some faces have no UVs")
        notify(f"unwrapping UVs with xatlas: {reason}")
    textured_mesh = phases.run("unwrap", unwrap_uvs, source_mesh, config.texture_size, force=config.unwrap)

    from csdtex.guidance import PromptEmbeddings, ScoreDistillation

    embeddings = phases.run(
        "encode_text", PromptEmbeddings, prior, prompt, config.guidance.negative_prompt,
        view_dependent=config.guidance.view_dependent_prompt,
    )
    guidance = ScoreDistillation(prior, config.guidance)

    torch.manual_seed(config.seed)
    model = ImplicitTextureField(config.field).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(config.seed)
    render_mesh = textured_mesh.to_render(device)

    start_step = 0
    if resume:
        start_step = _load_checkpoint(out_dir, model, optimizer, generator, prompt, config)

    history: dict[str, list[float]] = {"loss": [], "grad_norm": [], "t": []}
    progress_bar = _progress(range(start_step, config.steps), show_progress, start_step, config.steps)
    optimize_start = time.perf_counter()
    for step in progress_bar:
        progress = step / max(config.steps - 1, 1)
        cameras = sample_cameras(config.views_per_step, generator, config.cameras, device=device)
        backgrounds = random_backgrounds(config.views_per_step, config.white_background_probability, generator)
        lit = bool(torch.rand((), generator=generator) < config.lit_probability)
        loss, metrics = _step(
            render_mesh, model, prior, guidance, embeddings, cameras, backgrounds.to(device), lit, progress,
            generator, config, backend,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["loss"].append(float(loss.detach()))
        history["grad_norm"].append(float(metrics["grad_norm"]))
        history["t"].append(float(metrics["t"]))
        if show_progress:
            progress_bar.set_postfix(grad=f"{metrics['grad_norm']:.3g}", t=int(metrics["t"]), refresh=False)
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            _save_checkpoint(out_dir, model, optimizer, generator, step + 1, prompt, config)
    phases.timings["optimize"] = round(time.perf_counter() - optimize_start, 3)

    model.eval()
    baked = phases.run("bake", bake_texture, render_mesh, model, size=config.texture_size, backend=backend)
    files = phases.run("export", export_all, textured_mesh, baked.images, out_dir, name)
    baked_model = UVTexture.from_images(baked.images).to(device)
    frames = phases.run(
        "preview", turntable_frames, render_mesh, baked_model, num_frames=config.preview_frames,
        resolution=config.preview_size, backend=backend,
    )
    preview = write_preview(frames, out_dir / f"{name}_turntable.gif")
    preview_sheet = write_preview(frames[:: max(1, len(frames) // 6)][:6], out_dir / f"{name}_views.png")
    _remove_checkpoint(out_dir)

    summary = {
        "steps_run": config.steps - start_step,
        "resumed_from_step": start_step,
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "mean_grad_norm_last_10pct": _tail_mean(history["grad_norm"]),
        "seconds_per_step": phases.timings["optimize"] / max(1, config.steps - start_step),
    }
    run_json = _write_run_json(out_dir, name, prompt, config, prior, textured_mesh, phases.timings, summary, history,
                               files, preview, device, backend)
    return PaintResult(files=files, preview=preview, preview_sheet=preview_sheet, run_json=run_json,
                       textures=baked.images, timings=phases.timings, metrics=summary, mesh=textured_mesh)


def _step(render_mesh, model, prior, guidance, embeddings, cameras: Cameras, backgrounds, lit, progress, generator,
          config: PaintConfig, backend):
    rendered = render_views(
        render_mesh, model, cameras, config.render_resolution, background=backgrounds,
        shading="lit" if lit else "albedo", backend=backend,
    )
    images = rendered.image.permute(0, 3, 1, 2) * 2.0 - 1.0  # [B, 3, H, W] in [-1, 1]
    x = prior.encode_images(images)
    view_embeddings = embeddings.for_views(cameras.elevation_deg, cameras.azimuth_deg)
    return guidance(x, view_embeddings, progress, generator)


def _progress(iterable, enabled: bool, initial: int, total: int):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, initial=initial, total=total, desc="painting", unit="step", dynamic_ncols=True)


def _tail_mean(values: list[float]) -> float | None:
    if not values:
        return None
    tail = values[-max(1, len(values) // 10):]
    return float(np.mean(tail))


def _check_writable(out_dir: Path) -> None:
    """Fail early (before any long work) when ``out_dir`` cannot be created or written; creates nothing."""
    import os

    existing = out_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"cannot write to output folder {out_dir}: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to output folder {out_dir}: {existing} is not writable; choose another --out")


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: tensors in safetensors (never pickle), metadata in JSON.


def _checkpoint_identity(prompt: str, config: PaintConfig) -> dict:
    field_options = dataclasses.asdict(config.field) if config.field is not None else None
    return {"prompt": prompt, "model": config.model, "field": field_options,
            "views_per_step": config.views_per_step, "guidance_method": config.guidance_method}


def _save_checkpoint(out_dir: Path, model, optimizer, generator: torch.Generator, step: int, prompt: str,
                     config: PaintConfig) -> None:
    from safetensors.torch import save_file

    tensors = {f"field.{key}": value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    for index, parameter in enumerate(model.parameters()):
        state = optimizer.state.get(parameter, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"adam.{index}.{key}"] = state[key].detach().cpu().contiguous()
        if "step" in state:
            tensors[f"adam.{index}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    tensors["rng"] = generator.get_state()
    with atomic_path(out_dir / CHECKPOINT_TENSORS) as tmp:
        save_file(tensors, str(tmp))
    meta = {"step": step, "identity": _checkpoint_identity(prompt, config), "csdtex": __version__}
    write_text_atomic(out_dir / CHECKPOINT_META, json.dumps(meta, indent=2))


def _load_checkpoint(out_dir: Path, model, optimizer, generator, prompt: str, config: PaintConfig) -> int:
    meta_path, tensor_path = out_dir / CHECKPOINT_META, out_dir / CHECKPOINT_TENSORS
    if not meta_path.exists() or not tensor_path.exists():
        raise ConfigError(f"--resume: no checkpoint in {out_dir}; run without --resume to start from scratch")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError, SafetensorError) as error:
        raise ConfigError(f"--resume: the checkpoint in {out_dir} is unreadable ({error}); delete it and start again") from None
    expected = json.loads(json.dumps(_checkpoint_identity(prompt, config)))
    if meta.get("identity") != expected:
        differing = sorted(k for k in expected if meta.get("identity", {}).get(k) != expected[k])
        raise ConfigError(f"--resume: the checkpoint in {out_dir} was made with a different {', '.join(differing)}; "
                          "use the same settings or another --out")
    step = int(meta["step"])
    if step >= config.steps:
        raise ConfigError(f"--resume: the checkpoint is at step {step}, not below --steps {config.steps}; raise --steps")
    device = next(model.parameters()).device
    model.load_state_dict({k[len("field."):]: v.to(device) for k, v in tensors.items() if k.startswith("field.")})
    for index, parameter in enumerate(model.parameters()):
        if f"adam.{index}.exp_avg" in tensors:
            optimizer.state[parameter] = {
                "step": tensors[f"adam.{index}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"adam.{index}.exp_avg"].to(device),
                "exp_avg_sq": tensors[f"adam.{index}.exp_avg_sq"].to(device),
            }
    generator.set_state(tensors["rng"])
    return step


def _remove_checkpoint(out_dir: Path) -> None:
    for name in (CHECKPOINT_TENSORS, CHECKPOINT_META):
        (out_dir / name).unlink(missing_ok=True)


def _write_run_json(out_dir, name, prompt, config, prior, mesh, timings, summary, history, files, preview, device,
                    backend) -> Path:
    import importlib.metadata as metadata

    versions = {"csdtex": __version__, "python": platform.python_version()}
    for package in ("torch", "diffusers", "transformers", "trimesh", "xatlas", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    stride = max(1, len(history["loss"]) // 200)
    payload = {
        "prompt": prompt,
        "mesh": {"source": str(mesh.source) if mesh.source else None, "faces": mesh.num_faces,
                 "vertices": mesh.num_vertices, "materials": len(mesh.materials)},
        "model": config.model,
        "prior": {"kind": prior.kind, "render_resolution": prior.render_resolution, "dtype": str(prior.dtype)},
        "seed": config.seed,
        "device": str(device),
        "renderer": backend,
        "config": to_dict(config),
        "versions": versions,
        "timings_s": timings,
        "metrics": summary,
        "history_every_n_steps": stride,
        "history": {key: values[::stride] for key, values in history.items()},
        "outputs": {"obj": files.obj.name, "mtl": files.mtl.name, "textures": [p.name for p in files.textures],
                    "glb": files.glb.name, "preview": preview.name},
    }
    return write_text_atomic(out_dir / "run.json", json.dumps(payload, indent=2, default=str))
