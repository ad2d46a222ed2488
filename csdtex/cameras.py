"""Look-at perspective cameras around the origin.

Conventions
-----------
- World: right-handed, +Y up. The mesh is normalized into the unit sphere around the origin (``Mesh.to_render``).
- A camera at (elevation, azimuth, distance) sits at
  ``distance * (cos(el) * sin(az), sin(el), cos(el) * cos(az))`` and looks at the origin with +Y up. Azimuth 0 is the
  front (+Z, the glTF "front" axis); azimuth 90 is +X; elevation 90 looks straight down. Angles are in degrees.
- View space is OpenGL's: the camera looks down -Z, +X right, +Y up. ``projection`` is OpenGL's symmetric perspective
  matrix, so clip = projection @ world_to_view @ [x, y, z, 1] and NDC = clip.xyz / clip.w with x, y in [-1, 1]
  (x right, y up) and z in [-1, 1] (near to far).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class CameraRanges:
    """Ranges for random training views (degrees and unit-sphere units); defaults follow the released CSD configs
    (docs/design.md)."""

    elevation_deg: tuple[float, float] = (-10.0, 45.0)
    """Elevation above the horizontal plane, sampled uniformly."""
    azimuth_deg: tuple[float, float] = (-180.0, 180.0)
    """Azimuth around +Y (0 = front, +Z), sampled uniformly."""
    distance: tuple[float, float] = (1.5, 2.0)
    """Distance from the origin (the mesh fits the unit sphere)."""
    fov_deg: tuple[float, float] = (40.0, 70.0)
    """Vertical field of view."""


@dataclass
class Cameras:
    """A batch of B look-at cameras.

    Attributes:
        elevation_deg, azimuth_deg, distance, fov_deg: float32 [B].
        world_to_view: float32 [B, 4, 4], rigid transform into OpenGL view space.
        projection: float32 [B, 4, 4], OpenGL perspective projection (aspect 1).
    """

    elevation_deg: torch.Tensor
    azimuth_deg: torch.Tensor
    distance: torch.Tensor
    fov_deg: torch.Tensor
    world_to_view: torch.Tensor
    projection: torch.Tensor

    def __len__(self) -> int:
        return int(self.elevation_deg.shape[0])

    @property
    def device(self) -> torch.device:
        return self.world_to_view.device

    @property
    def view_projection(self) -> torch.Tensor:
        """float32 [B, 4, 4]: world -> clip space."""
        return self.projection @ self.world_to_view

    @property
    def positions(self) -> torch.Tensor:
        """float32 [B, 3]: camera centres in world space."""
        return camera_positions(self.elevation_deg, self.azimuth_deg, self.distance)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Homogeneous clip coordinates of world points.

        Args:
            points: float32 [V, 3] (shared by all views) or [B, V, 3].
        Returns:
            float32 [B, V, 4] clip coordinates (x, y, z, w); w is the view-space depth (positive in front).
        """
        homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
        return torch.matmul(homogeneous, self.view_projection.transpose(-1, -2))

    def to(self, device: torch.device | str) -> "Cameras":
        """The same cameras on ``device`` (CPU -> CUDA copies go through pinned memory, without a host sync)."""
        from csdtex.devices import to_device

        return Cameras(*(to_device(getattr(self, name), device) for name in self.__dataclass_fields__))


