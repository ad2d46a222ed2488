"""Train csdtex's built-in tiny prior from a seed: synthetic data -> pixel diffusion model -> diffusers folder.

What it does (all outputs go to ``--out``, default ``assets/priors/tiny``):

1. Data: ``--images`` captioned 64x64 renders from :func:`csdtex.synthetic.generate_dataset` (split ``train``), or the
   shard in ``--data-cache`` when it exists (written there after generating otherwise). Optionally ``--eval-images``
   renders of the disjoint ``test`` split for a held-out loss.
2. Model: :func:`csdtex.guidance.tiny_prior.build_tiny_prior` (UNet + T5 text encoder + word tokenizer + DDPM
   cosine schedule), trained jointly (UNet and text encoder) with AdamW, linear warm-up then cosine decay to 10% of
   ``--lr``, gradient clipping at 1, an EMA of the weights (``--ema``, 0 = off), bf16 autocast on CUDA. Loss: MSE
   between the true and predicted noise (epsilon prediction) at t uniform in [0, 1000). Captions: the data already
   has ~15% empty captions; ``--caption-dropout`` empties a further share at train time, ``--unk-noun`` replaces the
   shape word by ``<unk>`` in a share of captions (so prompts about unknown objects, e.g. "a red vase", still work),
   and random horizontal flips (label-preserving: they keep every view word and pattern word true) augment images.
3. Stops at ``--steps`` or when the wall clock since start (data generation included) reaches
   ``--time-limit-minutes`` minus ``--reserve-seconds`` (kept for saving, sampling and the README); the cosine
   schedule's horizon is re-estimated from the measured step time so the decay ends when time runs out.
4. Writes the EMA weights as a diffusers folder (safetensors; loadable with ``csdtex.guidance.load_prior_from_folder``),
   ``loss_curve.png`` (drawn with PIL), ``samples.png`` (DDIM with classifier-free guidance, one row per prompt),
   ``data_examples.png``, ``training.json`` (full record) and ``README.md`` (model card with the training record:
   command, data size, steps, timings). Every ``--checkpoint-every`` steps the folder is rewritten with the current
   EMA weights, and with ``--state`` a resumable training state is saved (``--resume`` continues from it).

Examples::

    # the shipped model: one H100, 470 s in all (56 s of data with 8 render processes, 8775 CUDA-graph steps)
    python benchmarks/train_prior.py --device cuda --out assets/priors/tiny --images 200000 --time-limit-minutes 8.75
    # CPU smoke test (well under a minute)
    python benchmarks/train_prior.py --out out/tiny_smoke --device cpu --images 256 --steps 20 --batch 16

On CUDA the data is rendered by ``--data-workers`` processes (chunks of one deterministic dataset, identical to a
single-process render) and every training step after three warm-up steps is the replay of one captured CUDA graph
(``--no-cuda-graph`` to run eagerly): the model is so small that eager PyTorch spends most of a step launching
kernels (measured on an H100 at batch 256 by ``benchmarks/train_step_profile.py``: 83-118 ms/step eagerly, ~35 ms of
it GPU work; 39.6 ms/step as a graph).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from csdtex import synthetic  # noqa: E402
from csdtex.fileio import atomic_path, write_text_atomic  # noqa: E402
from csdtex.guidance import tiny_prior  # noqa: E402

DEFAULT_SAMPLE_PROMPTS: tuple[str, ...] = (
    "a solid red sphere, front view",
    "a blue and yellow striped box, side view",
    "a cylinder with black and white horizontal stripes, front view",
    "a green and white checkered object, side view",
    "a pink cone with black dots, front view",
    "a torus with an orange to blue gradient, overhead view",
    "an object with a red top and a cyan bottom, side view",
    "a yellow and black checkered torus, side view",
    "a solid purple sphere, front view",
    "",
)
"""Prompts of the sample grid; "a yellow and black checkered torus" and "a solid purple sphere" are held-out
combinations (never in the training split); "" is the unconditional model."""


SAVE_DTYPES = {"float16": torch.float16, "float32": torch.float32}

# ======================================================================================================================
# Arguments
# ======================================================================================================================


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring); ``None`` values are resolved per device in :func:`main`."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="assets/priors/tiny", help="output folder (diffusers layout + README + PNGs)")
    p.add_argument("--images", type=int, default=100_000, help="training images to generate")
    p.add_argument("--eval-images", type=int, default=512,
                   help="images of the 'test' split for a held-out loss (0 = none)")
    p.add_argument("--steps", type=int, default=1_000_000,
                   help="maximum optimizer steps (the time limit usually stops first)")
    p.add_argument("--batch", type=int, default=None, help="images per step (default 256 on CUDA, 16 on CPU)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=500, help="linear warm-up steps (capped at 10%% of the horizon)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights (0 = save the raw weights)")
    p.add_argument("--caption-dropout", type=float, default=0.05, help="extra share of captions emptied at train time")
    p.add_argument("--unk-noun", type=float, default=0.1, help="share of captions whose shape word becomes <unk>")
    p.add_argument("--no-flip", action="store_true", help="disable random horizontal flips")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initialization and the batches")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--time-limit-minutes", type=float, default=14.0, help="wall-clock budget of the whole run")
    p.add_argument("--reserve-seconds", type=float, default=None,
                   help="time kept for the final outputs (default 60 on CUDA, 5 on CPU)")
    p.add_argument("--data-cache", default=None,
                   help=".npz shard of the training data: loaded if it exists, else written")
    p.add_argument("--render-batch", type=int, default=None, help="views per rasterization call while generating data")
    p.add_argument("--data-workers", type=int, default=None,
                   help="processes rendering the training data (default 8 on CUDA, 1 on CPU)")
    p.add_argument("--checkpoint-every", type=int, default=2000,
                   help="rewrite --out with the EMA weights every N steps (0 = only at the end)")
    p.add_argument("--state", default=None, help="path of a resumable training state (written at checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue from --state")
    p.add_argument("--save-dtype", choices=sorted(SAVE_DTYPES), default="float16",
                   help="dtype of the saved weights (float16 halves the folder; csdtex upcasts on load as needed)")
    p.add_argument("--no-cuda-graph", action="store_true",
                   help="run CUDA training steps eagerly instead of replaying one captured CUDA graph")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet (CUDA; costs ~1 minute of compilation)")
    p.add_argument("--sample-steps", type=int, default=None,
                   help="DDIM steps of the sample grid (default 50 on CUDA, 8 on CPU)")
    p.add_argument("--samples-per-prompt", type=int, default=None,
                   help="sample-grid columns (default 6 on CUDA, 1 on CPU)")
    p.add_argument("--guidance-scale", type=float, default=4.0, help="classifier-free guidance scale of the samples")
    p.add_argument("--log-every", type=int, default=50, help="progress line every N steps")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


# ======================================================================================================================
# Small helpers: schedule, EMA, drawing
# ======================================================================================================================


def learning_rate(step: int, horizon: int, peak: float, warmup: int, final_ratio: float = 0.1) -> float:
    """Linear warm-up over ``min(warmup, horizon // 10)`` steps, then cosine from ``peak`` to ``final_ratio * peak``
    at step ``horizon`` (constant after)."""
    warmup = max(1, min(warmup, horizon // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    return peak * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema_modules: Sequence[torch.nn.Module], modules: Sequence[torch.nn.Module], decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * live`` for every parameter (buffers copied)."""
    ema_params, live_params = [], []
    for ema, live in zip(ema_modules, modules):
        ema_params += list(ema.parameters())
        live_params += [p.detach() for p in live.parameters()]
        for eb, lb in zip(ema.buffers(), live.buffers()):
            eb.copy_(lb)
    torch._foreach_lerp_(ema_params, live_params, 1.0 - decay)


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


# ======================================================================================================================
# Data
# ======================================================================================================================


def _render_chunk(job: tuple[int, int, int, str, str, int | None]) -> tuple[int, np.ndarray, list[str]]:
    """Worker of :func:`generate_parallel`: images ``[first, first + count)`` of ``split`` (seed ``seed``)."""
    first, count, seed, split, device, render_batch = job
    torch.set_num_threads(1)
    images, captions, _ = synthetic.generate_dataset(
        count, seed=seed, device=device, batch=render_batch, split=split, first_image=first
    )
    return first, images, captions


def generate_parallel(
    count: int, seed: int, split: str, device: torch.device, render_batch: int | None, workers: int, verbose: bool
) -> tuple[np.ndarray, list[str]]:
    """Images uint8 [count, 64, 64, 3] and captions of ``split``, rendered in chunks by ``workers`` processes (all on
    ``device``; several processes keep one GPU busy because data generation is bound by per-object Python work).
    The result is identical to one :func:`csdtex.synthetic.generate_dataset` call: chunks are slices of the dataset."""
    views = 4  # synthetic.generate_dataset's views_per_object
    if workers <= 1 or count < 64 * views:
        images, captions, _ = synthetic.generate_dataset(
            count, seed=seed, device=device, batch=render_batch, split=split, progress=verbose
        )
        return images, captions
    import multiprocessing

    chunk = max(views, -(-count // (workers * 6)) // views * views)  # ~6 chunks per worker balances the load
    jobs = [(first, min(chunk, count - first), seed, split, str(device), render_batch)
            for first in range(0, count, chunk)]  # fmt: skip
    images = np.zeros((count, 64, 64, 3), dtype=np.uint8)
    captions: list[str] = [""] * count
    done = 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for first, chunk_images, chunk_captions in pool.imap_unordered(_render_chunk, jobs):
            images[first : first + len(chunk_images)] = chunk_images
            captions[first : first + len(chunk_captions)] = chunk_captions
            done += len(chunk_images)
            if verbose:
                print(f"  synthetic data: {done}/{count} images", flush=True)
    return images, captions


def load_or_generate(
    count: int, seed: int, split: str, device: torch.device, cache: str | None, render_batch: int | None,
    verbose: bool, workers: int = 1,
) -> tuple[np.ndarray, list[str], dict]:
    """Images uint8 [N, 64, 64, 3] and captions of ``split``, from ``cache`` (if it exists and holds ``count`` images)
    or freshly generated by ``workers`` processes (then written to ``cache``). Returns (images, captions, info) with
    timing info."""
    start = time.perf_counter()
    if cache and Path(cache).is_file():
        images, captions, _ = synthetic.load_shard(cache, with_metadata=False)
        if len(images) >= count:
            info = {"source": str(cache), "seconds": round(time.perf_counter() - start, 2), "images": count}
            return images[:count], captions[:count], info
        if verbose:
            print(f"{cache} holds {len(images)} images, fewer than {count}: regenerating", flush=True)
    images, captions = generate_parallel(count, seed, split, device, render_batch, workers, verbose)
    seconds = time.perf_counter() - start
    info = {"source": "generated", "seconds": round(seconds, 2), "images": count, "workers": workers,
            "images_per_second": round(count / max(seconds, 1e-9), 1)}  # fmt: skip
    if cache:
        synthetic.save_shard(cache, images, captions)
        info["cache"] = str(cache)
    return images, captions, info


class CaptionTable:
    """Token ids of every distinct caption (tokenized once), plus the variants used for augmentation.

    Attributes (on ``device``):
        ids, mask: int64 [U, 77] token ids / attention masks of the U distinct captions.
        ids_unk: int64 [U, 77], ``ids`` with every shape word (and "object") replaced by ``<unk>``.
        index: int64 [N], distinct-caption row of every image.
        empty: int, the row of the empty caption ``""``.
    """

    def __init__(self, tokenizer, captions: Sequence[str], device: torch.device) -> None:
        distinct, inverse = np.unique(np.asarray(list(captions) + [""], dtype=np.str_), return_inverse=True)
        ids, mask = tiny_prior.tokenize(tokenizer, [str(c) for c in distinct])
        noun_ids = tokenizer.convert_tokens_to_ids(["\u2581" + w for w in synthetic.SHAPES + (synthetic.GENERIC_NOUN,)])
        is_noun = torch.isin(ids, torch.tensor(noun_ids))
        self.ids = ids.to(device)
        self.mask = mask.to(device)
        self.ids_unk = torch.where(is_noun, tokenizer.unk_token_id, ids).to(device)
        self.index = torch.as_tensor(inverse[:-1], dtype=torch.long, device=device)
        self.empty = int(inverse[-1])

    def batch(
        self, rows: torch.Tensor, dropout: float, unk: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) int64 [B, 77] for images ``rows`` with train-time caption dropout / unknown-noun replacement."""
        caption = self.index[rows]
        u = torch.rand(rows.shape[0], generator=generator, device=rows.device)
        caption = torch.where(u < dropout, torch.full_like(caption, self.empty), caption)
        use_unk = ((u >= dropout) & (u < dropout + unk)).unsqueeze(-1)
        ids = torch.where(use_unk, self.ids_unk[caption], self.ids[caption])
        return ids, self.mask[caption]


def images_to_model(images_u8: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1]; rows where ``flip`` (bool [B]) is True are mirrored."""
    x = images_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


@torch.no_grad()
def heldout_loss(
    unet, text_encoder, images: torch.Tensor, table: CaptionTable, alphas_cumprod: torch.Tensor, seed: int,
    batch: int, autocast,
) -> float:
    """Mean epsilon-MSE on fixed images / noise / timesteps (stratified over [0, T)): comparable across checkpoints."""
    generator = torch.Generator(device=images.device).manual_seed(seed + 12345)
    n, total = images.shape[0], 0.0
    steps = alphas_cumprod.shape[0]
    training = (unet.training, text_encoder.training)
    unet.eval(), text_encoder.eval()
    for start in range(0, n, batch):
        rows = torch.arange(start, min(n, start + batch), device=images.device)
        x = images_to_model(images[rows])
        t = ((rows * steps) // n).long()
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x + (1 - a).sqrt() * noise
        ids, mask = table.ids[table.index[rows]], table.mask[table.index[rows]]
        with autocast:
            text = text_encoder(ids, attention_mask=mask)[0]
            eps = unet(x_t, t, encoder_hidden_states=text).sample
        total += F.mse_loss(eps.float(), noise, reduction="sum").item() / noise[0].numel()
    unet.train(training[0]), text_encoder.train(training[1])
    return total / max(n, 1)


def _export(
    components: tiny_prior.TinyPriorComponents, unet, text_encoder, dtype: torch.dtype = torch.float32
) -> tiny_prior.TinyPriorComponents:
    """CPU copies in ``dtype`` (standard memory format) of the given modules, packaged with the tokenizer /
    scheduler."""
    def plain(module):
        return copy.deepcopy(module).to(dtype).cpu().to(memory_format=torch.contiguous_format).eval()

    return tiny_prior.TinyPriorComponents(
        unet=plain(unet), text_encoder=plain(text_encoder), tokenizer=components.tokenizer,
        scheduler=components.scheduler, config=components.config,
    )  # fmt: skip


# ======================================================================================================================
# README
# ======================================================================================================================


def readme_text(record: dict[str, Any]) -> str:
    """The model card written to ``<out>/README.md`` from the training record (see :func:`main`)."""
    cfg = record["model"]["config"]
    colors = ", ".join(f"{name} {tuple(round(v, 2) for v in rgb)}" for name, rgb in synthetic.COLORS.items())
    held = "; ".join(
        " x ".join(x if x is not None else "any" for x in combo) for combo in synthetic.HELD_OUT_COMBOS
    )
    t = record["training"]
    d = record["data"]
    lines = [
        "# csdtex built-in tiny prior",
        "",
        "A small pixel-space text-to-image diffusion model (DeepFloyd-IF-stage-I folder layout, 64x64 RGB) trained",
        "from scratch on csdtex's synthetic renders (`csdtex/synthetic.py`), so that `csdtex paint` works without",
        "downloading a model. It knows only the words below; it is a guidance prior for flat colours and simple",
        "patterns, not a general image model.",
        "",
        "## Files",
        "",
        "- `unet/`, `text_encoder/`, `tokenizer/`, `scheduler/`, `model_index.json`: the diffusers folder (safetensors,"
        f" {record['model']['weight_bytes'] / 1e6:.1f} MB of weights in all; EMA weights). Load with"
        " `csdtex.guidance.load_prior_from_folder(folder)`.",
        "- `tiny_prior_config.json`: the `TinyPriorConfig` it was built from.",
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
        f"{len(synthetic.VOCABULARY)} words, one token each (anything else becomes `<unk>`):"
        f" {' '.join(f'`{w}`' for w in synthetic.VOCABULARY)}.",
        "",
        f"- Colours: {colors}.",
        f"- Patterns: {', '.join(synthetic.PATTERNS)}; stripes {', '.join(synthetic.STRIPE_DIRECTIONS)}.",
        f"- Shapes: {', '.join(synthetic.SHAPES)} (or `object`).",
        "- Caption forms: `a red sphere`, `a solid red sphere`, `a red and blue striped box`, `a box with red and blue"
        " vertical stripes`, `a red and blue checkered cone`, `a cone with a red and blue checkerboard pattern`,"
        " `a red torus with blue dots`, `a red and blue dotted torus`, `a cylinder with a red to blue gradient` (red"
        " at the top), `a red to blue gradient cylinder`, `a capsule with a red top and a blue bottom`, `a capsule"
        " that is red on top and blue on the bottom`; optionally followed by `, front view` / `, side view` /"
        " `, back view` / `, overhead view` (DESIGN.md's rule). ~15% of the training captions are empty.",
        f"- Held out of the training split (for the fidelity benchmark): {held}.",
        "",
        "## Training record",
        "",
        f"- Command: `{record['command']}`",
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


# ======================================================================================================================
# Main
# ======================================================================================================================


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    return device


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the training (see the module docstring) and return the record also written to ``training.json``."""
    t_start = time.perf_counter()
    args = parse_args(argv)
    device = _resolve_device(args.device)
    cuda = device.type == "cuda"
    verbose = not args.quiet
    batch = args.batch or (256 if cuda else 16)
    reserve = args.reserve_seconds if args.reserve_seconds is not None else (60.0 if cuda else 5.0)
    sample_steps = args.sample_steps or (50 if cuda else 8)
    per_prompt = args.samples_per_prompt or (6 if cuda else 1)
    deadline = t_start + 60.0 * args.time_limit_minutes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    def log(message: str) -> None:
        if verbose:
            print(f"[{time.perf_counter() - t_start:7.1f}s] {message}", flush=True)

    # ---------------------------------------------------------------------------------------------------------- data
    # The held-out images first: on CUDA this also builds the nvdiffrast plugin once, before the workers start.
    eval_info = None
    eval_np = None
    if args.eval_images > 0:
        eval_np, eval_captions, eval_info = load_or_generate(
            args.eval_images, args.seed, "test", device, None, args.render_batch, False
        )
    workers = args.data_workers or (min(8, max(1, (os.cpu_count() or 2) - 2)) if cuda else 1)
    log(f"data: {args.images} training images on {device} ({workers} worker processes)")
    images_np, captions, train_info = load_or_generate(
        args.images, args.seed, "train", device, args.data_cache, args.render_batch, verbose, workers
    )
    log(f"data ready ({train_info['seconds']} s, {train_info['source']})")
    components = tiny_prior.build_tiny_prior(None, seed=args.seed)
    table = CaptionTable(components.tokenizer, captions, device)
    images = torch.as_tensor(images_np).to(device)
    if eval_np is not None:
        eval_table = CaptionTable(components.tokenizer, eval_captions, device)
        eval_images = torch.as_tensor(eval_np).to(device)

    # --------------------------------------------------------------------------------------------------------- model
    unet, text_encoder = components.unet.to(device).train(), components.text_encoder.to(device).train()
    if cuda:
        unet.to(memory_format=torch.channels_last)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    # On CUDA the whole step (batch sampling, forward, backward, clipping, AdamW) is captured once as a CUDA graph
    # and replayed: the model is so small that eager PyTorch is bound by Python and kernel launches (measured on an
    # H100: ~35 ms of GPU work per batch-256 step took 83-118 ms of wall time eagerly). The learning rate is then a
    # device tensor that the capturable fused AdamW reads at every replay.
    graphed = cuda and not args.no_cuda_graph and not args.compile
    optimizer = torch.optim.AdamW(
        params, lr=torch.tensor(args.lr, device=device) if graphed else args.lr, betas=(0.9, 0.99),
        weight_decay=args.weight_decay, fused=cuda, capturable=graphed,
    )  # fmt: skip
    use_ema = args.ema > 0
    ema_unet = copy.deepcopy(unet).eval().requires_grad_(False) if use_ema else unet
    ema_text = copy.deepcopy(text_encoder).eval().requires_grad_(False) if use_ema else text_encoder
    alphas_cumprod = components.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    num_timesteps = alphas_cumprod.shape[0]
    forward_unet = torch.compile(unet) if args.compile else unet
    # No autocast weight cache: a CUDA graph must recompute the casts of the updated weights at every replay.
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False) if cuda
        else torch.autocast("cpu", enabled=False)
    )  # fmt: skip

    step = 0
    losses: list[float] = []
    eval_losses: list[tuple[int, float]] = []
    if args.resume:
        if not args.state or not Path(args.state).is_file():
            raise SystemExit("--resume needs an existing --state file")
        state = torch.load(args.state, map_location=device, weights_only=True)
        unet.load_state_dict(state["unet"]), text_encoder.load_state_dict(state["text_encoder"])
        if use_ema:
            ema_unet.load_state_dict(state["ema_unet"]), ema_text.load_state_dict(state["ema_text_encoder"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
        eval_losses = [(int(s), float(v)) for s, v in state.get("eval_losses", [])]
        log(f"resumed from {args.state} at step {step}")
    # Eager steps draw from their own generator; graph replays from the default CUDA generator (graph-safe).
    generator = torch.Generator(device=device).manual_seed(args.seed * 1_000_003 + step)
    if cuda:
        torch.cuda.manual_seed(args.seed * 1_000_003 + step)
    n = images.shape[0]

    def set_learning_rate(value: float) -> None:
        for group in optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(value)
            else:
                group["lr"] = value

    def train_step(gen: torch.Generator | None) -> torch.Tensor:
        """One optimizer step on a fresh random batch (gradients must be None or zero); returns the loss (device)."""
        rows = torch.randint(0, n, (batch,), generator=gen, device=device)
        flip = None if args.no_flip else torch.rand(batch, generator=gen, device=device) < 0.5
        x = images_to_model(images[rows], flip)
        ids, mask = table.batch(rows, args.caption_dropout, args.unk_noun, gen)
        t = torch.randint(0, num_timesteps, (batch,), generator=gen, device=device)
        noise = torch.randn(x.shape, generator=gen, device=device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x + (1 - a).sqrt() * noise
        if cuda:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with autocast:
            text = text_encoder(ids, attention_mask=mask)[0]
            eps = forward_unet(x_t, t, encoder_hidden_states=text).sample
        loss = F.mse_loss(eps.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.detach()

    pending: list[torch.Tensor] = []

    def flush_losses() -> None:
        """Move the losses still on the device into ``losses`` (one host sync for many steps)."""
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    def checkpoint(final: bool) -> None:
        flush_losses()
        exported = _export(components, ema_unet, ema_text, SAVE_DTYPES[args.save_dtype])
        tiny_prior.save_prior_folder(exported, out)
        if args.state and not final:
            state = {
                "step": step, "losses": losses, "eval_losses": eval_losses, "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict(), "optimizer": optimizer.state_dict(),
            }  # fmt: skip
            if use_ema:
                state.update(ema_unet=ema_unet.state_dict(), ema_text_encoder=ema_text.state_dict())
            with atomic_path(args.state) as tmp:
                torch.save(state, tmp)

    # ------------------------------------------------------------------------------------------------------ training
    horizon = args.steps
    t_train = time.perf_counter()
    stopped_by = "steps"
    timing_mark: tuple[int, float] | None = None
    graph: torch.cuda.CUDAGraph | None = None
    static_loss: torch.Tensor | None = None
    warmup_left = 3 if graphed else 0  # eager steps on a side stream before the capture (cuDNN plans, AdamW state)
    side_stream = torch.cuda.Stream(device) if graphed else None
    log(f"training: batch {batch}, lr {args.lr}, {sum(p.numel() for p in params) / 1e6:.2f}M parameters"
        f"{', CUDA graph' if graphed else ''}")  # fmt: skip
    while step < args.steps:
        if time.perf_counter() > deadline - reserve:
            stopped_by = "time limit"
            break
        set_learning_rate(learning_rate(step, horizon, args.lr, args.warmup))
        if graph is not None:
            graph.replay()
            loss = static_loss.clone()
        elif warmup_left > 0:
            side_stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side_stream):
                optimizer.zero_grad(set_to_none=True)
                loss = train_step(None)
            torch.cuda.current_stream(device).wait_stream(side_stream)
            warmup_left -= 1
            if warmup_left == 0:
                try:
                    captured = torch.cuda.CUDAGraph()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.cuda.graph(captured):
                        static_loss = train_step(None)
                    graph = captured
                except Exception as error:  # noqa: BLE001 - any capture failure falls back to eager steps
                    graphed = False
                    log(f"CUDA graph capture failed ({type(error).__name__}: {str(error)[:200]}); training eagerly")
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = train_step(None if graphed else generator)
        if use_ema:
            ema_update([ema_unet, ema_text], [unet, text_encoder], min(args.ema, (1.0 + step) / (10.0 + step)))
        pending.append(loss)
        step += 1
        if len(pending) >= 25 or step == args.steps:
            flush_losses()
        # Re-estimate the schedule horizon from the measured step time (after warm-up / compilation).
        if step in (20, 60, 300, 3000):
            now = time.perf_counter()
            if timing_mark is not None:
                per_step = (now - timing_mark[1]) / (step - timing_mark[0])
                fit = step + int((deadline - reserve - now) / max(per_step, 1e-6))
                horizon = max(step + 1, min(args.steps, fit))
            timing_mark = (step, now)
        if verbose and (step % args.log_every == 0 or step == 1):
            flush_losses()
            recent = losses[-args.log_every :]
            log(f"step {step}/{horizon}  loss {np.mean(recent):.4f}  lr {learning_rate(step - 1, horizon, args.lr, args.warmup):.2e}")
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.steps:
            if eval_np is not None:
                eval_losses.append((step, heldout_loss(ema_unet, ema_text, eval_images, eval_table, alphas_cumprod,
                                                       args.seed, 256, autocast)))  # fmt: skip
            checkpoint(final=False)
            log(f"checkpoint at step {step}" + (f", held-out loss {eval_losses[-1][1]:.4f}" if eval_losses else ""))
    flush_losses()
    if cuda:
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t_train
    log(f"training stopped after {step} steps ({stopped_by})")

    # ------------------------------------------------------------------------------------------------------ outputs
    if eval_np is not None and (not eval_losses or eval_losses[-1][0] != step):
        eval_losses.append(
            (step, heldout_loss(ema_unet, ema_text, eval_images, eval_table, alphas_cumprod, args.seed, 256, autocast))
        )
    checkpoint(final=True)
    exported = tiny_prior.load_components(out, device)  # round trip through the saved files
    t_samples = time.perf_counter()
    prompts = list(DEFAULT_SAMPLE_PROMPTS)
    samples = tiny_prior.sample_images(
        exported, prompts, num_per_prompt=per_prompt, steps=sample_steps, guidance_scale=args.guidance_scale,
        seed=args.seed, device=device,
    )  # fmt: skip
    sample_seconds = time.perf_counter() - t_samples
    image_grid(samples.numpy(), per_prompt, out / "samples.png", row_labels=prompts,
               title=f"DDIM {sample_steps} steps, guidance {args.guidance_scale}")  # fmt: skip
    show = min(32, len(images_np))
    image_grid(images_np[:show], 8, out / "data_examples.png", cell_labels=[c or '""' for c in captions[:show]],
               scale=2, title="training data (first images)")  # fmt: skip
    draw_loss_curve(range(1, len(losses) + 1), losses, out / "loss_curve.png",
                    title=f"tiny prior: epsilon MSE, batch {batch}, {step} steps", eval_points=eval_losses)  # fmt: skip

    import diffusers

    environment = {"device": str(device), "python": platform.python_version(), "torch": torch.__version__,
                   "diffusers": diffusers.__version__}  # fmt: skip
    if cuda:
        environment["device_name"] = torch.cuda.get_device_name(device)
    else:
        environment["device_name"] = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    argv_list = list(sys.argv[1:] if argv is None else argv)
    record: dict[str, Any] = {
        "command": "python benchmarks/train_prior.py " + " ".join(shlex.quote(a) for a in argv_list),
        "args": vars(args),
        "environment": environment,
        "data": {"train": train_info, "eval": eval_info},
        "model": {
            "config": json.loads((out / "tiny_prior_config.json").read_text()),
            "parameters": components.parameter_count(),
            "weight_bytes": tiny_prior.folder_weight_bytes(out),
        },
        "training": {
            "steps": step, "batch": batch, "seconds": round(train_seconds, 1),
            "ms_per_step": round(1000.0 * train_seconds / max(step, 1), 2), "stopped_by": stopped_by,
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
            "eval_losses": eval_losses, "autocast": cuda, "compiled": bool(args.compile),
            "cuda_graph": graph is not None,
            "losses": [round(v, 5) for v in losses],
        },  # fmt: skip
        "samples": {"prompts": prompts, "steps": sample_steps, "guidance_scale": args.guidance_scale,
                    "per_prompt": per_prompt, "seconds": round(sample_seconds, 1)},  # fmt: skip
    }
    record["total_seconds"] = round(time.perf_counter() - t_start, 1)
    write_text_atomic(out / "training.json", json.dumps(record, indent=1) + "\n")
    write_text_atomic(out / "README.md", readme_text(record))
    if record["model"]["weight_bytes"] > tiny_prior.SIZE_LIMIT_BYTES:
        print(f"warning: weights take {record['model']['weight_bytes'] / 1e6:.1f} MB, over the 30 MB budget",
              file=sys.stderr)  # fmt: skip
    log(f"done: {out} ({record['model']['weight_bytes'] / 1e6:.1f} MB of weights, total {record['total_seconds']} s)")
    return record


if __name__ == "__main__":
    main()
