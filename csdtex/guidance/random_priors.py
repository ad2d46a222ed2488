"""Random-weight diffusion priors built in code and saved as real diffusers pipeline folders (tests, benchmarks).

Nothing is downloaded: the tokenizers are built from small vocabularies written here, the networks are randomly
initialised from seed 0 on the CPU (the same weights on every call; the caller's global RNG state is left as it was),
and everything is saved with ``save_pretrained`` (safetensors) plus a ``model_index.json`` like the ones diffusers
pipelines write, so that :func:`csdtex.guidance.load_prior` reads them through exactly the same ``from_pretrained``
path as Stable Diffusion and DeepFloyd IF folders.

- :func:`build_tiny_latent_folder`: SD layout (vae, unet, CLIP text encoder + tokenizer, DDIM scheduler); renders at
  16 px (VAE scale factor 2 x UNet sample size 8), latents [B, 4, 8, 8], text embeddings [B, 16, 16].
- :func:`build_random_sd21_base_folder`: the real Stable Diffusion 2.1-base architecture (865M-parameter UNet,
  VAE, OpenCLIP-H-sized text encoder) with random weights, for speed and memory benchmarks (cost does not depend on
  the weights); renders at 512 px.
- :func:`build_tiny_pixel_folder`: IF stage I layout (unet with 3 -> 6 channels and IF's block types, T5 encoder +
  tokenizer, DDPM scheduler with learned variance); renders at 8 px, text embeddings [B, 77, 16].
- :func:`build_random_if_i_xl_folder`: the real DeepFloyd IF-I-XL UNet architecture (4.3B parameters) with random
  weights and a one-layer stand-in for its T5-XXL text encoder that has T5-XXL's output width (embeddings
  [B, 77, 4096]), for speed and memory benchmarks of a pixel prior; renders at 64 px.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import torch

LATENT_TEXT_LENGTH = 16
"""Tokens per prompt of the tiny latent prior (its CLIP tokenizer's ``model_max_length``)."""
TEXT_DIM = 16
"""Width of the tiny priors' text embeddings."""


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the CPU generator for the ``with`` block and restore the global RNG state afterwards, so that building a
    model gives the same weights as after ``torch.manual_seed(seed)`` without changing anyone else's random numbers
    (CUDA generators are left alone: the networks are built on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-level BPE alphabet: every byte maps to a printable unicode character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
    bs += list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _write_model_index(folder: Path, class_name: str, components: dict[str, tuple[str, str]]) -> None:
    index: dict = {"_class_name": class_name, "_diffusers_version": "0.42.1"}
    index.update({name: list(lib_cls) for name, lib_cls in components.items()})
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))


def _write_clip_tokenizer(folder: Path, model_max_length: int = LATENT_TEXT_LENGTH) -> int:
    """Write vocab.json / merges.txt / tokenizer_config.json like the SD repos have; return the vocabulary size.

    The vocabulary is the 256 byte-level characters, each also with the ``</w>`` end-of-word suffix, a handful of
    merges so that common words become single tokens, and the two CLIP special tokens.
    """
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = ["r e", "re d</w>", "c h", "ch a", "cha i", "chai r</w>"]
    for m in merges:
        vocab["".join(m.split())] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)


def _write_sd_scheduler_and_index(folder: Path, prediction_type: str) -> None:
    """Stable Diffusion's scheduler (scaled-linear betas 0.00085..0.012, DDIM) and a StableDiffusionPipeline index."""
    from diffusers import DDIMScheduler

    DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type=prediction_type,
    ).save_pretrained(folder / "scheduler")
    _write_model_index(
        folder,
        "StableDiffusionPipeline",
        {
            "scheduler": ("diffusers", "DDIMScheduler"),
            "text_encoder": ("transformers", "CLIPTextModel"),
            "tokenizer": ("transformers", "CLIPTokenizer"),
            "unet": ("diffusers", "UNet2DConditionModel"),
            "vae": ("diffusers", "AutoencoderKL"),
        },
    )


