"""Frozen text-to-image diffusion priors: loading, text encoding, image encoding and noise prediction.

Two layouts of diffusers pipeline folders are supported:

- **latent** (Stable Diffusion 1.x / 2.x): ``vae`` (AutoencoderKL), ``unet`` (UNet2DConditionModel), ``text_encoder``
  (CLIPTextModel), ``tokenizer`` (CLIPTokenizer), ``scheduler``. The prior sees ``x = vae.encode(image).mean * scale``;
  renders are made at ``vae_scale_factor * unet.config.sample_size`` pixels (512 for SD 1.5 / 2.1-base).
- **pixel** (DeepFloyd IF stage I): ``unet`` (UNet2DConditionModel with 3 input channels, often 6 output channels =
  eps + learned variance), ``text_encoder`` (T5EncoderModel), ``tokenizer`` (T5 tokenizer), ``scheduler``. The prior
  sees the image itself, ``x = image`` in [-1, 1], at ``unet.config.sample_size`` pixels (64 for IF-I).

Weights are always read with ``use_safetensors=True`` (pickled ``.bin``/``.ckpt`` weights are refused) and remote code
is never trusted. A hub id is first fetched into the Hugging Face cache with ``huggingface_hub.snapshot_download``
(only the files a prior needs), then loaded from that folder exactly like a local folder, so every network problem
surfaces in one place and becomes a one-line :class:`~csdtex.errors.ModelError`.

Conventions
-----------
- Images given to :meth:`Prior.encode_images` are float ``[B, 3, H, W]`` in [-1, 1] (RGB, row 0 = top).
- ``x`` (what the diffusion model sees) and everything returned by the prior are float32; the networks run in
  ``Prior.dtype`` (fp16 on CUDA by default, fp32 on CPU).
- Timesteps are integer indices in ``[0, num_train_timesteps)``; ``alphas_cumprod[t]`` is abar_t of the DDPM forward
  process ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) noise``.

The built-in prior (``tiny``, csdtex's own small pixel prior, :mod:`csdtex.guidance.tiny_prior`) is an ordinary IF-layout
folder shipped with csdtex (:func:`builtin_prior_folder`); the alias ``tiny`` loads it. Any folder with a
``tiny_prior_config.json`` (the built-in one, or one trained with ``benchmarks/train_prior.py``) gets
``Prior.preset = "tiny"`` and its closed word list in ``Prior.vocabulary``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from csdtex.errors import DeviceError, ModelError

PriorKind = Literal["latent", "pixel"]
PredictionType = Literal["epsilon", "v_prediction", "sample"]


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a hub model.

    Attributes:
        alias: what the user types (``--model sd21``).
        repo_id: the Hugging Face Hub repository it stands for.
        description: one line for ``csdtex models``.
        gated: the repository requires accepting a licence on its hub page and logging in.
    """

    alias: str
    repo_id: str
    description: str
    gated: bool = False
    builtin: bool = False
    """Shipped with csdtex (``repo_id`` is then a label, not a hub id); loaded from :func:`builtin_prior_folder`."""


BUILTIN_MODEL = "tiny"
"""The alias of the built-in prior, the default ``--model``."""

MODEL_ALIASES: dict[str, ModelAlias] = {
    a.alias: a
    for a in (
        ModelAlias(
            BUILTIN_MODEL,
            "(built in)",
            "csdtex's own tiny pixel prior, 64 px, works offline on a CPU; knows flat colours and simple patterns only "
            "(the default)",
            builtin=True,
        ),
        ModelAlias(
            "sd21",
            "stabilityai/stable-diffusion-2-1-base",
            "Stable Diffusion 2.1-base, latent prior rendered at 512 px (the CSD paper's default)",
        ),
        ModelAlias(
            "sd15",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "Stable Diffusion 1.5, latent prior rendered at 512 px",
        ),
        ModelAlias(
            "if",
            "DeepFloyd/IF-I-XL-v1.0",
            "DeepFloyd IF stage I XL, pixel prior at 64 px (gated: accept the licence on the hub page, then log in)",
            gated=True,
        ),
    )
}


def list_model_aliases() -> list[tuple[str, str, str]]:
    """Return the built-in model aliases as ``(alias, hub repo id, one-line description)`` tuples, in display order."""
    return [(a.alias, a.repo_id, a.description) for a in MODEL_ALIASES.values()]


