"""The training record of the built-in prior as pictures and text: loss curve, image grids, model card.

Used by ``benchmarks/train_prior.py`` to write ``loss_curve.png``, ``samples.png``, ``data_examples.png`` and the
``README.md`` model card of a trained prior folder. Drawn with PIL (matplotlib is not a dependency); every file is
written atomically.

Public API: :func:`draw_loss_curve`, :func:`image_grid`, :func:`readme_text`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csdtex.fileio import atomic_path
from csdtex.tinyprior.synthetic import HELD_OUT_COMBOS
from csdtex.tinyprior.vocabulary import (
    COLORS,
    PATTERNS,
    PATTERNS_V2,
    SHAPE_NOUNS_V2,
    SHAPES,
    STRIPE_DIRECTIONS,
    VOCABULARY,
    VOCABULARY_V2,
)


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    path: str | os.PathLike,
    title: str = "training loss",
    eval_points: Sequence[tuple[int, float]] = (),
    size: tuple[int, int] = (800, 480),
) -> Path:
    """Plot a loss curve with PIL (matplotlib is not a dependency): log-scale y, raw values in light grey, a moving
    average (window ~2% of the run) in blue, optional held-out points as red dots. Writes a PNG atomically.

    Args:
        steps, losses: per-step training loss (equal lengths; non-positive or non-finite values are skipped).
        path: output PNG.
        eval_points: (step, loss) pairs of a held-out loss.
    """
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 70, 20, 36, 48
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = _font(12)
    pairs = [(int(s), float(v)) for s, v in zip(steps, losses) if math.isfinite(v) and v > 0]
    values = [v for _, v in pairs] + [v for _, v in eval_points if math.isfinite(v) and v > 0]
    draw.text((left, 10), title, fill="black", font=_font(14))
    if not pairs:
        draw.text((left, height // 2), "no data", fill="black", font=font)
        with atomic_path(path) as tmp:
            image.save(tmp)
        return Path(path)
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 0.3:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.15, mid + 0.15
    lo, hi = math.floor(lo * 4) / 4, math.ceil(hi * 4) / 4
    first, last = pairs[0][0], max(pairs[-1][0], pairs[0][0] + 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        x = left + (width - left - right) * (step - first) / (last - first)
        y = top + (height - top - bottom) * (hi - math.log10(value)) / (hi - lo)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    decades = range(int(math.floor(lo)), int(math.ceil(hi)) + 1)
    ticks = [m * 10.0**k for k in decades for m in (1, 2, 5) if lo <= math.log10(m * 10.0**k) <= hi]
    if len(ticks) < 4:
        ticks = [m * 10.0**k for k in decades for m in range(1, 10) if lo <= math.log10(m * 10.0**k) <= hi]
    for value in ticks:
        _, y = xy(first, value)
        draw.line([left, y, width - right, y], fill=(225, 225, 225))
        draw.text((6, y - 7), f"{value:.3g}", fill="black", font=font)
    for i in range(6):
        step = first + (last - first) * i / 5
        x, _ = xy(step, 10.0**hi)
        draw.line([x, height - bottom, x, height - bottom + 4], fill="black")
        draw.text((x - 14, height - bottom + 8), f"{int(round(step))}", fill="black", font=font)
    draw.text(((width - left) // 2, height - 18), "step", fill="black", font=font)
    draw.line([xy(s, v) for s, v in pairs] if len(pairs) > 1 else [xy(*pairs[0])] * 2, fill=(200, 200, 200))
    window = max(1, len(pairs) // 50)
    raw = np.array([v for _, v in pairs])
    kernel = np.ones(window) / window
    smooth = np.convolve(raw, kernel, mode="valid")
    smooth_steps = [s for s, _ in pairs][window - 1 :]
    if len(smooth) > 1:
        draw.line([xy(s, v) for s, v in zip(smooth_steps, smooth)], fill=(30, 80, 200), width=2)
    for s, v in eval_points:
        if math.isfinite(v) and v > 0:
            x, y = xy(s, v)
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(210, 40, 40))
    legend = f"grey: per step, blue: moving average of {window}" + (", red: held-out loss" if eval_points else "")
    draw.text((width - right - 8 - draw.textlength(legend, font=font), top + 6), legend, fill="black", font=font)
    with atomic_path(path) as tmp:
        image.save(tmp)
    return Path(path)


def image_grid(
    images: np.ndarray,
    columns: int,
    path: str | os.PathLike,
    row_labels: Sequence[str] | None = None,
    cell_labels: Sequence[str] | None = None,
    scale: int = 2,
    title: str | None = None,
) -> Path:
    """Save uint8 [N, H, W, 3] images as a PNG grid (row-major, ``columns`` per row), each upscaled ``scale`` times
    (nearest), with an optional label left of every row and/or a small label under every cell."""
    from PIL import Image, ImageDraw

    images = np.asarray(images)
    n, h, w = images.shape[:3]
    rows = max(1, -(-n // columns))
    font = _font(12)
    label_w = 330 if row_labels else 0
    cell_h = h * scale + (44 if cell_labels else 4)
    head = 26 if title else 4
    canvas = Image.new("RGB", (label_w + columns * (w * scale + 4) + 4, head + rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 6), title, fill="black", font=_font(14))
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = label_w + 4 + c * (w * scale + 4), head + r * cell_h
        cell = Image.fromarray(images[i]).resize((w * scale, h * scale), Image.NEAREST)
        canvas.paste(cell, (x, y))
        if cell_labels:
            _wrapped(draw, cell_labels[i], x, y + h * scale + 2, w * scale, font, max_lines=3)
    if row_labels:
        for r, label in enumerate(row_labels[:rows]):
            _wrapped(draw, label or '"" (unconditional)', 6, head + r * cell_h + 4, label_w - 12, font, max_lines=4)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return Path(path)


def _wrapped(draw, text: str, x: int, y: int, width: int, font, max_lines: int) -> None:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    for k, line in enumerate(lines[:max_lines]):
        draw.text((x, y + 13 * k), line, fill="black", font=font)




def _init_from_line(init: dict[str, Any]) -> str:
    """The model card's line for a fine-tuned prior (``train_prior.py --init-from``): where it started, how that
    was trained (when its record says) and the words that started random."""
    source = (f"trained by `{init['source_command']}`, {init['source_seconds']} s in all" if init.get("source_command")
              and init.get("source_seconds") is not None else "its training time not recorded")
    new_words = " ".join(piece.lstrip("\u2581") for piece in init["new_tokens"]) or "none"
    trained = (" Only the new words' embeddings trained: every other weight is the source's, bit for bit, so a prompt"
               " of words it knew gives exactly its outputs." if init.get("trained") == "new word embeddings only"
               else "")
    return (f"- Started from `{init['folder']}` (its weights; {source}), so the time from a seed is the two runs'"
            f" totals together; words it did not know start random: {new_words}.{trained}")


def readme_text(record: dict[str, Any]) -> str:
    """The model card written to ``<out>/README.md`` from the training record (see :func:`main`)."""
    cfg = record["model"]["config"]
    data_version = int(record.get("args", {}).get("data_version", 1) or 1)
    colors = ", ".join(f"{name} {tuple(round(v, 2) for v in rgb)}" for name, rgb in COLORS.items())
    combos, vocabulary, patterns, shapes = HELD_OUT_COMBOS, VOCABULARY, PATTERNS, SHAPES
    if data_version == 2:
        from csdtex.tinyprior.synthetic_v2 import HELD_OUT_COMBOS_V2

        combos, vocabulary, patterns, shapes = HELD_OUT_COMBOS_V2, VOCABULARY_V2, PATTERNS_V2, SHAPES + SHAPE_NOUNS_V2
    elif data_version == 3:
        from csdtex.tinyprior.vocabulary import patterns_for, vocabulary_for

        vocabulary, patterns = vocabulary_for(3), patterns_for(3)
    held = "; ".join(
        " x ".join(x if x is not None else "any" for x in combo) for combo in combos
    )
    t = record["training"]
    d = record["data"]
    lines = [
        "# csdtex built-in tiny prior",
        "",
        "A small pixel-space text-to-image diffusion model (DeepFloyd-IF-stage-I folder layout, 64x64 RGB) trained",
        "from scratch on csdtex's synthetic renders (`csdtex/tinyprior/`), so that `csdtex paint` works without",
        "downloading a model. It knows only the words below; it is a guidance prior for flat colours and simple",
        "patterns, not a general image model.",
        "",
        "## Files",
        "",
        "- `unet/`, `text_encoder/`, `tokenizer/`, `scheduler/`, `model_index.json`: the diffusers folder (safetensors,"
        f" {record['model']['weight_bytes'] / 1e6:.1f} MB of weights in all; EMA weights). Load with"
        " `csdtex.guidance.load_prior_from_folder(folder)`.",
        "- `tiny_prior_config.json`: the `TinyPriorConfig` it was built from and its vocabulary (the word list the"
        " paint run checks prompts against).",
        "- `loss_curve.png`, `samples.png`, `data_examples.png`, `training.json`: the training record below.",
        "",
        "## Model",
        "",
        f"- UNet2DConditionModel, {record['model']['parameters']['unet'] / 1e6:.2f}M parameters: widths"
        f" {tuple(cfg['block_out_channels'])} at 64/32/16/8 px, resnets per down block"
        f" {tuple(cfg['layers_per_block'])},"
        " text cross-attention at 8x8 (down, mid, up), attention-pooled text added to the time embedding"
        " (`addition_embed_type=\"text\"`), epsilon prediction, 3 output channels.",
        f"- T5 encoder, {record['model']['parameters']['text_encoder'] / 1e6:.2f}M parameters:"
        f" {cfg['text_layers']} layers, width {cfg['text_width']}, {cfg['text_heads']} heads; prompts padded to 77"
        " tokens.",
        f"- DDPM scheduler: {cfg['num_train_timesteps']} steps, `{cfg['beta_schedule']}` (cosine) betas.",
        "",
        "## Vocabulary",
        "",
        f"{len(vocabulary)} words, one token each (anything else becomes `<unk>`):"
        f" {' '.join(f'`{w}`' for w in vocabulary)}.",
        "",
        f"- Colours: {colors}.",
        f"- Patterns: {', '.join(patterns)}; stripes {', '.join(STRIPE_DIRECTIONS)}.",
        f"- Shapes: {', '.join(shapes)} (or `object`).",
        "- Caption forms: `a red sphere`, `a solid red sphere`, `a red and blue striped box`, `a box with red and blue"
        " vertical stripes`, `a red and blue checkered cone`, `a cone with a red and blue checkerboard pattern`,"
        " `a red torus with blue dots`, `a red and blue dotted torus`, `a cylinder with a red to blue gradient` (red"
        " at the top), `a red to blue gradient cylinder`, `a capsule with a red top and a blue bottom`, `a capsule"
        " that is red on top and blue on the bottom`; optionally followed by `, front view` / `, side view` /"
        " `, back view` / `, overhead view` (the rule of `docs/design.md`). ~15% of the training captions are"
        " empty.",
        *([
            ("- Data version 2 (issue #15) adds: `a brown wooden box`, `a box made of brown wood`, `a white marble"
             " vase`, `a red brick table`, `a green camouflage creature`, `blue dots on a red cup`, `a tube with a blue"
             " bottom and a red top`, `a bowl with a blue to red gradient from bottom to top`, `vertical red and blue"
             " stripes on a chair`; multi-part shape families (`csdtex/tinyprior/shapes_v2.py`), patterns scaled to"
             " each part's size, contrasting pairs of role-swapped textures."),
        ] if data_version == 2 else []),
        *([
            ("- Data version 3 (issue #15): version 1's data, with 15% of the objects painted with a material instead"
             " and captioned `a brown wooden box`, `a box made of brown wood`, `a white marble vase`, `a red brick"
             " cone`, `a green camouflage torus`, ... (`csdtex.tinyprior.synthetic.draw_material_spec`)."),
        ] if data_version == 3 else []),
        f"- Held out of the training split (for the fidelity benchmark): {held}.",
        "",
        "## Training record",
        "",
        f"- Command: `{record['command']}`",
        *([_init_from_line(record["init_from"])] if record.get("init_from") else []),
        f"- Machine: {record['environment'].get('device_name', record['environment']['device'])};"
        f" torch {record['environment']['torch']}, diffusers {record['environment']['diffusers']}.",
        f"- Data: {d['train']['images']} training images (seed {record['args']['seed']}, split `train`,"
        f" {d['train']['source']}, {d['train']['seconds']} s"
        + (f", {d['train']['images_per_second']} images/s" if "images_per_second" in d["train"] else "")
        + ")"
        + (f"; {d['eval']['images']} held-out `test` images" if d.get("eval") else "")
        + ".",
        f"- Steps: {t['steps']} at batch {t['batch']} ({t['steps'] * t['batch'] / max(1, d['train']['images']):.1f}"
        f" epochs), AdamW lr {record['args']['lr']} (warm-up, cosine to 10%), EMA {record['args']['ema']},"
        f" caption dropout +{record['args']['caption_dropout']}, unknown-noun {record['args']['unk_noun']},"
        f" {'bf16 autocast' if t['autocast'] else 'fp32'}"
        + (", the whole step replayed as one CUDA graph" if t.get("cuda_graph") else "")
        + ".",
        f"- Time: data {d['train']['seconds']} s, training {t['seconds']} s ({t['ms_per_step']} ms/step), total"
        f" {record['total_seconds']} s; stopped by {t['stopped_by']}.",
        f"- Loss (epsilon MSE): last-100-step mean {t['final_loss']:.4f}"
        + (f"; held-out {t['eval_losses'][-1][1]:.4f}" if t.get("eval_losses") else "")
        + ".",
        "",
        "![loss curve](loss_curve.png)",
        "",
        f"Samples (EMA weights, DDIM {record['samples']['steps']} steps, guidance scale"
        f" {record['samples']['guidance_scale']}; one row per prompt, the last row unconditional):",
        "",
        "![samples](samples.png)",
        "",
        "Training data examples:",
        "",
        "![data examples](data_examples.png)",
        "",
        "## How well it guides painting",
        "",
        "`benchmarks/fidelity.py` paints 36 prompts x 3 meshes with CSD and SDS and classifies the results with a",
        "separately trained colour / pattern classifier; its results are in `benchmarks/results/fidelity_*.json` and",
        "the README. In short: colours are reliable, simple patterns partly (dots, checkerboards and gradients more",
        "than stripes and top / bottom halves), and anything outside the vocabulary is ignored. Real work wants a",
        "real prior (`--model sd21`, or any local diffusers folder) on a GPU.",
        "",
    ]
    return "\n".join(lines)
