"""Does seam erasure blur interiors? Its effect on a known detailed texture, per mesh, texture size and mip level.

    python benchmarks/seams_erasure.py                                   # proc:mismatch, proc:xatlas at 256/512/1024
    python benchmarks/seams_erasure.py --meshes mismatch --sizes 1024 --json /tmp/erasure.json
    python benchmarks/seams_erasure.py --detail-weight 0 --json /tmp/erasure_detail0.json   # without the detail term

No optimization and no prior: the procedural reference of ``csdtex bench seams --target procedural`` (a 3D checker
plus noise bands with a feature size of ``--feature-texels`` mean texels of the layout, :mod:`csdtex.metrics.targets`)
is baked into each mesh's own UVs exactly as ``csdtex paint`` bakes a field (:func:`csdtex.bake.bake_texture`, gutter
filled), once without and once with seam erasure (:func:`csdtex.seam_erasure.erase_seams_render`, default options
except ``--detail-weight``). For mip levels 0..3 it reports, from :func:`csdtex.metrics.seams.seam_metrics`, the seam
RMS / interior RMS and bleed RMS / interior RMS ratios of both bakes and the relative change of the interior RMS that
erasure causes (negative = smoother interiors, the issue's "interior sharpness change"), and the same change of the
covered interior RMS (:func:`csdtex.metrics.seams.covered_interior_rms`: only sample points whose mip-L lookups read
no gutter texel, i.e. the texture's own detail; ``covered_share`` = the share of the interior edges' weight it keeps).

Control (no erasure): the bake with its gutter texels near seams replaced by the texture of the *other* side of the
seam, continued across it (:func:`cross_seam_gutter`) -- the gutter a viewer's mips would need for the coarse levels
to average true 3D neighbourhoods. Its interior RMS change shows how much of the mip-2/3 interior RMS of the plain
bake comes from what its gutter holds (the nearest surface point of the chart itself, repeated outwards).

Timing: the wall time of the erasure call; memory: the peak of the allocations traced by :mod:`tracemalloc` (numpy
arrays included) during a second, identical call. The texture sizes include the presets' bake sizes (512 for the
built-in prior, 1024 for Stable Diffusion / IF). Prints a table, writes JSON (default
``benchmarks/results/seams_erasure_cpu.json``).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, write_json

from csdtex.bake import bake_texture
from csdtex.mesh import Mesh
from csdtex.metrics.meshes import procedural_mesh
from csdtex.metrics.seams import (
    covered_interior_rms,
    interior_edges,
    mip_pyramid,
    sample_bilinear,
    seam_edges,
    seam_metrics,
    third_corner_uvs,
)
from csdtex.metrics.targets import ProceduralTexture, mean_texel_size
from csdtex.seam_erasure import erase_seams, erase_seams_render

MIP_LEVELS = 3
DEFAULT_DETAIL_WEIGHT = inspect.signature(erase_seams).parameters["detail_weight"].default


def cross_seam_gutter(mesh: Mesh, images: list[np.ndarray], coverage: list[np.ndarray],
                      radius: float = 1.5 * 2**MIP_LEVELS + 1) -> list[np.ndarray]:
    """Copies of ``images`` (uint8 [H, W, 3] per material, row 0 = top) whose gutter texels (``coverage`` bool [H, W]
    False) within ``radius`` level-0 texels of a seam segment, on its outer side, hold the other side's texture
    continued across the seam.

    A gutter texel at parameter ``t`` along its nearest seam segment (a, b) and at distance ``d`` outside it (in units
    of the segment's length) reads the other side's image at ``a' + t (b' - a') + d |b' - a'| n'``, ``n'`` the unit
    normal into the other side's triangle (the similarity that unfolds the neighbouring triangle across the edge), by
    bilinear lookup at the other side's mip level ``round(log2(density ratio))`` (0..3) when the other side is finer,
    so that it is not aliased. Gutter texels far from every seam keep their values.
    """
    seams = seam_edges(mesh)
    third = third_corner_uvs(mesh, seams)
    sizes = np.array([[image.shape[1], image.shape[0]] for image in images], dtype=np.float64)  # (W, H)
    pyramids = [mip_pyramid(image, MIP_LEVELS) for image in images]
    out = [image.astype(np.float64) for image in images]
    nearest = [np.full(image.shape[:2], np.inf) for image in images]

    def texels(uv, size):  # UV -> level-0 texel coordinates (x right, y down)
        return np.stack([uv[..., 0] * size[0], (1.0 - uv[..., 1]) * size[1]], axis=-1)

    def inward(start, end, corner):  # unit normal of the segment towards the triangle's third corner
        seg = end - start
        normal = np.array([-seg[1], seg[0]]) / max(np.linalg.norm(seg), 1e-12)
        return normal if np.dot(corner - start, normal) >= 0 else -normal

    for s in range(len(seams)):
        for side in range(2):
            own, other = int(seams.materials[s, side]), int(seams.materials[s, 1 - side])
            a0, a1 = (texels(seams.uvs[s, side, e], sizes[own]) for e in range(2))
            b0, b1 = (texels(seams.uvs[s, 1 - side, e], sizes[other]) for e in range(2))
            own_len, other_len = np.linalg.norm(a1 - a0), np.linalg.norm(b1 - b0)
            if own_len < 1e-9 or other_len < 1e-9:
                continue
            normal_a = inward(a0, a1, texels(third[s, side], sizes[own]))
            normal_b = inward(b0, b1, texels(third[s, 1 - side], sizes[other]))
            width, height = int(sizes[own, 0]), int(sizes[own, 1])
            lo = np.maximum(np.floor(np.minimum(a0, a1) - radius).astype(np.int64), 0)
            hi = np.minimum(np.ceil(np.maximum(a0, a1) + radius).astype(np.int64), [width - 1, height - 1])
            cols, rows = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
            cols, rows = cols.reshape(-1), rows.reshape(-1)
            centre = np.stack([cols + 0.5, rows + 0.5], axis=-1)
            t = (centre - a0) @ (a1 - a0) / own_len**2
            outside = -(centre - a0) @ normal_a  # texels beyond the seam, away from the own triangle
            distance = np.linalg.norm(centre - (a0 + np.clip(t, 0, 1)[:, None] * (a1 - a0)), axis=1)
            pick = (~coverage[own][rows, cols]) & (outside > 0) & (distance < radius) & (
                distance < nearest[own][rows, cols])
            if not pick.any():
                continue
            point = b0 + t[pick, None] * (b1 - b0) + (outside[pick] * other_len / own_len)[:, None] * normal_b
            level = int(np.clip(np.round(np.log2(max(other_len / own_len, 1.0))), 0, MIP_LEVELS))
            uv = np.stack([point[:, 0] / sizes[other, 0], 1.0 - point[:, 1] / sizes[other, 1]], axis=-1)
            out[own][rows[pick], cols[pick]] = sample_bilinear(pyramids[other][level], uv)
            nearest[own][rows[pick], cols[pick]] = distance[pick]
    return [np.clip(np.rint(image), 0, 255).astype(np.uint8) for image in out]


def _change_pct(after: list[float], before: list[float]) -> list[float | None]:
    return [None if not (np.isfinite(a) and np.isfinite(b) and b > 0) else round(100.0 * (a / b - 1.0), 2)
            for a, b in zip(after, before)]


def _rounded(values: list[float], digits: int = 3) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in values]


def measure(mesh_name: str, size: int, feature_texels: float, seed: int,
            detail_weight: float = DEFAULT_DETAIL_WEIGHT) -> dict:
    """Seam and bleed ratios of the reference baked without / with erasure at ``size``, erasure's interior RMS change
    (%, all and covered-only sample points) per mip level 0..3, the cross-seam-gutter control, and the erasure's wall
    time (s) and traced peak memory (MB)."""
    mesh = procedural_mesh(mesh_name)
    render_mesh = mesh.to_render("cpu")
    feature = feature_texels * mean_texel_size(render_mesh.positions, render_mesh.faces, render_mesh.uvs,
                                               render_mesh.uv_faces, size)
    reference = ProceduralTexture(feature, feature_texels, seed)
    baked = bake_texture(render_mesh, reference, size=size, backend="torch", seam_erasure=False)
    started = time.perf_counter()
    erased = erase_seams_render(render_mesh, baked.images, baked.coverage, detail_weight=detail_weight)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    erase_seams_render(render_mesh, baked.images, baked.coverage, detail_weight=detail_weight)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    control = cross_seam_gutter(mesh, baked.images, baked.coverage)
    seams, interior = seam_edges(mesh), interior_edges(mesh)
    before, after, crossed = (seam_metrics(mesh, images, MIP_LEVELS, seams=seams, interior=interior)
                              for images in (baked.images, erased, control))
    covered_before, share = covered_interior_rms(mesh, baked.images, baked.coverage, MIP_LEVELS, interior=interior)
    covered_after, _ = covered_interior_rms(mesh, erased, baked.coverage, MIP_LEVELS, interior=interior)
    return {
        "mesh": mesh_name, "texture_size": size, "detail_weight": detail_weight, "erasure_s": round(seconds, 2),
        "erasure_peak_mb": round(peak / 2**20, 1),
        "ratio_noerase": _rounded(before.ratio), "ratio_erase": _rounded(after.ratio),
        "bleed_ratio_noerase": _rounded(before.bleed_ratio), "bleed_ratio_erase": _rounded(after.bleed_ratio),
        "interior_rms_noerase": _rounded(before.interior_rms),
        "interior_change_pct": _change_pct(after.interior_rms, before.interior_rms),
        "covered_share": _rounded(share), "interior_change_covered_pct": _change_pct(covered_after, covered_before),
        "ratio_crossgutter": _rounded(crossed.ratio),
        "interior_change_crossgutter_pct": _change_pct(crossed.interior_rms, before.interior_rms),
        "density_ratio": before.to_dict()["density_ratio"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", nargs="+", default=["mismatch", "xatlas"],
                        help="procedural benchmark meshes (csdtex.metrics.meshes.procedural_mesh names)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--feature-texels", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detail-weight", type=float, default=DEFAULT_DETAIL_WEIGHT,
                        help="erase_seams' detail_weight (0 = erasure without the detail term)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "seams_erasure_cpu.json")
    args = parser.parse_args(argv)

    rows = []
    for mesh in args.meshes:
        for size in args.sizes:
            rows.append(measure(mesh, size, args.feature_texels, args.seed, args.detail_weight))
            print(f"{mesh} {size}: erasure {rows[-1]['erasure_s']} s, peak {rows[-1]['erasure_peak_mb']} MB",
                  flush=True)
    table = []
    for row in rows:
        for level in range(MIP_LEVELS + 1):
            table.append({"mesh": row["mesh"], "size": row["texture_size"], "mip": level,
                          "ratio before": row["ratio_noerase"][level], "ratio after": row["ratio_erase"][level],
                          "bleed before": row["bleed_ratio_noerase"][level],
                          "bleed after": row["bleed_ratio_erase"][level],
                          "interior change %": row["interior_change_pct"][level],
                          "covered interior change %": row["interior_change_covered_pct"][level],
                          "cross-seam gutter interior change %": row["interior_change_crossgutter_pct"][level]})
    print_table(table, ["mesh", "size", "mip", "ratio before", "ratio after", "bleed before", "bleed after",
                        "interior change %", "covered interior change %", "cross-seam gutter interior change %"])
    payload = {"environment": environment(), "command": "python benchmarks/seams_erasure.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "feature_texels": args.feature_texels, "seed": args.seed,
        "detail_weight": args.detail_weight, "rows": rows}
    print(f"wrote {write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
