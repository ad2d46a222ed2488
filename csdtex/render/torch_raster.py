"""Pure-PyTorch triangle rasterizer: the portable reference backend (CPU and CUDA, same code).

Algorithm (no per-pixel Python loops):
1. Project vertices to pixel coordinates; every triangle gets its pixel bounding box.
2. All (triangle, pixel-in-bounding-box) candidate pairs are laid out in flat slots (triangle by triangle, each
   triangle's box row by row); the triangle of each slot is found with ``searchsorted`` over the cumulative counts,
   in runs of at most ``max_candidates`` slots to bound memory. Nothing here needs the number of pairs on the host:
   with a :class:`CandidateBudget` the slots are provisioned from a guess, and the guess is checked in the same
   host read that counts the covered pixels (in the rare case it was too small, the pairs that had no slot are
   added afterwards, at the cost of a second read).
3. Coverage uses edge functions evaluated with each edge's endpoints in a canonical order (lower vertex index first),
   so the two triangles sharing an edge compute bit-identical values of opposite sign: the inclusive inside test
   leaves no cracks between adjacent triangles. Both windings are drawn (no back-face culling).
4. An exact z-buffer: depth (NDC z mapped to [0, 1], whose float32 bit pattern orders like the value) is packed
   with the face index into one int64 key and reduced per pixel with ``scatter_reduce(amin)``. Ties go to the lower
   face index, so results are deterministic.
5. Barycentrics of the winning triangle are recomputed (densely, every pixel at once) and made
   perspective-correct.
6. The covered pixels are listed once (``Fragments.pixel_index``) with ``nonzero_static``, sized by the host read.

Depth peeling (``behind``): the next layer of surfaces behind earlier fragments keeps, per pixel, the nearest
candidate whose key is above the key of the face drawn there before (recomputed with the same arithmetic), and never
that face itself; so layer after layer lists each surface of a pixel once, front to back (alpha cut-outs).

Triangles with a vertex at or behind the near plane (clip w <= 1e-6) are culled rather than clipped; csdtex's
cameras keep the normalized mesh well in front of the camera.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from csdtex.render.fragments import Fragments

_NEAR_W = 1e-6
_EMPTY_KEY = torch.iinfo(torch.int64).max
# Edge k (opposite corner k) runs from corner _EDGE_FROM[k] to corner _EDGE_TO[k].
_EDGE_FROM = (1, 2, 0)
_EDGE_TO = (2, 0, 1)
# Columns of the per-triangle table gathered once per candidate pair.
_EDGES = slice(0, 15)  # 3 edges x (ax, ay, dx, dy, sign)
_CORNER_Z = slice(15, 18)
_BOX_X, _BOX_Y, _BOX_W = 18, 19, 20


def _pixel_coordinates(clip: torch.Tensor, height: int, width: int):
    """Clip [B, V, 4] -> (x_pix, y_pix, z_ndc, w), each [B, V]; pixel centre (i, j) is at (x_pix, y_pix) = (j, i)."""
    w = clip[..., 3]
    safe_w = torch.where(w > _NEAR_W, w, torch.ones_like(w))
    x_pix = (clip[..., 0] / safe_w + 1.0) * (width * 0.5) - 0.5
    y_pix = (1.0 - clip[..., 1] / safe_w) * (height * 0.5) - 0.5
    z_ndc = clip[..., 2] / safe_w
    return x_pix, y_pix, z_ndc, w


def _edge_table(corner_x: torch.Tensor, corner_y: torch.Tensor, corner_index: torch.Tensor) -> torch.Tensor:
    """Canonical edge data of triangles: float [..., 3, 5] = (ax, ay, dx, dy, sign) per edge.

    corner_x, corner_y: float [..., 3] pixel coordinates; corner_index: int [..., 3] vertex indices. Each edge is
    stored from its lower-index endpoint a to the other endpoint (d = b - a), and ``sign`` restores the triangle's
    own orientation, so E_k(p) = sign * (dx * (y - ay) - dy * (x - ax)) is bit-identical (up to sign) for the two
    triangles that share the edge.
    """
    # Corners _EDGE_FROM = (1, 2, 0) and _EDGE_TO = (2, 0, 1) are rolls of (0, 1, 2) by -1 and +1: a roll needs no
    # index tensor copied to the device (a host synchronization on CUDA).
    def starts(values: torch.Tensor) -> torch.Tensor:
        return torch.roll(values, -1, dims=-1)

    def ends(values: torch.Tensor) -> torch.Tensor:
        return torch.roll(values, 1, dims=-1)

    swap = starts(corner_index) > ends(corner_index)
    first_x = torch.where(swap, ends(corner_x), starts(corner_x))
    first_y = torch.where(swap, ends(corner_y), starts(corner_y))
    second_x = torch.where(swap, starts(corner_x), ends(corner_x))
    second_y = torch.where(swap, starts(corner_y), ends(corner_y))
    sign = 1.0 - 2.0 * swap.to(corner_x.dtype)
    return torch.stack([first_x, first_y, second_x - first_x, second_y - first_y, sign], dim=-1)


def _evaluate_edges(edge_table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Edge functions float [N, 3] at points x, y [N] for edge tables [N, 3, 5] (see :func:`_edge_table`)."""
    ax, ay, dx, dy, sign = edge_table.unbind(-1)
    return sign * (dx * (y.unsqueeze(-1) - ay) - dy * (x.unsqueeze(-1) - ax))


