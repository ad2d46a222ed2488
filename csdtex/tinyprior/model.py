"""The built-in tiny prior: a small pixel-space text-to-image diffusion model in DeepFloyd-IF-stage-I folder layout.

This module builds the *untrained* model (``benchmarks/train_prior.py`` trains it on
:mod:`csdtex.tinyprior.synthetic` data) and saves it as a diffusers pipeline folder that
:func:`csdtex.guidance.load_prior_from_folder` loads as a pixel prior without any special case:

- ``tokenizer/``: a :class:`transformers.T5Tokenizer` saved as ``tokenizer.json`` (+ ``tokenizer_config.json``), built
  here from :data:`csdtex.tinyprior.vocabulary.VOCABULARY`. csdtex's loader reads the tokenizer of a T5-encoder prior
  with ``T5Tokenizer``, which always rebuilds a Unigram model from the file's vocabulary (a WordLevel
  ``tokenizer.json`` would not survive that), so the vocabulary is a Unigram one made only of whole words: ``<pad>``
  (0), ``</s>`` (1), ``<unk>`` (2), ``,`` and ``"▁" + word`` for every word. Each known word is one token; an unknown
  word becomes ``<unk>`` (a known prefix such as ``red`` in ``reddish`` may still be matched). Prompts are lowercased
  by the prior; ``</s>`` ends every prompt; prompts are padded to 77 tokens (csdtex's pixel-prior convention).
- ``text_encoder/``: a small :class:`transformers.T5EncoderModel` (:class:`TinyPriorConfig`: 3 layers, width 128).
- ``unet/``: a :class:`diffusers.UNet2DConditionModel` for 64x64x3 images predicting eps (3 output channels, no
  learned variance). Widths (16, 32, 64, 128) at 64/32/16/8 px; no resnet at 64 px on the way down (the 64 px level
  is conv_in, a downsampler and one up resnet), one resnet per block elsewhere; cross-attention to the text at 8x8
  (down block, mid block, up block) with 32-channel heads; the attention-pooled text embedding is added to the time
  embedding (``addition_embed_type="text"``, as in IF), so every resnet at every resolution is conditioned on the
  prompt; scale-shift time conditioning. Why this shape: on two CPU cores the cost of a 64x64 UNet is dominated by
  full-resolution convolutions and by attention at 16x16 and above; this layout keeps both small.
- ``scheduler/``: :class:`diffusers.DDPMScheduler`, 1000 steps, cosine betas (``squaredcos_cap_v2``, as IF),
  epsilon prediction, fixed small variance, sample clipping to [-1, 1] (only used when sampling).
- ``tiny_prior_config.json``: the :class:`TinyPriorConfig` plus the prior's closed vocabulary (``"vocabulary"``, the
  tokenizer's words, and ``"vocabulary_groups"``, see :mod:`csdtex.guidance.vocabulary`), which the paint run reads
  for its unknown-word warning; :func:`write_vocabulary` adds it to a folder saved before csdtex stored it.

Sizes: 4.43M UNet + 0.50M text-encoder parameters, 19.8 MB of float32 safetensors in all (the issue's limit is 30 MB;
:func:`folder_weight_bytes` measures a saved folder). Cost on two CPU cores (AMD EPYC, fp32): one UNet call on 8
images (4 views x prompt / empty prompt) takes about 75-80 ms, on 12 images about 105-115 ms; loading the prior with
``dtype="bf16"`` on a CPU with AVX512-BF16 cuts that by about 20%.

Public API: :class:`TinyPriorConfig`, :class:`TinyPriorComponents`, :func:`build_tokenizer`, :func:`build_tiny_prior`,
:func:`save_prior_folder`, :func:`write_vocabulary`, :func:`read_config`, :func:`load_components`, :func:`tokenize`,
:func:`encode_captions`, :func:`sample_images`, :func:`vocabulary_pieces`, :func:`folder_weight_bytes`,
:data:`MAX_TEXT_LENGTH`, :data:`SIZE_LIMIT_BYTES`, :data:`CONFIG_NAME`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch

from csdtex.fileio import write_text_atomic
from csdtex.guidance.loading import TINY_PRIOR_CONFIG_NAME, quiet_progress_bars
from csdtex.guidance.vocabulary import tokenizer_words
from csdtex.tinyprior.vocabulary import VOCABULARY, prior_vocabulary_entries

MAX_TEXT_LENGTH = 77
"""Tokens per prompt; csdtex's pixel priors pad / truncate every prompt to 77 tokens (as IFPipeline does)."""

