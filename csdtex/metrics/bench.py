"""``csdtex bench seams``: paint the same meshes with several texture methods and measure their seams.

Methods (same prior, prompt, steps, seed and texture size; :data:`METHODS`):

- ``field``: csdtex's default: an :class:`~csdtex.field.ImplicitTextureField` optimized by score distillation, baked
  with :func:`csdtex.bake.bake_texture` (gutter filled by querying the field at the closest surface point).
- ``field-noerase`` / ``field-erase``: the field bake without / with the multi-mip seam erasure post-process
  (:mod:`csdtex.seam_erasure`), whatever the default.
- ``field-nofill``: the same optimized field, covered texels only; the gutter is left black (ablation; what a bake
  without any fill gives).
- ``field-dilate``: the same field on covered texels, gutter filled by 2D nearest-texel dilation.
- ``uv``: an explicit :class:`~csdtex.field.UVTexture` optimized directly through UV sampling with the same stages,
  gutter filled by 2D nearest-texel dilation, as texture-space pipelines do.

The ``field*`` methods share one optimization per mesh. Outputs (all written atomically) in ``out_dir``:
``<mesh>/<method>.png`` (material 0's texture; other materials ``<method>_m<k>.png``), ``seams.json``, ``seams.md``
(markdown table) and ``seams.png`` (figure: seam/interior ratio per method, mesh and mip; crops across the worst seam
of each method).
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from csdtex.errors import ConfigError
from csdtex.fileio import write_bytes_atomic, write_text_atomic
from csdtex.mesh import Mesh
from csdtex.metrics.seams import interior_edges, seam_metrics
from csdtex.mesh.seams import seam_edges

__all__ = ["METHODS", "BenchSettings", "run_seam_bench", "fill_nearest", "parse_methods"]

METHODS = ("field", "field-noerase", "field-erase", "field-nofill", "field-dilate", "uv")
DEFAULT_METHODS = ("field", "field-nofill", "uv")
MIP_LEVELS = 3


@dataclass
class BenchSettings:
    """Options of a benchmark run (each maps to a ``csdtex bench seams`` option)."""

    model: str | None = None
    prompt: str = "a red and blue checkered object"
    steps: int = 60
    texture_size: int = 256
    methods: tuple[str, ...] = DEFAULT_METHODS
    device: str = "auto"
    seed: int = 0


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


def _uv_textures(run, size: int) -> list[np.ndarray]:
    from csdtex.field import UVTexture, seeded_model
    from csdtex.pipeline.objectives import ScoreObjective
    from csdtex.pipeline.optimize import optimize

    model = seeded_model(run.config.seed, lambda: UVTexture(run.render_mesh.num_materials, size), run.device)
    optimize(run, model, ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan))
    return [fill_nearest(im, c) for im, c in zip(model.to_images(), _coverages(run, size))]


def _mesh_name(spec: str) -> str:
    from csdtex.export import safe_asset_name

    return safe_asset_name(spec[5:] if spec.startswith("proc:") else Path(spec).stem)


def _load(spec: str) -> Mesh:
    if spec.startswith("proc:"):
        from csdtex.metrics.meshes import procedural_mesh

        return procedural_mesh(spec)
    from csdtex.mesh import load_mesh

    return load_mesh(spec)


def run_seam_bench(meshes: Sequence[str], settings: BenchSettings, out_dir: str | Path,
                   json_path: str | Path | None = None, log: Callable[[str], None] = print,
                   warn: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark (see module docstring) and write its outputs; returns the JSON payload.

    Args:
        meshes: mesh files or ``proc:NAME`` procedural meshes (:mod:`csdtex.metrics.meshes`).
        settings: prior, prompt, steps, texture size, methods, device, seed.
        out_dir: output folder; json_path: where the JSON goes (default ``out_dir/seams.json``).
        log: receives one line per finished (mesh, method).
        warn: receives one-line warnings (mesh problems, prompt words the prior does not know); default: ignored.
    Raises:
        csdtex.errors.CsdtexError: missing/unreadable mesh, unknown method, bad option or device (before painting).
    """
    from csdtex.config import DEFAULT_MODEL, PaintConfig
    from csdtex.devices import resolve_device
    from csdtex.guidance import load_prior
    from csdtex.field import FieldConfig
    from csdtex.painting import seeded_field
    from csdtex.pipeline.objectives import ScoreObjective
    from csdtex.pipeline.optimize import optimize
    from csdtex.pipeline.prepare import check_writable, prepare_run

    methods = parse_methods(settings.methods)
    if not meshes:
        raise ConfigError("no mesh given: name mesh files or procedural meshes (proc:mismatch, proc:xatlas)")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    config = PaintConfig(model=settings.model, steps=settings.steps, texture_size=settings.texture_size,
                         device=settings.device, seed=settings.seed, checkpoint_every=0)
    config.validate()
    loaded = [(spec, _load(spec)) for spec in meshes]  # every mesh error before any painting
    device = resolve_device(config.device)
    prior = load_prior(config.model or DEFAULT_MODEL, device)

    results: dict[str, dict] = {}
    figures: dict[str, dict] = {}
    for spec, mesh in loaded:
        name = _mesh_name(spec)
        run = prepare_run(mesh, settings.prompt, config, out_dir / name, prior=prior,
                          warn=warn or (lambda message: None))
        textures: dict[str, list[np.ndarray]] = {}
        if any(m.startswith("field") for m in methods):
            model = seeded_field(run.config.field or FieldConfig(), run.config.seed, run.device)
            optimize(run, model, ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan))
            textures.update(_field_textures(run, model, run.config.texture_size, methods))
        if "uv" in methods:
            textures["uv"] = _uv_textures(run, run.config.texture_size)
        seams, interior = seam_edges(run.mesh), interior_edges(run.mesh)
        results[name] = {"source": spec, "faces": run.mesh.num_faces, "methods": {}}
        figures[name] = {}
        for method in methods:
            report = seam_metrics(run.mesh, textures[method], MIP_LEVELS, seams=seams, interior=interior)
            results[name]["methods"][method] = report.to_dict()
            figures[name][method] = (report, textures[method])
            _write_textures(out_dir / name, method, textures[method])
            log(f"{name} {method}: seam/interior " + " ".join(f"{r:.2f}" for r in report.ratio)
                + f" (mips 0-{MIP_LEVELS}); bleed/interior {report.bleed_ratio[0]:.2f}")
        figures[name]["_mesh"] = (run.mesh, seams)

    payload = {
        "settings": {**dataclasses.asdict(settings), "methods": list(methods), "mip_levels": MIP_LEVELS,
                     "device": str(device), "model": config.model or DEFAULT_MODEL},
        "meshes": results,
        "aggregate": _aggregate(results, methods),
    }
    json_path = Path(json_path) if json_path else out_dir / "seams.json"
    write_text_atomic(json_path, json.dumps(payload, indent=2, allow_nan=False))
    table = markdown_table(payload)
    write_text_atomic(out_dir / "seams.md", table + "\n")
    from csdtex.metrics.figure import seam_figure

    write_bytes_atomic(out_dir / "seams.png", _png_bytes(seam_figure(figures, methods)))
    payload["table"] = table
    return payload


