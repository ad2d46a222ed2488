"""Frozen text-to-image diffusion priors: text encoding, image encoding and noise prediction.

Two layouts of diffusers pipeline folders are supported (:mod:`csdtex.guidance.loading` loads them):

- **latent** (Stable Diffusion 1.x / 2.x): ``vae`` (AutoencoderKL), ``unet`` (UNet2DConditionModel), ``text_encoder``
  (CLIPTextModel), ``tokenizer`` (CLIPTokenizer), ``scheduler``. The prior sees ``x = vae.encode(image).mean * scale``;
  renders are made at ``vae_scale_factor * unet.config.sample_size`` pixels (512 for SD 1.5 / 2.1-base).
- **pixel** (DeepFloyd IF stage I): ``unet`` (UNet2DConditionModel with 3 input channels, often 6 output channels =
  eps + learned variance), ``text_encoder`` (T5EncoderModel), ``tokenizer`` (T5 tokenizer), ``scheduler``. The prior
  sees the image itself, ``x = image`` in [-1, 1], at ``unet.config.sample_size`` pixels (64 for IF-I).

Conventions
-----------
- Images given to :meth:`Prior.encode_images` are float ``[B, 3, H, W]`` in [-1, 1] (RGB, row 0 = top).
- ``x`` (what the diffusion model sees) and everything returned by the prior are float32; the networks run in
  ``Prior.dtype`` (fp16 on CUDA by default, fp32 on CPU).
- Timesteps are integer indices in ``[0, num_train_timesteps)``; ``alphas_cumprod[t]`` is abar_t of the DDPM forward
  process ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) noise``.

Memory
------
How the networks run in a training step (batch splitting, activation recomputation, CUDA graphs, a compiled VAE
encoder) is a :class:`MemoryPlan` passed to :meth:`Prior.encode_images` and :meth:`Prior.predict_noise`; every plan
computes the same ``x``, eps and gradients up to floating-point rounding. :data:`DEFAULT_PLAN` is what
``csdtex paint`` uses, :data:`SMALL_GPU_PLAN` (no CUDA graphs) what it uses on GPUs under 12 GiB, :data:`LOW_VRAM_PLAN`
what ``--low-vram`` uses (:func:`memory_plan`; ``--compile-encoder`` sets :attr:`MemoryPlan.compile_encoder` on
each). Where the weights live is decided at load time (:func:`csdtex.guidance.load_prior`'s ``low_vram``) or later
with :meth:`Prior.offload_text_encoder`.

The built-in prior (alias :data:`~csdtex.guidance.aliases.BUILTIN_MODEL`, csdtex's own small pixel prior, built by
:mod:`csdtex.tinyprior`) is an ordinary IF-layout :class:`PixelPrior`; like any folder with a
``tiny_prior_config.json`` it gets ``Prior.preset = "tiny"`` and its closed word list in ``Prior.vocabulary``
(:class:`csdtex.guidance.vocabulary.Vocabulary`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, replace
from typing import Any, Iterator, Literal

import torch
import torch.nn.functional as F

from csdtex.errors import ModelError
from csdtex.guidance.aliases import BUILTIN_MODEL  # re-exported: csdtex.config imports it from here
from csdtex.guidance.vocabulary import Vocabulary

__all__ = ["BUILTIN_MODEL", "CUDA_GRAPHS_MIN_GIB", "DEFAULT_PLAN", "LOW_VRAM_PLAN", "SMALL_GPU_PLAN", "LatentPrior",
           "MemoryPlan", "PixelPrior", "PredictionType", "Prior", "PriorKind", "attention_layers",
           "eps_from_prediction", "memory_plan", "set_attention_processors"]

_LOG = logging.getLogger(__name__)

PriorKind = Literal["latent", "pixel"]
PredictionType = Literal["epsilon", "v_prediction", "sample"]


def eps_from_prediction(
    prediction: torch.Tensor,
    x_t: torch.Tensor,
    alphas_cumprod_t: torch.Tensor,
    prediction_type: PredictionType,
) -> torch.Tensor:
    """Convert a UNet output to a noise prediction eps.

    Args:
        prediction: float [N, C, h, w], the network output (eps, v or x0 depending on ``prediction_type``).
        x_t: float [N, C, h, w], the noisy input the network saw.
        alphas_cumprod_t: float [N], abar_t of each sample's timestep.
        prediction_type: ``"epsilon"`` (returned as is), ``"v_prediction"`` (v = sqrt(abar) eps - sqrt(1-abar) x0, so
            eps = sqrt(abar) v + sqrt(1-abar) x_t) or ``"sample"`` (x0, so eps = (x_t - sqrt(abar) x0) / sqrt(1-abar)).

    Returns:
        float [N, C, h, w] eps, in the dtype of the inputs' promotion.
    """
    if prediction_type == "epsilon":
        return prediction
    a = alphas_cumprod_t.reshape(-1, *([1] * (prediction.dim() - 1))).to(prediction.dtype)
    if prediction_type == "v_prediction":
        return a.sqrt() * prediction + (1.0 - a).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - a.sqrt() * prediction) / (1.0 - a).sqrt()
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


@dataclass(frozen=True)
class MemoryPlan:
    """How a prior runs its networks in a training step: GPU memory against speed, never the maths.

    Every plan gives the same ``x``, eps and gradients up to floating-point rounding (kernels picked for another batch
    size may round differently); ``tests/test_low_vram.py`` checks every plan against :data:`DEFAULT_PLAN`.
    Peak memory of one SD-2.1-base step (4 views at 512^2, fp16) is dominated by what the VAE encoder keeps for its
    backward pass: about 6.2 GiB when it keeps everything (docs/design.md, section 7).
    """

    unet_batch: int | None = None
    """Most samples per UNet forward; the stacked batch (views x conditions) is split into calls of at most this many
    samples. None = one call for the whole batch."""

    encode_views: int | None = None
    """Latent priors: views per VAE-encoder pass. None = one pass over every view whose activations are kept until
    the backward pass. k = the encoder's forward keeps only its input, and the backward pass runs it again k views at
    a time (activation checkpointing at the encoder boundary: one more encoder forward per step, the activations of
    only k views at once)."""

    recompute_elementwise: bool = True
    """Latent priors, one encoder pass over all views (``encode_views`` None): inside each block of the VAE encoder
    keep only the convolution, matmul and attention outputs for the backward pass and recompute the group norms,
    activations and additions from them, block by block (selective activation checkpointing,
    :func:`encoder_recompute_policy`; torch >= 2.4, ignored before). Estimated 6.2 -> 3.9 GiB for 4 views at 512^2
    for re-running those memory-bound element-wise kernels once. Ignored with ``encode_views``: the outer
    checkpoint already keeps nothing, and nested selective checkpoints would keep their saved outputs through the
    first pass."""

    cuda_graphs: bool = True
    """Replay the UNet forward from CUDA graphs (:mod:`csdtex.guidance.graphs`) when the prior's
    ``use_cuda_graphs`` allows it; the graphs' private memory pool stays reserved for the run."""

    compile_encoder: bool = False
    """Latent priors, one encoder pass over all views (``encode_views`` None) with gradients recorded: run the VAE
    encoder (posterior mean, shift and scale) through ``torch.compile`` (mode "default", static shapes), so that its
    forward and, through AOTAutograd, its backward pass are compiled by inductor, which fuses the group norms,
    activations and additions around the convolutions (on any device it is asked for; on the CPU inductor needs a C++
    compiler). The first step of each input shape pays the compilation (tens of seconds for SD at 512^2). What the
    compiled forward keeps for the backward pass is then chosen by AOTAutograd's min-cut partitioner (it recomputes
    fusible element-wise ops from the convolution outputs, as ``recompute_elementwise`` does by hand), so
    ``recompute_elementwise`` is not applied on this path. If compiling fails, one line is logged and the encoder
    runs eagerly under the rest of the plan from then on. Ignored with ``encode_views`` (the outer checkpoint runs
    the encoder eagerly) and under ``torch.no_grad`` (no backward pass to speed up; a second compilation for it
    would cost more than it saves). Same values up to floating-point rounding (fused kernels round differently;
    ``tests/test_compile_encoder.py``)."""

    matmul_attention: bool = True
    """Latent priors: the VAE encoder's self-attention runs as explicit matrix products
    (:func:`set_attention_processors`) instead of ``F.scaled_dot_product_attention``: 15 ms less per SD-2.1-base
    step on an H200 (the fused kernel's backward is slow for the encoder's single 512-wide head), for the
    [B, 4096, 4096] attention probabilities kept for the backward pass. The eager encoder under the default
    element-wise recomputation peaks no higher either way (5.86 GiB, 4 views at 512^2); the compiled encoder keeps
    0.2-0.3 GiB more, which no longer fits an 8 GB cap, so :func:`memory_plan` turns this off for a compiled encoder
    on a GPU below :data:`CUDA_GRAPHS_MIN_GIB`. Same values up to floating-point rounding."""

    def __post_init__(self) -> None:
        for name in ("unet_batch", "encode_views"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"MemoryPlan.{name} must be None or at least 1 (got {value})")


