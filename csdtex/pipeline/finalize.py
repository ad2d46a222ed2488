"""Stage 3 of a run: bake the texture model into the mesh's UV layout, export, preview, record ``run.json``.

Every file is written to a temporary name and renamed into place (``csdtex.fileio``); the checkpoint is removed only
after the outputs exist, so an interrupted finalize can be resumed. A bake that painted no texel at all fails before
anything is written. Earlier outputs this run replaces (:mod:`csdtex.pipeline.outputs`) are removed only after
``run.json``, the last output, is in place.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csdtex import __version__
from csdtex.bake import bake_texture
from csdtex.config import to_dict
from csdtex.errors import UnpaintedTextureError
from csdtex.export import ExportedFiles, export_all
from csdtex.field import TextureModel, UVTexture
from csdtex.fileio import staged_destinations, staged_outputs, write_text_atomic
from csdtex.mesh import Mesh
from csdtex.mesh.analysis import uv_span_text
from csdtex.pipeline.checkpoint import remove_checkpoint
from csdtex.pipeline.optimize import OptimizeResult
from csdtex.pipeline.outputs import remove_replaced_outputs, stale_outputs
from csdtex.pipeline.run import PreparedRun
from csdtex.preview import turntable_frames, write_preview
from csdtex.sampling import TextureSampler, TextureTransform, baked_samplers

_RECORDED_VERSIONS = ("torch", "diffusers", "transformers", "trimesh", "xatlas", "numpy", "DracoPy", "meshopt")


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


def _weights_source(prior) -> str | None:
    """Where the prior's weights came from, for ``run.json``: the absolute folder (a hub id's cache snapshot, whose
    name is the revision), or the prior's own description when it is not a folder."""
    source = getattr(prior, "source", None)
    if not source:
        return None
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else str(source)


def check_painted(coverage: list[np.ndarray], mesh: Mesh) -> None:
    """Raise :class:`UnpaintedTextureError` (one line) when no texel of any material was covered by a UV triangle.

    Args:
        coverage: bool [S, S] per material (:attr:`csdtex.bake.BakedTexture.coverage`).
        mesh: the baked mesh (for the message: its UV range and sampler).
    """
    if any(bool(np.asarray(c).any()) for c in coverage):
        return
    where = uv_span_text(mesh)
    raise UnpaintedTextureError(
        f"the bake painted no texel: no UV triangle covers a texel centre of the texture ({where}; UV triangles "
        "outside [0, 1] under a clamping sampler, or smaller than a texel); nothing was written: pass --unwrap "
        "for a new UV layout, or a larger --texture-size"
    )


def bake_and_export(run: PreparedRun, model: TextureModel) -> tuple[list[np.ndarray], ExportedFiles]:
    """Bake ``model`` (switched to eval mode) at ``run.config.texture_size`` into ``run.mesh``'s UV layout and export
    OBJ+MTL+PNG and GLB into ``run.out_dir``: (textures uint8 [S, S, 3] per material, files).

    Charts are placed by the wrap rule of :func:`csdtex.sampling.baked_samplers`, the samplers the GLB is written
    with, so tiled UVs get their paint where viewers look for it.

    Raises:
        UnpaintedTextureError: no texel received a surface sample (nothing is written).
    """
    model.eval()
    samplers = baked_samplers(run.mesh)
    baked = run.timings.run("bake", bake_texture, run.render_mesh, model, size=run.config.texture_size,
                            backend=run.backend, samplers=samplers, seam_erasure=run.config.seam_erasure)
    check_painted(baked.coverage, run.mesh)
    files = run.timings.run("export", export_all, run.mesh, baked.images, run.out_dir, run.name)
    return baked.images, files