def _write_textures(folder: Path, method: str, images: list[np.ndarray]) -> None:
    for index, image in enumerate(images):
        write_bytes_atomic(folder / (f"{method}.png" if index == 0 else f"{method}_m{index}.png"), _png_bytes(image))


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _aggregate(results: dict, methods: Sequence[str]) -> dict:
    """Per method: means over meshes of the per-mip values; ``seam_rms``/``interior_rms``/``bleed_rms`` = mean over
    meshes and mips; ``worst_ratio`` = the largest seam/interior ratio over meshes and mips; ``meets_1.2x`` = worst
    ratio <= 1.2 (undefined ratios, e.g. a flat texture with interior RMS 0, are left out; None when nothing is
    left). With both ``field`` and ``field-noerase``: ``field.interior_change_vs_noerase_per_mip`` = relative
    change of the interior RMS (negative = blurrier interiors)."""
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
        entry["meets_1.2x"] = bool(finite.size and finite.max() <= 1.2)
        out[method] = entry
    if "field" in out and "field-noerase" in out:  # interior sharpness of the shipped bake against the plain one
        field, plain = out["field"]["interior_rms_per_mip"], out["field-noerase"]["interior_rms_per_mip"]
        out["field"]["interior_change_vs_noerase_per_mip"] = [
            None if a is None or b in (None, 0) else round(a / b - 1.0, 4) for a, b in zip(field, plain)]
    return out


def _finite_mean(values: np.ndarray) -> float | None:
    """Mean of the finite entries rounded to 4 decimals; None when there are none (no NaN in the JSON)."""
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def markdown_table(payload: dict) -> str:
    """Markdown: one row per (mesh, method): seam/interior ratio at each mip, bleed/interior at mip 0, RMS values at
    mip 0, and the mesh's density mismatch."""
    levels = payload["settings"]["mip_levels"]
    head = ("| mesh | method | " + " | ".join(f"ratio mip {l}" for l in range(levels + 1))
            + " | bleed ratio mip 0 | seam RMS mip 0 | interior RMS mip 0 | density ratio (median / share >= 2x) |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"

    for name, mesh in payload["meshes"].items():
        for method, row in mesh["methods"].items():
            density = row["density_ratio"]
            lines.append(f"| {name} | {method} | " + " | ".join(fmt(v) for v in row["ratio"])
                         + f" | {fmt(row['bleed_ratio'][0])} | {fmt(row['seam_rms'][0])}"
                         + f" | {fmt(row['interior_rms'][0])}"
                         + f" | {fmt(density['median'])} / {100 * density['share_ge_2']:.0f}% |")
    return "\n".join(lines)
