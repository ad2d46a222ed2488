"""Stage 3 of a run: bake the texture model into the mesh's UV layout, export, preview, record ``run.json``.

Every file is written to a temporary name and renamed into place (``csdtex.fileio``); the checkpoint is removed only
after the outputs exist, so an interrupted finalize can be resumed.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csdtex import __version__
from csdtex.bake import bake_texture
from csdtex.config import to_dict
from csdtex.export import ExportedFiles, export_all
from csdtex.field import TextureModel, UVTexture
from csdtex.fileio import write_text_atomic
from csdtex.mesh import Mesh
from csdtex.pipeline.checkpoint import remove_checkpoint
from csdtex.pipeline.optimize import OptimizeResult
from csdtex.pipeline.run import PreparedRun
from csdtex.preview import turntable_frames, write_preview

_RECORDED_VERSIONS = ("torch", "diffusers", "transformers", "trimesh", "xatlas", "numpy")


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
    metrics: dict[str, Any]
    mesh: Mesh


def bake_and_export(run: PreparedRun, model: TextureModel) -> tuple[list[np.ndarray], ExportedFiles]:
    """Bake ``model`` (switched to eval mode) at ``run.config.texture_size`` into ``run.mesh``'s UV layout and export
    OBJ+MTL+PNG and GLB into ``run.out_dir``: (textures uint8 [S, S, 3] per material, files)."""
    model.eval()
    baked = run.timings.run("bake", bake_texture, run.render_mesh, model, size=run.config.texture_size,
                            backend=run.backend)
    files = run.timings.run("export", export_all, run.mesh, baked.images, run.out_dir, run.name)
    return baked.images, files


def write_previews(run: PreparedRun, textures: list[np.ndarray]) -> tuple[Path, Path]:
    """Turntable GIF ``<name>_turntable.gif`` and 6-view sheet ``<name>_views.png`` of ``textures`` on the mesh."""
    baked_model = UVTexture.from_images(textures).to(run.device)
    frames = run.timings.run(
        "preview", turntable_frames, run.render_mesh, baked_model, num_frames=run.config.preview_frames,
        resolution=run.config.preview_size, backend=run.backend,
    )
    preview = write_preview(frames, run.out_dir / f"{run.name}_turntable.gif")
    sheet = write_preview(frames[:: max(1, len(frames) // 6)][:6], run.out_dir / f"{run.name}_views.png")
    return preview, sheet


def write_run_record(run: PreparedRun, optimized: OptimizeResult, files: ExportedFiles, preview: Path,
                     extra: dict[str, Any] | None = None) -> Path:
    """``run.json``: prompt, mesh, prior, resolved options, versions, timings, metrics, a history thinned to at most
    ~200 points per metric, output names, and ``extra`` entries."""
    import importlib.metadata as metadata

    versions: dict[str, str | None] = {"csdtex": __version__, "python": platform.python_version()}
    for package in _RECORDED_VERSIONS:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    history = optimized.history
    stride = max(1, len(history["loss"]) // 200)
    mesh, prior = run.mesh, run.prior
    payload = {
        "prompt": run.prompt,
        "mesh": {"source": str(mesh.source) if mesh.source else None, "faces": mesh.num_faces,
                 "vertices": mesh.num_vertices, "materials": len(mesh.materials)},
        "model": run.config.model,
        "prior": {"kind": prior.kind, "render_resolution": prior.render_resolution, "dtype": str(prior.dtype)},
        "seed": run.config.seed,
        "device": str(run.device),
        "renderer": run.backend,
        "config": to_dict(run.config, run.guidance),
        "versions": versions,
        "timings_s": run.timings.timings,
        "metrics": optimized.summary(),
        "history_every_n_steps": stride,
        "history": {key: values[::stride] for key, values in history.items()},
        "outputs": {"obj": files.obj.name, "mtl": files.mtl.name, "textures": [p.name for p in files.textures],
                    "glb": files.glb.name, "preview": preview.name},
        **(extra or {}),
    }
    return write_text_atomic(run.out_dir / "run.json", json.dumps(payload, indent=2, default=str))


def finalize(run: PreparedRun, model: TextureModel, optimized: OptimizeResult) -> PaintResult:
    """Bake and export ``model``, write the previews, remove the checkpoint, write ``run.json``."""
    textures, files = bake_and_export(run, model)
    preview, sheet = write_previews(run, textures)
    remove_checkpoint(run.out_dir)
    run_json = write_run_record(run, optimized, files, preview)
    return PaintResult(files=files, preview=preview, preview_sheet=sheet, run_json=run_json, textures=textures,
                       timings=run.timings.timings, metrics=optimized.summary(), mesh=run.mesh)
