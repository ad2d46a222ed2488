"""Coverage-aware camera sampling (``PaintConfig.camera_sampling = "coverage"``, :mod:`csdtex.coverage`): deterministic
draws, cameras that see what uniform views never see, the uniform option unchanged, right view suffixes, one-line
option errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import trimesh

from csdtex.cameras import CameraRanges, sample_cameras
from csdtex.config import PaintConfig, apply_overrides
from csdtex.coverage import (
    CoverageSampling,
    build_coverage_sampler,
    candidate_cells,
    coverage_distribution,
    exposure,
    sample_surface,
)
from csdtex.errors import ConfigError
from csdtex.guidance.prompts import VIEW_SUFFIXES, PromptEmbeddings, view_suffix
from csdtex.mesh import Mesh
from csdtex.pipeline.optimize import sample_step_views

FAST = CoverageSampling(surface_points=2048, visibility_resolution=48)


@pytest.fixture(scope="module")
def box():
    """A cube (half size 0.577 once normalized into the unit sphere): its bottom face is below every camera of the
    uniform ranges (lowest camera height 2 * sin(10 deg) = 0.35)."""
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return Mesh(cube.vertices, cube.faces).to_render("cpu")


@pytest.fixture(scope="module")
def sampler(box):
    return build_coverage_sampler(box, CameraRanges(), FAST, seed=0)


def bottom_points(render_mesh, count: int = 256):
    """Points on the cube's bottom face (y = min) with their normals (0, -1, 0)."""
    low = float(render_mesh.positions[:, 1].min())
    half = float(render_mesh.positions[:, 0].max())
    grid = torch.linspace(-0.7 * half, 0.7 * half, 16)  # a few pixels inside the bottom's edges
    x, z = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([x.reshape(-1), torch.full((count,), low), z.reshape(-1)], dim=-1)
    normals = torch.tensor([0.0, -1.0, 0.0]).expand(count, 3)
    return points, normals


def camera_values(cameras) -> list[torch.Tensor]:
    return [cameras.elevation_deg, cameras.azimuth_deg, cameras.distance, cameras.fov_deg]


def test_draws_are_deterministic_per_seed_and_differ_between_seeds(box, sampler):
    again = build_coverage_sampler(box, CameraRanges(), FAST, seed=0)
    assert torch.equal(sampler.probabilities, again.probabilities)
    first = sampler.sample(16, torch.Generator().manual_seed(5))
    second = again.sample(16, torch.Generator().manual_seed(5))
    other = sampler.sample(16, torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(camera_values(first), camera_values(second)))
    assert not torch.equal(first.elevation_deg, other.elevation_deg)


def test_coverage_cameras_see_the_bottom_that_uniform_cameras_never_see(box, sampler):
    points, normals = bottom_points(box)
    uniform = sample_cameras(64, torch.Generator().manual_seed(1))
    assert float(exposure(box, points, normals, uniform, 64).max()) == 0.0
    drawn = sampler.sample(64, torch.Generator().manual_seed(1))
    seen_by = exposure(box, points, normals, drawn, 64) > 0  # [cameras, points]
    assert bool(seen_by.any(0).all()), "some bottom point is seen by no drawn camera"
    assert 4 <= int(seen_by.any(1).sum()) <= 48  # a share of the views, not all of them
    # The sampler's own measurement: the bottom (1/6 of the area) is unseen by uniform views but for a band of about a
    # depth-map pixel (1/48 of the view here) along its edges, and the mixture sees all of it.
    assert 0.12 <= sampler.stats["unseen_area_share_uniform"] <= 1 / 6
    assert sampler.stats["unseen_area_share_coverage"] == 0.0


