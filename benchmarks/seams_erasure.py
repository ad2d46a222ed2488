"""Does seam erasure blur interiors? Its effect on a known detailed texture, per mesh, texture size and mip level.

    python benchmarks/seams_erasure.py                                   # proc:mismatch, proc:xatlas at 256/512/1024
    python benchmarks/seams_erasure.py --meshes mismatch --sizes 1024 --json /tmp/erasure.json

No optimization and no prior: the procedural reference of ``csdtex bench seams --target procedural`` (a 3D checker
plus noise bands with a feature size of ``--feature-texels`` mean texels of the layout, :mod:`csdtex.metrics.targets`)
is baked into each mesh's own UVs exactly as ``csdtex paint`` bakes a field (:func:`csdtex.bake.bake_texture`, gutter
filled), once without and once with seam erasure (:func:`csdtex.seam_erasure.erase_seams_render`, default options).
For mip levels 0..3 it reports the seam metric (:func:`csdtex.metrics.seams.seam_metrics`): seam RMS / interior RMS
of both bakes and the relative change of the interior RMS that erasure causes (negative = smoother interiors, the
issue's "interior sharpness change"). The texture sizes include the presets' bake sizes (512 for the built-in prior,
1024 for Stable Diffusion / IF). Prints a table, writes JSON (default ``benchmarks/results/seams_erasure_cpu.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, write_json  # noqa: E402

from csdtex.bake import bake_texture  # noqa: E402
from csdtex.metrics.meshes import procedural_mesh  # noqa: E402
from csdtex.metrics.seams import interior_edges, seam_edges, seam_metrics  # noqa: E402
from csdtex.metrics.targets import ProceduralTexture, mean_texel_size  # noqa: E402
from csdtex.seam_erasure import erase_seams_render  # noqa: E402

MIP_LEVELS = 3


def measure(mesh_name: str, size: int, feature_texels: float, seed: int) -> dict:
    """Seam ratios of the reference baked without / with erasure at ``size``, and erasure's interior RMS change (%),
    per mip level 0..3, plus the erasure's wall time."""
    mesh = procedural_mesh(mesh_name)
    render_mesh = mesh.to_render("cpu")
    feature = feature_texels * mean_texel_size(render_mesh.positions, render_mesh.faces, render_mesh.uvs,
                                               render_mesh.uv_faces, size)
    reference = ProceduralTexture(feature, feature_texels, seed)
    baked = bake_texture(render_mesh, reference, size=size, backend="torch", seam_erasure=False)
    started = time.perf_counter()
    erased = erase_seams_render(render_mesh, baked.images, baked.coverage)
    seconds = time.perf_counter() - started
    seams, interior = seam_edges(mesh), interior_edges(mesh)
    before = seam_metrics(mesh, baked.images, MIP_LEVELS, seams=seams, interior=interior).to_dict()
    after = seam_metrics(mesh, erased, MIP_LEVELS, seams=seams, interior=interior).to_dict()
    return {
        "mesh": mesh_name, "texture_size": size, "erasure_s": round(seconds, 2),
        "ratio_noerase": [round(v, 3) for v in before["ratio"]],
        "ratio_erase": [round(v, 3) for v in after["ratio"]],
        "interior_rms_noerase": [round(v, 3) for v in before["interior_rms"]],
        "interior_change_pct": [round(100.0 * (a / b - 1.0), 2)
                                for a, b in zip(after["interior_rms"], before["interior_rms"])],
        "density_ratio": before["density_ratio"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", nargs="+", default=["mismatch", "xatlas"],
                        help="procedural benchmark meshes (csdtex.metrics.meshes.procedural_mesh names)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--feature-texels", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "seams_erasure_cpu.json")
    args = parser.parse_args(argv)

    rows = [measure(mesh, size, args.feature_texels, args.seed) for mesh in args.meshes for size in args.sizes]
    table = []
    for row in rows:
        for level in range(MIP_LEVELS + 1):
            table.append({"mesh": row["mesh"], "size": row["texture_size"], "mip": level,
                          "ratio no erasure": row["ratio_noerase"][level], "ratio erasure": row["ratio_erase"][level],
                          "interior change %": row["interior_change_pct"][level]})
    print_table(table, ["mesh", "size", "mip", "ratio no erasure", "ratio erasure", "interior change %"])
    payload = {"environment": environment(), "command": "python benchmarks/seams_erasure.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "feature_texels": args.feature_texels, "seed": args.seed,
        "rows": rows}
    print(f"wrote {write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
