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
        :class:`RenderOutput`; ``image`` is differentiable with respect to the model's parameters. A mesh with alpha
        cut-outs (:attr:`RenderMesh.cutouts`) is drawn as viewers draw it, with the surfaces behind the cut-outs
        (see :func:`_render_cutout_layers`); its ``fragments`` are then the nearest surfaces, cut out or not.
    """
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
    size = resolution * supersample
    clip_positions = cameras.project(render_mesh.positions)
    fragments = rasterize(clip_positions, render_mesh.faces, size, size, backend=backend,
                          candidate_budget=candidate_budget)
    if render_mesh.cutouts is None:
        samples = surface_samples(render_mesh, fragments, need_normals=shading != "albedo",
                                  need_uvs=bool(getattr(model, "uses_uvs", True)))
        colors = _sample_colors(render_mesh, model, cameras, fragments, samples, shading)
        image = composite_on_background(colors, fragments.mask, background, pixel_index=samples.pixel_index)
        mask = fragments.mask
    else:
        image, mask = _render_cutout_layers(render_mesh, model, cameras, clip_positions, fragments, background,
                                            shading, backend, candidate_budget)
    if supersample > 1:
        image = F.avg_pool2d(image.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1)
        mask = F.max_pool2d(mask.float()[:, None], supersample)[:, 0] > 0
    return RenderOutput(image=image, mask=mask, fragments=fragments)


MAX_CUTOUT_LAYERS = 4
"""Surfaces drawn per pixel, front to back, behind alpha cut-outs (the rest of a pixel shows the background)."""


def _sample_colors(render_mesh: RenderMesh, model: torch.nn.Module | None, cameras: Cameras, fragments: Fragments,
                   samples: SurfaceSamples, shading: str) -> torch.Tensor:
    """float [N, 3]: the colour of every surface sample under ``shading`` (see :func:`render_views`)."""
    if shading == "normals":
        return (samples.normals + 1.0) * 0.5
    if model is None:
        colors = torch.full_like(samples.points, 0.8)
    else:
        colors = model(samples.points, samples.uvs, samples.materials)
    if samples.colors is not None:  # vertex colours multiply the base colour, as in glTF viewers
        colors = colors * samples.colors.to(colors.dtype)
    if shading == "lit":
        height, width = fragments.shape[1:]
        colors = colors * headlight_factor(samples.normals, fragments, cameras,
                                           view_index=samples.view_index(height, width))
    return colors


def _render_cutout_layers(render_mesh: RenderMesh, model: torch.nn.Module | None, cameras: Cameras,
                          clip_positions: torch.Tensor, fragments: Fragments, background: torch.Tensor | float,
                          shading: str, backend: str, candidate_budget: CandidateBudget | None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float [B, H, W, 3] and mask bool [B, H, W] of a mesh with alpha cut-outs, as viewers draw them.

    Layers of surfaces are peeled front to back (at most :data:`MAX_CUTOUT_LAYERS`) and composited with each
    sample's coverage ``a`` (:meth:`csdtex.render.cutouts.Cutouts.coverage`: MASK 0 or 1, BLEND the alpha):
    ``image = sum_k T_k a_k c_k + T_K * background`` with ``T_0 = 1``, ``T_k+1 = T_k (1 - a_k)``. Peeling stops once
    every sample of a layer covers its pixel (one host read per layer). The mask is where anything is drawn
    (``T_K < 1``). Differentiable with respect to the model's colours of every layer.
    """
    batch, height, width = fragments.shape
    cutouts = render_mesh.cutouts
    pixels = batch * height * width
    device = clip_positions.device
    drawn: torch.Tensor | None = None  # float [P, 3], sum of T_k a_k c_k so far
    transmittance = torch.ones(pixels, dtype=torch.float32, device=device)
    layer = fragments
    for depth in range(MAX_CUTOUT_LAYERS):
        samples = surface_samples(render_mesh, layer, need_normals=shading != "albedo", need_uvs=True)
        colors = _sample_colors(render_mesh, model, cameras, layer, samples, shading)
        coverage = cutouts.coverage(samples.uvs, samples.materials)
        here = transmittance.index_select(0, samples.pixel_index)
        contribution = (here * coverage).unsqueeze(-1) * colors
        drawn = (torch.zeros(pixels, 3, dtype=colors.dtype, device=device) if drawn is None else drawn
                 ).index_add(0, samples.pixel_index, contribution)
        transmittance = transmittance.index_put((samples.pixel_index,), here * (1.0 - coverage))
        if depth == MAX_CUTOUT_LAYERS - 1 or not bool((coverage < 1.0).any()):
            break
        layer = rasterize(clip_positions, render_mesh.faces, height, width, backend=backend,
                          candidate_budget=candidate_budget, behind=layer)
        if layer.pixel_index.numel() == 0:
            break
    behind = composite_on_background(drawn.new_zeros(0, 3), fragments.mask, background,
                                     pixel_index=fragments.pixel_index[:0]).reshape(pixels, 3)
    image = drawn + transmittance.unsqueeze(-1).to(drawn.dtype) * behind
    return image.view(batch, height, width, 3), (transmittance < 1.0).view(batch, height, width)
