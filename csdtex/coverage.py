"""Coverage-aware camera sampling: training views that also reach the surface the uniform ranges rarely see.

The uniform ranges of :class:`~csdtex.cameras.CameraRanges` (elevation -10..45 degrees by default) rarely or never
show undersides, the space between legs or the inside of handles, so those parts stay unpainted. At prepare time
:func:`build_coverage_sampler` measures, on the CPU or the run's device, how well a fixed grid of candidate camera
*cells* (elevation band x azimuth bin, over an elevation range that may go below and above the uniform one) sees
area-uniform samples of the surface, and chooses a distribution over the cells that makes the whole mixture of views
(uniform draws plus cell draws) see every surface sample; each step then draws its cameras on the CPU from the run's
generator (:meth:`CoverageSampler.sample`), with no host synchronization.

Definitions (angles in degrees, cameras as in :mod:`csdtex.cameras`; the mesh is normalized into the unit sphere):

- **Exposure** ``V[c, p]`` of surface sample ``p`` from cell ``c``: ``|n_p . d_cp|`` (two-sided cosine between the
  face normal and the unit direction to the camera) if the point is in front of every other surface as seen from the
  cell's centre camera (depth test against a rasterized depth map, tolerance about a pixel's depth change of the
  point's own surface; :func:`exposure`), else 0. The
  centre camera sits at the middle of the distance range with a field of view that frames the unit sphere, so
  exposure means "seen from that camera position" whatever field of view a step draws.
- **Uniform share** ``u_c``: the probability that a camera of the uniform ranges falls in cell ``c`` (exact
  overlaps; the uniform ranges' bounds are cell edges). ``U_p = sum_c u_c V[c, p]`` is the expected exposure of a
  uniform view.
- **Cell distribution** ``q``: the maximiser over the simplex of ``sum_p log(E_p + eps)`` with
  ``E_p = (1 - s) U_p + s sum_c q_c V[c, p]`` (s = :attr:`CoverageSampling.share`, ``eps`` = 1% of the mean of
  ``U``), i.e. importance by unseen area: points with little uniform exposure have a large ``1 / E_p``, so the cells
  that see them gain weight. Solved by the EM fixed point ``q_c <- sum_p r_cp / sum_p sum_c' r_c'p`` with
  ``r_cp = s q_c V[c, p] / (E_p + eps)`` (a fixed number of iterations, so it is deterministic).
- **A step's view**: with probability ``s`` a cell drawn from ``q`` and a point uniform in its elevation / azimuth
  rectangle, else the uniform ranges' elevation and azimuth; distance and field of view always from the uniform
  ranges. View suffixes follow from each camera's own elevation and azimuth as for any camera.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from csdtex.cameras import CameraRanges, Cameras, draw_camera_parameters, make_cameras
from csdtex.render import rasterize
from csdtex.render.mesh import RenderMesh

CAMERA_SAMPLINGS = ("uniform", "coverage")
"""Values of :attr:`csdtex.config.PaintConfig.camera_sampling`."""

EM_ITERATIONS = 200
"""Fixed-point iterations of the cell distribution (converged to well under 1% of its objective on the shipped
meshes)."""


@dataclass
class CoverageSampling:
    """Options of coverage-aware camera sampling (``[coverage]`` table), used when ``camera_sampling = "coverage"``."""

    share: float = 0.5
    """Share of the training views drawn from the coverage distribution over the candidate cells; the rest come from
    the uniform ranges of ``[cameras]`` (in [0, 1]; 0 is uniform sampling with a different random stream)."""
    elevation_deg: tuple[float, float] = (-75.0, 80.0)
    """Elevation range of the candidate cameras in degrees (joined with the uniform elevation range); below -10 they
    look at undersides, above 60 their prompts get ``", overhead view"``. Within -89..89."""
    elevation_step_deg: float = 15.0
    """Largest height of a candidate cell (elevation band) in degrees."""
    azimuth_bins: int = 24
    """Candidate cells around the full circle of azimuth."""
    surface_points: int = 8192
    """Area-uniform surface samples whose visibility is measured."""
    visibility_resolution: int = 96
    """Size in pixels of the depth maps that decide visibility."""

    def validate(self) -> str | None:
        """The one-line problem with these options, or None."""
        low, high = self.elevation_deg
        checks = [
            (0.0 <= self.share <= 1.0, f"coverage.share must be in [0, 1] (got {self.share})"),
            (-89.0 <= low < high <= 89.0,
             f"coverage.elevation_deg must be an increasing pair within -89..89 (got {list(self.elevation_deg)})"),
            (1.0 <= self.elevation_step_deg <= 90.0,
             f"coverage.elevation_step_deg must be in 1..90 (got {self.elevation_step_deg})"),
            (1 <= self.azimuth_bins <= 360, f"coverage.azimuth_bins must be in 1..360 (got {self.azimuth_bins})"),
            (64 <= self.surface_points <= 2**20,
             f"coverage.surface_points must be in 64..1048576 (got {self.surface_points})"),
            (16 <= self.visibility_resolution <= 1024,
             f"coverage.visibility_resolution must be in 16..1024 (got {self.visibility_resolution})"),
        ]
        return next((message for ok, message in checks if not ok), None)


@dataclass
class SurfacePoints:
    """Area-uniform samples of a render mesh's surface.

    Attributes:
        points: float32 [P, 3] positions in the normalized render space.
        normals: float32 [P, 3] unit face normals (geometric; exposure uses them two-sided).
        faces: int64 [P] face of each sample.
        area: float32 [P] surface area each sample stands for (total area / P; render-space units squared).
    """

    points: torch.Tensor
    normals: torch.Tensor
    faces: torch.Tensor
    area: torch.Tensor


def sample_surface(render_mesh: RenderMesh, count: int, generator: torch.Generator) -> SurfacePoints:
    """``count`` points uniform over the surface area of ``render_mesh`` (on its device), drawn on the CPU from
    ``generator``; degenerate faces get none."""
    positions = render_mesh.positions.detach().float().cpu()
    faces = render_mesh.faces.long().cpu()
    corners = positions[faces]  # [F, 3, 3]
    cross = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    double_area = cross.norm(dim=-1)
    cdf = torch.cumsum(double_area.double(), 0)
    pick = torch.rand(count, generator=generator, dtype=torch.float64) * cdf[-1]
    face = torch.searchsorted(cdf, pick, right=True).clamp(max=len(faces) - 1)
    r1, r2 = torch.rand(2, count, generator=generator)
    root = r1.sqrt()
    weights = torch.stack([1.0 - root, root * (1.0 - r2), root * r2], dim=-1)  # uniform on the triangle
    points = (weights.unsqueeze(-1) * corners[face]).sum(1)
    normals = torch.nn.functional.normalize(cross[face], dim=-1)
    area = torch.full((count,), float(double_area.sum()) / (2.0 * count))
    device = render_mesh.device
    return SurfacePoints(points.to(device), normals.to(device), face.to(device), area.to(device))


def exposure(render_mesh: RenderMesh, points: torch.Tensor, normals: torch.Tensor, cameras: Cameras,
             resolution: int, backend: str = "torch", chunk: int = 32) -> torch.Tensor:
    """How well each camera sees each point: float32 [C, P] in [0, 1] on the CPU.

    ``|normal . direction to the camera|`` where the point is inside the camera's image and in front of (or on) the
    nearest surface there, else 0. Depth test at the point's pixel (nearest to its projection) of the depth map rendered
    at ``resolution`` x ``resolution``: the depth of the point's own plane on the ray through that pixel's centre (the
    point's depth when the plane is within 6 degrees of grazing) must be at most the map's depth plus half a pixel
    footprint. A visible plane matches the map exactly (perspective-correct depth), so the slope of the surface does
    not matter; points within about a pixel of a silhouette edge may still pass behind it.

    Args:
        render_mesh: the normalized mesh, on the cameras' device.
        points, normals: float32 [P, 3] surface points and unit normals on the same device.
        cameras: C cameras.
        resolution: depth-map size in pixels.
        backend: rasterizer backend.
        chunk: cameras rasterized per call.
    """
    rows = []
    for start in range(0, len(cameras), chunk):
        batch = Cameras(*(getattr(cameras, name)[start:start + chunk] for name in cameras.__dataclass_fields__))
        fragments = rasterize(batch.project(render_mesh.positions), render_mesh.faces, resolution, resolution,
                              backend=backend)
        depth = torch.where(fragments.face_id >= 0, fragments.depth, torch.full_like(fragments.depth, math.inf))
        clip = batch.project(points)  # [B, P, 4]
        w = clip[..., 3]
        in_front = w > 1e-6
        safe_w = torch.where(in_front, w, torch.ones_like(w))
        x, y = clip[..., 0] / safe_w, clip[..., 1] / safe_w
        column = torch.floor((x + 1.0) * 0.5 * resolution).long()
        row = torch.floor((1.0 - y) * 0.5 * resolution).long()
        inside = in_front & (column >= 0) & (column < resolution) & (row >= 0) & (row < resolution)
        flat = row.clamp(0, resolution - 1) * resolution + column.clamp(0, resolution - 1)
        surface = depth.reshape(len(batch), -1).gather(1, flat)
        direction = torch.nn.functional.normalize(batch.positions.unsqueeze(1) - points.unsqueeze(0), dim=-1)
        cosine = (direction * normals.unsqueeze(0)).sum(-1).abs()
        # The depth of the point's own plane on the ray through its pixel's centre: what the depth map holds there
        # when that plane is the visible surface (perspective-correct depth), whatever the plane's slope.
        rotation, translation = batch.world_to_view[:, :3, :3], batch.world_to_view[:, :3, 3]
        view_points = points.unsqueeze(0) @ rotation.transpose(1, 2) + translation.unsqueeze(1)  # [B, P, 3]
        view_normals = normals.unsqueeze(0) @ rotation.transpose(1, 2)
        focal = batch.projection[:, 0, 0].unsqueeze(1)
        ray = torch.stack([((2 * column + 1) / resolution - 1) / focal, (1 - (2 * row + 1) / resolution) / focal,
                           -torch.ones_like(w)], dim=-1)
        across = (view_normals * ray).sum(-1)
        facing = cosine >= 0.1
        plane_w = (view_normals * view_points).sum(-1) / torch.where(facing, across, torch.ones_like(across))
        plane_w = torch.where(facing & (plane_w > 0), plane_w, w)
        footprint = 2.0 * w / focal / resolution
        visible = inside & (plane_w <= surface + 0.5 * footprint + 1e-4)
        rows.append((cosine * visible).float().cpu())
    return torch.cat(rows)


def _split(points: list[float], step: float) -> list[float]:
    """Sorted ``points`` with every gap cut into equal parts no longer than ``step``."""
    points = sorted(set(points))
    edges = [points[0]]
    for low, high in zip(points[:-1], points[1:]):
        parts = max(1, math.ceil((high - low) / step - 1e-9))
        edges += [low + (high - low) * (k + 1) / parts for k in range(parts)]
    return edges


def _overlap(low: torch.Tensor, high: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    return (torch.minimum(high, torch.tensor(bounds[1])) - torch.maximum(low, torch.tensor(bounds[0]))).clamp(min=0)


@dataclass
class CandidateCells:
    """The candidate camera cells: rectangles in (elevation, azimuth), degrees, float64 [C] each.

    Cell ``c`` is elevation band ``c // A`` and azimuth bin ``c % A`` (A azimuth bins). ``uniform`` float64 [C] is the
    probability that a camera of the uniform ranges falls into each cell (sums to 1).
    """

    elevation_low: torch.Tensor
    elevation_high: torch.Tensor
    azimuth_low: torch.Tensor
    azimuth_high: torch.Tensor
    uniform: torch.Tensor

    def __len__(self) -> int:
        return int(self.elevation_low.shape[0])


def candidate_cells(ranges: CameraRanges, options: CoverageSampling) -> CandidateCells:
    """The cells: elevation bands over ``options.elevation_deg`` joined with the uniform elevation range (whose
    bounds are band edges), at most ``options.elevation_step_deg`` high, times ``options.azimuth_bins`` azimuth bins
    over (-180, 180] (the uniform azimuth bounds, wrapped, are bin edges too when the range is narrower than 360)."""
    uniform_el = tuple(float(v) for v in ranges.elevation_deg)
    low = max(-89.0, min(options.elevation_deg[0], uniform_el[0]))
    high = min(89.0, max(options.elevation_deg[1], uniform_el[1]))
    el_edges = torch.tensor(_split([low, high, *(min(max(v, low), high) for v in uniform_el)],
                                   options.elevation_step_deg), dtype=torch.float64)
    az_low, az_high = (float(v) for v in ranges.azimuth_deg)
    az_points = [-180.0, 180.0]
    if az_high - az_low < 360.0:
        az_points += [(v + 180.0) % 360.0 - 180.0 for v in (az_low, az_high)]
    az_edges = torch.tensor(_split(az_points, 360.0 / options.azimuth_bins), dtype=torch.float64)
    el_lo, az_lo = torch.meshgrid(el_edges[:-1], az_edges[:-1], indexing="ij")
    el_hi, az_hi = torch.meshgrid(el_edges[1:], az_edges[1:], indexing="ij")
    el_lo, el_hi, az_lo, az_hi = (t.reshape(-1) for t in (el_lo, el_hi, az_lo, az_hi))
    el_width = max(uniform_el[1] - uniform_el[0], 1e-9)
    el_share = _overlap(el_lo, el_hi, uniform_el) / el_width if uniform_el[1] > uniform_el[0] else (
        ((el_lo <= uniform_el[0]) & (uniform_el[0] < el_hi)).double())
    if az_high - az_low >= 360.0:
        az_share = (az_hi - az_lo) / 360.0
    elif az_high > az_low:
        az_share = sum(_overlap(az_lo, az_hi, (az_low + shift, az_high + shift)) for shift in (-720.0, -360.0, 0.0,
                                                                                               360.0, 720.0))
        az_share = az_share / (az_high - az_low)
    else:
        wrapped = (az_low + 180.0) % 360.0 - 180.0
        az_share = ((az_lo <= wrapped) & (wrapped < az_hi)).double()
    uniform = el_share * az_share
    return CandidateCells(el_lo, el_hi, az_lo, az_hi, uniform / uniform.sum())


def cell_centre_cameras(cells: CandidateCells, ranges: CameraRanges, device: torch.device | str) -> Cameras:
    """One camera per cell at its centre, at the middle of the distance range, with a field of view that frames the
    unit sphere (visibility depends on the camera's position only)."""
    distance = 0.5 * (ranges.distance[0] + ranges.distance[1])
    fov = 2.0 * math.degrees(math.asin(min(1.0, 1.0 / distance))) * 1.05 if distance > 1.0 else 120.0
    return make_cameras((0.5 * (cells.elevation_low + cells.elevation_high)).float(),
                        (0.5 * (cells.azimuth_low + cells.azimuth_high)).float(), distance, min(fov, 150.0),
                        device=device)


def coverage_distribution(visibility: torch.Tensor, uniform: torch.Tensor, area: torch.Tensor, share: float,
                          iterations: int = EM_ITERATIONS) -> torch.Tensor:
    """The cell distribution ``q`` of the module docstring: float64 [C], sums to 1.

    Args:
        visibility: float [C, P] exposures ``V``.
        uniform: float [C] the uniform ranges' cell probabilities ``u``.
        area: float [P] surface area per sample (the objective's weights).
        share: ``s``, the share of views drawn from ``q``.
    """
    visibility = visibility.double()
    weights = area.double().cpu() / area.double().sum()
    uniform_exposure = uniform.double() @ visibility  # U [P]
    eps = 0.01 * float(uniform_exposure.mean()) + 1e-12
    seen = visibility.sum(0) > 0
    useful = visibility.sum(1) > 0  # cells that see some sample; the others keep probability 0
    q = useful.double() if bool(useful.any()) else torch.ones_like(uniform, dtype=torch.float64)
    q = q / q.sum()
    if share <= 0 or not bool(seen.any()):
        return q
    for _ in range(iterations):
        mixture = (1.0 - share) * uniform_exposure + share * (q @ visibility) + eps
        gain = visibility @ (weights / mixture)  # [C]: sum_p w_p V[c, p] / E_p
        q = q * gain
        q = q / q.sum()
    return q


@dataclass
class CoverageSampler:
    """Draws a step's cameras: the uniform ranges mixed with the coverage distribution over the candidate cells.

    Attributes:
        ranges: the uniform ranges (distance and field of view always come from them).
        cells: the candidate cells.
        probabilities: float64 [C] the cell distribution ``q`` (module docstring).
        share: probability that a view comes from ``q`` rather than the uniform ranges.
        stats: what the prepare step measured, for ``run.json``: seconds, cells, surface samples, and the area
            shares of the surface samples that uniform views / the mixture never see (exposure 0 from every cell
            that has probability > 0) and the mean expected exposure of the least-seen decile under each.
    """

    ranges: CameraRanges
    cells: CandidateCells
    probabilities: torch.Tensor
    share: float
    stats: dict

    def __post_init__(self) -> None:
        self._cdf = torch.cumsum(self.probabilities, 0)
        self._cdf = self._cdf / self._cdf[-1]

    def sample(self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Cameras:
        """``batch_size`` cameras drawn on the CPU from ``generator`` (a CPU generator), in a fixed order: the uniform
        ranges' elevation, azimuth, distance and field of view (:func:`csdtex.cameras.draw_camera_parameters`, as
        :func:`csdtex.cameras.sample_cameras`), then the mixture choice, the cell and the position inside the cell.
        Moved to ``device`` after."""
        elevation, azimuth, distance, fov = draw_camera_parameters(batch_size, generator, self.ranges)
        pick = torch.rand(batch_size, generator=generator) < self.share
        cell = torch.searchsorted(self._cdf, torch.rand(batch_size, generator=generator, dtype=torch.float64),
                                  right=True).clamp(max=len(self._cdf) - 1)
        inside = torch.rand(batch_size, 2, generator=generator, dtype=torch.float64)
        cells = self.cells
        cell_elevation = cells.elevation_low[cell] + (cells.elevation_high - cells.elevation_low)[cell] * inside[:, 0]
        cell_azimuth = cells.azimuth_low[cell] + (cells.azimuth_high - cells.azimuth_low)[cell] * inside[:, 1]
        elevation = torch.where(pick, cell_elevation.float(), elevation)
        azimuth = torch.where(pick, cell_azimuth.float(), azimuth)
        return make_cameras(elevation, azimuth, distance, fov, device=device)


def _decile_mean(values: torch.Tensor, area: torch.Tensor) -> float:
    """Area-weighted mean of ``values`` over the tenth of the area where they are smallest."""
    order = torch.argsort(values)
    cumulative = torch.cumsum(area[order], 0) / area.sum()
    keep = order[cumulative <= 0.1 + 1e-12]
    keep = order[:1] if len(keep) == 0 else keep
    return float((values[keep] * area[keep]).sum() / area[keep].sum())


def build_coverage_sampler(render_mesh: RenderMesh, ranges: CameraRanges, options: CoverageSampling, seed: int,
                           backend: str = "torch") -> CoverageSampler:
    """Measure the candidate cells' visibility of ``render_mesh`` and solve for the cell distribution.

    Deterministic for a mesh, options and ``seed`` (the surface samples come from a CPU generator seeded with
    ``seed``; the run's own generator is not touched). Rasterizes on the mesh's device with ``backend``.
    """
    start = time.perf_counter()
    samples = sample_surface(render_mesh, options.surface_points, torch.Generator().manual_seed(seed))
    cells = candidate_cells(ranges, options)
    cameras = cell_centre_cameras(cells, ranges, render_mesh.device)
    visibility = exposure(render_mesh, samples.points, samples.normals, cameras, options.visibility_resolution,
                          backend=backend)
    area = samples.area.double().cpu()
    probabilities = coverage_distribution(visibility, cells.uniform, area, options.share)
    uniform_exposure = cells.uniform @ visibility.double()
    mixture_exposure = (1.0 - options.share) * uniform_exposure + options.share * (probabilities @ visibility.double())
    total = float(area.sum())
    stats = {
        "seconds": round(time.perf_counter() - start, 3),
        "cells": len(cells),
        "surface_points": options.surface_points,
        "unseen_area_share_uniform": round(float(area[uniform_exposure <= 0].sum()) / total, 4),
        "unseen_area_share_coverage": round(float(area[mixture_exposure <= 0].sum()) / total, 4),
        "least_seen_decile_exposure_uniform": round(_decile_mean(uniform_exposure, area), 5),
        "least_seen_decile_exposure_coverage": round(_decile_mean(mixture_exposure, area), 5),
    }
    return CoverageSampler(ranges=ranges, cells=cells, probabilities=probabilities, share=options.share, stats=stats)