@dataclass
class CandidateBudget:
    """How many (triangle, pixel) candidate slots one call site provisions before it knows how many it needs.

    The rasterizer's buffers are sized by the number of candidate pairs, which is only known on the device; reading
    it is a host synchronization on CUDA. With a budget, :func:`rasterize_torch` provisions ``capacity`` slots
    instead, and reads the number it needed together with the number of covered pixels: one read per call. A call
    that needed more than ``capacity`` goes on to process the pairs that had no slot (the same result, one more
    read) and ``capacity`` grows to ``headroom`` times what it needed. It never shrinks: a budget belongs to one call
    site whose renders are alike (same mesh, image size and batch size, random cameras), such as a run's training
    renders, and after its first calls such a site no longer overflows. Owned by the caller; never shared between
    unrelated call sites.

    Attributes:
        capacity: candidate slots the next call provisions (0 before the first call, which then costs two reads).
        headroom: growth factor (>= 1) over the largest number of candidates needed so far.
        overflows: calls that needed more than their capacity and read the host twice (the first call included).
    """

    capacity: int = 0
    headroom: float = 1.25
    overflows: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 0 or not self.headroom >= 1.0:
            raise ValueError(f"CandidateBudget needs capacity >= 0 and headroom >= 1, got {self.capacity}, "
                             f"{self.headroom}")

    def record(self, needed: int) -> None:
        """Note that a call needed ``needed`` candidate slots; grow ``capacity`` when that is more than it has."""
        if needed > self.capacity:
            self.capacity = math.ceil(needed * self.headroom)


