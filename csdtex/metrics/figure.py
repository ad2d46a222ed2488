"""The seam benchmark figure: ratio bars per mesh and mip, and close-ups across each method's worst seam.

:func:`seam_figure` returns uint8 [H, W, 3]. Top: for every mesh, grouped bars of seam RMS / interior RMS at mip
levels 0..3 (one colour per method) with the 1.2x target as a red line. Bottom: for every mesh and method, the
surface around the midpoint of that method's worst seam edge (largest mip-0 error) as a viewer shows it
(:func:`seam_closeup`): rendered with the method's texture at mip 0 and at mip 2, the seam running vertically
through the centre between the yellow ticks, about 24 texels of the finer side across; below them, the texture
itself around the edge on each side (side 0 left, side 1 right; 24 x 24 level-0 texels magnified 4x, the seam
segment in yellow).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

COLORS = [(52, 101, 164), (204, 121, 0), (115, 160, 60), (150, 80, 160), (90, 90, 90), (200, 60, 60),
          (40, 170, 170)]
_CROP, _ZOOM = 24, 4
_CLOSEUP_MIPS = (0, 2)


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _bars(draw, x0: int, y0: int, width: int, height: int, title: str, reports: dict, methods: Sequence[str]) -> None:
    font = _font()
    draw.text((x0, y0), title, fill=(0, 0, 0), font=font)
    top, bottom = y0 + 16, y0 + height - 16
    levels = len(next(iter(reports.values())).ratio)
    finite = [r for rep in reports.values() for r in rep.ratio if np.isfinite(r)]
    vmax = max(2.0, max(finite) * 1.1 if finite else 2.0)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * min(value, vmax) / vmax

    draw.line([(x0 + 28, top), (x0 + 28, bottom), (x0 + width, bottom)], fill=(0, 0, 0))
    for tick in np.arange(0.0, vmax + 1e-9, 0.5 if vmax <= 3 else 1.0):
        draw.text((x0, y_of(tick) - 5), f"{tick:.1f}", fill=(0, 0, 0), font=font)
    draw.line([(x0 + 28, y_of(1.2)), (x0 + width, y_of(1.2))], fill=(220, 0, 0))
    group = (width - 36) / levels
    bar = (group - 8) / max(1, len(methods))
    for level in range(levels):
        gx = x0 + 32 + level * group
        for index, method in enumerate(methods):
            value = reports[method].ratio[level]
            if not np.isfinite(value):
                continue
            bx = gx + index * bar
            draw.rectangle([bx, y_of(value), bx + bar - 2, bottom], fill=COLORS[index % len(COLORS)])
        draw.text((gx + group / 2 - 14, bottom + 2), f"mip {level}", fill=(0, 0, 0), font=font)


def _crop(image: np.ndarray, uv_a: np.ndarray, uv_b: np.ndarray) -> np.ndarray:
    """24 x 24 texels around the segment's midpoint (clamped to the image), magnified, with the segment drawn."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    pts = np.array([[u * w, (1 - v) * h] for u, v in (uv_a, uv_b)])
    cx, cy = pts.mean(axis=0)
    x0 = int(np.clip(round(cx - _CROP / 2), 0, max(0, w - _CROP)))
    y0 = int(np.clip(round(cy - _CROP / 2), 0, max(0, h - _CROP)))
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y0 + _CROP, x0:x0 + _CROP, :3]))
    crop = crop.resize((_CROP * _ZOOM, _CROP * _ZOOM), Image.NEAREST)
    draw = ImageDraw.Draw(crop)
    local = (pts - [x0, y0]) * _ZOOM
    draw.line([tuple(local[0]), tuple(local[1])], fill=(255, 230, 0), width=1)
    return np.asarray(crop)