BUILTIN_PRIOR_PARTS: tuple[str, ...] = ("priors", "tiny")
"""Where the built-in prior lives below csdtex's asset folder: ``assets/priors/tiny`` in a source checkout,
``<prefix>/share/csdtex/priors/tiny`` in an installed wheel (``setup.cfg``'s data_files)."""


def asset_roots() -> list[Path]:
    """Folders that may hold csdtex's shipped assets, in search order.

    1. ``<checkout>/assets`` next to the ``csdtex`` package (a source checkout or an editable install);
    2. ``share/csdtex`` of the installed distribution, found through its RECORD (works for any install scheme:
       virtual environments, ``--user``, ``--prefix``, ``--target``);
    3. ``share/csdtex`` beside the ``csdtex`` package (``pip install --target``), then ``<sys.prefix>/share/csdtex``.
    """
    import sys

    package_parent = Path(__file__).resolve().parents[2]
    roots = [package_parent / "assets"]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            files = distribution("csdtex").files or []
        except PackageNotFoundError:
            files = []
        for entry in files:
            if "share/csdtex/" not in Path(str(entry)).as_posix():
                continue
            located = Path(str(entry.locate())).resolve()
            root = next((p for p in located.parents if p.name == "csdtex" and p.parent.name == "share"), None)
            if root is not None:
                roots.append(root)
                break
    except Exception:  # noqa: BLE001 - a broken installation record only removes one search location
        pass
    roots += [package_parent / "share" / "csdtex", Path(sys.prefix) / "share" / "csdtex"]
    return list(dict.fromkeys(roots))


def builtin_prior_folder() -> Path:
    """The folder of the built-in prior (see :func:`asset_roots` for where it is looked for).

    Raises:
        ModelError: it is in none of those places (an incomplete installation).
    """
    candidates = [root.joinpath(*BUILTIN_PRIOR_PARTS) for root in asset_roots()]
    for folder in candidates:
        if (folder / "model_index.json").is_file():
            return folder
    raise ModelError(
        f"the built-in prior is missing from this installation (looked in {', '.join(map(str, candidates))}): "
        "reinstall csdtex, or pass --model with a local diffusers folder"
    )


# --------------------------------------------------------------------------------------------------------------------
# The prior interface
# --------------------------------------------------------------------------------------------------------------------


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

    Use :func:`load_prior` to build one. All networks are in eval mode with ``requires_grad`` off; gradients flow only
    from ``x`` back to the input images of :meth:`encode_images`.

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
            ``<unk>``), else None.
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
        self.vocabulary: frozenset[str] | None = None

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
        out = self.unet(
            x_in, t, encoder_hidden_states=text_embeddings.to(self.device, dtype=self.dtype), return_dict=False
        )[0]
        if out.shape[1] != self._in_channels:
            out = out[:, : self._in_channels]
        x_t32 = x_t.to(self.device).float()
        return eps_from_prediction(out.float(), x_t32, self.alphas_cumprod[t], self.prediction_type)


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


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------

_PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SAFETENSORS_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.safetensors$"
)
_WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")
_CONFIG_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*", "tokenizer/*"]


def _one_line(err: BaseException, limit: int = 240) -> str:
    """First non-empty line of an exception's message, shortened, for embedding into a one-line ModelError."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ModelError(f"unsupported prior dtype {dtype}: use fp16, bf16 or fp32")
        return dtype
    names = {
        "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
        "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
        "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    }  # fmt: skip
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise ModelError(f"unknown prior dtype {dtype!r}: use fp16, bf16 or fp32") from None


def _resolve_device(device: torch.device | str) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"invalid device {device!r} ({_one_line(err)}): use 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested for the prior but is not available: use --device cpu or a CUDA machine")
    return device


def _weight_variants(component_dir: Path) -> tuple[set[str | None], list[str]]:
    """Safetensors variants present in a component folder (None = no variant) and the names of pickled weight files."""
    variants: set[str | None] = set()
    pickled: list[str] = []
    if component_dir.is_dir():
        for p in component_dir.iterdir():
            if not p.is_file():
                continue
            m = _SAFETENSORS_NAME.match(p.name)
            if m:
                variants.add(m.group("variant"))
            elif p.name.endswith(_PICKLED_SUFFIXES):
                pickled.append(p.name)
    return variants, pickled


def _choose_variant(folder: Path, component: str, wanted: str | None) -> str | None:
    """Pick which safetensors variant of ``component`` to load, or raise a ModelError if there is none.

    Preference: the wanted variant (``"fp16"`` when loading in half precision), then the plain weights, then
    ``"fp16"``, then any other variant (e.g. ``non_ema``).
    """
    component_dir = folder / component
    variants, pickled = _weight_variants(component_dir)
    if not variants:
        if pickled:
            raise ModelError(
                f"{component_dir} holds only pickled weights ({', '.join(sorted(pickled)[:2])}); csdtex loads "
                "safetensors only: convert them (load the pipeline and save_pretrained(..., safe_serialization=True)) "
                "or get the safetensors files of the model"
            )
        raise ModelError(
            f"no weights in {component_dir} (expected diffusion_pytorch_model.safetensors or model.safetensors): "
            "the folder is incomplete; download the model again or point --model to a complete diffusers folder"
        )
    for candidate in (wanted, None, "fp16"):
        if candidate in variants:
            return candidate
    return sorted(v for v in variants if v is not None)[0]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path} ({_one_line(err)}): the model folder is damaged; download it again")
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object: the model folder is damaged; download it again")
    return data


def _detect_kind(folder: Path) -> PriorKind:
    """Decide whether ``folder`` is a latent (SD) or pixel (IF stage I) pipeline; raise ModelError if neither."""
    index_path = folder / "model_index.json"
    index = _read_json(index_path) if index_path.is_file() else {}
    if not index and not (folder / "unet").is_dir():
        raise ModelError(
            f"{folder} is not a diffusers pipeline folder (no model_index.json and no unet/): "
            "pass a folder saved with DiffusionPipeline.save_pretrained, a hub id or an alias (csdtex models)"
        )
    class_name = str(index.get("_class_name", ""))
    if "text_encoder_2" in index or (folder / "text_encoder_2").is_dir():
        raise ModelError(
            f"{folder} is a {class_name or 'pipeline'} with two text encoders (SDXL / SD3 style), which csdtex does "
            "not support: use Stable Diffusion 1.x/2.x or DeepFloyd IF stage I"
        )
    missing = [c for c in ("unet", "text_encoder", "tokenizer", "scheduler") if not (folder / c).is_dir()]
    if missing:
        raise ModelError(
            f"{folder} has no {', '.join(m + '/' for m in missing)} "
            f"({class_name or 'unknown pipeline'}): csdtex needs a text-to-image pipeline with unet, text_encoder, "
            "tokenizer and scheduler (Stable Diffusion 1.x/2.x or DeepFloyd IF stage I)"
        )
    if not (folder / "unet" / "config.json").is_file():
        raise ModelError(f"{folder / 'unet'} has no config.json: the folder is incomplete; download the model again")
    vae_entry = index.get("vae")
    vae_listed = isinstance(vae_entry, list) and bool(vae_entry) and vae_entry[0] is not None
    if vae_listed and not (folder / "vae").is_dir():
        raise ModelError(f"{folder} has no vae/ although model_index.json lists one: download the model again")
    return "latent" if (folder / "vae").is_dir() else "pixel"


def _alphas_cumprod(folder: Path) -> tuple[torch.Tensor, PredictionType]:
    from diffusers import DDPMScheduler

    config_path = folder / "scheduler" / "scheduler_config.json"
    if not config_path.is_file():
        raise ModelError(f"{config_path} is missing: the folder is incomplete; download the model again")
    config = _read_json(config_path)
    # Only the training noise schedule matters here; DDPMScheduler builds abar_t for every beta_schedule the diffusers
    # schedulers share (linear, scaled_linear, squaredcos_cap_v2, sigmoid, trained_betas).
    keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "rescale_betas_zero_snr")
    try:
        scheduler = DDPMScheduler(**{k: config[k] for k in keep if k in config and config[k] is not None})
    except (ValueError, NotImplementedError, TypeError) as err:
        raise ModelError(f"unsupported noise schedule in {config_path} ({_one_line(err)})") from None
    return scheduler.alphas_cumprod.clone().float(), config.get("prediction_type", "epsilon")


def _sample_size(unet_config: Any) -> int:
    size = unet_config.sample_size
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ModelError(f"non-square UNet sample_size {tuple(size)} is not supported")
        size = size[0]
    return int(size)


def _quiet_loading_bars() -> None:
    """Hide the per-component "Loading weights" bars of transformers/diffusers (csdtex shows its own progress)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()


def _load_component(loader: Any, what: Path, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` on a local folder; turn file-level failures into a one-line ModelError."""
    from safetensors import SafetensorError

    _quiet_loading_bars()
    try:
        return loader.from_pretrained(str(what), local_files_only=True, **kwargs)
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelError(
            f"cannot load {what} with {loader.__name__} ({_one_line(err)}): the files are damaged or of another "
            "architecture; download the model again or use another folder"
        ) from None


def _load_tokenizer(tokenizer_dir: Path, text_model_type: str) -> Any:
    from transformers import CLIPTokenizer, T5Tokenizer

    cls = CLIPTokenizer if text_model_type == "clip_text_model" else T5Tokenizer
    has_json = (tokenizer_dir / "tokenizer.json").is_file()
    if cls is T5Tokenizer and not has_json and (tokenizer_dir / "spiece.model").is_file():
        try:
            import google.protobuf  # noqa: F401
            import sentencepiece  # noqa: F401
        except ImportError:
            raise ModelError(
                f"the T5 tokenizer in {tokenizer_dir} is a SentencePiece model (spiece.model) without tokenizer.json; "
                "reading it needs two more packages: pip install sentencepiece protobuf"
            ) from None
    return _load_component(cls, tokenizer_dir)


def load_prior_from_folder(folder: str | os.PathLike, device: torch.device | str = "cpu", dtype: Any = None) -> Prior:
    """Load a prior from a local diffusers pipeline folder (no network access).

    Args:
        folder: a folder as written by ``DiffusionPipeline.save_pretrained`` (model_index.json, unet/, text_encoder/,
            tokenizer/, scheduler/, and vae/ for latent priors). Weights must be safetensors; fp16 variants
            (``*.fp16.safetensors``) are used when loading in half precision and present.
        device: where to put the networks.
        dtype: network dtype (torch dtype or "fp16" / "bf16" / "fp32"); default fp16 on CUDA, fp32 on CPU.

    Returns:
        A :class:`LatentPrior` or :class:`PixelPrior`, frozen and in eval mode.

    Raises:
        ModelError: the folder is missing, of the wrong kind, incomplete, holds pickled weights only, or unreadable.
        DeviceError: CUDA requested but unavailable.
    """
    folder = Path(folder).expanduser()
    device = _resolve_device(device)
    dtype = _resolve_dtype(dtype, device)
    if not folder.exists():
        raise ModelError(
            f"model folder {folder} does not exist: pass an existing diffusers folder, a hub id or an alias"
        )
    if not folder.is_dir():
        raise ModelError(
            f"{folder} is a file, not a diffusers folder: single-file checkpoints are not supported; convert it with "
            "diffusers (StableDiffusionPipeline.from_single_file(...).save_pretrained(folder)) and pass the folder"
        )
    kind = _detect_kind(folder)

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import is_accelerate_available
    from transformers import CLIPTextModel, T5EncoderModel

    wanted_variant = "fp16" if dtype in (torch.float16, torch.bfloat16) else None
    text_config_path = folder / "text_encoder" / "config.json"
    text_config = _read_json(text_config_path) if text_config_path.is_file() else {}
    text_model_type = str(text_config.get("model_type", ""))
    text_classes = {"clip_text_model": CLIPTextModel, "t5": T5EncoderModel}
    if text_model_type not in text_classes:
        raise ModelError(
            f"unsupported text encoder in {folder / 'text_encoder'} (model_type {text_model_type or 'missing'!r}): "
            "csdtex supports CLIP (Stable Diffusion) and T5 (DeepFloyd IF) text encoders"
        )

    variants = {c: _choose_variant(folder, c, wanted_variant) for c in _WEIGHT_COMPONENTS if (folder / c).is_dir()}
    alphas_cumprod, prediction_type = _alphas_cumprod(folder)
    tokenizer = _load_tokenizer(folder / "tokenizer", text_model_type)

    unet = _load_component(
        UNet2DConditionModel, folder / "unet", use_safetensors=True, torch_dtype=dtype,
        variant=variants["unet"], low_cpu_mem_usage=is_accelerate_available(),
    )  # fmt: skip
    text_encoder = _load_component(
        text_classes[text_model_type], folder / "text_encoder", use_safetensors=True, dtype=dtype,
        variant=variants["text_encoder"], trust_remote_code=False,
    )  # fmt: skip
    modules: list[torch.nn.Module] = [unet, text_encoder]
    common: dict[str, Any] = dict(
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas_cumprod,
        prediction_type=prediction_type,
        text_uses_attention_mask=bool(getattr(text_encoder.config, "use_attention_mask", False))
        or text_model_type == "t5",
        device=device,
        dtype=dtype,
        source=str(folder),
    )
    if kind == "latent":
        vae = _load_component(
            AutoencoderKL, folder / "vae", use_safetensors=True, torch_dtype=dtype, variant=variants["vae"],
            low_cpu_mem_usage=is_accelerate_available(),
        )  # fmt: skip
        modules.append(vae)
        if unet.config.in_channels != vae.config.latent_channels:
            raise ModelError(
                f"{folder}: the UNet takes {unet.config.in_channels} channels but the VAE makes "
                f"{vae.config.latent_channels}: not a text-to-image Stable Diffusion folder (inpainting / depth models "
                "are not supported)"
            )
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        prior: Prior = LatentPrior(
            vae=vae,
            render_resolution=scale * _sample_size(unet.config),
            max_text_length=min(int(tokenizer.model_max_length), 77),
            lowercase_prompts=False,
            **common,
        )
    else:
        if unet.config.in_channels != 3:
            raise ModelError(
                f"{folder}: the UNet takes {unet.config.in_channels} channels, not 3: not a DeepFloyd IF stage I "
                "folder (super-resolution stages are not supported as priors)"
            )
        # IFPipeline.encode_prompt pads / truncates T5 prompts to 77 tokens.
        prior = PixelPrior(
            render_resolution=_sample_size(unet.config), max_text_length=77, lowercase_prompts=True, **common
        )
        if (folder / "tiny_prior_config.json").is_file():
            prior.preset = "tiny"
            prior.vocabulary = _word_vocabulary(tokenizer)
    for module in modules:
        module.eval().requires_grad_(False).to(device)
    return prior


def _word_vocabulary(tokenizer) -> frozenset[str]:
    """The words of a whole-word tokenizer (pieces ``"▁word"``, plus punctuation pieces), without special tokens."""
    special = set(getattr(tokenizer, "all_special_tokens", []))
    words = set()
    for piece in tokenizer.get_vocab():
        if piece in special:
            continue
        words.add(piece[1:] if piece.startswith("\u2581") else piece)
    return frozenset(w for w in words if w)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _weight_patterns(variant: str | None) -> list[str]:
    patterns: list[str] = []
    for c in _WEIGHT_COMPONENTS:
        if variant is None:
            patterns += [
                f"{c}/diffusion_pytorch_model.safetensors", f"{c}/model.safetensors",
                f"{c}/diffusion_pytorch_model-*-of-*.safetensors", f"{c}/model-*-of-*.safetensors",
                f"{c}/*.safetensors.index.json",
            ]  # fmt: skip
        else:
            patterns += [
                f"{c}/*.{variant}.safetensors", f"{c}/*.{variant}-*-of-*.safetensors",
                f"{c}/*.safetensors.index.{variant}.json",
            ]  # fmt: skip
    return patterns


def _hub_error(repo_id: str, err: Exception) -> ModelError:
    """Translate a huggingface_hub exception into a one-line ModelError with a remedy."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    aliases = ", ".join(MODEL_ALIASES)
    if isinstance(err, GatedRepoError):
        return ModelError(
            f"{repo_id} is gated: accept its licence on https://huggingface.co/{repo_id} while logged in, then log in "
            "here with `hf auth login` (or `huggingface-cli login`) and retry"
        )
    if isinstance(err, RepositoryNotFoundError):
        return ModelError(
            f"no model {repo_id!r} on the Hugging Face Hub (or it is private and you are not logged in): check the "
            f"id, use an alias ({aliases}) or pass a local diffusers folder"
        )
    if isinstance(err, RevisionNotFoundError):
        return ModelError(f"{repo_id}: the requested revision does not exist on the hub ({_one_line(err)})")
    if isinstance(err, LocalEntryNotFoundError):
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if _hub_offline() else "the Hugging Face Hub cannot be reached"
        return ModelError(
            f"cannot download the weights of {repo_id}: {why} and they are not (completely) in the local cache; "
            "pass a local diffusers folder with --model /path/to/folder, or run once with network access"
        )
    if isinstance(err, HFValidationError):
        return ModelError(
            f"unknown model {repo_id!r}: not an alias ({aliases}), not an existing folder and not a valid hub id; "
            "pass a local diffusers folder or an alias"
        )
    if isinstance(err, HfHubHTTPError):
        return ModelError(f"downloading {repo_id} failed ({_one_line(err)}); check your network and retry")
    return ModelError(f"downloading {repo_id} failed ({_one_line(err)}); check disk space and network, then retry")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exception bases of the HTTP clients huggingface_hub may use (proxy / TLS errors it lets through)."""
    errors: list[type[BaseException]] = []
    for module_name, attr in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        cls = getattr(module, attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            errors.append(cls)
    return tuple(errors)


def _download(repo_id: str, variant: str | None, cache_dir: str | os.PathLike | None) -> Path:
    """Fetch (or find in the cache) the files a prior needs; return the local snapshot folder."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    offline = _hub_offline()
    transport_errors = _transport_errors()

    def fetch(patterns: list[str]) -> Path:
        try:
            return Path(
                huggingface_hub.snapshot_download(
                    repo_id, allow_patterns=patterns, cache_dir=cache_dir, local_files_only=offline,
                    library_name="csdtex",
                )
            )  # fmt: skip
        except (HfHubHTTPError, LocalEntryNotFoundError, HFValidationError, OSError) as err:
            raise _hub_error(repo_id, err) from None
        except transport_errors as err:
            raise ModelError(
                f"network error while downloading {repo_id} ({type(err).__name__}: {_one_line(err)}): check your "
                "network / proxy settings, or pass a local diffusers folder with --model /path/to/folder"
            ) from None

    folder = fetch(_CONFIG_PATTERNS + _weight_patterns(variant))
    if variant is not None and not offline:
        # Components without files of the wanted variant fall back to the plain weights.
        lacking = [c for c in _WEIGHT_COMPONENTS if (folder / c).is_dir() and not _weight_variants(folder / c)[0]]
        if lacking:
            folder = fetch(_CONFIG_PATTERNS + [p for p in _weight_patterns(None) if p.split("/")[0] in lacking])
    return folder


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", model)) or "\\" in model


def load_prior(
    model: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> Prior:
    """Load a diffusion prior from an alias, a local diffusers folder or a Hugging Face Hub id.

    Resolution order: an alias from :data:`MODEL_ALIASES` (``sd21``, ``sd15``, ``if``; case-insensitive), then an
    existing local path, then a hub id ``org/name`` (downloaded into the HF cache, or taken from it when offline).

    Args:
        model: alias, folder path or hub repo id.
        device: where the networks run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, or a torch.device).
        dtype: network dtype; default fp16 on CUDA (pass ``torch.bfloat16`` / ``"bf16"`` for bf16) and fp32 on CPU.
        cache_dir: Hugging Face cache folder for hub ids (default: the standard HF cache, ``HF_HUB_CACHE``).

    Returns:
        A frozen :class:`LatentPrior` (SD 1.x/2.x layout) or :class:`PixelPrior` (IF stage I layout).

    Raises:
        ModelError: unknown id, offline without a cached copy, gated repository, wrong kind of folder, missing files,
            pickled-only weights. The message is one line with a remedy.
        DeviceError: CUDA requested but unavailable.
    """
    name = os.fspath(model).strip()
    if not name:
        raise ModelError("no model given: pass an alias (csdtex models), a local diffusers folder or a hub id")
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None and alias.builtin:
        return load_prior_from_folder(builtin_prior_folder(), device, dtype)
    if alias is not None:
        repo_id = alias.repo_id
    elif Path(name).expanduser().exists():
        return load_prior_from_folder(name, device, dtype)
    elif _looks_like_path(name):
        raise ModelError(f"model folder {name} does not exist: pass an existing diffusers folder, a hub id or an alias")
    elif name.count("/") != 1:
        raise ModelError(
            f"unknown model {name!r}: use an alias ({', '.join(MODEL_ALIASES)}; list them with `csdtex models`), "
            "a hub id like org/name, or a local diffusers folder"
        )
    else:
        repo_id = name
    resolved_device = _resolve_device(device)
    resolved_dtype = _resolve_dtype(dtype, resolved_device)
    variant = "fp16" if resolved_dtype in (torch.float16, torch.bfloat16) else None
    folder = _download(repo_id, variant, cache_dir)
    return load_prior_from_folder(folder, resolved_device, resolved_dtype)
