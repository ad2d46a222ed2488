"""Baking a texture model into the mesh's own UV layout.

For every material, the UV triangles are rasterized at the texture size with the same rasterizer used for views:
texel centre -> (face, barycentrics) -> 3D surface point (and UV) -> texture model -> colour.

Gutter (texels outside every UV triangle) is filled so that no texel that bilinear filtering or mip levels up to
``mip_levels`` can reach is empty: for each such texel the nearest covered texel (exact Euclidean distance transform)
names a triangle of the texel's own chart; the texel's UV is projected onto that triangle (closest point in UV
space) and the model is queried at the corresponding *surface point*. An implicit field is continuous across UV seams
on the surface, so the gutter continues each chart's texture instead of smearing colours in 2D. The remaining,
unreachable texels copy the colour of their nearest filled texel, so higher mip levels never see black.

Texture images: uint8 [S, S, 3], row 0 = top of the image = v close to 1; texel (i, j) samples
UV ((j + 0.5) / S, 1 - (i + 0.5) / S). Values are written as they come from the model (sRGB-encoded 8-bit).

UVs outside [0, 1] (tiled UVs): with a sampler per material (:func:`csdtex.sampling.baked_samplers`, the samplers the
exported GLB carries), every UV triangle is placed into [0, 1]² by that sampler's wrap rule
(:func:`csdtex.sampling.wrap_uv_triangles`: REPEAT shifts it by its integer tile, MIRRORED_REPEAT also mirrors odd
tiles, triangles straddling tile borders get one copy per tile), so charts in other integer tiles are painted where a
viewer reads them. Where several surface regions map to the same texels, the last one rasterized wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from csdtex.errors import ConfigError
from csdtex.field import query_texture
from csdtex.mesh import Mesh, RenderMesh
from csdtex.render import Fragments, rasterize
from csdtex.sampling import TextureSampler, baked_samplers, wrap_uv_triangles


@dataclass
class BakedTexture:
    """Result of :func:`bake_texture`, one entry per material.

    Attributes:
        images: uint8 [S, S, 3] textures (row 0 = top).
        coverage: bool [S, S], texels whose centre lies inside a UV triangle of the material.
        filled: bool [S, S], texels that got a model value (coverage plus the reachable gutter); the rest copy
            their nearest filled texel.
    """

    images: list[np.ndarray]
    coverage: list[np.ndarray]
    filled: list[np.ndarray]


def uv_to_clip(uvs: torch.Tensor) -> torch.Tensor:
    """float [T, 2] UVs in [0, 1] -> float [1, T, 4] clip coordinates so that image row 0 is v = 1."""
    clip = torch.cat([uvs * 2.0 - 1.0, torch.zeros_like(uvs[:, :1]), torch.ones_like(uvs[:, :1])], dim=-1)
    return clip.unsqueeze(0)


def uv_layout_triangles(render_mesh: RenderMesh, material: int,
                        sampler: TextureSampler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The UV triangles of one material as a bake rasterizes them: placed into [0, 1]² by ``sampler``'s wrap rule.

    Returns:
        ``(triangles float32 [K, 3, 2], faces int64 [K])`` on the mesh's device: each placed triangle (UV, (0, 0) =
        bottom-left) and the global face index it belongs to (see :func:`csdtex.sampling.wrap_uv_triangles`; without
        a sampler, or for clamping axes, the triangles are unchanged and K = number of faces of the material with UVs).
    """
    device = render_mesh.device
    uv_faces = render_mesh.uv_faces.long()
    keep = (render_mesh.face_materials.long() == material) & (uv_faces >= 0).all(dim=1)
    faces = torch.nonzero(keep).squeeze(1)
    triangles = render_mesh.uvs[uv_faces[faces]]  # [F_m, 3, 2]
    if sampler is None or len(faces) == 0:
        return triangles, faces
    copies, source = wrap_uv_triangles(triangles.double().cpu().numpy(), sampler)
    return (torch.as_tensor(copies, dtype=torch.float32, device=device),
            faces[torch.as_tensor(source, device=device)])


