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
        pixel_index: int64 [N], the flat indices ``(b * H + i) * W + j`` of the N covered pixels in increasing
            (row-major) order, i.e. the nonzeros of ``mask``. Listing them needs their number on the host, so every
            backend does it once, as the one host synchronization of a rasterization; everything downstream indexes
            with it instead of the boolean mask. Whoever edits ``face_id`` keeps the covered set unchanged.
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    pixel_index: torch.Tensor

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
    themselves carry no gradient. Indexes with ``fragments.pixel_index``, so it costs no host synchronization.

    Args:
        attributes: float [V, C] shared by all images, or [B, V, C] per image.
        faces: int [F, 3] indexing the first attribute dimension (may differ from the faces used to rasterize, e.g.
            ``uv_faces`` when interpolating UVs, as long as face ids match). Rows with negative indices give 0.
        fragments: from :func:`csdtex.render.rasterize`.
    Returns:
        float [B, H, W, C]; background pixels are 0.
    """
    batch, height, width = fragments.shape
    pixel_index = fragments.pixel_index  # [N]
    face_ids = fragments.face_id.reshape(-1).index_select(0, pixel_index).long()  # [N]
    weights = fragments.bary.reshape(-1, 3).index_select(0, pixel_index).to(attributes.dtype)  # [N, 3]
    corner_indices = faces.long()[face_ids]  # [N, 3]
    valid = corner_indices >= 0
    corner_indices = corner_indices.clamp(min=0)
    if attributes.dim() == 2:
        corner_values = attributes[corner_indices]  # [N, 3, C]
    else:
        image_index = torch.div(pixel_index, height * width, rounding_mode="floor")  # [N]
        corner_values = attributes[image_index[:, None], corner_indices]
    values = (corner_values * (weights * valid).unsqueeze(-1)).sum(dim=1)  # [N, C]
    output = attributes.new_zeros(batch * height * width, attributes.shape[-1])
    return output.index_put((pixel_index,), values).view(batch, height, width, -1)


def gather_pixels(image: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Values of covered pixels only: [B, H, W, C] -> [N, C] in the order of ``fragments.pixel_index``."""
    return image.reshape(-1, image.shape[-1]).index_select(0, fragments.pixel_index)
