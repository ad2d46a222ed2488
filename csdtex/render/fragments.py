"""The rasterizer's output and attribute interpolation (shared by every backend)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Fragments:
    """Per-pixel visibility of a batch of rasterized images.

    Image row 0 is the TOP of the image (y_ndc = +1 for view renders, v = 1 for UV renders); column 0 is the left.
    Pixel (row i, column j) samples the centre ``x_ndc = (2j + 1) / W - 1``, ``y_ndc = 1 - (2i + 1) / H``.

    Attributes:
        face_id: int32 [B, H, W], index of the visible triangle, -1 for background.
        bary: float32 [B, H, W, 3], perspective-correct barycentric weights of the triangle's three vertices
            (sum to 1 on covered pixels, 0 on background).
        depth: float32 [B, H, W], view-space depth (clip w, positive in front of the camera) of the visible surface;
            0 on background.
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """bool [B, H, W], True where a triangle covers the pixel."""
        return self.face_id >= 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, H, W)."""
        return tuple(self.face_id.shape)  # type: ignore[return-value]


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Interpolate per-vertex attributes over the visible triangles.

    Differentiable with respect to ``attributes`` (the gradient reaches whatever produced them); the fragments
    themselves carry no gradient.

    Args:
        attributes: float [V, C] shared by all images, or [B, V, C] per image.
        faces: int [F, 3] indexing the first attribute dimension (may differ from the faces used to rasterize, e.g.
            ``uv_faces`` when interpolating UVs, as long as face ids match). Rows with negative indices give 0.
        fragments: from :func:`csdtex.render.rasterize`.
    Returns:
        float [B, H, W, C]; background pixels are 0.
    """
    batch, height, width = fragments.shape
    mask = fragments.mask
    face_ids = fragments.face_id[mask].long()  # [N]
    weights = fragments.bary[mask].to(attributes.dtype)  # [N, 3]
    corner_indices = faces.long()[face_ids]  # [N, 3]
    valid = corner_indices >= 0
    corner_indices = corner_indices.clamp(min=0)
    if attributes.dim() == 2:
        corner_values = attributes[corner_indices]  # [N, 3, C]
    else:
        image_index = torch.nonzero(mask, as_tuple=True)[0]  # [N]
        corner_values = attributes[image_index[:, None], corner_indices]
    values = (corner_values * (weights * valid).unsqueeze(-1)).sum(dim=1)  # [N, C]
    output = attributes.new_zeros(batch, height, width, attributes.shape[-1])
    return output.index_put((mask,), values)


def gather_pixels(image: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Values of covered pixels only: [B, H, W, C] -> [N, C] in row-major (b, i, j) order of ``fragments.mask``."""
    return image[fragments.mask]
