"""Known reference textures for ``csdtex bench seams --target procedural``: detailed, prior-independent targets.

:class:`ProceduralTexture` is a deterministic colour function of the 3D position with detail at a chosen feature
size, so every benchmark method can be fitted to it with the same photometric objective
(:class:`csdtex.pipeline.objectives.PhotometricObjective`) and its seams measured on a texture with real detail. The
feature size is set in texels of the mesh's UV layout with :func:`mean_texel_size`, so the target has the same
detail relative to the texture whatever the mesh's scale or tessellation.

Channels (each in [0.08, 0.92]; ``f`` = feature size in render-space units, ``k = 2 * feature_texels / pi``, which
makes every black/white transition about one mean texel wide):

- red: a 3D checker of cell size ``f`` along three random orthonormal axes: ``0.5 + 0.42 * prod_i tanh(k sin(pi x_i /
  f))``;
- green and blue: noise bands, ``0.5 + 0.42 * tanh(k * n(p))`` with ``n`` the normalized sum of four plane waves of
  random directions, wavelengths in ``[2f, 4f]`` and phases (different waves per channel).

Everything is drawn from a NumPy generator seeded with ``seed``; the global RNG is not touched.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ProceduralTexture", "mean_texel_size"]

_WAVES = 4


def mean_texel_size(positions: np.ndarray | Tensor, faces: np.ndarray | Tensor, uvs: np.ndarray | Tensor,
                    uv_faces: np.ndarray | Tensor, texture_size: int) -> float:
    """Mean side of one texel on the surface: ``sqrt(3D area / UV area in texels)`` over the faces with UVs.

    Args:
        positions: float [V, 3] vertex positions (any units; the result is in the same units).
        faces: int [F, 3]; uvs: float [T, 2] in [0, 1]; uv_faces: int [F, 3] (rows with a -1 have no UVs).
        texture_size: texture width and height in texels (every material's), >= 1.
    Returns:
        float > 0: the length of one texel's side on the surface, on average over the UV layout.
    Raises:
        ValueError: no face has UVs, or the UV layout has zero area.
    """
    positions, faces, uvs, uv_faces = (_numpy(a) for a in (positions, faces, uvs, uv_faces))
    if texture_size < 1:
        raise ValueError(f"texture_size must be at least 1, got {texture_size}")
    with_uv = (uv_faces >= 0).all(axis=1)
    if not with_uv.any():
        raise ValueError("mean_texel_size needs faces with UVs")
    p = positions[faces[with_uv]].astype(np.float64)
    area_3d = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    t = uvs[uv_faces[with_uv]].astype(np.float64) * texture_size
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area_uv = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
    if not area_uv > 0 or not area_3d > 0:
        raise ValueError("mean_texel_size: the UV layout or the surface has zero area")
    return float(math.sqrt(area_3d / area_uv))


def _numpy(array: np.ndarray | Tensor) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)


class ProceduralTexture(nn.Module):
    """The benchmark's detailed reference texture (see the module docstring): a function of the 3D position only.

    Args:
        feature_size: cell size ``f`` of the checker and half the shortest band wavelength, in the units of the
            points it will be evaluated at (the normalized render space for rendering and baking), > 0.
        feature_texels: ``f`` in mean texels (sets the edge sharpness ``k = 2 * feature_texels / pi``), > 0.
        seed: picks the axes, wave directions, wavelengths and phases.

    Shapes: ``forward(points float32 [N, 3], uvs=None, materials=None) -> float32 [N, 3]`` in [0.08, 0.92]; no
    trainable parameters (the tensors are buffers, so ``.to(device)`` moves them).
    """

    uses_uvs: ClassVar[bool] = False

    def __init__(self, feature_size: float, feature_texels: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        if not feature_size > 0 or not feature_texels > 0:
            raise ValueError(f"feature_size and feature_texels must be positive, got {feature_size}, {feature_texels}")
        rng = np.random.default_rng(seed)
        axes, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # three random orthonormal checker axes (columns)
        directions = rng.normal(size=(2, _WAVES, 3))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        wavelengths = feature_size * rng.uniform(2.0, 4.0, size=(2, _WAVES, 1))
        self.feature_size = float(feature_size)
        self.sharpness = 2.0 * float(feature_texels) / math.pi
        self.register_buffer("axes", torch.tensor(axes.T, dtype=torch.float32))  # [3 axes, 3]
        self.register_buffer("waves", torch.tensor(2.0 * math.pi * directions / wavelengths, dtype=torch.float32))
        self.register_buffer("phases", torch.tensor(rng.uniform(0, 2 * math.pi, size=(2, _WAVES)),
                                                    dtype=torch.float32))

    def forward(self, points: Tensor, uvs: Tensor | None = None, materials: Tensor | None = None) -> Tensor:
        """Colour float32 [N, 3] in [0.08, 0.92] at ``points`` float32 [N, 3]; ``uvs`` and ``materials`` unused."""
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [N, 3], got {tuple(points.shape)}")
        points = points.to(self.axes.dtype)
        k = self.sharpness
        checker = torch.tanh(k * torch.sin(math.pi / self.feature_size * points @ self.axes.T)).prod(dim=-1)
        # [N, 2 channels, waves]: plane waves, summed and normalized to unit variance per channel
        phase = torch.einsum("nd,cwd->ncw", points, self.waves) + self.phases
        bands = torch.tanh(k * torch.sin(phase).sum(-1) / math.sqrt(_WAVES / 2))
        return 0.5 + 0.42 * torch.cat([checker[:, None], bands], dim=-1)
