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

The built-in prior (alias :data:`~csdtex.guidance.aliases.BUILTIN_MODEL`, csdtex's own small pixel prior, built by
:mod:`csdtex.tinyprior`) is an ordinary IF-layout :class:`PixelPrior`; like any folder with a
``tiny_prior_config.json`` it gets ``Prior.preset = "tiny"`` and its closed word list in ``Prior.vocabulary``
(:class:`csdtex.guidance.vocabulary.Vocabulary`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from csdtex.errors import ModelError
from csdtex.guidance.aliases import BUILTIN_MODEL  # re-exported: csdtex.config imports it from here
from csdtex.guidance.vocabulary import Vocabulary

__all__ = ["BUILTIN_MODEL", "LatentPrior", "PixelPrior", "PredictionType", "Prior", "PriorKind", "eps_from_prediction"]

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
        unet, text_encoder, tokenizer: the underlying diffusers / transformers objects.
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
        hidden = self.text_encoder(input_ids, attention_mask=attention_mask)[0]
        return hidden.to(self.dtype)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Map rendered images to the prior's input space ``x``, differentiably.

        Args:
            images: float [B, 3, H, W] in [-1, 1]; resized (bilinear, antialiased when shrinking) to
                ``render_resolution`` if H or W differ.

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
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x_t`` at timesteps ``t`` under the given text conditioning (no grad).

        Args:
            x_t: float [N, C, h, w] noisy inputs in the prior's space (any float dtype; cast to ``self.dtype``).
            t: int64 [N] timesteps in ``[0, num_train_timesteps)``.
            text_embeddings: [N, L, D] from :meth:`encode_text`.

        Returns:
            eps: float32 [N, C, h, w]. Learned-variance channels (IF's out_channels = 2 * in_channels) are dropped and
            v / x0 predictions are converted to eps with ``alphas_cumprod[t]``.
        """
        n = x_t.shape[0]
        if t.shape != (n,) or text_embeddings.shape[0] != n:
            raise ValueError(
                f"batch mismatch: x_t {tuple(x_t.shape)}, t {tuple(t.shape)}, text {tuple(text_embeddings.shape)}"
            )
        t = t.to(self.device, dtype=torch.long)
        x_in = x_t.to(self.device, dtype=self.dtype)
        embeddings = text_embeddings.to(self.device, dtype=self.dtype)
        if self.use_cuda_graphs and self.device.type == "cuda":
            if self._graphed_unet is None:
                from csdtex.guidance.graphs import GraphedForward

                self._graphed_unet = GraphedForward(self._unet_forward)
            out = self._graphed_unet(x_in, t, embeddings)
        else:
            out = self._unet_forward(x_in, t, embeddings)
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

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Encode renders to latents through the VAE encoder, keeping the graph back to ``images``.

        Uses the mean of the VAE posterior (not a sample), so ``x`` is a deterministic function of the render; the SD
        posterior's standard deviation is tiny, so this changes nothing in practice and keeps runs reproducible.

        Args:
            images: float [B, 3, H, W] in [-1, 1]; resized to ``render_resolution`` (512 for SD) if needed.

        Returns:
            float32 [B, 4, render_resolution / 8, render_resolution / 8]:
            ``(vae.encode(images).latent_dist.mean - shift_factor) * scaling_factor``.
        """
        images = self._resize(images).to(self.device, dtype=self.dtype)
        posterior = self.vae.encode(images).latent_dist
        return ((posterior.mean - self._shift_factor) * self._scaling_factor).float()


class PixelPrior(Prior):
    """DeepFloyd-IF-style prior: the UNet works on 64x64 images directly (see :class:`Prior` for the interface)."""

    kind: PriorKind = "pixel"

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Return the renders themselves as ``x``.

        Args:
            images: float [B, 3, H, W] in [-1, 1]; resized to ``render_resolution`` (64 for IF-I) if needed.

        Returns:
            float32 [B, 3, render_resolution, render_resolution], differentiable w.r.t. ``images``.
        """
        return self._resize(images).to(self.device).float()