DEFAULT_PLAN = MemoryPlan()
"""The default: one UNet call per step replayed from a CUDA graph, one encoder pass over all views that keeps only
its convolution / matmul outputs."""

LOW_VRAM_PLAN = MemoryPlan(unet_batch=4, encode_views=1, recompute_elementwise=False, cuda_graphs=False)
"""``--low-vram``: UNet calls of at most 4 samples (one condition of 4 views), the encoder's activations of one view
at a time (recomputed in the backward pass), no CUDA graphs (their memory pool would stay reserved)."""


SMALL_GPU_PLAN = MemoryPlan(cuda_graphs=False)
"""The default plan on a GPU with less than :data:`CUDA_GRAPHS_MIN_GIB` of memory for this process: the same, but the
UNet runs eagerly. Its CUDA graphs keep a private memory pool reserved for the whole run (0.9 GiB for SD-2.1-base with
4 views), which the caching allocator cannot hand to the VAE encoder's backward pass: under an 8 GB cap the default
plan runs out of memory with graphs and finishes without them (with ``expandable_segments``, which ``csdtex``'s
command line sets; ``benchmarks/results/memory_cap_variants_h200.json``)."""

CUDA_GRAPHS_MIN_GIB = 12.0
"""GPU memory (GiB, after any per-process cap) below which :func:`memory_plan` leaves CUDA graphs off. The default
SD-2.1-base paint reserves 10.7-10.9 GiB with graphs uncapped (``benchmarks/results/speed_sd21_memory_h200.json``,
``speed_sd21_compile_h200.json``), so cards of 12 GiB and more keep them (a "12 GB" card reporting slightly less
than 12 GiB goes without: the safer side)."""


