"""Train csdtex's built-in tiny prior from a seed: synthetic data -> pixel diffusion model -> diffusers folder.

What it does (all outputs go to ``--out``, default ``assets/priors/tiny``):

1. Data: ``--images`` captioned 64x64 renders from :func:`csdtex.tinyprior.synthetic.generate_dataset` (split
   ``train``), or the shard in ``--data-cache`` when it exists (written there after generating otherwise). Optionally
   ``--eval-images`` renders of the disjoint ``test`` split for a held-out loss.
2. Model: :func:`csdtex.tinyprior.model.build_tiny_prior` (UNet + T5 text encoder + word tokenizer + DDPM
   cosine schedule), trained jointly (UNet and text encoder) with AdamW, linear warm-up then cosine decay to 10% of
   ``--lr``, gradient clipping at 1, an EMA of the weights (``--ema``, 0 = off), bf16 autocast on CUDA. Loss: MSE
   between the true and predicted noise (epsilon prediction) at t uniform in [0, 1000). Captions: the data already
   has ~15% empty captions; ``--caption-dropout`` empties a further share at train time, ``--unk-noun`` replaces the
   shape word by ``<unk>`` in a share of captions (so prompts about unknown objects, e.g. "a red vase", still work),
   and random horizontal flips (label-preserving: they keep every view word and pattern word true) augment images.
3. Stops at ``--steps`` or when the wall clock since start (data generation included) reaches
   ``--time-limit-minutes`` minus ``--reserve-seconds`` (kept for saving, sampling and the README); the cosine
   schedule's horizon is re-estimated from the measured step time so the decay ends when time runs out.
   ``--stop-after-minutes`` splits that budget over several invocations (for machines whose commands may not run the
   whole budget, e.g. 10 minutes of a 15-minute training): the invocation stops early, writes the folder and
   ``--state`` (with the schedule's horizon and the budget used so far), and ``--resume`` continues the same schedule
   until ``--time-limit-minutes`` of training budget are used in all. A resumed invocation counts from the moment its
   data and model are ready: regenerating (or loading) the data again is not training time, and is reported.
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
    # issue #15's data (shape families, materials, word-order captions; its own VOCABULARY_V2 tokenizer)
    python benchmarks/train_prior.py --device cuda --out out/tiny_v2 --images 200000 --time-limit-minutes 9 \
        --data-version 2
    # the shipped prior's data plus material objects (15%: "a brown wooden box"; VOCABULARY_V3 tokenizer)
    python benchmarks/train_prior.py --device cuda --out out/tiny_v3data --images 200000 --time-limit-minutes 8.4 \
        --role-loss 0.1 --arch text_neighbour_bias=4 --data-version 3
    # the shipped prior's recipe (its model card has the exact command): word-order role loss + neighbour init
    python benchmarks/train_prior.py --device cuda --out out/tiny --images 200000 --time-limit-minutes 8.4 \
        --role-loss 0.1 --arch text_neighbour_bias=4
    # a 15-minute training in two commands of at most 10 minutes (the second regenerates the data, uncounted)
    python benchmarks/train_prior.py --device cuda --out out/tiny_15min --images 200000 --time-limit-minutes 15 \
        --stop-after-minutes 8.5 --state out/tiny_15min_state.pt --role-loss 0.1 --arch text_neighbour_bias=4
    python benchmarks/train_prior.py --device cuda --out out/tiny_15min --images 200000 --time-limit-minutes 15 \
        --stop-after-minutes 9 --state out/tiny_15min_state.pt --role-loss 0.1 --arch text_neighbour_bias=4 --resume
    # the shipped prior fine-tuned on version 3's materials (a 30% share) with a lower peak learning rate: its own
    # 449.5 s plus this run's 6 minutes stay within issue #15's 15 minutes from a seed (the model card adds them up)
    python benchmarks/train_prior.py --device cuda --out out/tiny_materials_ft --images 200000 \
        --time-limit-minutes 6 --data-version 3 --material-share 0.3 --role-loss 0.1 --init-from assets/priors/tiny \
        --lr 2e-4

``--init-from FOLDER`` starts from a trained prior instead of random weights (:func:`csdtex.tinyprior.training.
warm_start`): the architecture, UNet and text encoder come from the folder, and the word embeddings are carried by
word, so a data version with a larger vocabulary keeps every known word's meaning and only its new words start
random.

Data versions (``--data-version``, :func:`csdtex.tinyprior.synthetic.generate_dataset`): 1 (default) is the shipped
prior's data; 2 is issue #15's (new shape families, part-scaled patterns, materials, word-order captions, contrasting
pairs); 3 is version 1's data, object for object, in which 15% of the train / test objects
(:data:`csdtex.tinyprior.synthetic.MATERIAL_PROBABILITY_V3`) are repainted with a material (wood, marble, brick,
camouflage) and captioned with its words ("a brown wooden box", "a sphere made of gray marble"), so a prior can learn
the material words without the rest of version 2's distribution. Each version has its own tokenizer vocabulary
(:func:`csdtex.tinyprior.vocabulary.vocabulary_for`), role labels (``--role-loss``) and sample prompts
(:data:`DEFAULT_SAMPLE_PROMPTS`, :data:`DEFAULT_SAMPLE_PROMPTS_V2`, :data:`DEFAULT_SAMPLE_PROMPTS_V3`).

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

from csdtex.devices import resolve_device  # noqa: E402
from csdtex.errors import CsdtexError  # noqa: E402
from csdtex.fileio import atomic_path, write_text_atomic  # noqa: E402
from csdtex.tinyprior import model as tiny_prior  # noqa: E402
from csdtex.tinyprior import synthetic  # noqa: E402
from csdtex.tinyprior.report import draw_loss_curve, image_grid, readme_text  # noqa: E402
from csdtex.tinyprior.training import (  # noqa: E402
    IGNORE_ROLE,
    CaptionTable,
    RoleHead,
    ema_update,
    heldout_loss,
    images_to_model,
    learning_rate,
    role_loss,
    warm_start,
)
from csdtex.tinyprior.vocabulary import DATA_VERSIONS, nouns_for, vocabulary_for  # noqa: E402

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

DEFAULT_SAMPLE_PROMPTS_V2: tuple[str, ...] = (
    "a solid red sphere, front view",
    "a yellow object with black dots, side view",
    "a black object with yellow dots, side view",
    "a table with a red top and a blue bottom, side view",
    "a table with a blue top and a red bottom, side view",
    "a cup with black and white vertical stripes, front view",
    "a cup with black and white horizontal stripes, front view",
    "a vase with an orange to blue gradient, side view",
    "a brown wooden box, front view",
    "a white marble vase, side view",
    "a red brick object, front view",
    "a green camouflage creature, side view",
    "a yellow and black checkered torus, side view",
    "",
)
"""Sample prompts with ``--data-version 2``: word-order pairs (dots, halves, stripe direction), the new nouns and
materials, a held-out combination (checkered torus) and the unconditional model."""

DEFAULT_SAMPLE_PROMPTS_V3: tuple[str, ...] = DEFAULT_SAMPLE_PROMPTS[:-1] + (
    "a brown wooden box, front view",
    "a red brick object, front view",
    "",
)
"""Sample prompts with ``--data-version 3``: version 1's (the unconditional model still last) with two material
prompts on version-1 nouns before it."""

SAMPLE_PROMPTS: dict[int, tuple[str, ...]] = {
    1: DEFAULT_SAMPLE_PROMPTS, 2: DEFAULT_SAMPLE_PROMPTS_V2, 3: DEFAULT_SAMPLE_PROMPTS_V3,
}  # fmt: skip
"""Sample prompts per ``--data-version``."""


SAVE_DTYPES = {"float16": torch.float16, "float32": torch.float32}

# ======================================================================================================================
# Arguments
# ======================================================================================================================


TRAIN_ONLY_CHOICES = ("all", "new-words")
"""``--train-only`` values: every weight, or only the embeddings of the words new to the ``--init-from`` prior."""


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
    p.add_argument("--time-limit-minutes", type=float, default=14.0,
                   help="wall-clock budget of the whole training (over all invocations with --resume)")
    p.add_argument("--stop-after-minutes", type=float, default=None,
                   help="wall-clock limit of this invocation: stop early with --state saved, to --resume later "
                        "(default: --time-limit-minutes)")
    p.add_argument("--reserve-seconds", type=float, default=None,
                   help="time kept for the final outputs (default 60 on CUDA, 5 on CPU)")
    p.add_argument("--data-cache", default=None,
                   help=".npz shard of the training data: loaded if it exists (and was written for this seed, split "
                        "and data version: <cache>.json), else written")
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
    p.add_argument("--arch", action="append", default=[], metavar="FIELD=VALUE",
                   help="architecture change from the default TinyPriorConfig (repeatable; tuples as comma lists), "
                        "e.g. --arch cross_attention_levels=2,3 --arch text_layers=4")
    p.add_argument("--role-loss", type=float, default=0.0,
                   help="weight of the word-order loss: a linear read-out of each colour word's role (base / top vs "
                        "dots / bottom) from the text encoder's states, trained with the prior (0 = off, as shipped)")
    p.add_argument("--data-version", type=int, choices=DATA_VERSIONS, default=1,
                   help="synthetic data version: 1 = the shipped prior's data and vocabulary, 2 = issue #15's shapes, "
                        "materials, role-bearing captions and contrasting pairs (VOCABULARY_V2 tokenizer), 3 = "
                        "version 1's data with 15%% of the objects repainted with a material (wood, marble, brick, "
                        "camouflage) and captioned with its words (VOCABULARY_V3 tokenizer)")
    p.add_argument("--material-share", type=float, default=None, metavar="P",
                   help="--data-version 3 only: probability in [0, 1] that an object is repainted with a material "
                        f"(default {synthetic.MATERIAL_PROBABILITY_V3}); every other object is version 1's, bit for "
                        "bit")
    p.add_argument("--init-from", default=None, metavar="FOLDER",
                   help="start from a trained tiny prior (e.g. assets/priors/tiny) instead of random weights: its "
                        "architecture, UNet and text encoder; words it knows keep their embeddings, new words of "
                        "--data-version's vocabulary start random (fine-tuning; the record names the source)")
    p.add_argument("--train-only", choices=TRAIN_ONLY_CHOICES, default="all",
                   help="which weights train: 'all' (default) or 'new-words' (with --init-from: only the word "
                        "embeddings of the words the source prior did not know; every other weight stays the "
                        "source's bit for bit, so prompts of known words give exactly the source's outputs)")
    p.add_argument("--preserve-weight", type=float, default=0.0, metavar="W",
                   help="with --init-from: add W x the mean squared difference between the model's noise prediction "
                        "and the --init-from prior's (frozen) on every training caption without a new word, so "
                        "fine-tuning on new words keeps what the source did on the old ones (0 = off)")
    args = p.parse_args(argv)
    if args.preserve_weight and args.init_from is None:
        p.error("--preserve-weight needs --init-from (the prior whose predictions are kept)")
    if args.train_only == "new-words" and args.init_from is None:
        p.error("--train-only new-words needs --init-from (the prior whose known words stay as they are)")
    if args.init_from is not None and args.arch:
        p.error("--arch and --init-from exclude each other: the architecture comes from the --init-from folder")
    if args.material_share is not None:
        if args.data_version != 3:
            p.error("--material-share needs --data-version 3 (the only data version with a material share)")
        if not 0.0 <= args.material_share <= 1.0:
            p.error(f"--material-share must be in [0, 1], got {args.material_share}")
    if args.stop_after_minutes is not None and not args.state:
        p.error("--stop-after-minutes needs --state (the training continues from it with --resume)")
    return args


# ======================================================================================================================
# Data
# ======================================================================================================================


def architecture(changes: Sequence[str]) -> tiny_prior.TinyPriorConfig:
    """The default :class:`~csdtex.tinyprior.model.TinyPriorConfig` with ``FIELD=VALUE`` changes (``--arch``): int
    fields take an int, tuple fields a comma-separated list of ints (``cross_attention_levels=2,3``)."""
    import dataclasses

    config = tiny_prior.TinyPriorConfig()
    fields = {f.name for f in dataclasses.fields(config)}
    updates: dict[str, Any] = {}
    for change in changes:
        name, _, value = change.partition("=")
        name = name.strip().replace("-", "_")
        if name not in fields or not value.strip():
            raise SystemExit(f"train_prior.py: error: --arch {change!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(sorted(fields))}")
        current = getattr(config, name)
        try:
            if isinstance(current, tuple):
                updates[name] = tuple(int(v) for v in value.split(",") if v.strip())
            else:
                updates[name] = type(current)(value)
        except ValueError:
            raise SystemExit(f"train_prior.py: error: --arch {change!r}: {value!r} is not a valid "
                             f"{type(current).__name__}") from None
    config = dataclasses.replace(config, **updates)
    try:
        config.unet_kwargs()
    except ValueError as error:
        raise SystemExit(f"train_prior.py: error: --arch: {error}") from None
    return config


def generate_parallel(
    count: int, seed: int, split: str, device: torch.device, render_batch: int | None, workers: int, verbose: bool,
    data_version: int = 1, material_probability: float = synthetic.MATERIAL_PROBABILITY_V3,
) -> tuple[np.ndarray, list[str]]:
    """Images uint8 [count, 64, 64, 3] and captions of ``split``, rendered in chunks by ``workers`` processes (all on
    ``device``), identical to one :func:`csdtex.tinyprior.synthetic.generate_dataset` call
    (:func:`csdtex.tinyprior.synthetic.generate_dataset_parallel`); ``material_probability`` matters for data version
    3 only."""
    images, captions, _ = synthetic.generate_dataset_parallel(
        count, workers, progress=verbose, seed=seed, device=device, batch=render_batch, split=split,
        data_version=data_version, material_probability=material_probability,
    )
    return images, captions


def load_or_generate(
    count: int, seed: int, split: str, device: torch.device, cache: str | None, render_batch: int | None,
    verbose: bool, workers: int = 1, data_version: int = 1, material_probability: float | None = None,
) -> tuple[np.ndarray, list[str], dict]:
    """Images uint8 [N, 64, 64, 3] and captions of ``split``, from ``cache`` (if it exists and holds ``count`` images)
    or freshly generated by ``workers`` processes (then written to ``cache``). Returns (images, captions, info) with
    timing info.

    The cache's identity (seed, split, data version; for version 3 also the material share, ``material_probability``,
    None = :data:`csdtex.tinyprior.synthetic.MATERIAL_PROBABILITY_V3`) is written beside it (``<cache>.json``) and
    checked before it is used: a cache of other data, or one without that record, stops the run with a one-line error
    instead of being trained on silently."""
    start = time.perf_counter()
    identity = {"seed": seed, "split": split, "data_version": data_version}
    if material_probability is None:
        material_probability = synthetic.MATERIAL_PROBABILITY_V3
    if data_version == 3:
        identity["material_probability"] = material_probability
    if cache and Path(cache).is_file():
        check_cache_identity(Path(cache), identity)
        images, captions, _ = synthetic.load_shard(cache, with_metadata=False)
        if len(images) >= count:
            info = {"source": str(cache), "seconds": round(time.perf_counter() - start, 2), "images": count}
            return images[:count], captions[:count], info
        if verbose:
            print(f"{cache} holds {len(images)} images, fewer than {count}: regenerating", flush=True)
    images, captions = generate_parallel(count, seed, split, device, render_batch, workers, verbose, data_version,
                                         material_probability)
    seconds = time.perf_counter() - start
    info = {"source": "generated", "seconds": round(seconds, 2), "images": count, "workers": workers,
            "data_version": data_version, "images_per_second": round(count / max(seconds, 1e-9), 1)}  # fmt: skip
    if data_version == 3:
        info["material_probability"] = material_probability
    if cache:
        written = synthetic.save_shard(cache, images, captions)
        write_text_atomic(cache_identity_path(written), json.dumps(identity))
        info["cache"] = str(cache)
    return images, captions, info


def load_init_source(folder: str) -> tuple[tiny_prior.TinyPriorComponents, dict]:
    """The trained prior in ``folder`` (CPU, float32) for ``--init-from``, and a summary of how it was trained
    (``{"command", "seconds"}`` from its ``training.json``; empty when it has none). A folder that is not a tiny prior
    stops the run with one line."""
    path = Path(folder)
    if not (path / "tiny_prior_config.json").is_file() or not (path / "unet").is_dir():
        raise SystemExit(f"train_prior.py: error: --init-from {folder} is not a readable tiny prior folder (no "
                         "tiny_prior_config.json and unet/ in it): pass a folder written by train_prior.py, e.g. "
                         "assets/priors/tiny")
    try:
        source = tiny_prior.load_components(path, "cpu")
    except Exception as error:  # noqa: BLE001 - any unreadable folder: one line, no traceback
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise SystemExit(f"train_prior.py: error: --init-from {folder} is not a readable tiny prior folder ({reason})"
                         ) from None
    summary: dict = {}
    try:
        record = json.loads((path / "training.json").read_text())
        summary = {"command": record.get("command"), "seconds": record.get("total_seconds")}
    except (OSError, ValueError):
        pass
    return source, summary


def cache_identity_path(cache: Path) -> Path:
    """Where the identity of the ``--data-cache`` shard ``cache`` is recorded: ``<cache>.json``."""
    return cache.with_name(cache.name + ".json")


def check_cache_identity(cache: Path, identity: dict) -> None:
    """Stop with a one-line error unless ``cache`` was written for ``identity`` (seed, split, data version and, for
    version 3, material share)."""
    record = cache_identity_path(cache)
    try:
        written = json.loads(record.read_text())
    except (OSError, ValueError):
        raise SystemExit(f"train_prior.py: error: --data-cache {cache} has no readable record of its seed, split and "
                         f"data version ({record}; written by an older train_prior.py?): delete it or pass another "
                         "path") from None
    if written != identity:
        raise SystemExit(f"train_prior.py: error: --data-cache {cache} holds data for {written}, this run asks for "
                         f"{identity}: pass another --data-cache path") from None


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


def new_word_embeddings(unet: torch.nn.Module, text_encoder: torch.nn.Module, new_token_ids: Sequence[int]
                        ) -> torch.nn.Parameter:
    """Freeze every weight of ``unet`` and ``text_encoder`` except the word-embedding matrix (float [V, D]), whose
    gradient is masked to the rows ``new_token_ids`` (``--train-only new-words``); returns that matrix, the one
    parameter to optimize. With a zero gradient, no weight decay and Adam's zero moments, the other rows stay bit for
    bit the source's (tested)."""
    if not new_token_ids:
        raise SystemExit("train_prior.py: error: --train-only new-words: the --data-version's vocabulary has no word "
                         "the --init-from prior lacks, so nothing would train")
    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    embeddings = text_encoder.get_input_embeddings().weight
    embeddings.requires_grad_(True)
    rows = torch.zeros(embeddings.shape[0], 1, dtype=embeddings.dtype, device=embeddings.device)
    rows[torch.as_tensor(list(new_token_ids), dtype=torch.long, device=embeddings.device)] = 1.0
    embeddings.register_hook(lambda grad: grad * rows)
    return embeddings


