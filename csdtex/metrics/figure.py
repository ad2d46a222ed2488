"""The seam benchmark figure (PIL only): ratio bars per mesh and mip, and crops across each method's worst seam.

:func:`seam_figure` returns uint8 [H, W, 3]. Top: for every mesh, grouped bars of seam RMS / interior RMS at mip
levels 0..3 (one colour per method) with the 1.2x target as a red line. Bottom: for every mesh, one pair of crops per
method, around the midpoint of that method's worst seam edge (largest mip-0 error): left = side 0 in its texture,
right = side 1, 24 x 24 level-0 texels each, magnified 4x, the seam segment drawn in yellow.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

COLORS = [(52, 101, 164), (204, 121, 0), (115, 160, 60), (150, 80, 160), (90, 90, 90)]
_CROP, _ZOOM = 24, 4


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
    crops_h = len(figures) * (side + 36)
    height = legend_h + chart_h + 10 + crops_h
    canvas = Image.new("RGB", (int(width), int(height)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for index, method in enumerate(methods):
        draw.rectangle([10 + 140 * index, 5, 22 + 140 * index, 15], fill=COLORS[index % len(COLORS)])
        draw.text((26 + 140 * index, 4), method, fill=(0, 0, 0), font=font)
    draw.text((10 + 140 * len(methods), 4), "red line: 1.2x target", fill=(220, 0, 0), font=font)
    for index, (name, entry) in enumerate(figures.items()):
        reports = {m: entry[m][0] for m in methods}
        _bars(draw, 10 + index * chart_w, legend_h, chart_w - 20, chart_h, f"{name}: seam RMS / interior RMS",
              reports, methods)
    y = legend_h + chart_h + 10
    for name, entry in figures.items():
        _mesh, seams = entry["_mesh"]
        draw.text((10, y), f"{name}: worst seam of each method (left: side 0, right: side 1; mip 0)", fill=(0, 0, 0),
                  font=font)
        for index, method in enumerate(methods):
            report, textures = entry[method]
            x = 10 + index * (pair + 14)
            draw.text((x, y + 14), method, fill=(0, 0, 0), font=font)
            if len(seams) == 0:
                continue
            worst = int(np.argmax(report.edge_errors[0]))
            for k in range(2):
                image = textures[int(seams.materials[worst, k])]
                crop = _crop(image, seams.uvs[worst, k, 0], seams.uvs[worst, k, 1])
                canvas.paste(Image.fromarray(crop), (x + k * (side + 6), y + 28))
        y += side + 36
    return np.asarray(canvas)
