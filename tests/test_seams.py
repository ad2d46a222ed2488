"""Seam metric (csdtex.metrics.seams) against a brute-force reference, on known layouts, and the bench command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from csdtex.bake import bake_texture
from csdtex.cli import main
from csdtex.mesh import Mesh, seam_edges
from csdtex.metrics.seams import interior_edges, mip_pyramid, seam_metrics

# Cube: 8 corners, 6 sides as (corner ids counter-clockwise from outside).
CORNERS = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
SIDES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def cube_per_side(per_triangle: bool = False, materials: bool = False) -> Mesh:
    """Each square side its own chart in a 3 x 2 grid of cells (or each triangle its own chart)."""
    faces, uvs, uv_faces, face_materials = [], [], [], []
    for side, (a, b, c, d) in enumerate(SIDES):
        col, row = side % 3, side // 3
        lo = np.array([col / 3, row / 2]) + 0.04
        size = np.array([1 / 3, 1 / 2]) - 0.08
        square = [lo, lo + [size[0], 0], lo + size, lo + [0, size[1]]]
        for tri in ((0, 1, 2), (0, 2, 3)):
            faces.append([(a, b, c, d)[i] for i in tri])
            if per_triangle:
                shift = np.array([0.0, 0.0]) if tri == (0, 1, 2) else np.array([-0.02, 0.02])
                base = len(uvs)
                uvs.extend(square[i] + shift for i in tri)
                uv_faces.append([base, base + 1, base + 2])
            else:
                uv_faces.append([4 * side + i for i in tri])
            face_materials.append(side % 2 if materials else 0)
        if not per_triangle:
            uvs.extend(square)
    from csdtex.mesh import Material

    mats = [Material("a"), Material("b")] if materials else [Material("a")]
    return Mesh(CORNERS, np.array(faces), uvs=np.array(uvs), uv_faces=np.array(uv_faces),
                face_materials=np.array(face_materials), materials=mats)


class SmoothField(torch.nn.Module):
    """Colour = smooth function of the normalized 3D position (no UVs)."""

    uses_uvs = False

    def __init__(self, frequency: float = 1.0):
        super().__init__()
        self.matrix = torch.nn.Parameter(frequency * torch.tensor([[1.3, -0.7, 0.9], [0.4, 1.1, -1.2],
                                                                   [-0.8, 0.5, 1.4]]))

    def forward(self, points, uvs=None, materials=None):
        return 0.5 + 0.4 * torch.sin(2.0 * points @ self.matrix.T)


def test_seam_edges_on_cube_layouts():
    mesh = cube_per_side()
    assert len(seam_edges(mesh)) == 12 and len(interior_edges(mesh).lengths) == 6  # cube edges / diagonals
    mesh = cube_per_side(per_triangle=True)
    assert len(seam_edges(mesh)) == 18 and len(interior_edges(mesh).lengths) == 0
    # Different materials on the two sides of a diagonal-free layout: still 12 seams, 6 interior diagonals.
    mesh = cube_per_side(materials=True)
    seams = seam_edges(mesh)
    assert len(seams) == 12 and (seams.materials[:, 0] != seams.materials[:, 1]).any()
    assert len(interior_edges(mesh).lengths) == 6


def _brute_force(mesh: Mesh, images: list[np.ndarray], level: int, samples: int = 600) -> tuple[float, float]:
    """Seam RMS and interior RMS at ``level`` by explicit loops (independent of the library's vectorized code)."""

    def mip(image):
        current = image.astype(np.float64)
        for _ in range(level):
            h, w = current.shape[0] // 2, current.shape[1] // 2
            nxt = np.zeros((h, w, 3))
            for i in range(h):
                for j in range(w):
                    nxt[i, j] = current[2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(-1, 3).mean(axis=0)
            current = nxt
        return current

    mips = [mip(image) for image in images]

    def lookup(material, u, v):
        image = mips[material]
        h, w = image.shape[:2]
        x, y = u * w - 0.5, (1 - v) * h - 0.5
        i0, j0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - i0, x - j0
        total = np.zeros(3)
        for di, wy in ((0, 1 - fy), (1, fy)):
            for dj, wx in ((0, 1 - fx), (1, fx)):
                total += wy * wx * image[min(max(i0 + di, 0), h - 1), min(max(j0 + dj, 0), w - 1)]
        return total

    seams = seam_edges(mesh)
    num = den = 0.0
    for s in range(len(seams)):
        acc = 0.0
        for n in range(samples):
            t = (n + 0.5) / samples
            values = []
            for k in range(2):
                a, b = seams.uvs[s, k]
                p = a + t * (b - a)
                values.append(lookup(int(seams.materials[s, k]), p[0], p[1]))
            acc += float(((values[0] - values[1]) ** 2).sum())
        num += seams.lengths[s] * acc / samples
        den += seams.lengths[s]
    seam_rms = np.sqrt(num / den)

    interior = interior_edges(mesh)
    num = den = 0.0
    for e in range(len(interior.lengths)):
        material = int(interior.materials[e])
        h, w = images[material].shape[:2]
        a, b = interior.uvs[e]
        ta, tb = np.array([a[0] * w, (1 - a[1]) * h]), np.array([b[0] * w, (1 - b[1]) * h])
        d = (tb - ta) / np.linalg.norm(tb - ta)
        normal = np.array([-d[1], d[0]]) * 2.0**level / 2
        acc = 0.0
        for n in range(samples):
            t = (n + 0.5) / samples
            p = ta + t * (tb - ta)
            plus, minus = p + normal, p - normal
            vp = lookup(material, plus[0] / w, 1 - plus[1] / h)
            vm = lookup(material, minus[0] / w, 1 - minus[1] / h)
            acc += float(((vp - vm) ** 2).sum())
        num += interior.lengths[e] * acc / samples
        den += interior.lengths[e]
    return seam_rms, np.sqrt(num / den)


@pytest.mark.parametrize("materials", [False, True])
def test_metric_matches_brute_force(materials):
    rng = np.random.default_rng(3)
    mesh = cube_per_side(materials=materials)
    images = [rng.integers(0, 256, size=(16, 16, 3)).astype(np.uint8) for _ in mesh.materials]
    report = seam_metrics(mesh, images, mip_levels=2, samples_per_texel=64)
    for level in range(3):
        seam_rms, interior_rms = _brute_force(mesh, images, level)
        assert report.seam_rms[level] == pytest.approx(seam_rms, rel=2e-2)
        assert report.interior_rms[level] == pytest.approx(interior_rms, rel=2e-2)


def test_mip_pyramid_is_box_average():
    image = np.arange(4 * 4 * 3, dtype=np.float64).reshape(4, 4, 3)
    pyramid = mip_pyramid(image, 2)
    assert pyramid[1].shape == (2, 2, 3) and pyramid[2].shape == (1, 1, 3)
    assert np.allclose(pyramid[1][0, 0], image[:2, :2].reshape(-1, 3).mean(0))
    assert np.allclose(pyramid[2][0, 0], image.reshape(-1, 3).mean(0))


@pytest.fixture(scope="module")
def baked_cube():
    mesh = cube_per_side()
    baked = bake_texture(mesh, SmoothField(0.2), size=128, seam_erasure=False)  # the fill alone
    return mesh, baked


def test_metric_near_zero_for_smooth_field_with_exact_fill(baked_cube):
    mesh, baked = baked_cube
    report = seam_metrics(mesh, baked.images)
    assert report.seam_rms[0] < 1.0, report.seam_rms  # 8-bit units
    for level in range(3):
        assert report.ratio[level] < 0.35, report.ratio
    # at mip 3 a mip texel (8 texels) straddles the 10-texel gutter between neighbouring charts
    assert report.ratio[3] < 0.8, report.ratio
    assert report.bleed_ratio[0] < 1.0


def test_metric_finds_planted_discontinuity(baked_cube):
    mesh, baked = baked_cube
    image = baked.images[0].astype(np.int16)
    # brighten the whole cell of side 0 (its chart and its gutter): a step across exactly its four cube edges
    image[64:, :43] += 60
    planted = np.clip(image, 0, 255).astype(np.uint8)
    report = seam_metrics(mesh, [planted])
    seams = seam_edges(mesh)
    side0 = (seams.faces // 2 == 0).any(axis=1)
    assert side0.sum() == 4
    errors = np.sqrt(report.edge_errors[0])
    assert errors[side0].min() > 50 and errors[~side0].max() < 3
    assert report.ratio[0] > 5


def test_bleed_catches_black_gutter(baked_cube):
    mesh, baked = baked_cube
    black = np.where(baked.coverage[0][..., None], baked.images[0], 0).astype(np.uint8)
    filled, blackened = seam_metrics(mesh, baked.images), seam_metrics(mesh, [black])
    assert blackened.bleed_rms[0] > 10 * filled.bleed_rms[0] and blackened.bleed_rms[0] > 30
    assert blackened.bleed_ratio[0] > 5


def test_density_ratio_of_mismatched_layout():
    from csdtex.metrics.meshes import mismatch_sphere

    mesh = mismatch_sphere(grid=4)
    report = seam_metrics(mesh, [np.zeros((64, 64, 3), np.uint8)], mip_levels=0)
    assert report.density["max"] == pytest.approx(1 / 0.35, rel=1e-6)
    assert report.density["share_ge_2"] > 0.5
    assert report.seam_rms[0] == 0


def test_bench_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "seams", str(tmp_path / "missing.obj"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["bench", "seams", "proc:mismatch", "--methods", "field,bogus"])
    assert result.exit_code != 0 and "bogus" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["bench", "seams", "proc:nope", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "proc:mismatch" in result.output
    assert not (tmp_path / "o").exists()


def test_bench_small_run(tmp_path):
    from csdtex.guidance.random_priors import build_tiny_pixel_folder

    prior = build_tiny_pixel_folder(tmp_path / "prior")
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "seams", "proc:mismatch", "--model", str(prior), "--steps", "2",
                                       "--texture-size", "64", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    def no_nan(constant):
        raise AssertionError(f"{constant} in the JSON")

    payload = json.loads((out / "seams.json").read_text(), parse_constant=no_nan)
    for method in ("field", "field-nofill", "uv"):
        entry = payload["aggregate"][method]
        assert entry["seam_rms"] >= 0 and entry["interior_rms"] >= 0 and len(entry["ratio_per_mip"]) == 4
        assert "worst_ratio" in entry and "meets_1.2x" in entry
        assert len(payload["meshes"]["mismatch"]["methods"][method]["bleed_rms"]) == 4
    assert (out / "seams.png").stat().st_size > 0 and "| mismatch | uv |" in (out / "seams.md").read_text()


def test_info_reports_seam_length_and_density_mismatch():
    from csdtex.mesh import analyze_mesh
    from csdtex.metrics.meshes import mismatch_sphere

    report = analyze_mesh(mismatch_sphere(grid=4))
    assert report.seam_length == pytest.approx(seam_edges(mismatch_sphere(grid=4)).lengths.sum())
    assert 0 < report.seam_length_fraction < 1
    assert report.density_ratio_median == pytest.approx(1 / 0.35) and report.density_mismatch_share > 0.5
    assert any("texel density differs" in p for p in report.problems)
    assert "density ratio: median 2.86x" in report.to_text()
    uniform = analyze_mesh(cube_per_side())
    assert uniform.density_mismatch_share == 0 and uniform.to_dict()["seam_length"] == pytest.approx(
        uniform.seam_length)


class Stripes(torch.nn.Module):
    """Fine stripes in 3D (detail that a coarse chart cannot hold)."""

    uses_uvs = False

    def forward(self, points, uvs=None, materials=None):
        s = torch.sin(40 * points[:, 0] + 25 * points[:, 1]) * torch.sin(33 * points[:, 2])
        return torch.stack([0.5 + 0.45 * s, 0.5 + 0.3 * torch.sin(7 * points[:, 1]).expand_as(s), 0.5 - 0.45 * s], -1)


def test_seam_erasure_on_mismatched_layout_keeps_interiors():
    from csdtex.metrics.meshes import mismatch_sphere
    from csdtex.seam_erasure import erase_seams

    mesh = mismatch_sphere(grid=8)
    baked = bake_texture(mesh, Stripes(), size=128, seam_erasure=False)
    before = seam_metrics(mesh, baked.images)
    after = seam_metrics(mesh, erase_seams(mesh, baked.images, baked.coverage))
    for level in range(4):
        assert after.seam_rms[level] < 0.5 * before.seam_rms[level], (before.seam_rms, after.seam_rms)
        assert after.ratio[level] < 0.5
    # interiors no blurrier: the one-texel interior variation stays within 3%
    assert after.interior_rms[0] > 0.97 * before.interior_rms[0]
    default = bake_texture(mesh, Stripes(), size=128)  # erasure is on by default
    assert seam_metrics(mesh, default.images).seam_rms[0] == pytest.approx(after.seam_rms[0], rel=0.05)