def memory_plan(low_vram: bool, compile_encoder: bool = False, memory_budget_gib: float | None = None) -> MemoryPlan:
    """The plan of a run.

    Args:
        low_vram: ``PaintConfig.low_vram`` (``--low-vram``): :data:`LOW_VRAM_PLAN`.
        compile_encoder: ``PaintConfig.compile_encoder`` (``--compile-encoder``): a copy of the plan with
            :attr:`MemoryPlan.compile_encoder` set (which the low-VRAM plan's per-view encoder passes ignore).
        memory_budget_gib: GPU memory this process may use (:func:`csdtex.devices.gpu_memory_budget_gib`; None =
            not a GPU or unknown). Below :data:`CUDA_GRAPHS_MIN_GIB` the default becomes :data:`SMALL_GPU_PLAN`.

    Returns:
        :data:`LOW_VRAM_PLAN`, :data:`SMALL_GPU_PLAN` or :data:`DEFAULT_PLAN` (each the same maths); with
        ``compile_encoder`` on a GPU below :data:`CUDA_GRAPHS_MIN_GIB`, :data:`SMALL_GPU_PLAN` with the fused attention
        kernel (:attr:`MemoryPlan.matmul_attention` off: the compiled encoder fits an 8 GB cap only so).
    """
    small_gpu = memory_budget_gib is not None and memory_budget_gib < CUDA_GRAPHS_MIN_GIB
    if low_vram:
        plan = LOW_VRAM_PLAN
    elif small_gpu:
        plan = SMALL_GPU_PLAN
    else:
        plan = DEFAULT_PLAN
    if not compile_encoder:
        return plan
    return replace(plan, compile_encoder=True, matmul_attention=plan.matmul_attention and not small_gpu)


