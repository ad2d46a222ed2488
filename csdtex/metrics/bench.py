"""``csdtex bench seams``: texture the same meshes with several texture methods and measure their seams.

Two targets (:attr:`BenchSettings.target`), the same for every method of a run:

- ``prompt`` (default): every method is optimized by score distillation of the prior (``--model``) for the prompt,
  with the same steps, seed, views and texture size (what issue #11 asks for).
- ``procedural``: every method is fitted to a known detailed reference instead, with the photometric L2 objective
  (:class:`csdtex.pipeline.objectives.PhotometricObjective`) against renders of
  :class:`csdtex.metrics.targets.ProceduralTexture` (a 3D checker and noise bands with a feature size of
  ``feature_texels`` mean texels of the layout) from the same random views. No prior is involved in the loss, so the
  seams of a texture with real detail are measured on a CPU budget. The prior's preset still sets the field
  configuration and its learning rate (the field ``csdtex paint`` would use). The cameras cover every elevation
  (-85..85 degrees, so no surface is left unseen and unfitted) and render at ``render_resolution`` (default: half the
  texture size, about one mean texel per pixel). Each method's fit error (``fit_rms``: RMS 8-bit difference to
  the reference at the covered texels' surface points) is reported, so a seam score is never read off a texture
  that failed to fit.

Methods (:data:`METHODS`):

- ``field``: csdtex's default: an :class:`~csdtex.field.ImplicitTextureField` optimized against the target, baked
  with :func:`csdtex.bake.bake_texture` (gutter filled by querying the field at the closest surface point).
- ``field-noerase`` / ``field-erase``: the field bake without / with the multi-mip seam erasure post-process
  (:mod:`csdtex.seam_erasure`), whatever the default.
- ``field-nofill``: the same optimized field, covered texels only; the gutter is left black (ablation; what a bake
  without any fill gives).
- ``field-dilate``: the same field on covered texels, gutter filled by 2D nearest-texel dilation.
- ``uv``: an explicit :class:`~csdtex.field.UVTexture` optimized directly through UV sampling with the same stages,
  objective, views and steps, gutter filled by 2D nearest-texel dilation, as texture-space pipelines do. Its Adam
  learning rate is ``uv_learning_rate`` (default :data:`UV_LEARNING_RATE` = 0.1, on the texel logits), not the
  field's: at the field's 1e-2 (built-in prior) or 1e-3 (Stable Diffusion) a texel moves at most 0.01 logit per
  step, so 60-1000 steps leave it near its grey start (procedural fit on ``proc:mismatch`` after 100 steps: RMS
  106 levels at 1e-2, 14 at 0.1, the field 12 at its 1e-2; ``benchmarks/seams_uv_lr.py``).
- ``reference`` (``procedural`` only): the reference itself baked with the default bake: the seam score of a
  perfectly fitted field, which separates what the bake does from what the optimization does.

The ``field*`` methods share one optimization per mesh. Outputs (all written atomically) in ``out_dir``:
``<mesh>/<method>.png`` (material 0's texture; other materials ``<method>_m<k>.png``), ``seams.json``, ``seams.md``
(markdown table) and ``seams.png`` (figure: seam/interior ratio per method, mesh and mip; close-up renders across
the worst seam of each method at mips 0 and 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from csdtex.errors import ConfigError, one_line
from csdtex.fileio import write_bytes_atomic, write_text_atomic
from csdtex.mesh import Mesh
from csdtex.mesh.analysis import uvs_outside_unit_square
from csdtex.mesh.types import unique_name
from csdtex.metrics.seams import interior_edges, seam_metrics
from csdtex.mesh.seams import seam_edges

__all__ = ["METHODS", "TARGETS", "UV_LEARNING_RATE", "BenchSettings", "run_seam_bench", "fill_nearest",
           "fit_errors", "load_bench_mesh", "parse_methods", "procedural_reference"]

METHODS = ("field", "field-noerase", "field-erase", "field-nofill", "field-dilate", "uv", "reference")
DEFAULT_METHODS = ("field", "field-noerase", "field-nofill", "uv")
TARGETS = ("prompt", "procedural")
MIP_LEVELS = 3
UV_LEARNING_RATE = 0.1
"""Default Adam learning rate of the ``uv`` baseline (texel logits): the best of 0.01 / 0.03 / 0.1 / 0.3 / 1.0 when
fitting the procedural target on ``proc:mismatch`` (256 texels, 100 and 300 steps; ``benchmarks/seams_uv_lr.py``)."""
PROCEDURAL_ELEVATION = (-85.0, 85.0)
"""Camera elevation range of the procedural target (degrees): the whole surface is seen and fitted."""


@dataclass
class BenchSettings:
    """Options of a benchmark run (each maps to a ``csdtex bench seams`` option)."""

    model: str | None = None
    """Prior (alias, folder or hub id); None = the built-in one. With ``target="procedural"`` only its preset is
    used (field configuration and learning rate)."""
    prompt: str = "a red and blue checkered object"
    steps: int = 60
    texture_size: int = 256
    methods: tuple[str, ...] = DEFAULT_METHODS
    device: str = "auto"
    seed: int = 0
    """Seed of the views, the models' initialization and (procedural) the reference's random axes and waves."""
    target: str = "prompt"
    """``prompt`` (score distillation of the prior) or ``procedural`` (photometric fit of a known reference)."""
    feature_texels: float = 4.0
    """Procedural target: checker cell size (half the shortest band wavelength) in mean texels of the layout."""
    render_resolution: int | None = None
    """Render size in pixels; None = the prior's (prompt) or half the texture size, at least 64 (procedural)."""
    uv_learning_rate: float = UV_LEARNING_RATE
    """Adam learning rate of the ``uv`` baseline (see the module docstring)."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) for the first invalid value (before any painting)."""
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r} for --target: use prompt or procedural")
        if "reference" in self.methods and self.target != "procedural":
            raise ConfigError("method 'reference' needs --target procedural (the prompt target has no reference)")
        if not (0.5 <= self.feature_texels <= 256):
            raise ConfigError(f"--feature-texels must be in 0.5..256 (got {self.feature_texels})")
        if not self.uv_learning_rate > 0:
            raise ConfigError(f"--uv-lr must be positive (got {self.uv_learning_rate})")