def test_exposure_is_zero_behind_an_occluder_and_the_cosine_in_view():
    # Two parallel squares facing +Z; the one behind is hidden from a camera on +Z and seen from -Z.
    square = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    vertices = torch.cat([square + torch.tensor([0.0, 0.0, 0.3]), square - torch.tensor([0.0, 0.0, 0.3])])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    render_mesh = Mesh(vertices.numpy(), faces.numpy()).to_render("cpu")
    scale = float(render_mesh.positions[0, 2]) / 0.3
    points = torch.tensor([[0.0, 0.0, 0.3], [0.0, 0.0, -0.3]]) * scale
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    from csdtex.cameras import make_cameras

    cameras = make_cameras([0.0, 0.0], [0.0, 180.0], 2.0, 60.0)
    seen = exposure(render_mesh, points, normals, cameras, 64)
    assert seen[0, 0] == pytest.approx(1.0, abs=1e-4) and seen[0, 1] == 0.0
    assert seen[1, 1] == pytest.approx(1.0, abs=1e-4) and seen[1, 0] == 0.0


def test_uniform_cells_match_the_uniform_ranges_and_the_distribution_favours_unseen_points():
    ranges = CameraRanges(elevation_deg=(-10.0, 45.0), azimuth_deg=(-90.0, 90.0))
    cells = candidate_cells(ranges, CoverageSampling())
    assert float(cells.uniform.sum()) == pytest.approx(1.0)
    inside = (cells.elevation_low >= -10.0 - 1e-9) & (cells.elevation_high <= 45.0 + 1e-9) & (
        cells.azimuth_low >= -90.0 - 1e-9) & (cells.azimuth_high <= 90.0 + 1e-9)
    assert float(cells.uniform[~inside].sum()) == 0.0
    assert float(cells.elevation_low.min()) == -75.0 and float(cells.elevation_high.max()) == 80.0
    # Three cells, two points: point 0 seen by the uniform cells 0 and 1 (1 sees it worse), point 1 only by cell 2.
    # Uniform exposure U = (0.75, 0); maximising log(0.375 + 0.5 (q0 + 0.5 q1) + eps) + log(0.5 q2 + eps) gives q1 = 0
    # (dominated by q0) and 0.5 q2 = 0.875 - 0.5 q2, i.e. q2 = 0.875.
    visibility = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    q = coverage_distribution(visibility, torch.tensor([0.5, 0.5, 0.0]), torch.ones(2), share=0.5)
    assert float(q[2]) == pytest.approx(0.875, abs=0.005) and float(q[1]) < 0.01
    assert float(q.sum()) == pytest.approx(1.0)


def test_surface_samples_are_area_uniform(box):
    samples = sample_surface(box, 6000, torch.Generator().manual_seed(0))
    axis = samples.normals.abs().argmax(-1)
    shares = torch.bincount(axis, minlength=3).float() / 6000  # a cube: a third of the area per axis
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03)
    assert float(samples.area.sum()) == pytest.approx(6 * float(box.positions[:, 0].max() * 2) ** 2, rel=1e-4)


class _Prior:
    """Just enough prior for :class:`PromptEmbeddings`: one embedding row per text."""

    def encode_text(self, texts):
        return torch.arange(len(texts), dtype=torch.float32).reshape(-1, 1, 1)


def step_run(camera_sampler=None):
    return SimpleNamespace(config=PaintConfig(), camera_sampler=camera_sampler, device=torch.device("cpu"),
                           embeddings=PromptEmbeddings(_Prior(), "a red object", None))


def test_uniform_option_draws_the_same_cameras_as_before():
    views = sample_step_views(step_run(), torch.Generator().manual_seed(0))
    # Seed 0's first step on main before coverage sampling existed (sample_cameras, default ranges).
    assert views.cameras.elevation_deg.tolist() == pytest.approx([17.2941, 32.2522, -5.1337, -2.7383], abs=1e-4)
    assert views.cameras.azimuth_deg.tolist() == pytest.approx([-69.3278, 48.2683, -3.5664, 142.7201], abs=1e-4)
    reference = sample_cameras(4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(camera_values(views.cameras), camera_values(reference)))


def test_view_suffixes_follow_every_drawn_camera(sampler):
    run = step_run(sampler)
    generator = torch.Generator().manual_seed(2)
    elevations = []
    for _ in range(40):
        views = sample_step_views(run, generator)
        expected = [VIEW_SUFFIXES.index(view_suffix(e, a))
                    for e, a in zip(views.cameras.elevation_deg.tolist(), views.cameras.azimuth_deg.tolist())]
        assert views.prompt_rows.tolist() == expected
        elevations += views.cameras.elevation_deg.tolist()
    assert min(elevations) < -30.0  # views from below were drawn, and their suffixes checked above


