"""Rasterize + texture-field query, and baking, across views, resolutions, mesh sizes, backends and devices.

    python benchmarks/render.py                      # every device present, torch (+ nvdiffrast on CUDA)
    python benchmarks/render.py --quick              # small CPU-friendly subset
    python benchmarks/render.py --json out.json

Targets (from the issue): torch backend on CUDA <= 5 ms for 4 views x 512^2 at 100k faces (rasterize + field query);
bake 2048^2 of 100k faces <= 2 s on CUDA and <= 30 s on CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, time_call, torus_with_uvs, write_json  # noqa: E402

from csdtex.bake import bake_texture  # noqa: E402
from csdtex.cameras import orbit_cameras  # noqa: E402
from csdtex.field import ImplicitTextureField  # noqa: E402
from csdtex.render.views import render_views  # noqa: E402


def compiled_field(field):
    """The field's forward through torch.compile with dynamic shapes (cached per field)."""
    if not hasattr(field, "_compiled_forward"):
        field._compiled_forward = torch.compile(field, dynamic=True)
    return field._compiled_forward

TARGETS = {
    ("render", "cuda", "torch", 100_000, 4, 512): 5.0,
    ("bake", "cuda", "torch", 100_000, 2048): 2000.0,
    ("bake", "cpu", "torch", 100_000, 2048): 30000.0,
}


FULL_DEFAULTS = {"faces": [10_000, 100_000], "views": [1, 4, 8], "resolutions": [64, 256, 512],
                 "bake_sizes": [1024, 2048], "repeats": 5}
QUICK_DEFAULTS = {"faces": [10_000], "views": [1, 4], "resolutions": [64, 256], "bake_sizes": [1024], "repeats": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)")
    parser.add_argument("--backends", nargs="+", default=["torch", "nvdiffrast"])
    parser.add_argument("--faces", nargs="+", type=int, default=None, help="default 10000 100000")
    parser.add_argument("--views", nargs="+", type=int, default=None, help="default 1 4 8")
    parser.add_argument("--resolutions", nargs="+", type=int, default=None, help="default 64 256 512")
    parser.add_argument("--bake-sizes", nargs="*", type=int, default=None, help="default 1024 2048")
    parser.add_argument("--repeats", type=int, default=None, help="default 5")
    parser.add_argument("--compile", action="store_true",
                        help="also time the torch backend with torch.compile'd rasterizer stages and field (CUDA)")
    parser.add_argument("--quick", action="store_true",
                        help="CPU-friendly defaults: 10k faces, 1/4 views, 64/256 px, 1024 bake, 3 repeats (options "
                             "given explicitly still win)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/render.json"))
    args = parser.parse_args()
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():  # --quick changes the defaults only: an explicit option is kept
        if getattr(args, name) is None:
            setattr(args, name, value)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    render_rows, bake_rows = [], []
    for device_name in devices:
        device = torch.device(device_name)
        field = ImplicitTextureField().to(device)
        for num_faces in args.faces:
            mesh = torus_with_uvs(num_faces)
            render_mesh = mesh.to_render(device)
            variants = list(args.backends) + (["torch+compile"] if args.compile and device.type == "cuda" else [])
            for variant in variants:
                backend = "torch-compiled" if variant == "torch+compile" else variant
                model = compiled_field(field) if variant == "torch+compile" else field
                if backend == "nvdiffrast":
                    from csdtex.render import nvdiffrast_raster

                    if device.type != "cuda" or not nvdiffrast_raster.is_available():
                        continue
                for views in args.views:
                    cameras = orbit_cameras(views, elevation_deg=20.0, device=device)
                    for resolution in args.resolutions:
                        def step():
                            with torch.no_grad():
                                render_views(render_mesh, model, cameras, resolution, backend=backend)

                        ms = time_call(step, device, repeats=args.repeats)
                        target = TARGETS.get(("render", device_name, backend.replace("-compiled", ""), num_faces, views, resolution))
                        render_rows.append({
                            "device": device_name, "backend": variant, "faces": mesh.num_faces, "views": views,
                            "resolution": resolution, "ms": round(ms, 2),
                            "target_ms": target or "", "ok": "" if target is None else ("yes" if ms <= target else "NO"),
                        })
                        print(f"render {render_rows[-1]}", flush=True)
                if variant == "torch+compile":
                    continue
                for size in args.bake_sizes:
                    ms = time_call(lambda: bake_texture(render_mesh, field, size=size, backend=backend), device,
                                   repeats=max(1, args.repeats // 2))
                    target = TARGETS.get(("bake", device_name, backend, num_faces, size))
                    bake_rows.append({
                        "device": device_name, "backend": backend, "faces": mesh.num_faces, "size": size,
                        "ms": round(ms, 1), "target_ms": target or "",
                        "ok": "" if target is None else ("yes" if ms <= target else "NO"),
                    })
                    print(f"bake {bake_rows[-1]}", flush=True)

    print("\nRasterize + field query (median ms)")
    print_table(render_rows, ["device", "backend", "faces", "views", "resolution", "ms", "target_ms", "ok"])
    print("\nBake (median ms)")
    print_table(bake_rows, ["device", "backend", "faces", "size", "ms", "target_ms", "ok"])
    write_json(args.json, {"environment": environment(), "render": render_rows, "bake": bake_rows})
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