def parse_methods(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"field,uv"`` -> ("field", "uv"); unknown names are a one-line :class:`ConfigError`."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise ConfigError(f"unknown method {', '.join(unknown) or '(none)'} for --methods: use a comma-separated "
                          f"list of {', '.join(METHODS)}")
    return tuple(dict.fromkeys(names))


def fill_nearest(image: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """2D dilation: every texel outside ``coverage`` (bool [H, W]) copies its nearest covered texel (Euclidean)."""
    from scipy import ndimage

    if coverage.all() or not coverage.any():
        return image.copy()
    _, nearest = ndimage.distance_transform_edt(~coverage, return_indices=True)
    return image[nearest[0], nearest[1]]


def _coverages(run, size: int) -> list[np.ndarray]:
    from csdtex.bake import rasterize_uv_layout

    return [rasterize_uv_layout(run.render_mesh, m, size, run.backend).mask[0].cpu().numpy()
            for m in range(run.render_mesh.num_materials)]


def _field_textures(run, model, size: int, methods: Sequence[str]) -> dict[str, list[np.ndarray]]:
    import inspect

    from csdtex.bake import bake_texture
    from csdtex.seam_erasure import erase_seams_render

    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    from csdtex.sampling import baked_samplers

    # as csdtex.pipeline.finalize bakes (tiled UVs placed by the exported samplers), erasure applied below
    baked = bake_texture(run.render_mesh, model, size=size, backend=run.backend, samplers=baked_samplers(run.mesh),
                         seam_erasure=False)
    erased = None
    if "field-erase" in methods or ("field" in methods and _erasure_default(inspect.signature(bake_texture))):
        erased = erase_seams_render(run.render_mesh, baked.images, baked.coverage)
    if "field" in methods:
        out["field"] = erased if erased is not None else baked.images
    if "field-erase" in methods:
        out["field-erase"] = erased
    if "field-noerase" in methods:
        out["field-noerase"] = baked.images
    if "field-nofill" in methods:
        out["field-nofill"] = [np.where(c[..., None], im, 0).astype(np.uint8)
                               for im, c in zip(baked.images, baked.coverage)]
    if "field-dilate" in methods:
        out["field-dilate"] = [fill_nearest(im, c) for im, c in zip(baked.images, baked.coverage)]
    return out


def _erasure_default(signature) -> bool:
    """Whether :func:`csdtex.bake.bake_texture` erases seams by default (the ``field`` method = the default bake)."""
    parameter = signature.parameters.get("seam_erasure")
    return bool(parameter is not None and parameter.default)


def _uv_textures(run, size: int, objective, learning_rate: float) -> tuple[list[np.ndarray], dict]:
    """The ``uv`` baseline: a UVTexture (grey start, seeded) optimized against ``objective`` at ``learning_rate``
    with the run's views and steps, gutter filled by 2D dilation. Returns (images, optimization summary)."""
    from csdtex.field import UVTexture, seeded_model
    from csdtex.pipeline.optimize import optimize

    model = seeded_model(run.config.seed, lambda: UVTexture(run.render_mesh.num_materials, size), run.device)
    uv_run = dataclasses.replace(run, config=dataclasses.replace(run.config, learning_rate=learning_rate))
    summary = optimize(uv_run, model, objective).summary()
    return [fill_nearest(im, c) for im, c in zip(model.to_images(), _coverages(run, size))], summary


def procedural_reference(run, feature_texels: float, seed: int):
    """The procedural target of ``run``'s mesh: :class:`~csdtex.metrics.targets.ProceduralTexture` on the run's
    device with a feature size of ``feature_texels`` mean texels of the layout at ``run.config.texture_size``
    (:func:`~csdtex.metrics.targets.mean_texel_size` in the normalized render space). Returns (model, feature size in
    render-space units)."""
    from csdtex.metrics.targets import ProceduralTexture, mean_texel_size

    rm = run.render_mesh
    feature = feature_texels * mean_texel_size(rm.positions, rm.faces, rm.uvs, rm.uv_faces, run.config.texture_size)
    return ProceduralTexture(feature, feature_texels, seed).to(run.device), feature


def fit_errors(textures: dict[str, list[np.ndarray]], truth: list[np.ndarray],
               coverage: list[np.ndarray]) -> dict[str, float]:
    """Per method: RMS over the covered texels of every material of ``||texture - truth||`` (RGB, 8-bit units).

    ``textures``: method -> uint8 [H, W, 3] per material; ``truth``: the reference baked without seam erasure
    (uint8 [H, W, 3] per material, its value at each covered texel's surface point); ``coverage``: bool [H, W].
    """
    out = {}
    for method, images in textures.items():
        squared = [((im[c].astype(np.float64) - t[c]) ** 2).sum(-1) for im, t, c in zip(images, truth, coverage)]
        values = np.concatenate(squared) if squared else np.zeros(0)
        out[method] = round(float(np.sqrt(values.mean())), 4) if values.size else None
    return out


def _mesh_name(spec: str) -> str:
    from csdtex.export import safe_asset_name

    return safe_asset_name(spec[5:] if spec.startswith("proc:") else Path(spec).stem)


def load_bench_mesh(spec: str) -> Mesh:
    """A benchmark mesh: ``proc:NAME`` (:func:`csdtex.metrics.meshes.procedural_mesh`) or a mesh file path.

    Raises:
        csdtex.errors.MeshError: unknown procedural mesh, missing or unreadable file (one line).
    """
    if spec.startswith("proc:"):
        from csdtex.metrics.meshes import procedural_mesh

        return procedural_mesh(spec)
    from csdtex.mesh import load_mesh

    return load_mesh(spec)


def _without(notes: Sequence[str], warn: Callable[[str], None] | None) -> Callable[[str], None]:
    """``warn`` that drops ``notes`` (a mesh's output notes: what painted outputs would not carry; the benchmark
    writes no mesh)."""
    skipped = set(notes)
    return lambda message: None if warn is None or message in skipped else warn(message)


def _check_json_destination(json_path: Path, loaded: Sequence[tuple[str, Mesh]]) -> None:
    """Refuse a ``--json`` path that is a file the benchmark reads (``--json bj/vase.obj`` replaced the mesh with
    JSON) or an existing file that is not a seam benchmark's JSON (one line each; an earlier result is replaced)."""
    target = os.path.realpath(json_path)
    for spec, mesh in loaded:
        inputs = [mesh.source, *(m.texture_source for m in mesh.materials), *mesh.read_files]
        if any(path is not None and os.path.realpath(path) == target for path in inputs):
            raise ConfigError(f"--json {json_path} is a file the benchmark reads ({spec}): choose another path, "
                              "e.g. seams.json")
    if json_path.is_file():
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        if not (isinstance(record, dict) and {"settings", "meshes", "aggregate"} <= set(record)):
            raise ConfigError(f"--json {json_path} exists and is not the result of an earlier seam benchmark: choose "
                              "another path (nothing was written)")


def run_seam_bench(meshes: Sequence[str], settings: BenchSettings, out_dir: str | Path,
                   json_path: str | Path | None = None, log: Callable[[str], None] = print,
                   warn: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark (see module docstring) and write its outputs; returns the JSON payload.

    Args:
        meshes: mesh files or ``proc:NAME`` procedural meshes (:mod:`csdtex.metrics.meshes`).
        settings: prior, prompt, steps, texture size, methods, device, seed, target (and its options).
        out_dir: output folder; json_path: where the JSON goes (default ``out_dir/seams.json``).
        log: receives one line per finished (mesh, method).
        warn: receives one-line warnings (mesh problems, prompt words the prior does not know); default: ignored.
    Returns:
        The JSON payload (``settings``, ``meshes.<mesh>``, ``aggregate.<method>``) plus ``table`` (markdown).
    Raises:
        csdtex.errors.CsdtexError: missing/unreadable mesh, unknown method or target, bad option or device (before
            painting).
    """
    from csdtex.cameras import CameraRanges
    from csdtex.config import DEFAULT_MODEL, PaintConfig
    from csdtex.devices import resolve_device
    from csdtex.guidance import load_prior
    from csdtex.field import FieldConfig
    from csdtex.painting import seeded_field
    from csdtex.pipeline.objectives import PhotometricObjective, ScoreObjective
    from csdtex.pipeline.optimize import optimize, render_step_views
    from csdtex.pipeline.prepare import check_writable, prepare_run

    methods = parse_methods(settings.methods)
    settings = dataclasses.replace(settings, methods=methods)
    settings.validate()
    procedural = settings.target == "procedural"
    if not meshes:
        raise ConfigError("no mesh given: name mesh files or procedural meshes (proc:mismatch, proc:xatlas)")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    json_path = Path(json_path) if json_path else out_dir / "seams.json"
    if json_path.is_dir():
        raise ConfigError(f"--json {json_path} is a folder: name a file, e.g. {json_path / 'seams.json'}")
    check_writable(json_path.parent, "--json")
    render_resolution = settings.render_resolution
    if procedural and render_resolution is None:
        render_resolution = max(64, settings.texture_size // 2)
    config = PaintConfig(model=settings.model, steps=settings.steps, texture_size=settings.texture_size,
                         device=settings.device, seed=settings.seed, checkpoint_every=0,
                         render_resolution=render_resolution)
    if procedural:
        config.cameras = CameraRanges(elevation_deg=PROCEDURAL_ELEVATION)
    config.validate()
    loaded = [(spec, load_bench_mesh(spec)) for spec in meshes]  # every mesh error before any painting
    _check_json_destination(json_path, loaded)
    for spec, mesh in loaded:  # a mesh without UVs is unwrapped by xatlas, which makes seams
        if mesh.has_uvs and uvs_outside_unit_square(mesh)[0]:
            raise ConfigError(f"mesh {spec} has UVs outside [0, 1] (tiled, or charts moved by whole tiles): the seam "
                              "metric reads textures clamped to the edge, so its numbers would be wrong; measure a "
                              "layout inside [0, 1]")
        if mesh.has_uvs and len(seam_edges(mesh).faces) == 0:
            raise ConfigError(f"mesh {spec} has no UV seams (no edge where two UV charts meet, e.g. one chart or "
                              "overlapping tiles): nothing to measure; give meshes with seams (or proc:mismatch)")
    device = resolve_device(config.device)
    prior = load_prior(config.model or DEFAULT_MODEL, device)

    results: dict[str, dict] = {}
    figures: dict[str, dict] = {}
    resolved = None
    taken: set[str] = set()
    for spec, mesh in loaded:
        name = unique_name(_mesh_name(spec), taken, ignore_case=True)  # two "chair.obj": chair, chair_1
        run = prepare_run(mesh, settings.prompt, config, out_dir / name, prior=prior,
                          warn=_without(mesh.output_notes, warn))
        resolved = run.config
        entry: dict = {"source": spec, "faces": run.mesh.num_faces}
        if procedural:
            reference, feature = procedural_reference(run, settings.feature_texels, settings.seed)
            objective = PhotometricObjective(lambda views, run=run, reference=reference:
                                             render_step_views(run, reference, views))
            entry["feature_size"] = round(feature, 6)
        else:
            objective = ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan)
        textures: dict[str, list[np.ndarray]] = {}
        optimization: dict[str, dict] = {}
        if any(m.startswith("field") for m in methods):
            model = seeded_field(run.config.field or FieldConfig(), run.config.seed, run.device)
            optimization["field"] = optimize(run, model, objective).summary()
            textures.update(_field_textures(run, model, run.config.texture_size, methods))
        if "uv" in methods:
            textures["uv"], optimization["uv"] = _uv_textures(run, run.config.texture_size, objective,
                                                              settings.uv_learning_rate)
        if procedural:
            if "reference" in methods:
                textures["reference"] = _field_textures(run, reference, run.config.texture_size, ("field",))["field"]
            from csdtex.bake import bake_texture

            truth = bake_texture(run.render_mesh, reference, size=run.config.texture_size, backend=run.backend,
                                 seam_erasure=False)
            fits = fit_errors(textures, truth.images, truth.coverage)
        entry["optimization"] = {k: _round_summary(v) for k, v in optimization.items()}
        seams, interior = seam_edges(run.mesh), interior_edges(run.mesh)
        entry["methods"] = {}
        results[name] = entry
        figures[name] = {}
        for method in methods:
            report = seam_metrics(run.mesh, textures[method], MIP_LEVELS, seams=seams, interior=interior)
            entry["methods"][method] = report.to_dict()
            if procedural:
                entry["methods"][method]["fit_rms"] = fits[method]
            figures[name][method] = (report, textures[method])
            _write_textures(out_dir / name, method, textures[method])
            log(f"{name} {method}: seam/interior " + " ".join(f"{r:.2f}" for r in report.ratio)
                + f" (mips 0-{MIP_LEVELS}); bleed/interior {report.bleed_ratio[0]:.2f}"
                + (f"; fit RMS {fits[method]:.1f}" if procedural else ""))
        entry["density_ratio"] = entry["methods"][methods[0]]["density_ratio"]
        figures[name]["_mesh"] = (run.mesh, seams)

    payload = {
        "settings": {**dataclasses.asdict(settings), "methods": list(methods), "mip_levels": MIP_LEVELS,
                     "device": str(device), "model": config.model or DEFAULT_MODEL,
                     "render_resolution": resolved.render_resolution, "learning_rate": resolved.learning_rate,
                     "camera_elevation_deg": list(resolved.cameras.elevation_deg),
                     "field": dataclasses.asdict(resolved.field) if resolved.field else None},
        "meshes": results,
        "aggregate": _aggregate(results, methods),
    }
    table = markdown_table(payload)
    from csdtex.metrics.figure import seam_figure

    with _written(out_dir):  # the table and figure first: a bad --json loses the least
        write_text_atomic(out_dir / "seams.md", table + "\n")
        write_bytes_atomic(out_dir / "seams.png", _png_bytes(seam_figure(figures, methods)))
        write_text_atomic(json_path, json.dumps(payload, indent=2, allow_nan=False))
    payload["table"] = table
    return payload


def _round_summary(summary: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}


@contextlib.contextmanager
def _written(where: Path):
    """Turn a failed write (a full disk, a path that cannot hold files) into one :class:`ConfigError` line."""
    try:
        yield
    except OSError as error:
        raise ConfigError(f"cannot write the benchmark's files under {where} ({one_line(error)}): choose another "
                          "--out / --json") from None


def _write_textures(folder: Path, method: str, images: list[np.ndarray]) -> None:
    with _written(folder):
        for index, image in enumerate(images):
            write_bytes_atomic(folder / (f"{method}.png" if index == 0 else f"{method}_m{index}.png"),
                               _png_bytes(image))


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


FIT_FAILED_RMS = 40.0
"""A procedural fit whose RMS error (8-bit levels) is above this did not fit (the reference bake fits at about 11;
a texture left near flat reads over 100): no seam verdict is read off it."""


def _aggregate(results: dict, methods: Sequence[str]) -> dict:
    """Per method: means over meshes of the per-mip values; ``seam_rms``/``interior_rms``/``bleed_rms`` = mean over
    meshes and mips; ``worst_ratio`` = the largest seam/interior ratio over meshes and mips; ``meets_1.2x`` = worst
    ratio <= 1.2 (undefined ratios, e.g. a flat texture with interior RMS 0, are left out; None when nothing is
    left, and None with ``fit_failed`` when a mesh's fit is above :data:`FIT_FAILED_RMS`); ``fit_rms`` (procedural
    target) = mean over meshes. With both ``field`` and ``field-noerase``:
    ``field.interior_change_vs_noerase_per_mip`` = relative change of the interior RMS (negative = blurrier
    interiors). With ``reference``: ``<method>.interior_change_vs_reference_per_mip``, the same against the
    reference baked by the default bake."""
    out = {}
    for method in methods:
        rows = [mesh["methods"][method] for mesh in results.values()]

        def per_mip(key):
            values = np.array([[np.nan if v is None else v for v in row[key]] for row in rows], dtype=float)
            return values

        entry = {}
        for key in ("seam_rms", "interior_rms", "bleed_rms", "ratio", "bleed_ratio"):
            values = per_mip(key)
            entry[f"{key}_per_mip"] = [_finite_mean(column) for column in values.T]
            if key.endswith("rms"):
                entry[key] = _finite_mean(values.reshape(-1))
        ratios = per_mip("ratio")
        finite = ratios[np.isfinite(ratios)]
        entry["worst_ratio"] = round(float(finite.max()), 4) if finite.size else None
        entry["meets_1.2x"] = bool(finite.max() <= 1.2) if finite.size else None
        if "fit_rms" in rows[0]:
            fits = np.array([np.nan if row["fit_rms"] is None else row["fit_rms"] for row in rows], dtype=float)
            entry["fit_rms"] = _finite_mean(fits)
            if not (np.isfinite(fits) & (fits <= FIT_FAILED_RMS)).all():  # a flat texture has no seams to show
                entry["meets_1.2x"] = None
                entry["fit_failed"] = True
        out[method] = entry
    if "field" in out and "field-noerase" in out:  # interior sharpness of the shipped bake against the plain one
        field, plain = out["field"]["interior_rms_per_mip"], out["field-noerase"]["interior_rms_per_mip"]
        out["field"]["interior_change_vs_noerase_per_mip"] = [
            None if a is None or b in (None, 0) else round(a / b - 1.0, 4) for a, b in zip(field, plain)]
    if "reference" in out:
        truth = out["reference"]["interior_rms_per_mip"]
        for method in methods:
            values = out[method]["interior_rms_per_mip"]
            out[method]["interior_change_vs_reference_per_mip"] = [
                None if a is None or b in (None, 0) else round(a / b - 1.0, 4) for a, b in zip(values, truth)]
    return out


def _finite_mean(values: np.ndarray) -> float | None:
    """Mean of the finite entries rounded to 4 decimals; None when there are none (no NaN in the JSON)."""
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def markdown_table(payload: dict) -> str:
    """Markdown: one row per (mesh, method): seam/interior ratio at each mip, bleed/interior at mip 0, RMS values at
    mip 0, the fit error (procedural target only) and the mesh's density mismatch."""
    levels = payload["settings"]["mip_levels"]
    procedural = payload["settings"].get("target") == "procedural"
    head = ("| mesh | method | " + " | ".join(f"ratio mip {l}" for l in range(levels + 1))
            + " | bleed ratio mip 0 | seam RMS mip 0 | interior RMS mip 0 |" + (" fit RMS |" if procedural else "")
            + " density ratio (median / share >= 2x) |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"

    for name, mesh in payload["meshes"].items():
        for method, row in mesh["methods"].items():
            density = row["density_ratio"]
            lines.append(f"| {name} | {method} | " + " | ".join(fmt(v) for v in row["ratio"])
                         + f" | {fmt(row['bleed_ratio'][0])} | {fmt(row['seam_rms'][0])}"
                         + f" | {fmt(row['interior_rms'][0])}" + (f" | {fmt(row.get('fit_rms'))}" if procedural else "")
                         + f" | {fmt(density['median'])} / {100 * density['share_ge_2']:.0f}% |")
    field = payload["aggregate"].get("field", {})
    for key, what in (("interior_change_vs_noerase_per_mip", "field-noerase (seam erasure off)"),
                      ("interior_change_vs_reference_per_mip", "reference (the target, default bake)")):
        if key in field:
            changes = " / ".join("-" if v is None else f"{100 * v:+.1f}%" for v in field[key])
            lines.append(f"\nInterior sharpness of `field` (interior RMS, mean over meshes) against {what}, mips "
                         f"0-{levels}: {changes}.")
    return "\n".join(lines)
