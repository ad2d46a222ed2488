"""Pure-PyTorch triangle rasterizer: the portable reference backend (CPU and CUDA, same code).

Algorithm (no per-pixel Python loops):
1. Project vertices to pixel coordinates; every triangle gets its pixel bounding box.
2. All (triangle, pixel-in-bounding-box) candidate pairs are enumerated with ``repeat_interleave``, in chunks of at
   most ``max_candidates`` pairs to bound memory.
3. Coverage uses edge functions evaluated with each edge's endpoints in a canonical order (lower vertex index first),
   so the two triangles sharing an edge compute bit-identical values of opposite sign: the inclusive inside test
   leaves no cracks between adjacent triangles. Both windings are drawn (no back-face culling).
4. An exact z-buffer: depth (NDC z mapped to [0, 1], whose float32 bit pattern orders like the value) is packed
   with the face index into one int64 key and reduced per pixel with ``scatter_reduce(amin)``. Ties go to the lower
   face index, so results are deterministic.
5. Barycentrics of the winning triangle are recomputed for covered pixels only and made perspective-correct.

Triangles with a vertex at or behind the near plane (clip w <= 1e-6) are culled rather than clipped; csdtex's
cameras keep the normalized mesh well in front of the camera.
"""

from __future__ import annotations

import torch

from csdtex.render.fragments import Fragments

_NEAR_W = 1e-6
_EMPTY_KEY = torch.iinfo(torch.int64).max
# Edge opposite vertex k runs between these two corners.
_EDGE_CORNERS = ((1, 2), (2, 0), (0, 1))


def _pixel_coordinates(clip: torch.Tensor, height: int, width: int):
    """Clip [B, V, 4] -> (x_pix, y_pix, z_ndc, w), each [B, V]; pixel centre (i, j) is at (x_pix, y_pix) = (j, i)."""
    w = clip[..., 3]
    safe_w = torch.where(w > _NEAR_W, w, torch.ones_like(w))
    x_pix = (clip[..., 0] / safe_w + 1.0) * (width * 0.5) - 0.5
    y_pix = (1.0 - clip[..., 1] / safe_w) * (height * 0.5) - 0.5
    z_ndc = clip[..., 2] / safe_w
    return x_pix, y_pix, z_ndc, w


def _edge_functions(corner_x, corner_y, corner_index, x, y):
    """Edge functions E_k (k = 0, 1, 2) at points (x, y) for triangles with corners (corner_x, corner_y).

    corner_x, corner_y: float [N, 3]; corner_index: int [N, 3] vertex indices; x, y: float [N].
    Returns float [N, 3] with E_k = cross(P_b - P_a, p - P_a) for the edge (a, b) opposite corner k, evaluated with
    the endpoints in canonical order and the sign fixed afterwards (see module docstring).
    """
    edges = []
    for a, b in _EDGE_CORNERS:
        swap = corner_index[:, a] > corner_index[:, b]
        ax = torch.where(swap, corner_x[:, b], corner_x[:, a])
        ay = torch.where(swap, corner_y[:, b], corner_y[:, a])
        dx = torch.where(swap, corner_x[:, a], corner_x[:, b]) - ax
        dy = torch.where(swap, corner_y[:, a], corner_y[:, b]) - ay
        value = dx * (y - ay) - dy * (x - ax)
        edges.append(torch.where(swap, -value, value))
    return torch.stack(edges, dim=-1)