# ======================================================================================================================
# Main
# ======================================================================================================================


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the training (see the module docstring) and return the record also written to ``training.json``."""
    t_start = time.perf_counter()
    args = parse_args(argv)
    prior_config = architecture(args.arch)  # a bad --arch stops here, before any data is rendered
    source, source_record = (load_init_source(args.init_from) if args.init_from else (None, None))
    if source is not None:
        prior_config = source.config
    try:
        device = resolve_device(args.device)
    except CsdtexError as error:
        raise SystemExit(f"error: {error}") from None
    cuda = device.type == "cuda"
    verbose = not args.quiet
    batch = args.batch or (256 if cuda else 16)
    reserve = args.reserve_seconds if args.reserve_seconds is not None else (60.0 if cuda else 5.0)
    sample_steps = args.sample_steps or (50 if cuda else 8)
    per_prompt = args.samples_per_prompt or (6 if cuda else 1)
    budget = 60.0 * args.time_limit_minutes
    invocation_deadline = t_start + 60.0 * (args.stop_after_minutes if args.stop_after_minutes is not None
                                            else args.time_limit_minutes)  # fmt: skip
    out = Path(args.out)
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
            args.eval_images, args.seed, "test", device, None, args.render_batch, False, data_version=args.data_version,
            material_probability=args.material_share,
        )
    workers = args.data_workers or (min(8, max(1, (os.cpu_count() or 2) - 2)) if cuda else 1)
    log(f"data: {args.images} training images on {device} ({workers} worker processes)")
    images_np, captions, train_info = load_or_generate(
        args.images, args.seed, "train", device, args.data_cache, args.render_batch, verbose, workers,
        args.data_version, args.material_share,
    )
    log(f"data ready ({train_info['seconds']} s, {train_info['source']})")
    out.mkdir(parents=True, exist_ok=True)  # after the data: a bad --data-cache leaves no empty output folder
    components = tiny_prior.build_tiny_prior(None, seed=args.seed, config=prior_config,
                                             words=vocabulary_for(args.data_version))
    init_from = None
    new_token_ids: list[int] = []
    if source is not None:
        carried = warm_start(components, source)
        init_from = {"folder": str(args.init_from), **carried, "source_command": source_record.get("command"),
                     "source_seconds": source_record.get("seconds")}
        log(f"started from {args.init_from}: {carried['carried_tokens']} tokens carried, new "
            f"{' '.join(carried['new_tokens']) or 'none'}")
        new_token_ids = components.tokenizer.convert_tokens_to_ids(carried["new_tokens"])
        init_from["trained"] = "new word embeddings only" if args.train_only == "new-words" else "all weights"
        del source
    nouns = nouns_for(args.data_version)
    table = CaptionTable(components.tokenizer, captions, device, nouns, args.data_version,
                         role_labels=args.role_loss > 0)
    if table.roles is not None:
        labelled = float((table.roles[table.index] != IGNORE_ROLE).any(dim=1).float().mean())
        log(f"role labels: {labelled:.1%} of training captions name a colour role")
    images = torch.as_tensor(images_np).to(device)
    if eval_np is not None:
        eval_table = CaptionTable(components.tokenizer, eval_captions, device, nouns)
        eval_images = torch.as_tensor(eval_np).to(device)

    # --------------------------------------------------------------------------------------------------------- model
    unet, text_encoder = components.unet.to(device).train(), components.text_encoder.to(device).train()
    if cuda:
        unet.to(memory_format=torch.channels_last)
    role_head = RoleHead(prior_config.text_width).to(device) if args.role_loss > 0 else None
    teacher = None
    if args.preserve_weight > 0:  # the source's weights as they start, frozen: the predictions to keep
        teacher = (copy.deepcopy(unet).eval().requires_grad_(False),
                   copy.deepcopy(text_encoder).eval().requires_grad_(False))
        new_ids = torch.as_tensor(new_token_ids, dtype=torch.long, device=device)
        caption_has_new_word = torch.isin(table.ids, new_ids).any(dim=1)  # bool [U]
    weight_decay = args.weight_decay
    if args.train_only == "new-words":
        params = [new_word_embeddings(unet, text_encoder, new_token_ids)]
        weight_decay = 0.0  # AdamW's decoupled decay would shrink the frozen rows too
    else:
        params = list(unet.parameters()) + list(text_encoder.parameters())
    if role_head is not None:
        params += list(role_head.parameters())
    # On CUDA the whole step (batch sampling, forward, backward, clipping, AdamW) is captured once as a CUDA graph
    # and replayed: the model is so small that eager PyTorch is bound by Python and kernel launches (measured on an
    # H100: ~35 ms of GPU work per batch-256 step took 83-118 ms of wall time eagerly). The learning rate is then a
    # device tensor that the capturable fused AdamW reads at every replay.
    graphed = cuda and not args.no_cuda_graph and not args.compile
    optimizer = torch.optim.AdamW(
        params, lr=torch.tensor(args.lr, device=device) if graphed else args.lr, betas=(0.9, 0.99),
        weight_decay=weight_decay, fused=cuda, capturable=graphed,
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
    role_losses: list[float] = []
    eval_losses: list[tuple[int, float]] = []
    horizon = args.steps
    # Training budget: a fresh run counts from process start (data generation included), a resumed one from now
    # (its data and model are ready; the budget its earlier invocations used comes from the state).
    budget_used_before, budget_counted_from = 0.0, t_start
    if args.resume:
        if not args.state or not Path(args.state).is_file():
            raise SystemExit("--resume needs an existing --state file")
        state = torch.load(args.state, map_location=device, weights_only=True)
        unet.load_state_dict(state["unet"]), text_encoder.load_state_dict(state["text_encoder"])
        if use_ema:
            ema_unet.load_state_dict(state["ema_unet"]), ema_text.load_state_dict(state["ema_text_encoder"])
        if role_head is not None:
            if "role_head" not in state:
                raise SystemExit("--resume: the state was saved without --role-loss")
            role_head.load_state_dict(state["role_head"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
        eval_losses = [(int(s), float(v)) for s, v in state.get("eval_losses", [])]
        horizon = int(state.get("horizon", horizon))
        budget_used_before, budget_counted_from = float(state.get("budget_seconds", 0.0)), time.perf_counter()
        log(f"resumed from {args.state} at step {step} (schedule horizon {horizon}, "
            f"{budget_used_before:.0f} s of the {budget:.0f} s training budget used)")
    resumed_at_step = step
    deadline = budget_counted_from + budget - budget_used_before  # the whole training's end
    stop_at = min(deadline, invocation_deadline)  # this invocation's end
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
        """One optimizer step on a fresh random batch (gradients must be None or zero); returns float32 [2] on the
        device: the diffusion loss and the role loss (0 without ``--role-loss``)."""
        rows = torch.randint(0, n, (batch,), generator=gen, device=device)
        flip = None if args.no_flip else torch.rand(batch, generator=gen, device=device) < 0.5
        x = images_to_model(images[rows], flip)
        ids, mask, caption_rows = table.batch(rows, args.caption_dropout, args.unk_noun, gen)
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
        if teacher is not None:
            with torch.no_grad(), autocast:
                kept = teacher[0](x_t, t, encoder_hidden_states=teacher[1](ids, attention_mask=mask)[0]).sample
            per_image = (eps.float() - kept.float()).square().mean(dim=(1, 2, 3))
            old_words = (~caption_has_new_word[caption_rows]).float()
            loss_total = loss + args.preserve_weight * (per_image * old_words).sum() / old_words.sum().clamp(min=1.0)
        else:
            loss_total = loss
        if role_head is not None:
            with autocast:
                logits = role_head(text)
            role = role_loss(logits, table.roles[caption_rows])
            (loss_total + args.role_loss * role).backward()
        else:
            role = torch.zeros((), device=device)
            loss_total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return torch.stack([loss.detach(), role.detach()])

    pending: list[torch.Tensor] = []

    def flush_losses() -> None:
        """Move the losses still on the device into ``losses`` (one host sync for many steps)."""
        if pending:
            values = torch.stack(pending).float().cpu()
            losses.extend(values[:, 0].tolist())
            role_losses.extend(values[:, 1].tolist())
            pending.clear()

    def budget_seconds_used() -> float:
        """Seconds of the training budget used so far, over all invocations (see ``--stop-after-minutes``)."""
        return budget_used_before + time.perf_counter() - budget_counted_from

    def checkpoint() -> None:
        """Rewrite ``--out`` with the EMA weights and, with ``--state``, the resumable state."""
        flush_losses()
        exported = _export(components, ema_unet, ema_text, SAVE_DTYPES[args.save_dtype])
        tiny_prior.save_prior_folder(exported, out)
        if args.state:
            state = {
                "step": step, "losses": losses, "eval_losses": eval_losses, "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict(), "optimizer": optimizer.state_dict(),
                "horizon": horizon, "budget_seconds": budget_seconds_used(),
            }  # fmt: skip
            if use_ema:
                state.update(ema_unet=ema_unet.state_dict(), ema_text_encoder=ema_text.state_dict())
            if role_head is not None:
                state["role_head"] = role_head.state_dict()
            with atomic_path(args.state) as tmp:
                torch.save(state, tmp)

    # ------------------------------------------------------------------------------------------------------ training
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
        if time.perf_counter() > stop_at - reserve:
            stopped_by = "time limit" if deadline <= invocation_deadline else "paused (--stop-after-minutes)"
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
        if step - resumed_at_step in (20, 60, 300, 3000):
            now = time.perf_counter()
            if timing_mark is not None:
                per_step = (now - timing_mark[1]) / (step - timing_mark[0])
                fit = step + int((deadline - reserve - now) / max(per_step, 1e-6))
                horizon = max(step + 1, min(args.steps, fit))
            timing_mark = (step, now)
        if verbose and (step % args.log_every == 0 or step == 1):
            flush_losses()
            recent = losses[-args.log_every :]
            role_text = f"  role loss {np.mean(role_losses[-args.log_every:]):.4f}" if role_head is not None else ""
            log(f"step {step}/{horizon}  loss {np.mean(recent):.4f}{role_text}  "
                f"lr {learning_rate(step - 1, horizon, args.lr, args.warmup):.2e}")
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.steps:
            if eval_np is not None:
                eval_losses.append((step, heldout_loss(ema_unet, ema_text, eval_images, eval_table, alphas_cumprod,
                                                       args.seed, 256, autocast)))  # fmt: skip
            checkpoint()
            log(f"checkpoint at step {step}" + (f", held-out loss {eval_losses[-1][1]:.4f}" if eval_losses else ""))
    flush_losses()
    if cuda:
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t_train
    budget_used = budget_seconds_used()
    log(f"training stopped after {step} steps ({stopped_by})")

    # ------------------------------------------------------------------------------------------------------ outputs
    if eval_np is not None and (not eval_losses or eval_losses[-1][0] != step):
        eval_losses.append(
            (step, heldout_loss(ema_unet, ema_text, eval_images, eval_table, alphas_cumprod, args.seed, 256, autocast))
        )
    checkpoint()
    exported = tiny_prior.load_components(out, device)  # round trip through the saved files
    t_samples = time.perf_counter()
    prompts = list(SAMPLE_PROMPTS[args.data_version])
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
            "ms_per_step": round(1000.0 * train_seconds / max(step - resumed_at_step, 1), 2), "stopped_by": stopped_by,
            "resumed_at_step": resumed_at_step, "budget_seconds_used": round(budget_used, 1),
            "schedule_horizon": horizon,
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
            "eval_losses": eval_losses, "autocast": cuda, "compiled": bool(args.compile),
            "cuda_graph": graph is not None,
            "losses": [round(v, 5) for v in losses],
            "role_loss_weight": args.role_loss,
            "trained": "new word embeddings only" if args.train_only == "new-words" else "all weights",
            "preserve_weight": args.preserve_weight,
            "final_role_loss": float(np.mean(role_losses[-100:])) if role_head is not None and role_losses else None,
        },  # fmt: skip
        "init_from": init_from,
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