def _rasterize_triangles(triangles: torch.Tensor, height: int, width: int, backend: str) -> Fragments:
    """Rasterize UV triangles float [K, 3, 2] over [0, 1]²; face ids index the K triangles (-1 = none)."""
    if len(triangles) == 0:  # nothing to draw: an empty layout (the rasterizer needs at least one vertex)
        triangles = torch.zeros(1, 3, 2, device=triangles.device)
        faces = torch.full((1, 3), -1, dtype=torch.int64, device=triangles.device)
    else:
        faces = torch.arange(3 * len(triangles), device=triangles.device).view(-1, 3)
    return rasterize(uv_to_clip(triangles.reshape(-1, 2)), faces, height, width, backend=backend)


def rasterize_uv_layout(render_mesh: RenderMesh, material: int, size: int, backend: str = "torch",
                        width: int | None = None, sampler: TextureSampler | None = None) -> Fragments:
    """Rasterize the UV triangles of one material at ``size`` rows x ``width`` (default ``size``) columns of texels.

    Face ids in the result are global face indices of the mesh; faces of other materials are skipped. With a
    ``sampler``, triangles are first placed by its wrap rule (:func:`uv_layout_triangles`); barycentrics are
    relative to the face's own corners either way.
    """
    triangles, faces = uv_layout_triangles(render_mesh, material, sampler)
    fragments = _rasterize_triangles(triangles, size, width or size, backend)
    if len(faces):
        covered = fragments.face_id >= 0
        global_ids = faces.to(torch.int32)[fragments.face_id.clamp(min=0).long()]
        fragments.face_id = torch.where(covered, global_ids, fragments.face_id)
    return fragments


def reachable_texels(coverage: torch.Tensor, mip_levels: int = 3) -> torch.Tensor:
    """Texels that bilinear filtering at mip levels 0..``mip_levels`` can touch when sampling inside the charts.

    At level L a texel of the mip image averages a 2^L block of base texels; bilinear sampling at a covered point
    reads that block's mip texel and its 8 neighbours. The union over levels, mapped back to base texels, is
    returned as bool [S, S] (a superset of ``coverage``).

    Args:
        coverage: bool [S, S] covered texels; S need not be a power of two (partial blocks are padded).
    """
    size_y, size_x = coverage.shape
    covered = coverage.float()[None, None]
    reachable = torch.zeros_like(coverage)
    for level in range(mip_levels + 1):
        block = 2**level
        pad_y, pad_x = (-size_y) % block, (-size_x) % block
        padded = F.pad(covered, (0, pad_x, 0, pad_y))
        mip = F.max_pool2d(padded, block) if block > 1 else padded
        mip = F.max_pool2d(mip, 3, stride=1, padding=1)
        full = mip.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)[0, 0, :size_y, :size_x]
        reachable |= full > 0
    return reachable


