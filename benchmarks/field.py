"""Where the time of one render goes: rasterization alone vs texture-field queries (eager and torch.compile).

    python benchmarks/field.py --device cuda

Measures at 4 views x 512^2 on a 100k-face torus (the render target's setting): covered pixels, rasterize ms,
field forward ms for that many points (eager, and compiled with dynamic shapes), and forward + backward ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, time_call, torus_with_uvs, write_json  # noqa: E402

from csdtex.cameras import orbit_cameras  # noqa: E402
from csdtex.field import ImplicitTextureField  # noqa: E402
from csdtex.render import rasterize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(dynamic=True) of the field")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    render_mesh = torus_with_uvs(args.faces).to_render(device)
    cameras = orbit_cameras(args.views, elevation_deg=20.0, device=device)
    clip = cameras.project(render_mesh.positions)
    fragments = rasterize(clip, render_mesh.faces, args.resolution)
    covered = int(fragments.mask.sum())
    points = torch.rand(covered, 3, device=device) * 1.6 - 0.8
    field = ImplicitTextureField().to(device)
    rows = [
        {"what": "covered pixels", "value": covered},
        {"what": "rasterize torch (ms)", "value": round(time_call(lambda: rasterize(clip, render_mesh.faces, args.resolution), device), 3)},
    ]
    with torch.no_grad():
        rows.append({"what": "field forward eager (ms)", "value": round(time_call(lambda: field(points), device), 3)})

    def forward_backward(model):
        model(points).sum().backward()

    rows.append({"what": "field fwd+bwd eager (ms)", "value": round(time_call(lambda: forward_backward(field), device), 3)})
    if args.compile:
        start = time.perf_counter()
        compiled = torch.compile(field, dynamic=True)
        with torch.no_grad():
            compiled(points)
        rows.append({"what": "compile time (s)", "value": round(time.perf_counter() - start, 1)})
        with torch.no_grad():
            rows.append({"what": "field forward compiled (ms)", "value": round(time_call(lambda: compiled(points), device), 3)})
    print(f"{args.views} views x {args.resolution}^2, {args.faces} faces, {device}")
    print_table(rows, ["what", "value"])
    if args.json:
        write_json(args.json, {"environment": environment(), "rows": rows})


if __name__ == "__main__":
    main()
