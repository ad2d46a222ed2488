"""Optional CUDA backend on nvdiffrast (PyPI ``diffrp-nvdiffrast``; NVIDIA Source Code License, non-commercial).

Imported lazily: csdtex never needs it, and ``backend="auto"`` only picks it when it imports and CUDA is present.
Its output is converted to csdtex's conventions (image row 0 at the top, ``face_id`` -1 on background) and is tested
against the pure-PyTorch backend.
"""

from __future__ import annotations

import functools
import sys

import torch

from csdtex.errors import DeviceError
from csdtex.render.fragments import Fragments

INSTALL_HINT = "install it with `pip install diffrp-nvdiffrast` (needs CUDA and a compiler) or use --renderer torch"


def is_available() -> bool:
    """True when CUDA is available and the nvdiffrast package can be imported (its plugin is built on first use)."""
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except Exception:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _context(device_index: int):
    try:
        import nvdiffrast.torch as dr
    except ImportError:
        raise DeviceError(f"the nvdiffrast renderer is not installed: {INSTALL_HINT}") from None
    try:
        return dr.RasterizeCudaContext(device=torch.device("cuda", device_index))
    except ModuleNotFoundError as error:
        # With recent torch the freshly built plugin is not importable until its build folder is on sys.path.
        if not (error.name or "").startswith("nvdiffrast_plugin"):
            raise
        from torch.utils import cpp_extension

        sys.path.insert(0, cpp_extension._get_build_directory(error.name, False))
        return dr.RasterizeCudaContext(device=torch.device("cuda", device_index))


def rasterize_nvdiffrast(clip_positions: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Fragments:
    """Rasterize with nvdiffrast; same arguments and result as :func:`csdtex.render.torch_raster.rasterize_torch`.

    ``clip_positions`` must be a CUDA tensor [B, V, 4]; faces with negative indices are dropped. Costs one host
    synchronization: listing the covered pixels (``Fragments.pixel_index``).
    """
    if clip_positions.device.type != "cuda":
        raise DeviceError("the nvdiffrast renderer needs a CUDA device; use --renderer torch on the CPU")
    import nvdiffrast.torch as dr

    context = _context(clip_positions.device.index or 0)
    faces = faces.to(clip_positions.device)
    kept = (faces >= 0).all(dim=1, keepdim=True)
    # Dropped faces become the degenerate triangle (0, 0, 0), which covers no pixel, so triangle ids stay face ids
    # and no compaction (a host synchronization) is needed.
    triangles = torch.where(kept, faces, 0).to(torch.int32).contiguous()
    with torch.no_grad():
        raster, _ = dr.rasterize(context, clip_positions.float().contiguous(), triangles, resolution=[height, width])
        raster = raster.flip(1)  # nvdiffrast's row 0 is y_ndc = -1 (bottom); ours is the top
        face_id = raster[..., 3].round().long() - 1  # -1 means background
        covered = face_id >= 0
        u, v = raster[..., 0], raster[..., 1]
        bary = torch.stack([u, v, 1.0 - u - v], dim=-1) * covered.unsqueeze(-1)
        # Perspective-correct barycentrics interpolate view-space quantities linearly, w included.
        corner_w = clip_positions[..., 3].float()[
            torch.arange(clip_positions.shape[0], device=clip_positions.device)[:, None, None, None],
            faces.long().clamp(min=0)[face_id.clamp(min=0)],
        ]
        depth = (bary * corner_w).sum(-1) * covered
        pixel_index = torch.nonzero(covered.reshape(-1)).squeeze(1)  # the one host synchronization
    return Fragments(face_id=face_id.to(torch.int32), bary=bary.float(), depth=depth.float(), pixel_index=pixel_index)
