"""Coverage benchmark: does coverage-aware camera sampling paint the surface that uniform views rarely see?

    python benchmarks/coverage.py                                 # crate, duck, proc:quadruped, proc:teapot; red, blue
    python benchmarks/coverage.py --meshes crate --colours red --steps 20 --name coverage_smoke --out /tmp/cov

Protocol: for every mesh (``--meshes``: ``assets/meshes`` stems or the held-out procedural shapes ``proc:quadruped``
/ ``proc:teapot`` of :func:`fidelity.load_benchmark_mesh`, unwrapped with xatlas once when they have no UVs), every
solid-colour prompt ``"a {colour} object"`` (``--colours``) and every ``--modes`` entry (``uniform``, ``coverage``),
the texture field of :func:`csdtex.paint` is optimized with the built-in prior exactly as a paint run does
(``prepare_run`` -> seeded :class:`~csdtex.field.ImplicitTextureField` -> CSD :class:`ScoreObjective` -> ``optimize``;
same seed, steps, views per step and render size for both modes; ``PaintConfig.camera_sampling`` the only
difference). Export and preview are skipped.

Scoring, on the **covered texels** of the mesh's UV layout at ``--texture-size`` (texels whose centre lies inside a UV
triangle: what the bake queries the field at, before 8-bit rounding and seam erasure), each weighted by the surface
area it stands for (its face's 3D area / UV area x one texel's UV area):

- **reached**: the texel's colour c after the run is closer (Euclidean RGB in [0, 1]) to the prompt colour's
  reference RGB r (:data:`csdtex.tinyprior.vocabulary.COLORS`, the colours the built-in prior was trained on) than to
  its own colour c0 under the untrained field of the same seed (about 0.5 grey): ``|c - r| < |c - c0|``.
  ``reached`` = area share of such texels.
- **progress**: area-weighted mean of ``clip(1 - |c - r| / |c0 - r|, 0, 1)`` (0 = unpainted, 1 = the reference).
- **least seen**: the same two numbers over the texels that uniform sampling sees least: those whose expected
  exposure under uniform views (``U`` of :mod:`csdtex.coverage`: the uniform ranges' share of each candidate cell
  times ``|cos|`` if visible from the cell's centre camera, default ``[coverage]`` grid) is at or below its
  area-weighted 10th percentile (more than 10% of the area when more than a tenth is never seen: its share is
  reported as ``least_seen_area_share``). The set depends on the mesh only, so it is the same for both modes.
- **time**: the prepare step's ``coverage`` phase (visibility of the candidate cameras + the cell distribution) and
  the optimize loop's seconds per step.

Writes ``<out>/<name>.json`` (settings, per-run rows, per-mode means, the coverage sampler's own statistics) and
``<out>/<name>.png`` (per mesh, the first colour: the trained field seen from below (elevation -50) and from the
side (elevation 15), uniform then coverage, lit), and prints the table.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, write_json  # noqa: E402
from fidelity import DEFAULT_MODEL, load_benchmark_mesh  # noqa: E402

from csdtex.bake import rasterize_uv_layout  # noqa: E402
from csdtex.cameras import make_cameras  # noqa: E402
from csdtex.config import PaintConfig  # noqa: E402
from csdtex.coverage import CoverageSampling, candidate_cells, cell_centre_cameras, exposure  # noqa: E402
from csdtex.field import query_texture  # noqa: E402
from csdtex.render import interpolate  # noqa: E402
from csdtex.render.views import render_views  # noqa: E402

MESHES = "crate,duck,proc:quadruped,proc:teapot"
COLOURS = "red,blue"
LEAST_SEEN_QUANTILE = 0.1


def texel_samples(render_mesh, size: int) -> dict[str, torch.Tensor]:
    """Covered texels of every material at ``size`` x ``size``: surface points float32 [N, 3], unit face normals
    [N, 3], UVs [N, 2], materials int64 [N] and surface area per texel float64 [N] (render-space units squared)."""
    positions, faces = render_mesh.positions, render_mesh.faces.long()
    corners = positions[faces]
    cross = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    uv_corners = render_mesh.uvs[render_mesh.uv_faces.long().clamp(min=0)]
    uv_area = 0.5 * ((uv_corners[:, 1, 0] - uv_corners[:, 0, 0]) * (uv_corners[:, 2, 1] - uv_corners[:, 0, 1])
                     - (uv_corners[:, 1, 1] - uv_corners[:, 0, 1]) * (uv_corners[:, 2, 0] - uv_corners[:, 0, 0])).abs()
    texel_area = (0.5 * cross.norm(dim=-1)).double() / uv_area.double().clamp(min=1e-12) / size**2
    parts: dict[str, list[torch.Tensor]] = {"points": [], "normals": [], "uvs": [], "materials": [], "area": []}
    for material in range(render_mesh.num_materials):
        fragments = rasterize_uv_layout(render_mesh, material, size)
        index = fragments.pixel_index
        face = fragments.face_id.reshape(-1)[index].long()
        parts["points"].append(interpolate(positions, faces, fragments).reshape(-1, 3)[index])
        parts["uvs"].append(interpolate(render_mesh.uvs, render_mesh.uv_faces, fragments).reshape(-1, 2)[index])
        parts["normals"].append(torch.nn.functional.normalize(cross[face], dim=-1))
        parts["materials"].append(torch.full_like(face, material))
        parts["area"].append(texel_area[face])
    return {key: torch.cat(values) for key, values in parts.items()}


def uniform_exposure(render_mesh, points: torch.Tensor, normals: torch.Tensor, config: PaintConfig) -> torch.Tensor:
    """float64 [N]: expected exposure of each point under the uniform ranges (``U`` of :mod:`csdtex.coverage`)."""
    cells = candidate_cells(config.cameras, CoverageSampling())
    cameras = cell_centre_cameras(cells, config.cameras, render_mesh.device)
    visibility = exposure(render_mesh, points, normals, cameras, CoverageSampling().visibility_resolution)
    return cells.uniform @ visibility.double()


def least_seen(values: torch.Tensor, area: torch.Tensor, quantile: float = LEAST_SEEN_QUANTILE) -> torch.Tensor:
    """bool [N]: ``values`` at or below their area-weighted ``quantile``."""
    order = torch.argsort(values)
    cumulative = torch.cumsum(area[order], 0) / area.sum()
    threshold = values[order][int(torch.searchsorted(cumulative, torch.tensor(quantile, dtype=cumulative.dtype)))]
    return values <= threshold


def colour_scores(colours: torch.Tensor, initial: torch.Tensor, reference: torch.Tensor, area: torch.Tensor,
                  subset: torch.Tensor | None = None) -> dict[str, float]:
    """Area-weighted ``reached`` share and mean ``progress`` (module docstring) over ``subset`` (default all)."""
    if subset is not None:
        colours, initial, area = colours[subset], initial[subset], area[subset]
    to_reference = (colours - reference).norm(dim=-1).double()
    reached = to_reference < (colours - initial).norm(dim=-1).double()
    start = (initial - reference).norm(dim=-1).double().clamp(min=1e-6)
    progress = (1.0 - to_reference / start).clamp(0.0, 1.0)
    total = area.sum()
    return {"reached": round(float((area * reached).sum() / total), 4),
            "progress": round(float((area * progress).sum() / total), 4)}


def views_of(render_mesh, model, size: int = 128) -> np.ndarray:
    """uint8 [2, size, size, 3]: ``model`` lit, from below (elevation -50) and from the side (15), azimuth 30."""
    cameras = make_cameras([-50.0, 15.0], [30.0, 30.0], 2.6, 50.0, device=render_mesh.device)
    with torch.no_grad():
        image = render_views(render_mesh, model, cameras, size, background=1.0, shading="lit", supersample=2).image
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def run_benchmark(args: argparse.Namespace) -> dict:
    from csdtex.guidance import load_prior
    from csdtex.mesh import unwrap_uvs
    from csdtex.painting import seeded_field
    from csdtex.pipeline.objectives import ScoreObjective
    from csdtex.pipeline.optimize import optimize
    from csdtex.pipeline.prepare import prepare_run
    from csdtex.tinyprior.vocabulary import COLORS

    torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    colours = [c.strip() for c in args.colours.split(",") if c.strip()]
    prior = load_prior(str(args.model), "cpu")
    rows, pictures, sampler_stats = [], [], {}
    with tempfile.TemporaryDirectory() as work:
        for mesh_name in (m.strip() for m in args.meshes.split(",") if m.strip()):
            name, mesh = load_benchmark_mesh(mesh_name)
            mesh = unwrap_uvs(mesh, args.texture_size)
            texels = least = None
            for colour in colours:
                reference = torch.tensor(COLORS[colour], dtype=torch.float32)
                for mode in modes:
                    config = PaintConfig(steps=args.steps, views_per_step=args.views_per_step,
                                         texture_size=args.texture_size, render_resolution=args.render_resolution,
                                         seed=args.seed, camera_sampling=mode, checkpoint_every=0, overwrite=True)
                    run = prepare_run(mesh, f"a {colour} object", config, Path(work) / f"{name}_{colour}_{mode}",
                                      prior=prior, warn=lambda message: None)
                    if texels is None:
                        texels = texel_samples(run.render_mesh, args.texture_size)
                        seen = uniform_exposure(run.render_mesh, texels["points"], texels["normals"], run.config)
                        least = least_seen(seen, texels["area"])
                    model = seeded_field(run.config.field, run.config.seed, run.device)
                    with torch.no_grad():
                        initial = query_texture(model, texels["points"], texels["uvs"], texels["materials"])
                    objective = ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan)
                    result = optimize(run, model, objective)
                    with torch.no_grad():
                        painted = query_texture(model, texels["points"], texels["uvs"], texels["materials"])
                    area = texels["area"]
                    everything = colour_scores(painted, initial, reference, area)
                    hidden = colour_scores(painted, initial, reference, area, least)
                    row = {"mesh": name, "colour": colour, "mode": mode, "reached": everything["reached"],
                           "progress": everything["progress"], "least_seen_reached": hidden["reached"],
                           "least_seen_progress": hidden["progress"],
                           "least_seen_area_share": round(float(area[least].sum() / area.sum()), 4),
                           "coverage_s": run.timings.timings.get("coverage", 0.0),
                           "s_per_step": round(result.seconds / max(1, result.steps_run), 4)}
                    rows.append(row)
                    print_table([row], list(row))
                    if run.camera_sampler is not None:
                        sampler_stats[name] = run.camera_sampler.stats
                    if colour == colours[0]:
                        pictures.append((name, mode, views_of(run.render_mesh, model)))
    summary = {}
    for mode in modes:
        picked = [r for r in rows if r["mode"] == mode]
        summary[mode] = {key: round(float(np.mean([r[key] for r in picked])), 4)
                         for key in ("reached", "progress", "least_seen_reached", "least_seen_progress", "coverage_s",
                                     "s_per_step")}
    print()
    print_table(rows, list(rows[0]))
    print()
    print_table([{"mode": m, **v} for m, v in summary.items()], ["mode", *next(iter(summary.values()))])
    args.out.mkdir(parents=True, exist_ok=True)
    figure = write_figure(args.out / f"{args.name}.png", pictures, modes)
    payload = {
        "benchmark": "coverage", "command": " ".join(["python", "benchmarks/coverage.py", *sys.argv[1:]]),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "definitions": {"reached": "|c - r| < |c - c0| (RGB in [0, 1]), area-weighted share of covered texels",
                        "progress": "area-weighted mean of clip(1 - |c - r| / |c0 - r|, 0, 1)",
                        "least_seen": f"texels with uniform exposure U <= its area-weighted "
                                      f"{LEAST_SEEN_QUANTILE:.0%} quantile"},
        "environment": environment(), "date": time.strftime("%Y-%m-%d"),
        "rows": rows, "summary": summary, "sampler_stats": sampler_stats, "figure": figure.name,
    }
    path = write_json(args.out / f"{args.name}.json", payload)
    print(f"wrote {path} and {figure}")
    return payload


def write_figure(path: Path, pictures: list, modes: Sequence[str]) -> Path:
    """One row per mesh: for each mode, its view from below then from the side; labels above."""
    from PIL import Image, ImageDraw

    from csdtex.fileio import atomic_path

    meshes = list(dict.fromkeys(name for name, _, _ in pictures))
    size = pictures[0][2].shape[1]
    label = 14
    canvas = Image.new("RGB", (2 * len(modes) * size, len(meshes) * (size + label)), "white")
    draw = ImageDraw.Draw(canvas)
    for name, mode, views in pictures:
        y = meshes.index(name) * (size + label)
        for k, view in enumerate(views):
            x = (modes.index(mode) * 2 + k) * size
            canvas.paste(Image.fromarray(view), (x, y + label))
            draw.text((x + 2, y + 1), f"{name} {mode} {'below' if k == 0 else 'side'}", fill="black")
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="prior (default: the built-in prior)")
    p.add_argument("--meshes", default=MESHES, help="comma-separated assets/meshes stems, proc:quadruped, proc:teapot")
    p.add_argument("--colours", default=COLOURS, help="comma-separated colours of the built-in prior's vocabulary")
    p.add_argument("--modes", default="uniform,coverage", help="camera_sampling values to compare")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--views-per-step", type=int, default=4)
    p.add_argument("--texture-size", type=int, default=128)
    p.add_argument("--render-resolution", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="coverage_cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or not math.isfinite(args.steps):
        p.error("--steps must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    return run_benchmark(parse_args(argv))


if __name__ == "__main__":
    main()