def _closest_point_barycentrics(point: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Barycentrics of the closest point of 2D triangles to 2D points.

    Args:
        point: float [N, 2]; corners: float [N, 3, 2].
    Returns:
        float [N, 3], non-negative, summing to 1.
    """
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]

    def cross(u, v):
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    area = cross(b - a, c - a)
    safe_area = torch.where(area.abs() > 1e-20, area, torch.full_like(area, 1e-20))
    inside_weights = torch.stack(
        [cross(b - point, c - point), cross(c - point, a - point), cross(a - point, b - point)], dim=-1
    ) / safe_area.unsqueeze(-1)
    best_weights = inside_weights
    best_distance = torch.where(
        (inside_weights >= 0).all(-1), torch.zeros_like(area), torch.full_like(area, float("inf"))
    )
    # Closest point on each edge segment.
    for start, end in ((0, 1), (1, 2), (2, 0)):
        p, q = corners[:, start], corners[:, end]
        direction = q - p
        length_sq = (direction * direction).sum(-1).clamp(min=1e-30)
        s = (((point - p) * direction).sum(-1) / length_sq).clamp(0.0, 1.0)
        on_edge = p + s.unsqueeze(-1) * direction
        distance = ((point - on_edge) ** 2).sum(-1)
        weights = torch.zeros_like(inside_weights)
        weights[:, start] = 1.0 - s
        weights[:, end] = s
        better = distance < best_distance
        best_distance = torch.where(better, distance, best_distance)
        best_weights = torch.where(better.unsqueeze(-1), weights, best_weights)
    return best_weights


@torch.no_grad()
def bake_texture(
    mesh: Mesh | RenderMesh,
    model: torch.nn.Module,
    size: int = 1024,
    backend: str = "torch",
    mip_levels: int = 3,
    chunk_size: int = 2**18,
    device: torch.device | str | None = None,
    samplers: list[TextureSampler | None] | None = None,
    seam_erasure: bool = True,
) -> BakedTexture:
    """Bake ``model`` into one texture per material of ``mesh``'s UV layout (see module docstring).

    Args:
        mesh: a :class:`Mesh` with UVs on every face (or its :class:`RenderMesh`).
        model: a texture model (``csdtex.field``): ``model(points [N,3], uvs [N,2], materials [N]) -> [N,3]`` in
            [0, 1], points in the normalized render space.
        size: texture width and height in texels.
        backend: rasterizer backend for the UV layout.
        mip_levels: gutter is computed by field queries up to this mip level (see :func:`reachable_texels`).
        chunk_size: model queries per batch.
        device: where to work; default the model's device.
        samplers: per material, the wrap rule that places UV triangles (see the module docstring); None = for a
            :class:`Mesh`, :func:`csdtex.sampling.baked_samplers` (what the exporter writes); for a
            :class:`RenderMesh`, no placement (UVs outside [0, 1] paint nothing).
        seam_erasure: post-process the images with :func:`csdtex.seam_erasure.erase_seams_render` (texel values near
            UV seams adjusted so both sides agree at mip levels 0..3).
    Returns:
        :class:`BakedTexture`.
    """
    if size < 16 or size > 16384:
        raise ConfigError(f"texture size {size} is out of range: use 16..16384 (e.g. 1024 or 2048)")
    if device is None:
        first_parameter = next(model.parameters(), None)
        device = first_parameter.device if first_parameter is not None else torch.device("cpu")
    if isinstance(mesh, Mesh):
        if not mesh.has_uvs:
            raise ConfigError("the mesh has faces without UVs: unwrap it first (csdtex.mesh.unwrap_uvs or --unwrap)")
        samplers = baked_samplers(mesh) if samplers is None else samplers
        render_mesh = mesh.to_render(device)
    else:
        render_mesh = mesh
        if bool((render_mesh.uv_faces < 0).any()):
            raise ConfigError("the mesh has faces without UVs: unwrap it first (csdtex.mesh.unwrap_uvs or --unwrap)")

    images, coverages, filled_masks = [], [], []
    for material in range(render_mesh.num_materials):
        sampler = samplers[material] if samplers is not None else None
        values, coverage, filled = bake_material_values(render_mesh, model, material, size, size, backend,
                                                        mip_levels, chunk_size, sampler=sampler)
        if values is None:
            image = np.full((size, size, 3), 128, dtype=np.uint8)
        else:
            image = (values.clamp(0.0, 1.0) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
        images.append(image)
        coverages.append(coverage)
        filled_masks.append(filled)
    if seam_erasure:
        from csdtex.seam_erasure import erase_seams_render

        images = erase_seams_render(render_mesh, images, coverages, samplers=samplers)
    return BakedTexture(images=images, coverage=coverages, filled=filled_masks)


@torch.no_grad()
def bake_material_values(
    render_mesh: RenderMesh,
    model: torch.nn.Module,
    material: int,
    height: int,
    width: int,
    backend: str = "torch",
    mip_levels: int = 3,
    chunk_size: int = 2**18,
    sampler: TextureSampler | None = None,
    only: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, np.ndarray, np.ndarray]:
    """The model's raw values at every texel of one material's ``height`` x ``width`` UV layout (see module
    docstring for the gutter rule), without clamping or quantization (a residual model may be negative).

    ``sampler`` places UV triangles of other integer tiles by its wrap rule (module docstring); None leaves them
    where they are. The model receives each texel's surface point and the face's own (unwrapped) UV. ``only`` (bool
    [H, W]) limits the model's queries to the texels the caller keeps (an edit's region): those get exactly the
    values of a full bake, the others are left 0, and a small region of a 4K texture costs a small part of its
    queries.

    Returns:
        (values float32 [H, W, C] on the mesh's device, or None when no UV triangle of the material covers a texel
        centre; coverage bool [H, W]; filled bool [H, W]) with row 0 = top (v close to 1).
    """
    device = render_mesh.device
    triangles, triangle_faces = uv_layout_triangles(render_mesh, material, sampler)
    fragments = _rasterize_triangles(triangles, height, width, backend)
    coverage = fragments.mask[0]  # [H, W]
    if not bool(coverage.any()):
        empty = np.zeros((height, width), dtype=bool)
        return None, empty, empty

    # Nearest covered texel for every texel (exact Euclidean distance transform on the CPU).
    coverage_host = coverage.cpu().numpy()
    _, nearest = ndimage.distance_transform_edt(~coverage_host, return_indices=True)
    nearest = torch.as_tensor(nearest, device=device)  # [2, H, W] (row, col)
    reachable = reachable_texels(coverage, mip_levels) if mip_levels >= 0 else coverage

    # Unreachable texels copy their nearest filled (reachable) texel, at the end.
    reachable_host = reachable.cpu().numpy()
    nearest_filled = None
    if not reachable_host.all():
        _, nearest_filled_host = ndimage.distance_transform_edt(~reachable_host, return_indices=True)
        nearest_filled = torch.as_tensor(nearest_filled_host, device=device)
    queried = reachable
    if only is not None:  # the kept texels that are reachable, and the texels the unreachable kept ones copy
        only = only.to(device=device, dtype=torch.bool)
        queried = reachable & only
        if nearest_filled is not None:
            copies = only & ~reachable
            queried = queried.clone()
            queried[nearest_filled[0][copies], nearest_filled[1][copies]] = True

    # Per texel to query: face and barycentrics (exact for covered texels, closest point for gutter texels).
    rows, cols = torch.nonzero(queried, as_tuple=True)
    seed_rows, seed_cols = nearest[0][rows, cols], nearest[1][rows, cols]
    placed = fragments.face_id[0][seed_rows, seed_cols].long()  # index into the placed triangles
    face = triangle_faces[placed]
    bary = fragments.bary[0][rows, cols]
    is_gutter = ~coverage[rows, cols]
    if bool(is_gutter.any()):
        texel_uv = torch.stack([(cols.float() + 0.5) / width, 1.0 - (rows.float() + 0.5) / height], dim=-1)
        uv_corners = triangles[placed[is_gutter]]  # [G, 3, 2], as placed (barycentrics are the same as the face's)
        bary = bary.clone()
        bary[is_gutter] = _closest_point_barycentrics(texel_uv[is_gutter], uv_corners)

    points = (render_mesh.positions[render_mesh.faces.long()[face]] * bary.unsqueeze(-1)).sum(1)
    uvs = (render_mesh.uvs[render_mesh.uv_faces.long()[face]] * bary.unsqueeze(-1)).sum(1)
    materials = torch.full_like(face, material)
    values = query_texture(model, points, uvs, materials, chunk_size=chunk_size).float()
    image = torch.zeros(height, width, values.shape[-1], device=device)
    image[rows, cols] = values
    if nearest_filled is not None:
        image = image[nearest_filled[0], nearest_filled[1]]
    return image, coverage_host, reachable_host
