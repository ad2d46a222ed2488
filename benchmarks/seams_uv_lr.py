"""Is the seam benchmark's ``uv`` baseline a real optimization? Learning-rate sweep on the procedural target.

    python benchmarks/seams_uv_lr.py                                  # proc:mismatch, 256 texels, 100 steps
    python benchmarks/seams_uv_lr.py --steps 300 --uv-lrs 0.03 0.1 --no-field

Each run fits one texture model to the procedural reference of ``csdtex bench seams --target procedural`` (same
mesh, views, steps, seed, render size and cameras as the benchmark; :mod:`csdtex.metrics.bench`) and reports its fit
error: RMS 8-bit difference to the reference at the covered texels (``fit_rms``, as ``seams.json`` reports it) and
the mean photometric loss of the last 10 steps. ``uv`` runs use each learning rate of ``--uv-lrs`` on the texel
logits; the ``field`` run (unless ``--no-field``) uses the prior preset's learning rate, as the benchmark does.
Writes JSON (default ``benchmarks/results/seams_uv_lr_cpu.json``; with ``--merge``, runs are added to an existing
file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csdtex.bake import bake_texture  # noqa: E402
from csdtex.cameras import CameraRanges  # noqa: E402
from csdtex.config import PaintConfig  # noqa: E402
from csdtex.field import UVTexture, seeded_model  # noqa: E402
from csdtex.metrics.bench import (  # noqa: E402
    PROCEDURAL_ELEVATION,
    fit_errors,
    load_bench_mesh,
    procedural_reference,
)
from csdtex.painting import seeded_field  # noqa: E402
from csdtex.pipeline.objectives import PhotometricObjective  # noqa: E402
from csdtex.pipeline.optimize import optimize, render_step_views  # noqa: E402
from csdtex.pipeline.prepare import prepare_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="proc:mismatch")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--texture-size", type=int, default=256)
    parser.add_argument("--uv-lrs", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--no-field", action="store_true", help="skip the field run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "seams_uv_lr_cpu.json")
    parser.add_argument("--merge", action="store_true", help="add the runs to an existing JSON file")
    args = parser.parse_args()

    config = PaintConfig(steps=args.steps, texture_size=args.texture_size, device="cpu", seed=args.seed,
                         checkpoint_every=0, render_resolution=max(64, args.texture_size // 2),
                         cameras=CameraRanges(elevation_deg=PROCEDURAL_ELEVATION))
    with tempfile.TemporaryDirectory() as scratch:
        run = prepare_run(load_bench_mesh(args.mesh), "a procedural target", config, Path(scratch) / "run",
                          warn=lambda message: None)
    reference, _ = procedural_reference(run, 4.0, args.seed)
    objective = PhotometricObjective(lambda views: render_step_views(run, reference, views))
    truth = bake_texture(run.render_mesh, reference, size=args.texture_size, seam_erasure=False)

    jobs = [("uv", lr) for lr in args.uv_lrs] + ([] if args.no_field else [("field", run.config.learning_rate)])
    rows = []
    for kind, lr in jobs:
        if kind == "uv":
            model = seeded_model(args.seed, lambda: UVTexture(run.render_mesh.num_materials, args.texture_size), "cpu")
        else:
            model = seeded_field(run.config.field, args.seed, "cpu")
        lr_run = dataclasses.replace(run, config=dataclasses.replace(run.config, learning_rate=lr))
        start = time.perf_counter()
        result = optimize(lr_run, model, objective)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            images = model.to_images() if kind == "uv" else bake_texture(
                run.render_mesh, model, size=args.texture_size, seam_erasure=False).images
        fit = fit_errors({kind: images}, truth.images, truth.coverage)[kind]
        row = {"model": kind, "learning_rate": lr, "steps": args.steps, "fit_rms": fit,
               "loss_last_10": round(float(np.mean(result.history["loss"][-10:])), 6),
               "seconds_per_step": round(seconds / args.steps, 3)}
        rows.append(row)
        print(f"{kind:5s} lr {lr:<6g} steps {args.steps}: fit RMS {fit:6.1f}  loss(last 10) {row['loss_last_10']:.4f}"
              f"  {row['seconds_per_step']:.2f} s/step", flush=True)

    settings = {"mesh": args.mesh, "texture_size": args.texture_size, "render_resolution": run.config.render_resolution,
                "seed": args.seed, "feature_texels": 4.0, "camera_elevation_deg": list(PROCEDURAL_ELEVATION),
                "threads": torch.get_num_threads()}
    payload = {"settings": settings, "runs": rows}
    if args.merge and args.json.exists():
        previous = json.loads(args.json.read_text())
        if previous["settings"] != settings:
            sys.exit(f"error: --merge: {args.json} was written with other settings ({previous['settings']})")
        payload["runs"] = previous["runs"] + rows
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