def rasterize_torch(
    clip_positions: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    max_candidates: int | None = None,
    compiled: bool = False,
    candidate_budget: CandidateBudget | None = None,
    behind: Fragments | None = None,
) -> Fragments:
    """Rasterize triangles with an exact z-buffer (see module docstring).

    Args:
        clip_positions: float32 [B, V, 4] homogeneous clip coordinates (OpenGL conventions; NDC y up).
        faces: int [F, 3] vertex indices (rows with negative indices are skipped).
        height, width: output size in pixels.
        max_candidates: bound on (triangle, pixel) pairs processed at once; default 2^22 on CPU, 2^25 on CUDA.
        compiled: run the three stages through ``torch.compile(dynamic=True)`` (see :func:`compiled_kernels`).
        candidate_budget: provision this many candidate slots instead of reading the exact number first, and update
            it (see :class:`CandidateBudget`); None reads the exact number (free on the CPU, a second host read on
            CUDA). The result is the same either way.
        behind: fragments of the same triangles and images drawn before (any backend): draw the next layer, the
            nearest surface behind each of their pixels (empty where they were empty). None: the first layer.
    Returns:
        :class:`Fragments` with [B, height, width] images and the covered pixels' ``pixel_index``; no gradient
        (visibility is piecewise constant). With a ``candidate_budget`` that is large enough, the call costs a single
        host synchronization: the number of covered pixels and the number of candidates needed, read together.
    """
    if clip_positions.dim() != 3 or clip_positions.shape[-1] != 4:
        raise ValueError(f"clip_positions must be [B, V, 4], got {tuple(clip_positions.shape)}")
    device = clip_positions.device
    if max_candidates is None:
        max_candidates = 2**25 if device.type == "cuda" else 2**22
    kernels = compiled_kernels() if compiled else _EAGER_KERNELS
    with torch.no_grad():
        clip = clip_positions.float()
        batch = clip.shape[0]
        faces = faces.long().to(device)
        table, counts, edges, corner_w = kernels["setup"](clip, faces, height, width)
        ends = torch.cumsum(counts, 0)
        needed = counts.sum()  # int64 scalar on the device: candidate pairs of all triangles (= ends[-1])
        z_buffer = torch.full((batch * height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
        floor = None if behind is None else _peel_floor(behind, table, faces.shape[0])

        def add_candidates(first_slot: int, stop_slot: int) -> None:
            _add_candidates(z_buffer, kernels, first_slot, stop_slot, max_candidates, table, counts, ends,
                            faces.shape[0], height, width, floor)

        if candidate_budget is None:
            add_candidates(0, int(needed))  # the exact number: a host read
            covered = int((z_buffer != _EMPTY_KEY).sum())  # a second one
        else:
            capacity = candidate_budget.capacity
            add_candidates(0, capacity)
            # The call's one host read: candidates needed and pixels covered, together.
            needed_count, covered = torch.stack([needed, (z_buffer != _EMPTY_KEY).sum()]).tolist()
            if needed_count > capacity:  # some pairs had no slot: add them (amin does not care about the order)
                candidate_budget.overflows += 1
                add_candidates(capacity, needed_count)
                covered = int((z_buffer != _EMPTY_KEY).sum())
            candidate_budget.record(needed_count)
        face_id, bary, depth = kernels["resolve"](z_buffer.view(batch, height, width), edges, corner_w)
        # The covered count is known on the host, so the compaction needs no further synchronization.
        pixel_index = torch.nonzero_static(face_id.reshape(-1) >= 0, size=covered).squeeze(1)
    return Fragments(face_id=face_id, bary=bary, depth=depth, pixel_index=pixel_index)


def _depth01(edges: torch.Tensor, total: torch.Tensor, corner_z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Depth in [0, 1] (NDC z mapped; affine in screen space) at points with edge functions ``edges`` float [N, 3]
    (``total`` their sum [N]) of triangles with corner NDC depths ``corner_z`` [N, 3]; ``valid`` bool [N] marks the
    points whose ``total`` may divide (the others get a meaningless finite value). One formula for candidates and a
    peel's floor alike."""
    return ((edges * corner_z).sum(-1) / torch.where(valid, total, 1.0) + 1.0) * 0.5


def _depth_key(depth01: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """int64 z-buffer keys: the float32 bits of ``depth01`` clamped to [0, 1] (they order like the value) above the
    face index, so ``amin`` keeps the nearest face and ties go to the lower index."""
    return (depth01.clamp(0.0, 1.0).view(torch.int32).long() << 32) | face


def _peel_floor(behind: Fragments, table: torch.Tensor, num_faces: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a peeled layer must lie behind, per pixel: (key int64 [B*H*W], face int64 [B*H*W]).

    ``key`` is the depth key the earlier layer's face has at the pixel, computed as :func:`_chunk_keys` computes it
    (the empty key where the earlier layer was empty, so nothing is drawn there); ``face`` is that face (-1 where
    empty), excluded outright so that a different rounding (another backend, compiled kernels) cannot draw it twice.
    """
    batch, height, width = behind.shape
    face = behind.face_id.reshape(-1).long()
    covered = face >= 0
    pixel = torch.arange(face.shape[0], device=face.device)
    image = torch.div(pixel, height * width, rounding_mode="floor")
    data = table[image * num_faces + face.clamp(min=0)]
    px = (pixel % width).float()
    py = (torch.div(pixel, width, rounding_mode="floor") % height).float()
    edges = _evaluate_edges(data[:, _EDGES].view(-1, 3, 5), px, py)
    total_edge = edges.sum(-1)
    depth01 = _depth01(edges, total_edge, data[:, _CORNER_Z], total_edge != 0)
    key = torch.where(covered, _depth_key(depth01, face.clamp(min=0)), _EMPTY_KEY)
    return key, torch.where(covered, face, -1)


def _add_candidates(z_buffer: torch.Tensor, kernels: dict, first_slot: int, stop_slot: int, max_candidates: int,
                    table: torch.Tensor, counts: torch.Tensor, ends: torch.Tensor, num_faces: int, height: int,
                    width: int, floor: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """Reduce the depth keys of candidate slots ``first_slot .. stop_slot - 1`` into ``z_buffer`` int64 [B*H*W].

    Slot s holds the s-th (triangle, pixel) candidate pair of all triangles in flat order; slots at or past the number
    of pairs (``ends[-1]``) are empty, so any range may be given: the caller compares it with ``ends[-1]``. Slots are
    processed in runs of at most ``max_candidates``, all on the device (no host read). ``table``, ``counts`` and
    ``ends`` are the per-triangle table float [B*F, 21], candidate counts int64 [B*F] and their inclusive cumulative
    sum int64 [B*F]. ``floor`` (:func:`_peel_floor`) keeps only keys behind an earlier layer.
    """
    if table.shape[0] == 0:  # no triangles: nothing to draw
        return
    for run_start in range(first_slot, stop_slot, max_candidates):
        slot_count = min(max_candidates, stop_slot - run_start)
        pixel, key = kernels["chunk"](run_start, slot_count, table, counts, ends, num_faces, height, width)
        if floor is not None:
            floor_key, floor_face = floor[0][pixel], floor[1][pixel]
            key = torch.where((key > floor_key) & ((key & 0xFFFFFFFF) != floor_face), key, _EMPTY_KEY)
        z_buffer.scatter_reduce_(0, pixel, key, reduce="amin", include_self=True)


def _triangle_setup(clip: torch.Tensor, faces: torch.Tensor, height: int, width: int):
    """Per-triangle data of every image: (table float [B*F, 21], counts int64 [B*F], edges [B, F, 3, 5], w [B, F, 3]).

    ``table`` rows hold the canonical edge data, corner NDC depths and the pixel bounding box (see the column
    constants); ``counts`` is the number of candidate pixels of each triangle (0 when culled).
    """
    batch, num_faces = clip.shape[0], faces.shape[0]
    face_valid = (faces >= 0).all(dim=1)
    faces_safe = faces.clamp(min=0)
    x_pix, y_pix, z_ndc, w = _pixel_coordinates(clip, height, width)
    corner_x, corner_y = x_pix[:, faces_safe], y_pix[:, faces_safe]  # [B, F, 3]
    corner_z, corner_w = z_ndc[:, faces_safe], w[:, faces_safe]
    edges = _edge_table(corner_x, corner_y, faces_safe.expand(batch, -1, -1))  # [B, F, 3, 5]
    doubled_area = (edges[..., 4] * (edges[..., 2] * (corner_y - edges[..., 1])
                                     - edges[..., 3] * (corner_x - edges[..., 0])))[..., 0]
    visible = face_valid & (corner_w > _NEAR_W).all(-1) & (doubled_area != 0) & torch.isfinite(doubled_area)

    # Pixel bounding boxes clamped to the image (pixel centres sit at integer coordinates).
    x_lo = torch.ceil(corner_x.amin(-1)).clamp(0, width)
    x_hi = torch.floor(corner_x.amax(-1)).clamp(-1, width - 1)
    y_lo = torch.ceil(corner_y.amin(-1)).clamp(0, height)
    y_hi = torch.floor(corner_y.amax(-1)).clamp(-1, height - 1)
    box_w = (x_hi - x_lo + 1).clamp(min=0)
    box_h = (y_hi - y_lo + 1).clamp(min=0)
    counts = torch.where(visible, box_w * box_h, 0.0).long().reshape(-1)
    table = torch.cat(
        [edges.reshape(batch, num_faces, 15), corner_z, x_lo[..., None], y_lo[..., None], box_w[..., None]], -1
    ).reshape(batch * num_faces, 21)
    return table, counts, edges, corner_w


def _chunk_keys(first_slot, slot_count, table, counts, ends, num_faces, height, width):
    """Depth keys of candidate slots ``first_slot .. first_slot + slot_count - 1`` (see :func:`_add_candidates`).

    Args:
        first_slot, slot_count: the run of slots.
        table: float [B*F, 21] per-triangle data (see :func:`_triangle_setup`).
        counts: int64 [B*F] candidate pairs per triangle; ends: int64 [B*F], their inclusive cumulative sum.
        num_faces, height, width: F and the image size.
    Returns:
        (pixel int64 [slot_count] flat pixel index, key int64 [slot_count] = depth bits << 32 | face, or the empty
        key when the pixel centre is outside the triangle or the depth range, or the slot is past the last pair; such
        slots point at pixel 0, which the empty key leaves unchanged).
    """
    slot = torch.arange(slot_count, device=table.device) + first_slot
    tri = torch.searchsorted(ends, slot, right=True)  # the triangle whose run of pairs holds the slot
    real = tri < ends.shape[0]  # False past the last pair (slot >= ends[-1])
    tri = tri.clamp(max=ends.shape[0] - 1)
    offset = slot - (ends - counts)[tri]
    data = table[tri]  # [N, 21]: one gather of everything the test needs
    box_w = data[:, _BOX_W].long().clamp(min=1)  # never 0 for a real candidate; the clamp guards the others
    px = data[:, _BOX_X].long() + offset % box_w
    py = data[:, _BOX_Y].long() + torch.div(offset, box_w, rounding_mode="floor")
    edges = _evaluate_edges(data[:, _EDGES].view(-1, 3, 5), px.float(), py.float())
    total_edge = edges.sum(-1)
    inside = ((edges >= 0).all(-1) | (edges <= 0).all(-1)) & (total_edge != 0)
    depth01 = _depth01(edges, total_edge, data[:, _CORNER_Z], inside)
    inside &= (depth01 >= 0) & (depth01 <= 1) & real  # NDC z is affine in screen space; clip to [near, far]
    key = torch.where(inside, _depth_key(depth01, tri % num_faces), _EMPTY_KEY)
    pixel = torch.where(real, ((tri // num_faces) * height + py) * width + px, 0)
    return pixel, key


def _resolve_barycentrics(z_buffer, edges, corner_w):
    """Face ids, perspective-correct barycentrics and view depth from the z-buffer, computed densely (no host sync).

    z_buffer: int64 [B, H, W] keys; edges: float [B, F, 3, 5] edge tables; corner_w: float [B, F, 3] clip w.
    Returns (face_id int32 [B, H, W], bary float32 [B, H, W, 3], depth float32 [B, H, W]).
    """
    batch, height, width = z_buffer.shape
    device = z_buffer.device
    face_id = torch.where(z_buffer != _EMPTY_KEY, z_buffer & 0xFFFFFFFF, -1).to(torch.int32)
    if edges.shape[1] == 0:  # no triangles at all
        return (face_id, torch.zeros(batch, height, width, 3, device=device),
                torch.zeros(batch, height, width, device=device))
    mask = (face_id >= 0).unsqueeze(-1)
    face = face_id.long().clamp(min=0).reshape(batch, -1)  # [B, P]
    image = torch.arange(batch, device=device)[:, None]
    rows = torch.arange(height, device=device, dtype=torch.float32).repeat_interleave(width).repeat(batch)
    cols = torch.arange(width, device=device, dtype=torch.float32).repeat(height * batch)
    screen = _evaluate_edges(edges[image, face].reshape(-1, 3, 5), cols, rows)
    total = screen.sum(-1, keepdim=True)
    over_w = screen / torch.where(total == 0, 1.0, total) / corner_w[image, face].reshape(-1, 3)
    normalizer = over_w.sum(-1, keepdim=True)
    perspective = (over_w / torch.where(normalizer == 0, 1.0, normalizer)).reshape(batch, height, width, 3)
    depth = 1.0 / torch.where(normalizer == 0, 1.0, normalizer).reshape(batch, height, width)
    return face_id, torch.where(mask, perspective, 0.0), torch.where(mask[..., 0], depth, 0.0)


_EAGER_KERNELS = {"setup": _triangle_setup, "chunk": _chunk_keys, "resolve": _resolve_barycentrics}


@functools.cache
def compiled_kernels() -> dict:
    """The rasterizer's three stages through ``torch.compile(dynamic=True)``, built once per process (a cache, not
    a switch: callers choose per call with ``rasterize_torch(..., compiled=True)`` or the ``torch-compiled`` backend).

    Compiling fuses the ~300 small kernels of a call into a handful, which matters on CUDA where a render is
    launch-bound; the first call of each new shape pays the compile time (tens of seconds). Results are identical
    up to floating-point reassociation in the barycentrics.
    """
    return {name: torch.compile(function, dynamic=True) for name, function in _EAGER_KERNELS.items()}