class Prior:
    """A frozen text-conditioned diffusion model seen through the few operations score distillation needs.

    Use :func:`csdtex.guidance.load_prior` to build one. All networks are in eval mode with ``requires_grad`` off;
    gradients flow only from ``x`` back to the input images of :meth:`encode_images`.

    Attributes:
        kind: ``"latent"`` (x is a VAE latent) or ``"pixel"`` (x is the image itself).
        render_resolution: side in pixels of the square renders the prior wants (512 for SD, 64 for IF-I).
        device: where the networks live.
        dtype: the networks' floating dtype (fp16 / bf16 / fp32).
        num_train_timesteps: T, the number of DDPM training timesteps (1000 for SD and IF).
        alphas_cumprod: float32 [T] on ``device``, abar_t for t = 0 .. T-1.
        prediction_type: what the UNet predicts (``"epsilon"``, ``"v_prediction"`` or ``"sample"``); converted to eps
            by :meth:`predict_noise`.
        source: where the weights came from (folder path), for messages.
        unet, text_encoder, tokenizer: the underlying diffusers / transformers objects. The networks sit on ``device``
            except an offloaded text encoder (CPU memory between calls, :meth:`offload_text_encoder`) and, for a
            prior loaded with ``low_vram``, the UNet and VAE encoder until their first use.
        max_text_length: tokens per prompt (prompts are padded / truncated to it), i.e. L in [B, L, D].
        preset: name of the paint-settings preset that suits it (:data:`csdtex.config.PRESETS`): ``kind``, or
            ``"tiny"`` for csdtex's tiny priors.
        vocabulary: the words the prior knows when its vocabulary is closed (tiny priors: every other word becomes
            ``<unk>``), else None. Read from the ``"vocabulary"`` entry of the folder's ``tiny_prior_config.json`` (a
            :class:`~csdtex.guidance.vocabulary.Vocabulary` with word groups); for tiny-prior folders saved before
            that entry existed, the words of the tokenizer (a plain frozenset).
    """

    kind: PriorKind

    def __init__(
        self,
        *,
        unet: torch.nn.Module,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        alphas_cumprod: torch.Tensor,
        prediction_type: PredictionType,
        render_resolution: int,
        max_text_length: int,
        text_uses_attention_mask: bool,
        lowercase_prompts: bool,
        device: torch.device,
        dtype: torch.dtype,
        source: str,
    ) -> None:
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ModelError(
                f"the scheduler of {source} uses prediction_type={prediction_type!r}; "
                "csdtex supports 'epsilon', 'v_prediction' and 'sample'"
            )
        self.unet = unet
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.dtype = dtype
        self.alphas_cumprod = alphas_cumprod.to(device=self.device, dtype=torch.float32)
        self.num_train_timesteps = int(self.alphas_cumprod.shape[0])
        self.prediction_type: PredictionType = prediction_type
        self.render_resolution = int(render_resolution)
        self.max_text_length = int(max_text_length)
        self.source = source
        self._text_uses_attention_mask = text_uses_attention_mask
        self._lowercase_prompts = lowercase_prompts
        self._in_channels = int(unet.config.in_channels)
        self._out_channels = int(unet.config.out_channels)
        self.preset: str = self.kind
        self.use_cuda_graphs: bool = self.device.type == "cuda"
        """Replay the UNet's forward from CUDA graphs (:mod:`csdtex.guidance.graphs`; on by default on CUDA)."""
        self._graphed_unet = None
        self.vocabulary: Vocabulary | frozenset[str] | None = None
        self._text_encoder_offloaded = False
        self._placed = True

    def _device_modules(self) -> list[torch.nn.Module]:
        """The networks a training step runs on ``device`` (the text encoder is handled apart)."""
        return [self.unet]

    def defer_placement(self) -> None:
        """Leave the UNet (and the VAE encoder) where they are, in CPU memory after loading, until the first
        :meth:`encode_images` or :meth:`predict_noise` (or :meth:`place_networks`), so that the text encoder can run
        on the device without them (:func:`csdtex.guidance.load_prior` with ``low_vram``)."""
        self._placed = False

    def place_networks(self) -> None:
        """Move the UNet (and the VAE encoder) to ``device`` if they are not there yet."""
        if not self._placed:
            for module in self._device_modules():
                module.to(self.device)
            self._placed = True

    def offload_text_encoder(self) -> None:
        """Keep the text encoder in CPU memory from now on: :meth:`encode_text` moves it to ``device`` for each call
        and back (a few hundred ms for CLIP, a few s for T5-XXL), so that it never shares the GPU with a training
        step. No effect on a CPU prior or a released text encoder."""
        self._text_encoder_offloaded = True
        if self.text_encoder is not None and self.device.type != "cpu":
            self.text_encoder.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def release_cuda_graphs(self) -> None:
        """Drop the captured CUDA graphs of the UNet and their memory pool (they are captured again when a later call
        asks for graphs)."""
        if self._graphed_unet is not None:
            self._graphed_unet = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, render_resolution={self.render_resolution}, "
            f"device={str(self.device)!r}, dtype={self.dtype}, prediction_type={self.prediction_type!r}, "
            f"source={self.source!r})"
        )

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Encode prompts with the frozen text encoder, in one batched call.

        Args:
            prompts: B strings (may contain ``""``). Each is padded / truncated to ``max_text_length`` tokens, as the
                diffusers pipelines do (IF-style priors lowercase and strip the text first, like ``IFPipeline`` with
                ``clean_caption=False``).

        Returns:
            [B, L, D] last hidden states of the text encoder, in ``self.dtype`` on ``self.device``, no grad.
        """
        if isinstance(prompts, str):
            raise TypeError("encode_text takes a list of strings, not a single string")
        if self.text_encoder is None:
            raise RuntimeError("the text encoder of this prior was released (release_text_encoder); load it again")
        texts = [p.lower().strip() if self._lowercase_prompts else p for p in prompts]
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.max_text_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        input_ids = tokens.input_ids.to(self.device)
        attention_mask = tokens.attention_mask.to(self.device) if self._text_uses_attention_mask else None
        with self._text_encoder_on_device():
            hidden = self.text_encoder(input_ids, attention_mask=attention_mask)[0]
        return hidden.to(self.dtype)

    def token_ids(self, text: str, truncate: bool = False) -> tuple[int, ...]:
        """The token ids :meth:`encode_text` reads for ``text`` (special tokens included, no padding): all of them, or
        with ``truncate`` only the first ``max_text_length`` (what the text encoder sees)."""
        text = text.lower().strip() if self._lowercase_prompts else text
        ids = self.tokenizer(text, truncation=False, add_special_tokens=True, verbose=False).input_ids
        return tuple(ids[: self.max_text_length] if truncate else ids)

    @contextlib.contextmanager
    def _text_encoder_on_device(self) -> Iterator[None]:
        """Move an offloaded text encoder to ``device`` for the ``with`` block and back to the CPU after it."""
        if not self._text_encoder_offloaded or self.device.type == "cpu":
            yield
            return
        self.text_encoder.to(self.device)
        try:
            yield
        finally:
            self.text_encoder.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def encode_images(self, images: torch.Tensor, plan: MemoryPlan = DEFAULT_PLAN) -> torch.Tensor:
        """Map rendered images to the prior's input space ``x``, differentiably.

        Args:
            images: float [B, 3, H, W] in [-1, 1]; resized (bilinear, antialiased when shrinking) to
                ``render_resolution`` if H or W differ.
            plan: how to run the image encoder (latent priors; :class:`MemoryPlan`); the result is the same.

        Returns:
            x: float32 [B, C, h, w] with gradient w.r.t. ``images``: the latent (C=4, h=w=render_resolution/8 for SD)
            or the image itself (C=3, h=w=render_resolution).
        """
        raise NotImplementedError  # implemented by LatentPrior / PixelPrior

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        size = self.render_resolution
        if images.shape[-2:] != (size, size):
            shrinking = images.shape[-2] > size or images.shape[-1] > size
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
        return images

    @torch.no_grad()
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, text_embeddings: torch.Tensor,
                      plan: MemoryPlan = DEFAULT_PLAN) -> torch.Tensor:
        """Predict the noise in ``x_t`` at timesteps ``t`` under the given text conditioning (no grad).

        Args:
            x_t: float [N, C, h, w] noisy inputs in the prior's space (any float dtype; cast to ``self.dtype``).
            t: int64 [N] timesteps in ``[0, num_train_timesteps)``.
            text_embeddings: [N, L, D] from :meth:`encode_text`.
            plan: how to run the UNet (:class:`MemoryPlan`: calls of at most ``plan.unet_batch`` samples, CUDA graphs
                or not); the result is the same.

        Returns:
            eps: float32 [N, C, h, w]. Learned-variance channels (IF's out_channels = 2 * in_channels) are dropped and
            v / x0 predictions are converted to eps with ``alphas_cumprod[t]``.
        """
        n = x_t.shape[0]
        if t.shape != (n,) or text_embeddings.shape[0] != n:
            raise ValueError(
                f"batch mismatch: x_t {tuple(x_t.shape)}, t {tuple(t.shape)}, text {tuple(text_embeddings.shape)}"
            )
        self.place_networks()
        t = t.to(self.device, dtype=torch.long)
        x_in = x_t.to(self.device, dtype=self.dtype)
        embeddings = text_embeddings.to(self.device, dtype=self.dtype)
        forward = self._unet_forward
        if plan.cuda_graphs and self.use_cuda_graphs and self.device.type == "cuda":
            if self._graphed_unet is None:
                from csdtex.guidance.graphs import GraphedForward

                self._graphed_unet = GraphedForward(self._unet_forward)
            forward = self._graphed_unet
        if plan.unet_batch is None or n <= plan.unet_batch:
            out = forward(x_in, t, embeddings)
        else:
            size = plan.unet_batch
            out = torch.cat([forward(*parts) for parts in zip(x_in.split(size), t.split(size), embeddings.split(size))])
        if out.shape[1] != self._in_channels:
            out = out[:, : self._in_channels]
        x_t32 = x_t.to(self.device).float()
        return eps_from_prediction(out.float(), x_t32, self.alphas_cumprod[t], self.prediction_type)

    def _unet_forward(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=embeddings, return_dict=False)[0]

    def release_text_encoder(self) -> None:
        """Free the text encoder (and its GPU memory) once every prompt of a run is encoded; a later
        :meth:`encode_text` raises. Call it only on a prior that no later run will use (a batch keeps it)."""
        self.text_encoder = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class LatentPrior(Prior):
    """Stable-Diffusion-style prior: the UNet works on VAE latents (see :class:`Prior` for the interface).

    Attributes:
        vae: the AutoencoderKL whose encoder maps renders to latents (gradients flow through it).
        vae_scale_factor: pixels per latent cell, ``2 ** (len(vae.config.block_out_channels) - 1)`` (8 for SD).
    """

    kind: PriorKind = "latent"

    def __init__(self, *, vae: torch.nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vae = vae
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._scaling_factor = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self._shift_factor = float(shift) if shift is not None else 0.0
        self._attention_layers = attention_layers(vae.encoder)
        self._matmul_attention: bool | None = None  # which processor the layers have (None = diffusers' default)
        self._compiled_encoder = None  # torch.compile of _posterior_latents, built at first use
        self._compiled_signatures: set[tuple] = set()  # input signatures whose forward + backward compiled
        self._compile_failed = False

    @property
    def encoder_compilation(self) -> Literal["none", "compiled", "failed"]:
        """Whether :attr:`MemoryPlan.compile_encoder` took effect: ``"none"`` before any compiled encoder call,
        ``"compiled"`` once a compilation succeeded (and none failed), ``"failed"`` once one failed (the encoder
        then runs eagerly)."""
        if self._compile_failed:
            return "failed"
        return "compiled" if self._compiled_signatures else "none"

    def _device_modules(self) -> list[torch.nn.Module]:
        """The UNet and the encoder half of the VAE; the decoder is never used (renders are encoded, never decoded)
        and stays in CPU memory."""
        modules = [self.unet, self.vae.encoder]
        if getattr(self.vae, "quant_conv", None) is not None:
            modules.append(self.vae.quant_conv)
        return modules

    def encode_images(self, images: torch.Tensor, plan: MemoryPlan = DEFAULT_PLAN) -> torch.Tensor:
        """Encode renders to latents through the VAE encoder, keeping the graph back to ``images``.

        Uses the mean of the VAE posterior (not a sample), so ``x`` is a deterministic function of the render; the SD
        posterior's standard deviation is tiny, so this changes nothing in practice and keeps runs reproducible.

        Args:
            images: float [B, 3, H, W] in [-1, 1], any strides (the encoder gets a contiguous copy); resized to
                ``render_resolution`` (512 for SD) if needed.
            plan: ``plan.encode_views`` = views per encoder pass, recomputed in the backward pass (None = all views
                in one pass); ``plan.recompute_elementwise`` = keep only the encoder blocks' convolution / matmul
                outputs for the backward pass of a single pass; ``plan.compile_encoder`` = run a single pass through
                ``torch.compile`` (:attr:`MemoryPlan.compile_encoder`). All only matter when gradients are recorded;
                the values are the same up to floating-point rounding.

        Returns:
            float32 [B, 4, render_resolution / 8, render_resolution / 8]:
            ``(vae.encode(images).latent_dist.mean - shift_factor) * scaling_factor``.
        """
        self.place_networks()
        # Contiguous (NCHW) memory: a paint step's renders arrive as a permuted NHWC tensor, and with NHWC input the
        # convolutions write channels-last outputs that the group norms then read slowly. One copy of the input
        # (6 MiB for 4 views at 512^2 in fp16) made the SD-2.1-base encoder's forward + backward 90 -> 74 ms and
        # its peak 6.38 -> 5.86 GiB on an H200 (benchmarks/memory_format.py, results/memory_format_h200.json).
        images = self._resize(images).to(self.device, dtype=self.dtype, memory_format=torch.contiguous_format)
        recording = torch.is_grad_enabled() and images.requires_grad
        self._use_attention(plan.matmul_attention)
        if plan.encode_views is None or not recording:
            if plan.compile_encoder and recording:
                latents = self._compiled_latents(images)
                if latents is not None:
                    return latents
            return self._latents(images, plan.recompute_elementwise)
        from torch.utils.checkpoint import checkpoint

        # The encoder is deterministic (posterior mean, no dropout in eval mode): no RNG state to stash.
        encode = functools.partial(self._latents, recompute_elementwise=False)
        parts = [checkpoint(encode, part, use_reentrant=False, preserve_rng_state=False)
                 for part in images.split(plan.encode_views)]
        return torch.cat(parts)

    def _use_attention(self, matmul: bool) -> None:
        """Give the encoder's attention layers the processor ``plan.matmul_attention`` asks for (a compiled encoder
        is traced again after a switch; a run keeps one plan)."""
        if self._matmul_attention is not matmul:
            set_attention_processors(self._attention_layers, matmul)
            self._matmul_attention = matmul

    def _latents(self, images: torch.Tensor, recompute_elementwise: bool) -> torch.Tensor:
        """float32 [B, 4, h, w] scaled posterior means of ``images`` (on the device, in ``self.dtype``)."""
        with _selective_recompute(self.vae.encoder, recompute_elementwise):
            return self._posterior_latents(images)

    def _posterior_latents(self, images: torch.Tensor) -> torch.Tensor:
        """float32 [B, 4, h, w] ``(vae.encode(images).latent_dist.mean - shift) * scale`` of images [B, 3, H, W] in
        [-1, 1] (on the device, in ``self.dtype``): the function :meth:`_compiled_latents` compiles."""
        posterior = self.vae.encode(images).latent_dist
        return ((posterior.mean - self._shift_factor) * self._scaling_factor).float()

    def _compiled_latents(self, images: torch.Tensor) -> torch.Tensor | None:
        """:meth:`_posterior_latents` of images [B, 3, H, W] in [-1, 1] (``self.dtype``, on the device, recording
        gradients) through ``torch.compile`` (mode "default", ``dynamic=False``); None when compiling failed, now or
        at an earlier call (the caller then runs the encoder eagerly).

        The first call of each input signature (shape, strides, dtype, device) compiles the forward and the backward
        pass on a detached copy of ``images`` before the real call, so that a compiler error surfaces here and not
        inside the caller's ``backward()`` (AOTAutograd compiles the backward lazily); it costs one more encoder
        forward + backward, once. Out-of-memory errors are raised, not turned into the eager fallback.
        """
        if self._compile_failed:
            return None
        if self._compiled_encoder is None:
            self._compiled_encoder = torch.compile(self._posterior_latents, mode="default", dynamic=False)
        signature = (tuple(images.shape), images.stride(), images.dtype, images.device)
        if signature not in self._compiled_signatures:
            try:
                probe = images.detach().requires_grad_(True)
                latents = self._compiled_encoder(probe)
                torch.autograd.grad(latents, probe, torch.ones_like(latents))
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - any compiler failure falls back to the eager encoder
                self._compile_failed = True
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                _LOG.warning("csdtex: compiling the VAE encoder failed, it runs eagerly from now on (%s)", reason)
                return None
            self._compiled_signatures.add(signature)
        return self._compiled_encoder(images)


class PixelPrior(Prior):
    """DeepFloyd-IF-style prior: the UNet works on 64x64 images directly (see :class:`Prior` for the interface)."""

    kind: PriorKind = "pixel"

    def encode_images(self, images: torch.Tensor, plan: MemoryPlan = DEFAULT_PLAN) -> torch.Tensor:
        """Return the renders themselves as ``x``.

        Args:
            images: float [B, 3, H, W] in [-1, 1]; resized to ``render_resolution`` (64 for IF-I) if needed.
            plan: unused (there is no image encoder); accepted like :meth:`LatentPrior.encode_images`.

        Returns:
            float32 [B, 3, render_resolution, render_resolution], differentiable w.r.t. ``images``.
        """
        return self._resize(images).to(self.device).float()


def attention_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The diffusers ``Attention`` layers inside ``module`` (empty when diffusers lacks the class)."""
    try:
        from diffusers.models.attention_processor import Attention
    except ImportError:  # pragma: no cover - diffusers without this class
        return []
    return [layer for layer in module.modules() if isinstance(layer, Attention)]


