"""Rendering a texture model on a mesh from a batch of cameras: rasterize, look up surface samples, shade.

Images are float32 [B, H, W, 3] in [0, 1], row 0 at the top (see ``Fragments``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from csdtex.cameras import Cameras
from csdtex.mesh import RenderMesh
from csdtex.render import CandidateBudget, Fragments, rasterize

SHADINGS = ("albedo", "lit", "normals")


@dataclass
class SurfaceSamples:
    """Surface quantities at the covered pixels of some fragments, in row-major (b, i, j) order.

    Attributes:
        pixel_index: int64 [N] flat index ``(b * H + i) * W + j`` of each covered pixel (``Fragments.pixel_index``,
            the one compaction of a render: everything else indexes with it instead of the boolean mask).
        points: float32 [N, 3] positions in the normalized render space.
        normals: float32 [N, 3] unit smooth normals (interpolated vertex normals, renormalized), or None.
        uvs: float32 [N, 2] texture coordinates (0 where the face has no UVs), or None.
        materials: int64 [N] material index of the face.
        colors: float32 [N, 3] interpolated vertex colours in [0, 1] when the render mesh has them
            (:attr:`RenderMesh.colors`), else None.
    """

    pixel_index: torch.Tensor
    points: torch.Tensor
    normals: torch.Tensor | None
    uvs: torch.Tensor | None
    materials: torch.Tensor
    colors: torch.Tensor | None = None

    def view_index(self, height: int, width: int) -> torch.Tensor:
        """int64 [N]: the image (camera) of each covered pixel of [B, height, width] fragments."""
        return torch.div(self.pixel_index, height * width, rounding_mode="floor")


@dataclass
class RenderOutput:
    """Result of :func:`render_views`: image float32 [B, H, W, 3] in [0, 1]; mask bool [B, H, W]; fragments."""

    image: torch.Tensor
    mask: torch.Tensor
    fragments: Fragments


def surface_samples(
    render_mesh: RenderMesh, fragments: Fragments, need_normals: bool = True, need_uvs: bool = True
) -> SurfaceSamples:
    """Interpolate positions, normals and UVs at every covered pixel of ``fragments`` (no gradient needed here:
    the geometry is fixed; the gradient flows through the texture model evaluated at these samples).

    ``need_normals`` / ``need_uvs`` False skip that work and leave the field None. The covered pixels are the ones
    the rasterizer listed (``fragments.pixel_index``), so this costs no host synchronization.
    """
    pixel_index = fragments.pixel_index
    face = fragments.face_id.reshape(-1).index_select(0, pixel_index).long()
    weights = fragments.bary.reshape(-1, 3).index_select(0, pixel_index).unsqueeze(-1)  # [N, 3, 1]
    corners = render_mesh.faces.long()[face]
    points = (render_mesh.positions[corners] * weights).sum(1)
    normals = uvs = None
    if need_normals:
        corner_normals = render_mesh.normals[corners] if render_mesh.corner_normals is None else (
            render_mesh.corner_normals[face])
        normals = F.normalize((corner_normals * weights).sum(1), dim=-1)
    if need_uvs:
        uv_corners = render_mesh.uv_faces.long()[face]
        has_uv = (uv_corners >= 0).all(-1, keepdim=True)
        uvs = (render_mesh.uvs[uv_corners.clamp(min=0)] * weights).sum(1) * has_uv
    materials = render_mesh.face_materials.long()[face]
    colors = None if render_mesh.colors is None else (render_mesh.colors[corners] * weights).sum(1)
    return SurfaceSamples(pixel_index=pixel_index, points=points, normals=normals, uvs=uvs, materials=materials,
                          colors=colors)


def lambert_shading(normals: torch.Tensor, light_direction: torch.Tensor, ambient: float = 0.45) -> torch.Tensor:
    """Two-sided diffuse shading factor in [ambient, 1]: float [N, 3] normals, [N, 3] or [3] unit light -> [N, 1]."""
    diffuse = (normals * light_direction).sum(-1, keepdim=True).abs()
    return ambient + (1.0 - ambient) * diffuse


def headlight_factor(normals: torch.Tensor, fragments: Fragments, cameras: Cameras,
                     view_index: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`lambert_shading` with the light at each covered pixel's camera: normals float [N, 3] -> [N, 1].

    ``view_index`` int64 [N] (:meth:`SurfaceSamples.view_index`), when the caller has it, saves a division.
    """
    if view_index is None:
        _, height, width = fragments.shape
        view_index = torch.div(fragments.pixel_index, height * width, rounding_mode="floor")
    light = F.normalize(cameras.positions, dim=-1)[view_index]
    return lambert_shading(normals, light)