SIZE_LIMIT_BYTES = 30 * 1000 * 1000
"""Budget for all weight files of the shipped prior (issue #4: at most 30 MB)."""

CONFIG_NAME = TINY_PRIOR_CONFIG_NAME
"""``tiny_prior_config.json``: the file of a prior folder holding its :class:`TinyPriorConfig` and vocabulary."""

PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
_WORD_PREFIX = "\u2581"  # SentencePiece's word-boundary marker "▁"


@dataclass
class TinyPriorConfig:
    """Architecture and noise schedule of the tiny prior (defaults = the shipped model)."""

    text_width: int = 128
    """T5 d_model, also the UNet's cross-attention width (text embeddings are [B, 77, text_width])."""
    text_layers: int = 3
    """T5 encoder layers."""
    text_heads: int = 4
    """T5 attention heads (d_kv = text_width / text_heads)."""
    text_ff: int = 256
    """T5 feed-forward width."""
    text_neighbour_bias: float = 0.0
    """Initial strength of the neighbour heads of the T5 relative position bias (0 = T5's own random init, as the
    shipped prior): the bias starts at 0 everywhere except ``+s`` for the previous token in head 0, the next token
    in head 1, and ``+s`` for the token itself / ``+s/2`` for both neighbours in head 2 (further heads start flat).
    Why: with T5's near-zero random bias every head starts as an average over the whole prompt, so a colour word's
    state is the same whether it names the base or the dots ("a red object with blue dots" / "a blue object with red
    dots" hold the same words); the bias is the only place positions enter and its gradient is weak, so training does
    not discover order (measured: a role read-out stays at chance, loss ~0.6, after 60 steps; with ``s = 4`` it
    reaches 0.01 in 10 steps, ``tests/test_prior_roles.py``). Only the initialization changes; the saved model and
    its loading are the same."""
    block_out_channels: tuple[int, ...] = (16, 32, 64, 128)
    """UNet widths at 64, 32, 16 and 8 px."""
    layers_per_block: tuple[int, ...] = (0, 1, 1, 1)
    """Resnets per down block (up blocks get one more each)."""
    cross_attention_levels: tuple[int, ...] = (3,)
    """Indices of the levels with text cross-attention (3 = 8x8); the mid block always has it."""
    attention_head_channels: int = 32
    """Channels per attention head (heads = width / this, at least 1)."""
    norm_num_groups: int = 8
    """GroupNorm groups (must divide every width)."""
    time_embedding_dim: int = 256
    """Width of the time (+ pooled text) embedding fed to every resnet."""
    num_train_timesteps: int = 1000
    """DDPM training timesteps."""
    beta_schedule: str = "squaredcos_cap_v2"
    """DDPM beta schedule (cosine, as DeepFloyd IF)."""
    sample_size: int = 64
    """Image side in pixels (the prior's render resolution)."""

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``UNet2DConditionModel`` for this configuration."""
        levels = len(self.block_out_channels)
        if len(self.layers_per_block) != levels:
            raise ValueError("layers_per_block needs one entry per level of block_out_channels")
        attention = set(self.cross_attention_levels)
        down = tuple("CrossAttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels))
        up = tuple(
            "CrossAttnUpBlock2D" if (levels - 1 - i) in attention else "UpBlock2D"
            for i in range(levels)
        )
        heads = tuple(max(1, c // self.attention_head_channels) for c in self.block_out_channels)
        return dict(
            sample_size=self.sample_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=list(self.layers_per_block),
            down_block_types=down,
            up_block_types=up,
            mid_block_type="UNetMidBlock2DCrossAttn",
            norm_num_groups=self.norm_num_groups,
            cross_attention_dim=self.text_width,
            # diffusers' ``attention_head_dim`` of UNet2DConditionModel is the number of heads (a known naming quirk).
            attention_head_dim=heads,
            addition_embed_type="text",
            addition_embed_type_num_heads=max(1, self.text_width // self.attention_head_channels),
            time_embedding_dim=self.time_embedding_dim,
            resnet_time_scale_shift="scale_shift",
            act_fn="silu",
        )


@dataclass
class TinyPriorComponents:
    """The four parts of a tiny prior, as live objects.

    Attributes:
        unet: ``diffusers.UNet2DConditionModel``: (x_t float [B, 3, 64, 64], t int [B], text [B, 77, D]) -> eps.
        text_encoder: ``transformers.T5EncoderModel`` (``encode_captions`` gives its [B, 77, D] states).
        tokenizer: ``transformers.T5Tokenizer`` over :data:`csdtex.tinyprior.vocabulary.VOCABULARY`.
        scheduler: ``diffusers.DDPMScheduler`` (training noise schedule).
        config: the :class:`TinyPriorConfig` they were built from.
    """

    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    config: TinyPriorConfig = field(default_factory=TinyPriorConfig)

    def parameter_count(self) -> dict[str, int]:
        """Number of parameters of the unet and the text encoder."""
        return {
            "unet": sum(p.numel() for p in self.unet.parameters()),
            "text_encoder": sum(p.numel() for p in self.text_encoder.parameters()),
        }


def vocabulary_pieces(words: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """The Unigram vocabulary of the tokenizer: [(piece, log-probability score)], ids in list order.

    ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2 (T5's layout, which ``T5Tokenizer`` assumes), then every entry of
    ``words`` (default :data:`csdtex.tinyprior.vocabulary.VOCABULARY`): alphabetic words as ``"▁" + word``,
    punctuation as is.
    """
    if words is None:
        words = VOCABULARY
    pieces = [(PAD_TOKEN, 0.0), (EOS_TOKEN, 0.0), (UNK_TOKEN, 0.0)]
    for word in words:
        pieces.append((_WORD_PREFIX + word, -1.0) if word.isalpha() else (word, -2.0))
    return pieces


def build_tokenizer(words: Sequence[str] | None = None):
    """A ``T5Tokenizer`` whose tokens are the whole words of ``words`` (default: the synthetic-caption vocabulary).

    No extra sentinel ids (``extra_ids=0``), ``model_max_length`` 77. ``save_pretrained`` writes ``tokenizer.json``
    and ``tokenizer_config.json``; ``T5Tokenizer.from_pretrained`` reads them back identically (tested).
    """
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=vocabulary_pieces(words), extra_ids=0, model_max_length=MAX_TEXT_LENGTH)


def _build_text_encoder(config: TinyPriorConfig, vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    encoder = T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=config.text_width,
            d_kv=config.text_width // config.text_heads,
            d_ff=config.text_ff,
            num_layers=config.text_layers,
            num_heads=config.text_heads,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            tie_word_embeddings=False,
        )
    )
    if config.text_neighbour_bias:
        attention = encoder.encoder.block[0].layer[0].SelfAttention
        neighbour_bias_init(attention.relative_attention_bias.weight, config.text_neighbour_bias,
                            attention.relative_attention_num_buckets)
    return encoder


def neighbour_bias_init(bias: torch.Tensor, strength: float, num_buckets: int) -> None:
    """Set a T5 relative-attention bias table (float [num_buckets, heads], bidirectional) in place to the neighbour
    init of :attr:`TinyPriorConfig.text_neighbour_bias` (all zero when ``strength`` is 0).

    T5's bidirectional buckets: offset ``n = key position - query position``; ``n <= 0`` -> bucket ``-n`` (for
    ``|n|`` below the exact range), ``n > 0`` -> bucket ``num_buckets // 2 + n``.
    """
    half = num_buckets // 2
    heads = bias.shape[1]
    with torch.no_grad():
        bias.zero_()
        if strength == 0.0:
            return
        previous, current, following = 1, 0, half + 1
        if heads > 0:
            bias[previous, 0] = strength
        if heads > 1:
            bias[following, 1] = strength
        if heads > 2:
            bias[current, 2] = strength
            bias[previous, 2] = bias[following, 2] = strength / 2


def _build_scheduler(config: TinyPriorConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type="epsilon",
        variance_type="fixed_small",
        clip_sample=True,
        clip_sample_range=1.0,
    )


def build_tiny_prior(
    folder: str | os.PathLike | None = None,
    seed: int = 0,
    config: TinyPriorConfig | None = None,
    words: Sequence[str] | None = None,
) -> TinyPriorComponents:
    """Build the untrained tiny prior (random weights from ``seed``), optionally saving it as a pipeline folder.

    Args:
        folder: if given, :func:`save_prior_folder` writes the components there.
        seed: seed of the weight initialization; the same seed gives the same weights, and the caller's global RNG
            state is left unchanged (the weights are drawn from the CPU generator inside ``fork_rng``).
        config: architecture (default :class:`TinyPriorConfig`).
        words: the tokenizer's vocabulary (default :data:`csdtex.tinyprior.vocabulary.VOCABULARY`; data version 2
            uses :data:`csdtex.tinyprior.vocabulary.VOCABULARY_V2`, see
            :func:`csdtex.tinyprior.vocabulary.vocabulary_for`).
    Returns:
        :class:`TinyPriorComponents` on the CPU in float32, in train mode.
    """
    from diffusers import UNet2DConditionModel

    config = config or TinyPriorConfig()
    tokenizer = build_tokenizer(words)
    with torch.random.fork_rng(devices=[]):  # CUDA generators are not touched: the networks are built on the CPU
        torch.default_generator.manual_seed(seed)
        text_encoder = _build_text_encoder(config, vocab_size=len(tokenizer))
        unet = UNet2DConditionModel(**config.unet_kwargs())
    components = TinyPriorComponents(
        unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=_build_scheduler(config), config=config
    )
    if folder is not None:
        save_prior_folder(components, folder)
    return components


def _replace_dir(destination: Path, write) -> None:
    """Write a component into a temporary sibling folder, then swap it in (an interrupted save leaves the old one)."""
    temporary = destination.with_name(f".{destination.name}.tmp")
    old = destination.with_name(f".{destination.name}.old")
    for leftover in (temporary, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    write(temporary)
    if destination.exists():
        destination.rename(old)
    temporary.rename(destination)
    if old.exists():
        shutil.rmtree(old)


def save_prior_folder(components: TinyPriorComponents, folder: str | os.PathLike) -> Path:
    """Save the components as an IF-stage-I-layout diffusers folder that csdtex loads as a pixel prior.

    Writes ``unet/`` (config.json + diffusion_pytorch_model.safetensors), ``text_encoder/`` (config.json +
    model.safetensors), ``tokenizer/`` (tokenizer.json + tokenizer_config.json), ``scheduler/``
    (scheduler_config.json), ``model_index.json`` (``IFPipeline`` with the unused IF parts set to null) and
    :data:`CONFIG_NAME` (the :class:`TinyPriorConfig` and the tokenizer's closed vocabulary, see
    :func:`write_vocabulary`). Weights are saved in their current dtype (the shipped prior's are float16; every csdtex
    loader upcasts them to the dtype it runs in). Each component folder is replaced atomically; other files in
    ``folder`` (README, PNGs) are kept.

    Returns:
        ``folder`` as a Path.
    """
    from diffusers import __version__ as diffusers_version

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_progress_bars():
        _replace_dir(folder / "unet", lambda p: components.unet.save_pretrained(p, safe_serialization=True))
        _replace_dir(
            folder / "text_encoder", lambda p: components.text_encoder.save_pretrained(p, safe_serialization=True)
        )
        _replace_dir(folder / "tokenizer", lambda p: components.tokenizer.save_pretrained(p))
        _replace_dir(folder / "scheduler", lambda p: components.scheduler.save_pretrained(p))
    index = {
        "_class_name": "IFPipeline",
        "_diffusers_version": diffusers_version,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "watermarker": [None, None],
        "requires_safety_checker": False,
    }
    write_text_atomic(folder / "model_index.json", json.dumps(index, indent=2) + "\n")
    _write_config(folder / CONFIG_NAME, asdict(components.config), components.tokenizer)
    return folder


def _write_config(path: Path, config: dict[str, Any], tokenizer: Any) -> Path:
    """Write ``config`` plus the vocabulary entries of ``tokenizer``'s words as the prior's JSON config, atomically."""
    config = {**config, **prior_vocabulary_entries(sorted(tokenizer_words(tokenizer)))}
    return write_text_atomic(path, json.dumps(config, indent=2) + "\n")


def write_vocabulary(folder: str | os.PathLike) -> Path:
    """Add (or refresh) the closed vocabulary in the :data:`CONFIG_NAME` of a saved tiny-prior folder.

    The words are those of the folder's own tokenizer (every piece but ``<pad>``, ``</s>`` and ``<unk>``; ``"▁red"``
    -> ``"red"``), stored as ``"vocabulary"`` (sorted) with ``"vocabulary_groups"`` (colours, shapes) as
    :func:`csdtex.tinyprior.vocabulary.prior_vocabulary_entries` makes them; the other entries of the config (the
    :class:`TinyPriorConfig`) are kept as they are, nothing else in the folder changes. :func:`save_prior_folder` does
    the same for every prior it saves; this is for folders saved before (the shipped prior got its list this way:
    ``python -m csdtex.tinyprior write-vocabulary assets/priors/tiny``).

    Returns:
        The config file written.

    Raises:
        FileNotFoundError: ``folder`` has no :data:`CONFIG_NAME` or no ``tokenizer/``.
    """
    from transformers import T5Tokenizer

    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file() or not (folder / "tokenizer").is_dir():
        raise FileNotFoundError(f"{folder} is not a tiny-prior folder (it needs {CONFIG_NAME} and tokenizer/)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer = T5Tokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    return _write_config(config_path, config, tokenizer)


def read_config(folder: str | os.PathLike) -> TinyPriorConfig:
    """The :class:`TinyPriorConfig` stored in ``folder``'s :data:`CONFIG_NAME` (the defaults when there is none);
    other entries of the file (the vocabulary) are ignored."""
    config_path = Path(folder) / CONFIG_NAME
    if not config_path.is_file():
        return TinyPriorConfig()
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    names = {f.name for f in fields(TinyPriorConfig)}
    return TinyPriorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})


def load_components(folder: str | os.PathLike, device: torch.device | str = "cpu") -> TinyPriorComponents:
    """Load a folder written by :func:`save_prior_folder` back as trainable components (float32, train mode).

    For guidance use :func:`csdtex.guidance.load_prior_from_folder` instead (frozen, eval mode); this is for resuming
    or fine-tuning training.

    Args:
        folder: the prior folder.
        device: where to put the unet and the text encoder.

    Returns:
        :class:`TinyPriorComponents` with float32 networks in train mode on ``device``.
    """
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import T5EncoderModel, T5Tokenizer

    folder = Path(folder)
    config = read_config(folder)
    with quiet_progress_bars():
        unet = UNet2DConditionModel.from_pretrained(
            folder / "unet", use_safetensors=True, local_files_only=True, low_cpu_mem_usage=False,
            torch_dtype=torch.float32,
        )  # fmt: skip
        text_encoder = T5EncoderModel.from_pretrained(
            folder / "text_encoder", use_safetensors=True, local_files_only=True, dtype=torch.float32
        )
        tokenizer = T5Tokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        scheduler = DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
    return TinyPriorComponents(
        unet=unet.to(device).train(), text_encoder=text_encoder.to(device).train(),
        tokenizer=tokenizer, scheduler=scheduler, config=config,
    )  # fmt: skip


def tokenize(tokenizer, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask exactly as :meth:`csdtex.guidance.Prior.encode_text` makes them for pixel priors.

    Captions are lowercased and stripped, padded / truncated to :data:`MAX_TEXT_LENGTH` with ``</s>`` appended.

    Returns:
        (input_ids int64 [B, 77], attention_mask int64 [B, 77]) on the CPU.
    """
    texts = [c.lower().strip() for c in captions]
    tokens = tokenizer(
        texts, padding="max_length", max_length=MAX_TEXT_LENGTH, truncation=True, add_special_tokens=True,
        return_tensors="pt",
    )  # fmt: skip
    return tokens.input_ids, tokens.attention_mask