def set_attention_processors(layers: list[torch.nn.Module], matmul: bool) -> None:
    """Give diffusers ``Attention`` ``layers`` explicit matrix-product attention (``matmul``: diffusers'
    ``AttnProcessor``: scores by ``baddbmm``, softmax in float32 where the layer asks for it, ``bmm`` with the values)
    or ``F.scaled_dot_product_attention`` (``AttnProcessor2_0``). The same maths, rounded differently.

    Why both: the SD-family VAE encoder has one self-attention layer (mid block, 64^2 tokens at 512^2 input, a
    single head of 512 channels). For that head width PyTorch's ``scaled_dot_product_attention`` runs its
    memory-efficient kernel, whose backward took 15.3 of the encoder's 75 ms forward + backward on an H200 (4 views at
    512^2, fp16, ``benchmarks/memory_format.py --kernels``) for matrix products of about 0.4 TFLOP in all; with
    explicit products the encoder's forward + backward took 60 ms. The explicit path keeps the [B, 4096, 4096]
    attention probabilities (128 MiB at 4 views in fp16) for the backward pass instead of the fused kernel's
    log-sum-exp (:attr:`MemoryPlan.matmul_attention`).
    """
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for layer in layers:
        layer.set_processor(AttnProcessor() if matmul else AttnProcessor2_0())