@pytest.mark.parametrize("values, message", [
    ({"camera_sampling": "random"}, "camera_sampling must be 'uniform' or 'coverage' \\(got 'random'\\)"),
    ({"coverage": {"share": 1.5}}, "coverage.share must be in \\[0, 1\\] \\(got 1.5\\)"),
    ({"coverage": {"elevation_deg": [30, -30]}}, "coverage.elevation_deg must be an increasing pair"),
    ({"coverage": {"azimuth_bins": 0}}, "coverage.azimuth_bins must be in 1..360"),
    ({"coverage": {"surface_points": 10}}, "coverage.surface_points must be in 64..1048576"),
])
def test_bad_options_give_one_line_errors(values, message):
    config = apply_overrides(PaintConfig(), values)
    with pytest.raises(ConfigError, match=message) as error:
        config.validate()
    assert "\n" not in str(error.value)


def test_option_types_are_checked_from_the_type_hints():
    with pytest.raises(ConfigError, match="'camera_sampling' in options must be str"):
        apply_overrides(PaintConfig(), {"camera_sampling": 3})
    with pytest.raises(ConfigError, match="unknown option 'coverage.shares'"):
        apply_overrides(PaintConfig(), {"coverage": {"shares": 0.5}})
    config = apply_overrides(PaintConfig(), {"camera_sampling": "coverage", "coverage": {"share": 0.25}})
    assert config.camera_sampling == "coverage" and config.coverage.share == 0.25


def test_paint_command_with_coverage_sampling_records_the_sampler(tmp_path):
    import json

    from click.testing import CliRunner

    from csdtex.cli import main
    from csdtex.guidance.random_priors import build_tiny_pixel_folder

    prior = build_tiny_pixel_folder(tmp_path / "prior")
    mesh = Path(__file__).resolve().parents[1] / "assets" / "meshes" / "crate.obj"  # has UVs: no unwrapping
    (tmp_path / "options.toml").write_text(
        "preview_frames = 2\npreview_size = 32\n[coverage]\nshare = 0.75\nsurface_points = 1024\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "paint", str(mesh), "a red object", "--model", str(prior), "--camera-sampling", "coverage", "--config",
        str(tmp_path / "options.toml"), "--steps", "2", "--views-per-step", "2", "--texture-size", "32", "--out",
        str(out), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["camera_sampling"] == "coverage" and record["config"]["coverage"]["share"] == 0.75
    assert record["camera_coverage"]["surface_points"] == 1024 and record["timings_s"]["coverage"] > 0
    assert record["camera_coverage"]["unseen_area_share_uniform"] > record["camera_coverage"][
        "unseen_area_share_coverage"]


def test_benchmark_scores_texels_by_area():
    from benchmark_scripts import load_benchmark

    bench = load_benchmark("coverage")
    reference, grey = torch.tensor([0.85, 0.1, 0.1]), torch.full((3,), 0.5)
    colours = torch.stack([reference, grey, 0.55 * reference + 0.45 * grey, grey])
    area = torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    scores = bench.colour_scores(colours, grey.expand(4, 3), reference, area)
    assert scores["reached"] == pytest.approx(3 / 8, abs=1e-4)  # the reference itself and the point past half way
    assert bench.least_seen(torch.tensor([0.0, 0.0, 0.5, 1.0]), area).tolist() == [True, True, False, False]
    # The covered texels of the crate's layout stand for its whole surface (up to the texels cut by chart edges).
    from csdtex.mesh import load_mesh

    render_mesh = load_mesh(Path(__file__).resolve().parents[1] / "assets" / "meshes" / "crate.obj").to_render("cpu")
    texels = bench.texel_samples(render_mesh, 128)
    corners = render_mesh.positions[render_mesh.faces.long()]
    surface = 0.5 * torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).norm(dim=-1)
    assert float(texels["area"].sum()) == pytest.approx(float(surface.sum()), rel=0.05)