def rasterize_torch(
    clip_positions: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    max_candidates: int | None = None,
) -> Fragments:
    """Rasterize triangles with an exact z-buffer (see module docstring).

    Args:
        clip_positions: float32 [B, V, 4] homogeneous clip coordinates (OpenGL conventions; NDC y up).
        faces: int [F, 3] vertex indices (rows with negative indices are skipped).
        height, width: output size in pixels.
        max_candidates: bound on (triangle, pixel) pairs processed at once; default 2^22 on CPU, 2^25 on CUDA.
    Returns:
        :class:`Fragments` with [B, height, width] images; no gradient (visibility is piecewise constant).
    """
    if clip_positions.dim() != 3 or clip_positions.shape[-1] != 4:
        raise ValueError(f"clip_positions must be [B, V, 4], got {tuple(clip_positions.shape)}")
    device = clip_positions.device
    if max_candidates is None:
        max_candidates = 2**25 if device.type == "cuda" else 2**22
    with torch.no_grad():
        clip = clip_positions.float()
        batch = clip.shape[0]
        faces = faces.long().to(device)
        face_valid = (faces >= 0).all(dim=1)
        faces_safe = faces.clamp(min=0)
        num_faces = faces.shape[0]

        x_pix, y_pix, z_ndc, w = _pixel_coordinates(clip, height, width)
        corner_x, corner_y, corner_w = x_pix[:, faces_safe], y_pix[:, faces_safe], w[:, faces_safe]  # [B, F, 3]
        doubled_area = (corner_x[..., 1] - corner_x[..., 0]) * (corner_y[..., 2] - corner_y[..., 0]) - (
            corner_x[..., 2] - corner_x[..., 0]
        ) * (corner_y[..., 1] - corner_y[..., 0])
        visible = face_valid & (corner_w > _NEAR_W).all(dim=-1) & (doubled_area != 0) & torch.isfinite(doubled_area)

        # Pixel bounding boxes, clamped to the image (pixel centres are integer coordinates).
        x_lo = torch.ceil(corner_x.amin(-1)).clamp(0, width)
        x_hi = torch.floor(corner_x.amax(-1)).clamp(-1, width - 1)
        y_lo = torch.ceil(corner_y.amin(-1)).clamp(0, height)
        y_hi = torch.floor(corner_y.amax(-1)).clamp(-1, height - 1)
        box_w = (x_hi - x_lo + 1).clamp(min=0).long()
        box_h = (y_hi - y_lo + 1).clamp(min=0).long()
        counts = torch.where(visible, box_w * box_h, torch.zeros_like(box_w)).reshape(-1)  # [B*F]

        tri_flat = torch.nonzero(counts > 0).squeeze(1)  # (b * F + f) of triangles with candidates
        tri_counts = counts[tri_flat]
        z_buffer = torch.full((batch * height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
        if tri_flat.numel() > 0:
            ends = torch.cumsum(tri_counts, 0)
            ends_host = ends.cpu()
            start = 0
            while start < len(tri_flat):
                base = int(ends_host[start - 1]) if start > 0 else 0
                stop = int(torch.searchsorted(ends_host, base + max_candidates, right=True))
                stop = max(stop, start + 1)  # a single huge triangle still gets its own chunk
                _rasterize_chunk(
                    z_buffer, tri_flat[start:stop], tri_counts[start:stop], int(ends_host[stop - 1]) - base,
                    num_faces, faces_safe, corner_x, corner_y, corner_w, z_ndc, x_lo, y_lo, box_w, height, width,
                )
                start = stop

        covered = z_buffer != _EMPTY_KEY
        face_id = torch.where(covered, z_buffer & 0xFFFFFFFF, torch.full_like(z_buffer, -1))
        face_id = face_id.view(batch, height, width).to(torch.int32)
        bary, depth = _resolve_barycentrics(face_id, faces_safe, corner_x, corner_y, corner_w)
    return Fragments(face_id=face_id, bary=bary, depth=depth)


def _rasterize_chunk(
    z_buffer, tri_flat, tri_counts, total, num_faces, faces, corner_x, corner_y, corner_w, z_ndc,
    x_lo, y_lo, box_w, height, width,
):
    """Test one chunk of candidate pairs and fold their depth keys into ``z_buffer`` (in place)."""
    device = z_buffer.device
    local = torch.repeat_interleave(torch.arange(len(tri_flat), device=device), tri_counts, output_size=total)
    first = torch.cumsum(tri_counts, 0) - tri_counts
    offset = torch.arange(total, device=device) - first[local]
    tri = tri_flat[local]
    image, face = tri // num_faces, tri % num_faces
    width_of_box = box_w.reshape(-1)[tri]
    px = x_lo.reshape(-1)[tri] + (offset % width_of_box)
    py = y_lo.reshape(-1)[tri] + torch.div(offset, width_of_box, rounding_mode="floor")

    cx = corner_x.reshape(-1, 3)[tri]
    cy = corner_y.reshape(-1, 3)[tri]
    edges = _edge_functions(cx, cy, faces[face], px, py)
    inside = ((edges >= 0).all(-1) | (edges <= 0).all(-1))
    total_edge = edges.sum(-1)
    inside &= total_edge != 0
    weights = edges / torch.where(total_edge == 0, torch.ones_like(total_edge), total_edge).unsqueeze(-1)
    corner_z = z_ndc[image.unsqueeze(-1), faces[face]]  # [N, 3]
    depth01 = ((weights * corner_z).sum(-1) + 1.0) * 0.5  # NDC z is affine in screen space
    inside &= (depth01 >= 0) & (depth01 <= 1)
    if not bool(inside.any()):
        return
    depth_bits = depth01[inside].contiguous().view(torch.int32).to(torch.int64)
    key = (depth_bits << 32) | face[inside]
    pixel = (image[inside] * height + py[inside].long()) * width + px[inside].long()
    z_buffer.scatter_reduce_(0, pixel, key, reduce="amin", include_self=True)


def _resolve_barycentrics(face_id, faces, corner_x, corner_y, corner_w):
    """Perspective-correct barycentrics and view depth of the visible triangle at every covered pixel."""
    batch, height, width = face_id.shape
    mask = face_id >= 0
    bary = torch.zeros(batch, height, width, 3, dtype=torch.float32, device=face_id.device)
    depth = torch.zeros(batch, height, width, dtype=torch.float32, device=face_id.device)
    image, row, col = torch.nonzero(mask, as_tuple=True)
    if image.numel() == 0:
        return bary, depth
    face = face_id[mask].long()
    cx, cy, cw = corner_x[image, face], corner_y[image, face], corner_w[image, face]
    edges = _edge_functions(cx, cy, faces[face], col.float(), row.float())
    screen = edges / edges.sum(-1, keepdim=True)
    over_w = screen / cw
    perspective = over_w / over_w.sum(-1, keepdim=True)
    bary[mask] = perspective
    depth[mask] = (perspective * cw).sum(-1)
    return bary, depth
