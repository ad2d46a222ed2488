"""Turntable previews: a textured mesh rendered from a fixed orbit, written as GIF, MP4 or a PNG contact sheet."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from csdtex.cameras import orbit_cameras
from csdtex.errors import ConfigError
from csdtex.fileio import atomic_path
from csdtex.mesh import RenderMesh
from csdtex.render.views import render_views

PREVIEW_FORMATS = (".gif", ".mp4", ".png")


def input_texture_model(mesh):
    """A :class:`~csdtex.field.UVTexture` showing a loaded :class:`~csdtex.mesh.Mesh` as glTF viewers do: each
    material's texture (or its base colour, see :func:`material_texture_images`) looked up with the material's
    sampler (wrap and filter modes; repeat for textures whose file gave none) and texture transform."""
    from csdtex.field import UVTexture
    from csdtex.sampling import TextureSampler

    samplers = [(m.sampler or TextureSampler()) if m.texture is not None else None for m in mesh.materials]
    transforms = [m.texture_transform if m.texture is not None else None for m in mesh.materials]
    return UVTexture.from_images(material_texture_images(mesh), samplers=samplers, transforms=transforms)


def material_texture_images(mesh) -> list[np.ndarray]:
    """One RGB uint8 image [H, W, 3] per material of a :class:`~csdtex.mesh.Mesh`: its texture, or an 8x8 image of
    its base colour when it has none (so untextured parts render in their own colour)."""
    images = []
    for material in mesh.materials:
        if material.texture is not None:
            images.append(material.texture)
        else:
            color = np.clip(np.asarray(material.base_color) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            images.append(np.broadcast_to(color, (8, 8, 3)).copy())
    return images


@torch.no_grad()
def turntable_frames(
    render_mesh: RenderMesh,
    model: torch.nn.Module | None,
    num_frames: int = 24,
    resolution: int = 256,
    elevation_deg: float = 15.0,
    shading: str = "lit",
    background: float = 1.0,
    backend: str = "torch",
    supersample: int = 2,
    views_per_batch: int = 8,
) -> np.ndarray:
    """Render a full orbit starting from the front (azimuth 0, turning towards +X).

    Returns:
        uint8 [num_frames, resolution, resolution, 3] frames, row 0 at the top.
    """
    cameras = orbit_cameras(num_frames, elevation_deg=elevation_deg, device=render_mesh.device)
    frames = []
    for start in range(0, num_frames, views_per_batch):
        index = torch.arange(start, min(start + views_per_batch, num_frames), device=render_mesh.device)
        batch = type(cameras)(*(getattr(cameras, name)[index] for name in cameras.__dataclass_fields__))
        output = render_views(
            render_mesh, model, batch, resolution, background=background, shading=shading,
            backend=backend, supersample=supersample,
        )
        frames.append((output.image.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy())
    return np.concatenate(frames)


def contact_sheet(frames: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile frames uint8 [N, H, W, 3] into one image uint8 [rows * H, columns * W, 3] (white where empty)."""
    count, height, width, _ = frames.shape
    columns = columns or min(count, 6)
    rows = math.ceil(count / columns)
    sheet = np.full((rows * height, columns * width, 3), 255, dtype=np.uint8)
    for index, frame in enumerate(frames):
        row, column = divmod(index, columns)
        sheet[row * height : (row + 1) * height, column * width : (column + 1) * width] = frame
    return sheet


def write_preview(frames: np.ndarray, path: str | Path, fps: int = 12) -> Path:
    """Write frames uint8 [N, H, W, 3] to ``path`` atomically; the format follows the suffix.

    ``.gif``: looping animation (Pillow). ``.mp4``: H.264 via imageio-ffmpeg (``pip install imageio-ffmpeg``); an
    odd width or height gets one more column / row (a copy of the last), since H.264 frames have even sides.
    ``.png``: a contact sheet of all frames.

    Raises:
        ConfigError: an unsupported suffix, or the file cannot be written (permissions, a folder in the way, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PREVIEW_FORMATS:
        raise ConfigError(f"unsupported preview format {path.suffix or '(none)'!r}: use one of {', '.join(PREVIEW_FORMATS)}")
    try:
        return _write_preview(frames, path, suffix, fps)
    except OSError as err:  # unwritable folder, a directory in the way, disk full: one line, nothing left behind
        raise ConfigError(f"cannot write {path}: {err.strerror or type(err).__name__}; choose another output path"
                          ) from err


def _write_preview(frames: np.ndarray, path: Path, suffix: str, fps: int) -> Path:
    from PIL import Image

    if suffix == ".mp4":
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError("MP4 previews need imageio-ffmpeg: `pip install imageio-ffmpeg`, or write a .gif") from None
        # H.264 in yuv420p needs even sides: an odd side gets one more row / column, a copy of the last one
        height, width = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        with atomic_path(path) as tmp:
            with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
                for frame in frames:
                    writer.append_data(frame)
            if Path(tmp).stat().st_size == 0:  # never report a video that ffmpeg did not write
                raise ConfigError(f"ffmpeg wrote no video for {path} ({width}x{height} frames); write a .gif instead")
        return path
    with atomic_path(path) as tmp:
        if suffix == ".png":
            Image.fromarray(contact_sheet(frames)).save(tmp, format="PNG")
        else:
            images = [Image.fromarray(frame) for frame in frames]
            images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                optimize=False,
            )
    return path