def composite_on_background(
    colors: torch.Tensor, mask: torch.Tensor, background: torch.Tensor | float = 1.0,
    pixel_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images float [B, H, W, 3]: ``colors`` [N, 3] at the covered pixels of ``mask`` bool [B, H, W], else background.

    ``background`` is RGB in [0, 1] as a float, float [3] or float [B, 3]. ``pixel_index`` int64 [N]
    (:attr:`SurfaceSamples.pixel_index`) places the colours without finding the covered pixels again.
    Differentiable with respect to ``colors``.
    """
    batch, height, width = mask.shape
    background = torch.as_tensor(background, dtype=colors.dtype, device=colors.device)
    background = background.reshape(-1, 3) if background.numel() >= 3 else background.reshape(1, 1).expand(1, 3)
    image = background.expand(batch, 3)[:, None, None, :].expand(batch, height, width, 3)
    if pixel_index is None:
        return image.index_put((mask,), colors.to(image.dtype))
    flat = image.reshape(batch * height * width, 3)
    return flat.index_put((pixel_index,), colors.to(image.dtype)).view(batch, height, width, 3)


def render_views(
    render_mesh: RenderMesh,
    model: torch.nn.Module | None,
    cameras: Cameras,
    resolution: int,
    background: torch.Tensor | float = 1.0,
    shading: str = "albedo",
    backend: str = "torch",
    supersample: int = 1,
    candidate_budget: CandidateBudget | None = None,
) -> RenderOutput:
    """Render ``model`` on ``render_mesh`` from every camera.

    Args:
        render_mesh: from ``Mesh.to_render`` on the cameras' device; its vertex colours, when it has them, multiply
            the model's colour (not for 'normals').
        model: texture model ``(points [N,3], uvs [N,2], materials [N]) -> rgb [N,3]`` in [0, 1]; None renders a
            uniform light grey (useful with ``shading='lit'`` to see the bare shape).
        cameras: B cameras.
        resolution: output height and width in pixels.
        background: RGB in [0, 1] as a float, float [3] or float [B, 3] (one colour per view).
        shading: 'albedo' (the texture as is, what the diffusion prior sees), 'lit' (albedo times a two-sided
            headlight diffuse term, for previews) or 'normals' (normal map colours (n + 1) / 2, "textureless" views).
        backend: rasterizer backend ('torch', 'nvdiffrast', 'auto').
        supersample: render at ``resolution * supersample`` and box-filter down (anti-aliasing for previews).
        candidate_budget: the torch rasterizer's :class:`~csdtex.render.CandidateBudget` for a call site that
            renders this mesh at this size again and again (one host synchronization per render on CUDA instead of
            two); None for one-off renders. The result does not depend on it.
    Returns:
        :class:`RenderOutput`; ``image`` is differentiable with respect to the model's parameters.
    """
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
    size = resolution * supersample
    fragments = rasterize(cameras.project(render_mesh.positions), render_mesh.faces, size, size, backend=backend,
                          candidate_budget=candidate_budget)
    samples = surface_samples(
        render_mesh, fragments, need_normals=shading != "albedo", need_uvs=bool(getattr(model, "uses_uvs", True))
    )
    if shading == "normals":
        colors = (samples.normals + 1.0) * 0.5
    else:
        if model is None:
            colors = torch.full_like(samples.points, 0.8)
        else:
            colors = model(samples.points, samples.uvs, samples.materials)
        if samples.colors is not None:  # vertex colours multiply the base colour, as in glTF viewers
            colors = colors * samples.colors.to(colors.dtype)
        if shading == "lit":
            colors = colors * headlight_factor(samples.normals, fragments, cameras,
                                               view_index=samples.view_index(size, size))
    image = composite_on_background(colors, fragments.mask, background, pixel_index=samples.pixel_index)
    mask = fragments.mask
    if supersample > 1:
        image = F.avg_pool2d(image.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1)
        mask = F.max_pool2d(mask.float()[:, None], supersample)[:, 0] > 0
    return RenderOutput(image=image, mask=mask, fragments=fragments)