def camera_positions(elevation_deg: torch.Tensor, azimuth_deg: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """float32 [B, 3] world positions for the given spherical coordinates (see module conventions)."""
    elevation = torch.deg2rad(elevation_deg)
    azimuth = torch.deg2rad(azimuth_deg)
    return torch.stack(
        [
            distance * torch.cos(elevation) * torch.sin(azimuth),
            distance * torch.sin(elevation),
            distance * torch.cos(elevation) * torch.cos(azimuth),
        ],
        dim=-1,
    )


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-view matrices (OpenGL: camera looks down -Z) for cameras at ``eye`` looking at ``target``.

    Args:
        eye: float32 [B, 3] camera centres.
        target: float32 [3] or [B, 3], default the origin.
        up: float32 [3], default +Y. When the view direction is (anti)parallel to ``up``, +Z is used instead.
    Returns:
        float32 [B, 4, 4].
    """
    target = torch.zeros(3, dtype=eye.dtype, device=eye.device) if target is None else target
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device) if up is None else up
    forward = torch.nn.functional.normalize(target - eye, dim=-1)  # camera looks along +forward == view -Z
    up = up.expand_as(forward)
    right = torch.linalg.cross(forward, up, dim=-1)
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    alternative_up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device).expand_as(forward)
    right = torch.where(degenerate, torch.linalg.cross(forward, alternative_up, dim=-1), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    true_up = torch.linalg.cross(right, forward, dim=-1)
    rotation = torch.stack([right, true_up, -forward], dim=-2)  # rows: view axes in world coordinates
    matrix = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    matrix[:, :3, :3] = rotation
    matrix[:, :3, 3] = -(rotation @ eye.unsqueeze(-1)).squeeze(-1)
    matrix[:, 3, 3] = 1.0
    return matrix


def perspective(fov_deg: torch.Tensor, near: float = 0.1, far: float = 100.0) -> torch.Tensor:
    """OpenGL perspective projections, aspect 1. ``fov_deg`` float32 [B] vertical field of view -> [B, 4, 4]."""
    focal = 1.0 / torch.tan(torch.deg2rad(fov_deg) / 2.0)
    matrix = torch.zeros(fov_deg.shape[0], 4, 4, dtype=fov_deg.dtype, device=fov_deg.device)
    matrix[:, 0, 0] = focal
    matrix[:, 1, 1] = focal
    matrix[:, 2, 2] = -(far + near) / (far - near)
    matrix[:, 2, 3] = -2.0 * far * near / (far - near)
    matrix[:, 3, 2] = -1.0
    return matrix


def make_cameras(
    elevation_deg, azimuth_deg, distance, fov_deg, device: torch.device | str = "cpu"
) -> Cameras:
    """Cameras from per-view spherical coordinates (sequences or tensors of equal length B, or scalars -> B = 1)."""

    def as_tensor(value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)

    elevation, azimuth, dist, fov = (as_tensor(v) for v in (elevation_deg, azimuth_deg, distance, fov_deg))
    elevation, azimuth, dist, fov = torch.broadcast_tensors(elevation, azimuth, dist, fov)
    eye = camera_positions(elevation, azimuth, dist)
    return Cameras(
        elevation_deg=elevation.contiguous(),
        azimuth_deg=azimuth.contiguous(),
        distance=dist.contiguous(),
        fov_deg=fov.contiguous(),
        world_to_view=look_at(eye),
        projection=perspective(fov),
    )


def draw_camera_parameters(
    batch_size: int, generator: torch.Generator, ranges: CameraRanges | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch_size`` random camera parameters, uniform in each range of ``ranges``, drawn on the CPU from
    ``generator`` (a CPU ``torch.Generator``) in a fixed order: (elevation_deg, azimuth_deg, distance, fov_deg),
    float32 [B] each."""
    ranges = ranges or CameraRanges()

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(batch_size, generator=generator)

    return uniform(ranges.elevation_deg), uniform(ranges.azimuth_deg), uniform(ranges.distance), uniform(ranges.fov_deg)


def sample_cameras(
    batch_size: int,
    generator: torch.Generator,
    ranges: CameraRanges | None = None,
    device: torch.device | str = "cpu",
) -> Cameras:
    """``batch_size`` random cameras, uniform in each range of ``ranges``.

    Random numbers are drawn on the CPU from ``generator`` (a CPU ``torch.Generator``) so that a seed gives the same
    views on every device (:func:`draw_camera_parameters`); the cameras are then moved to ``device``.
    """
    return make_cameras(*draw_camera_parameters(batch_size, generator, ranges), device=device)


def orbit_cameras(
    num_views: int,
    elevation_deg: float = 15.0,
    distance: float = 2.6,
    fov_deg: float = 50.0,
    start_azimuth_deg: float = 0.0,
    device: torch.device | str = "cpu",
) -> Cameras:
    """A fixed turntable of ``num_views`` cameras evenly spaced in azimuth, starting at the front.

    The defaults frame the whole unit sphere (asin(1 / 2.6) = 22.6 deg < half the field of view).
    """
    if num_views < 1:
        raise ValueError("num_views must be at least 1")
    azimuth = start_azimuth_deg + 360.0 * torch.arange(num_views, dtype=torch.float32) / num_views
    azimuth = torch.remainder(azimuth + 180.0, 360.0) - 180.0
    return make_cameras(elevation_deg, azimuth, distance, fov_deg, device=device)


def framing_distance(fov_deg: float, margin: float = 1.1) -> float:
    """Distance at which a sphere of radius ``margin`` exactly fills the vertical field of view ``fov_deg``."""
    return margin / math.sin(math.radians(fov_deg) / 2.0)