def write_previews(run: PreparedRun, textures: list[np.ndarray],
                   samplers: list[TextureSampler | None] | None = None,
                   transforms: list[TextureTransform | None] | None = None) -> tuple[Path, Path]:
    """Turntable GIF ``<name>_turntable.gif`` and 6-view sheet ``<name>_views.png`` of ``textures`` on the mesh.

    ``samplers`` / ``transforms``: how viewers will sample the textures; default the exported GLB's for a paint
    (:func:`csdtex.sampling.baked_samplers`, no transforms), so the preview shows what a glTF viewer shows.
    """
    samplers = baked_samplers(run.mesh) if samplers is None else samplers
    baked_model = UVTexture.from_images(textures, samplers=samplers, transforms=transforms).to(run.device)
    frames = run.timings.run(
        "preview", turntable_frames, run.render_mesh, baked_model, num_frames=run.config.preview_frames,
        resolution=run.config.preview_size, backend=run.backend,
    )
    preview = write_preview(frames, run.out_dir / f"{run.name}_turntable.gif")
    sheet = write_preview(frames[:: max(1, len(frames) // 6)][:6], run.out_dir / f"{run.name}_views.png")
    return preview, sheet


def _input_files(mesh) -> list[dict[str, Any]]:
    """The files the mesh was read from (:attr:`csdtex.mesh.Mesh.read_files`), each as ``{"path": relative to the
    mesh file's folder (POSIX), "sha256": hex, or None for a referenced file that is missing}``."""
    if not mesh.read_files:
        return []
    from csdtex.fileio import file_sha256

    base = Path(os.path.abspath(mesh.read_files[0].parent))
    records = []
    for path in mesh.read_files:
        relative = Path(os.path.relpath(os.path.abspath(path), base)).as_posix()
        records.append({"path": relative, "sha256": file_sha256(path)})
    return records


def write_run_record(run: PreparedRun, optimized: OptimizeResult, files: ExportedFiles, preview: Path,
                     extra: dict[str, Any] | None = None) -> Path:
    """``run.json``: prompt, mesh, prior, resolved options, versions, timings, metrics, a history thinned to at most
    ~200 points per metric, output names, the exported samplers, notes on the input (``run.notes``: shared texels,
    dropped texture transforms or vertex colours), with coverage sampling the sampler's measurement
    (``"camera_coverage"``: :attr:`csdtex.coverage.CoverageSampler.stats`), and ``extra`` entries.

    ``run.json`` is the last output: once it is written, the earlier outputs this run replaces
    (``run.replaced_outputs``) and did not write again are removed, and their names recorded under
    ``"replaced_outputs"``."""
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
                 "vertices": mesh.num_vertices, "materials": len(mesh.materials), "files": _input_files(mesh)},
        "model": run.config.model,
        "prior": {"kind": prior.kind, "render_resolution": prior.render_resolution, "dtype": str(prior.dtype),
                  "source": _weights_source(prior)},
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
                    "maps": [p.name for p in files.maps], "glb": files.glb.name, "preview": preview.name,
                    "preview_sheet": preview.name.replace("_turntable.gif", "_views.png")},
        "samplers": [sampler.to_gltf() for sampler in baked_samplers(mesh)],
        "input_notes": list(run.notes),
        **({"camera_coverage": run.camera_sampler.stats} if run.camera_sampler is not None else {}),
        **(extra or {}),
    }
    # The earlier outputs this run does not write again are the stale ones (removed by remove_stale_outputs once the
    # new outputs are in place); inside a staged_outputs block the new files are listed, not yet in place.
    written = {path.name for path in staged_destinations()}
    stale = [name for name in stale_outputs(run.out_dir, _replaced(run)) if name not in written]
    if stale:
        payload["replaced_outputs"] = stale
    return write_text_atomic(run.out_dir / "run.json", json.dumps(payload, indent=2, default=str))


def _replaced(run: PreparedRun) -> dict:
    return {name: stamp for name, stamp in run.replaced_outputs.items() if name != "run.json"}


def remove_stale_outputs(run: PreparedRun) -> list[str]:
    """Remove the earlier outputs in the run's folder that this run did not write again; call it after every new
    output (``run.json`` last) is in place. Returns their names."""
    return remove_replaced_outputs(run.out_dir, _replaced(run))


def finalize(run: PreparedRun, model: TextureModel, optimized: OptimizeResult) -> PaintResult:
    """Bake and export ``model``, write the previews and ``run.json`` (all staged: they appear together, or none
    does), then remove the earlier outputs not written again and the checkpoint."""
    with staged_outputs():
        textures, files = bake_and_export(run, model)
        preview, sheet = write_previews(run, textures)
        run_json = write_run_record(run, optimized, files, preview)
    remove_stale_outputs(run)
    remove_checkpoint(run.out_dir)
    return PaintResult(files=files, preview=preview, preview_sheet=sheet, run_json=run_json, textures=textures,
                       timings=run.timings.timings, metrics=optimized.summary(), mesh=run.mesh)