def encode_captions(
    tokenizer, text_encoder, captions: Sequence[str] | None = None, *, input_ids=None, attention_mask=None
) -> torch.Tensor:
    """Text embeddings as the loaded prior computes them (same tokenization, attention mask, last hidden state).

    Pass either ``captions`` (B strings) or pre-tokenized ``input_ids`` / ``attention_mask`` (int [B, 77], from
    :func:`tokenize`). Gradients flow into ``text_encoder`` when it requires grad (training).

    Returns:
        float [B, 77, D] last hidden states on the text encoder's device, in its dtype.
    """
    if captions is not None:
        input_ids, attention_mask = tokenize(tokenizer, captions)
    if input_ids is None or attention_mask is None:
        raise ValueError("pass captions or both input_ids and attention_mask")
    device = next(text_encoder.parameters()).device
    return text_encoder(input_ids.to(device), attention_mask=attention_mask.to(device))[0]


def folder_weight_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the ``*.safetensors`` files under ``folder`` (what the 30 MB budget counts)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors") if p.is_file())


@torch.no_grad()
def sample_images(
    components: TinyPriorComponents,
    prompts: Sequence[str],
    num_per_prompt: int = 1,
    steps: int = 50,
    guidance_scale: float = 4.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Draw images from the prior with DDIM (eta 0, "trailing" timesteps) and classifier-free guidance.

    eps = eps(x_t; "") + guidance_scale * (eps(x_t; prompt) - eps(x_t; "")); the DDIM scheduler is built from the
    prior's DDPM config (same betas), with x0 clipped to [-1, 1] and the last step returning the predicted x0. On CUDA
    the networks run under bf16 autocast.

    Args:
        components: the prior (any device; moved to ``device`` if given, eval mode during sampling, restored after).
        prompts: P prompts.
        num_per_prompt: S images per prompt (consecutive in the output).
        steps: DDIM steps.
        guidance_scale: classifier-free guidance scale (1 = no guidance, conditional only).
        seed: initial noise seed (drawn on the CPU, so a seed gives the same noise on every device).
        device: where to run (default: the UNet's device).
        batch_size: images denoised together (each needs two UNet rows: prompt and empty prompt).
    Returns:
        uint8 [P * S, 64, 64, 3] RGB images (row 0 at the top), on the CPU.
    """
    from diffusers import DDIMScheduler

    unet, text_encoder = components.unet, components.text_encoder
    device = torch.device(device) if device is not None else next(unet.parameters()).device
    was_training = (unet.training, text_encoder.training)
    unet.to(device).eval()
    text_encoder.to(device).eval()
    scheduler = DDIMScheduler.from_config(
        components.scheduler.config, timestep_spacing="trailing", clip_sample=True, clip_sample_range=1.0,
        set_alpha_to_one=True,  # the last step returns the predicted clean image
    )  # fmt: skip
    scheduler.set_timesteps(steps)
    size = int(unet.config.sample_size)
    all_prompts = [p for p in prompts for _ in range(num_per_prompt)]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(all_prompts), 3, size, size, generator=generator)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    outputs = []
    try:
        for start in range(0, len(all_prompts), batch_size):
            chunk = all_prompts[start : start + batch_size]
            n = len(chunk)
            with autocast:
                text = encode_captions(components.tokenizer, text_encoder, list(chunk) + [""] * n)
            x = noise[start : start + n].to(device)
            for t in scheduler.timesteps:
                with autocast:
                    eps = unet(torch.cat([x, x]), t.to(device).expand(2 * n), encoder_hidden_states=text).sample
                eps_cond, eps_uncond = eps.float().chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                x = scheduler.step(eps, t, x).prev_sample
            outputs.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    finally:
        unet.train(was_training[0])
        text_encoder.train(was_training[1])
    return torch.cat(outputs) if outputs else torch.zeros(0, size, size, 3, dtype=torch.uint8)