def build_tiny_latent_folder(folder: Path, *, prediction_type: str = "epsilon") -> Path:
    """Write a tiny random Stable-Diffusion-layout pipeline folder and return it.

    Args:
        folder: destination (created).
        prediction_type: the scheduler's prediction type ("epsilon" or "v_prediction").
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _seeded(0):  # the global RNG state is restored afterwards
        vocab_size = _write_clip_tokenizer(folder / "tokenizer")
        bos, eos = vocab_size - 2, vocab_size - 1
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=vocab_size,
                hidden_size=TEXT_DIM,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=LATENT_TEXT_LENGTH,
                bos_token_id=bos,
                eos_token_id=eos,
                pad_token_id=eos,
            )
        )
        text_encoder.save_pretrained(folder / "text_encoder")
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_DIM,
            attention_head_dim=4,
        )
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=16,
        )
        vae.save_pretrained(folder / "vae", safe_serialization=True)
        _write_sd_scheduler_and_index(folder, prediction_type)
        return folder


SD21_BASE_UNET_CONFIG: dict = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
)  # fmt: skip
"""``UNet2DConditionModel`` arguments of stabilityai/stable-diffusion-2-1-base's UNet (865M parameters)."""

SD21_BASE_VAE_CONFIG: dict = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)  # fmt: skip
"""``AutoencoderKL`` arguments of stabilityai/stable-diffusion-2-1-base's VAE."""


def build_random_sd21_base_folder(folder: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write a Stable Diffusion 2.1-base-architecture pipeline folder with random weights and return it.

    Configuration as published for stabilityai/stable-diffusion-2-1-base: UNet block widths (320, 640, 1280, 1280),
    2 layers per block, linear-projection transformers with head dims (5, 10, 20, 20), cross-attention width 1024;
    VAE widths (128, 256, 512, 512), scaling factor 0.18215; CLIP text encoder with 23 layers of width 1024, 16
    heads, 77 tokens; scaled-linear betas 0.00085..0.012, epsilon prediction. The tokenizer is the small byte-level
    one of the tiny priors (its ids fit the real 49408-entry embedding table). Weights are saved in ``dtype``.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _seeded(0):  # the global RNG state is restored afterwards
        _write_clip_tokenizer(folder / "tokenizer", model_max_length=77)
        CLIPTextModel(
            CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                           num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
                           bos_token_id=49406, eos_token_id=49407, pad_token_id=0)
        ).to(dtype).save_pretrained(folder / "text_encoder")
        UNet2DConditionModel(**SD21_BASE_UNET_CONFIG).to(dtype).save_pretrained(
            folder / "unet", safe_serialization=True)
        AutoencoderKL(**SD21_BASE_VAE_CONFIG).to(dtype).save_pretrained(folder / "vae", safe_serialization=True)
        _write_sd_scheduler_and_index(folder, "epsilon")
        return folder


