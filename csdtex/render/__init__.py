"""Rasterization backends behind one function, attribute interpolation, and the mesh they draw.

``rasterize(clip_positions, faces, height, width, backend)`` returns :class:`Fragments` (see fragments.py for the
image conventions). Backends:

- ``torch``: pure PyTorch, CPU and CUDA, the default and the reference.
- ``torch-compiled``: the same through ``torch.compile`` (fewer kernel launches on CUDA; the first call of a shape
  compiles for tens of seconds).
- ``nvdiffrast``: CUDA only, optional (``pip install csdtex[cuda]``), imported lazily.
- ``auto``: nvdiffrast on CUDA when it is installed, else torch.

Every backend costs one host synchronization per call, for the number of covered pixels (``Fragments.pixel_index``);
the torch backends need a :class:`CandidateBudget` from the caller for that (without one they read the number of
candidate pairs first, a second synchronization on CUDA).

:class:`RenderMesh` (render/mesh.py) is the renderer's input, made by :meth:`csdtex.mesh.Mesh.to_render`.
"""

from __future__ import annotations

import torch

from csdtex.errors import ConfigError
from csdtex.render.fragments import Fragments, gather_pixels, interpolate
from csdtex.render.mesh import RenderMesh
from csdtex.render.torch_raster import CandidateBudget

BACKENDS = ("auto", "torch", "torch-compiled", "nvdiffrast")

__all__ = ["BACKENDS", "CandidateBudget", "Fragments", "RenderMesh", "interpolate", "gather_pixels", "rasterize",
           "resolve_backend"]


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The concrete backend ('torch', 'torch-compiled' or 'nvdiffrast') for ``backend`` in BACKENDS on ``device``.
    ``nvdiffrast`` on a device that is not CUDA is a :class:`~csdtex.errors.DeviceError` here, before any long work
    (it failed at the first render, after the prior had loaded)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown renderer {backend!r}: choose one of {', '.join(BACKENDS)}")
    device = torch.device(device)
    if backend == "nvdiffrast" and device.type != "cuda":
        from csdtex.errors import DeviceError

        raise DeviceError(f"the nvdiffrast renderer needs a CUDA device (this run uses {device.type}); use "
                          "--renderer torch or auto")
    if backend == "auto":
        from csdtex.render import nvdiffrast_raster

        return "nvdiffrast" if device.type == "cuda" and nvdiffrast_raster.is_available() else "torch"
    return backend


def rasterize(
    clip_positions: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int | None = None,
    backend: str = "torch",
    candidate_budget: CandidateBudget | None = None,
    behind: Fragments | None = None,
) -> Fragments:
    """Rasterize a batch of triangle meshes given in clip space.

    Args:
        clip_positions: float32 [B, V, 4] OpenGL clip coordinates (e.g. ``Cameras.project(points)``), or [V, 4]
            for a single image (e.g. UV coordinates mapped to clip space for baking).
        faces: int [F, 3] vertex indices, counter-clockwise or not (both windings are drawn).
        height, width: image size in pixels (width defaults to height).
        backend: one of :data:`BACKENDS`.
        candidate_budget: for the torch backends, the caller's :class:`CandidateBudget` for this call site (renders
            of the same mesh at the same size): the call then costs one host synchronization instead of two on CUDA.
            Ignored by nvdiffrast. The result does not depend on it.
        behind: fragments drawn before from the same positions and faces: draw the next layer of surfaces behind
            them (depth peeling, for alpha cut-outs; see :mod:`csdtex.render.torch_raster`). Every backend peels
            with the torch rasterizer, which accepts fragments of any backend.
    Returns:
        Fragments with face_id int32 [B, H, W] (-1 background), bary float32 [B, H, W, 3], depth float32 [B, H, W],
        pixel_index int64 [N] of the covered pixels; image row 0 is the top (y_ndc = +1).
    """
    width = height if width is None else width
    if clip_positions.dim() == 2:
        clip_positions = clip_positions.unsqueeze(0)
    chosen = resolve_backend(backend, clip_positions.device)
    if chosen == "nvdiffrast" and behind is None:
        from csdtex.render.nvdiffrast_raster import rasterize_nvdiffrast

        return rasterize_nvdiffrast(clip_positions, faces, height, width)
    from csdtex.render.torch_raster import rasterize_torch

    return rasterize_torch(clip_positions, faces, height, width, compiled=chosen == "torch-compiled",
                           candidate_budget=candidate_budget, behind=behind)