def _save_op_packets() -> frozenset:
    """The aten operators whose outputs :func:`encoder_recompute_policy` keeps: convolutions, matrix products and
    attention kernels (the arithmetic-heavy ones); the attention kernels missing from this torch build are skipped."""
    names = ("convolution", "mm", "addmm", "bmm", "baddbmm", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
             "_scaled_dot_product_flash_attention_for_cpu", "_efficient_attention_forward", "_flash_attention_forward")
    return frozenset(getattr(torch.ops.aten, name) for name in names if hasattr(torch.ops.aten, name))


_SAVE_OPS = _save_op_packets()


def selective_recompute_available() -> bool:
    """Whether this torch has selective activation checkpointing in eager mode (torch >= 2.4). Without it
    ``MemoryPlan.recompute_elementwise`` has no effect: the encoder keeps all its activations (more memory, same
    values)."""
    import torch.utils.checkpoint as checkpoint_module

    return hasattr(checkpoint_module, "create_selective_checkpoint_contexts") and hasattr(
        checkpoint_module, "CheckpointPolicy")


def encoder_recompute_policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    """Selective-checkpointing policy (``torch.utils.checkpoint.create_selective_checkpoint_contexts``): keep the
    outputs of convolutions, matrix products and attention kernels, recompute everything else (group norms,
    activations, additions, casts) in the backward pass. Recomputing an operator on the same inputs gives the same
    values, so the gradient is unchanged."""
    from torch.utils.checkpoint import CheckpointPolicy

    if op.overloadpacket in _SAVE_OPS:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _checkpoint_block(module: torch.nn.Module, *args: Any) -> Any:
    """Run one encoder block under non-reentrant checkpointing with :func:`encoder_recompute_policy` (the
    ``gradient_checkpointing_func`` diffusers' ``Encoder`` calls per down block and for the mid block)."""
    from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

    context = functools.partial(create_selective_checkpoint_contexts, encoder_recompute_policy)
    return checkpoint(module.__call__, *args, use_reentrant=False, preserve_rng_state=False, context_fn=context)


@contextlib.contextmanager
def _selective_recompute(encoder: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """While the block runs, make a diffusers ``Encoder`` checkpoint each of its blocks with
    :func:`_checkpoint_block` (its own ``gradient_checkpointing`` switch, which it consults only when gradients are
    recorded); the encoder's previous settings are restored afterwards. Encoders without that switch run as they
    are."""
    if not enabled or not hasattr(encoder, "gradient_checkpointing") or not selective_recompute_available():
        yield
        return
    saved = (encoder.gradient_checkpointing, encoder.__dict__.get("_gradient_checkpointing_func"))
    encoder.gradient_checkpointing = True
    encoder._gradient_checkpointing_func = _checkpoint_block
    try:
        yield
    finally:
        encoder.gradient_checkpointing = saved[0]
        if saved[1] is None:
            encoder.__dict__.pop("_gradient_checkpointing_func", None)
        else:
            encoder._gradient_checkpointing_func = saved[1]