def _write_t5_tokenizer(folder: Path) -> int:
    """Write a small unigram T5 tokenizer (letters, a few whole words) and return its vocabulary size."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in "abcdefghijklmnopqrstuvwxyz,."]
    pieces += [("▁" + w, -1.0) for w in ("a", "red", "chair", "front", "side", "back", "overhead", "view")]
    T5Tokenizer(vocab=pieces, extra_ids=0).save_pretrained(folder)
    return len(pieces)


def _write_if_scheduler_and_index(folder: Path) -> None:
    """DeepFloyd IF stage I's noise schedule (squared-cosine betas, learned variance, epsilon) and an IFPipeline
    index."""
    from diffusers import DDPMScheduler

    DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        variance_type="learned_range",
        prediction_type="epsilon",
    ).save_pretrained(folder / "scheduler")
    _write_model_index(
        folder,
        "IFPipeline",
        {
            "scheduler": ("diffusers", "DDPMScheduler"),
            "text_encoder": ("transformers", "T5EncoderModel"),
            "tokenizer": ("transformers", "T5Tokenizer"),
            "unet": ("diffusers", "UNet2DConditionModel"),
            "safety_checker": (None, None),
            "feature_extractor": (None, None),
            "watermarker": (None, None),
        },
    )


def build_tiny_pixel_folder(folder: Path) -> Path:
    """Write a tiny random DeepFloyd-IF-stage-I-layout pipeline folder and return it.

    The UNet mirrors IF-I's architecture choices at toy size (ResnetDownsample / SimpleCrossAttn blocks, text
    projection of the T5 states, ``addition_embed_type="text"``, 3 input and 6 output channels).
    """
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _seeded(0):  # the global RNG state is restored afterwards
        vocab_size = _write_t5_tokenizer(folder / "tokenizer")
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=vocab_size,
                d_model=TEXT_DIM,
                d_kv=8,
                d_ff=32,
                num_layers=1,
                num_heads=2,
                relative_attention_num_buckets=8,
                pad_token_id=0,
                eos_token_id=1,
            )
        )
        text_encoder.save_pretrained(folder / "text_encoder")
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=3,
            out_channels=6,
            layers_per_block=1,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            cross_attention_dim=32,  # IF's group-normed cross attention uses 32 groups
            encoder_hid_dim=TEXT_DIM,
            attention_head_dim=4,
            addition_embed_type="text",
            addition_embed_type_num_heads=2,
            cross_attention_norm="group_norm",
            resnet_time_scale_shift="scale_shift",
            act_fn="gelu",
        )
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        _write_if_scheduler_and_index(folder)
        return folder


IF_I_XL_UNET_CONFIG: dict = dict(
    sample_size=64, in_channels=3, out_channels=6, layers_per_block=3,
    block_out_channels=(704, 1408, 2112, 2816),
    down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                      "SimpleCrossAttnDownBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    up_block_types=("SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                    "ResnetUpsampleBlock2D"),
    cross_attention_dim=2816, encoder_hid_dim=4096, encoder_hid_dim_type="text_proj", attention_head_dim=64,
    addition_embed_type="text", addition_embed_type_num_heads=64, cross_attention_norm="group_norm",
    resnet_time_scale_shift="scale_shift", act_fn="gelu", norm_num_groups=32, norm_eps=1e-5,
)  # fmt: skip
"""``UNet2DConditionModel`` arguments of DeepFloyd/IF-I-XL-v1.0's ``unet/config.json``: the original IF config's
model_channels 704 x channel_mult (1, 2, 3, 4), 3 residual blocks per level, attention at 32/16/8 px with 64-channel
heads, T5-XXL states (4096) projected to 2816, 64-head attention pooling, scale-shift norm, GELU; 4.30B parameters,
the published 4.3B."""

T5_XXL_WIDTH = 4096
"""Width of T5-XXL's hidden states, i.e. of IF's text embeddings [B, 77, 4096]."""


def build_random_if_i_xl_folder(folder: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write a DeepFloyd-IF-I-XL-architecture pipeline folder with random weights and return it.

    The UNet is :data:`IF_I_XL_UNET_CONFIG` (the cost of the real model does not depend on its weights). The text
    encoder is not T5-XXL (4.8B parameters, 9 GiB in fp16) but a one-layer T5 encoder with T5-XXL's width, so the
    UNet sees text embeddings of the real shape [B, 77, 4096]; csdtex encodes the prompts once and (in a paint run)
    frees the text encoder before the first step, so the stand-in changes the load time and the memory while the
    prompts are encoded, not the optimization. The tokenizer is the small one of :func:`build_tiny_pixel_folder`,
    the schedule IF's. Weights are saved in ``dtype``; building needs about 26 GB of RAM (fp32 initialisation).
    """
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _seeded(0):  # the global RNG state is restored afterwards
        vocab_size = _write_t5_tokenizer(folder / "tokenizer")
        T5EncoderModel(
            T5Config(vocab_size=vocab_size, d_model=T5_XXL_WIDTH, d_kv=64, d_ff=256, num_layers=1, num_heads=8,
                     feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1)
        ).to(dtype).save_pretrained(folder / "text_encoder")
        UNet2DConditionModel(**IF_I_XL_UNET_CONFIG).to(dtype).save_pretrained(
            folder / "unet", safe_serialization=True)
        _write_if_scheduler_and_index(folder)
        return folder