def seam_closeup(mesh, seams, edge: int, textures: Sequence[np.ndarray], mip: int = 0, size: int = _CROP * _ZOOM,
                 span_texels: float = _CROP, render_mesh=None) -> np.ndarray:
    """A close-up render of the surface across seam edge ``edge``: uint8 [size, size, 3].

    The camera looks at the edge's midpoint along the mean normal of its two faces, with the edge vertical in the
    image; the view is ``span_texels`` level-0 texels of the finer side wide. The surface is drawn with ``textures``
    (uint8 [S, S, 3] per material, one size S) at mip level ``mip`` (2x2 box mips, bilinear lookup, clamp to edge:
    the metric's lookup) and no shading; the background is white. Two yellow ticks at the top and bottom border mark
    the seam's line.

    Args:
        mesh: the textured :class:`~csdtex.mesh.Mesh` (input coordinates); seams: its
            :class:`~csdtex.mesh.seams.SeamEdges`; edge: row of ``seams``.
        render_mesh: ``mesh.to_render("cpu")`` when the caller has it (default: made here).
    Raises:
        ValueError: textures of different sizes or not square.
    """
    import torch
    from PIL import Image, ImageDraw

    from csdtex.cameras import Cameras, look_at, perspective
    from csdtex.field import UVTexture
    from csdtex.metrics.seams import mip_pyramid
    from csdtex.render.views import render_views

    if len({t.shape[:2] for t in textures}) != 1 or textures[0].shape[0] != textures[0].shape[1]:
        raise ValueError("seam_closeup needs square textures of one size (as the benchmark bakes them)")
    center, scale = mesh.normalization()
    ends = (seams.positions[edge] - center) * scale  # [2, 3] render space
    middle, along = ends.mean(axis=0), ends[1] - ends[0]
    length = float(np.linalg.norm(along))
    corners = (mesh.vertices[mesh.faces[seams.faces[edge]]] - center) * scale  # [2 faces, 3, 3]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    normal = normals.sum(axis=0)
    if np.linalg.norm(normal) < 1e-6:  # a fold: look along the first face's normal
        normal = normals[0]
    normal /= np.linalg.norm(normal)
    sizes = np.array([[t.shape[1], t.shape[0]] for t in textures], dtype=np.float64)[seams.materials[edge]]  # [2, 2]
    texels = np.linalg.norm((seams.uvs[edge, :, 1] - seams.uvs[edge, :, 0]) * sizes, axis=-1).max()
    half_width = 0.5 * span_texels * length / max(texels, 1e-9)
    distance = max(0.3, 4.0 * half_width)
    eye = torch.tensor(middle + distance * normal, dtype=torch.float32)[None]
    up = torch.tensor(along / max(length, 1e-12), dtype=torch.float32)
    fov = torch.tensor([float(np.degrees(2.0 * np.arctan(half_width / distance)))], dtype=torch.float32)
    zero = torch.zeros(1)
    cameras = Cameras(zero, zero, torch.tensor([distance], dtype=torch.float32), fov,
                      look_at(eye, torch.tensor(middle, dtype=torch.float32), up), perspective(fov, near=0.01))
    levels = [np.clip(np.round(mip_pyramid(t[..., :3], mip)[mip]), 0, 255).astype(np.uint8) for t in textures]
    model = UVTexture.from_images(levels)
    with torch.no_grad():
        image = render_views(render_mesh if render_mesh is not None else mesh.to_render("cpu"), model, cameras, size,
                             background=1.0).image[0]
    picture = Image.fromarray((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    draw = ImageDraw.Draw(picture)
    tick = max(3, size // 16)
    draw.line([(size / 2, 0), (size / 2, tick)], fill=(255, 200, 0), width=2)
    draw.line([(size / 2, size - tick), (size / 2, size)], fill=(255, 200, 0), width=2)
    return np.asarray(picture)


def seam_figure(figures: dict, methods: Sequence[str]) -> np.ndarray:
    """The figure (module docstring) from ``{mesh: {method: (SeamReport, textures), "_mesh": (Mesh, SeamEdges)}}``."""
    from PIL import Image, ImageDraw

    font = _font()
    side = _CROP * _ZOOM
    pair = 2 * side + 6
    crops_width = len(methods) * (pair + 14)
    chart_w, chart_h = max(360, 110 * len(methods) + 120), 190
    width = max(chart_w * len(figures) + 20, crops_width + 20)
    legend_h = 20
    block_h = 2 * side + 58
    height = legend_h + chart_h + 10 + len(figures) * block_h
    canvas = Image.new("RGB", (int(width), int(height)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for index, method in enumerate(methods):
        draw.rectangle([10 + 120 * index, 5, 22 + 120 * index, 15], fill=COLORS[index % len(COLORS)])
        draw.text((26 + 120 * index, 4), method, fill=(0, 0, 0), font=font)
    draw.text((10 + 120 * len(methods), 4), "red line: 1.2x target", fill=(220, 0, 0), font=font)
    for index, (name, entry) in enumerate(figures.items()):
        reports = {m: entry[m][0] for m in methods}
        _bars(draw, 10 + index * chart_w, legend_h, chart_w - 20, chart_h, f"{name}: seam RMS / interior RMS",
              reports, methods)
    y = legend_h + chart_h + 10
    for name, entry in figures.items():
        mesh, seams = entry["_mesh"]
        render_mesh = mesh.to_render("cpu")
        draw.text((10, y), f"{name}: worst seam of each method. Top: rendered across the seam (vertical, between "
                  f"the ticks), mip {_CLOSEUP_MIPS[0]} left, mip {_CLOSEUP_MIPS[1]} right. Bottom: texture at "
                  "the seam, side 0 left, side 1 right (mip 0)", fill=(0, 0, 0), font=font)
        for index, method in enumerate(methods):
            report, textures = entry[method]
            x = 10 + index * (pair + 14)
            draw.text((x, y + 14), method, fill=(0, 0, 0), font=font)
            if len(seams) == 0:
                continue
            worst = int(np.argmax(report.edge_errors[0]))
            for k, mip in enumerate(_CLOSEUP_MIPS):
                closeup = seam_closeup(mesh, seams, worst, textures, mip=mip, size=side, render_mesh=render_mesh)
                canvas.paste(Image.fromarray(closeup), (x + k * (side + 6), y + 28))
            for k in range(2):
                image = textures[int(seams.materials[worst, k])]
                crop = _crop(image, seams.uvs[worst, k, 0], seams.uvs[worst, k, 1])
                canvas.paste(Image.fromarray(crop), (x + k * (side + 6), y + 34 + side))
        y += block_h
    return np.asarray(canvas)
