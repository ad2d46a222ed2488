"""Loading a frozen diffusion prior from an alias, a local diffusers folder or a Hugging Face Hub id.

:func:`load_prior` resolves the name (an alias of :data:`~csdtex.guidance.aliases.MODEL_ALIASES`, an existing folder, or
a hub id) and :func:`load_prior_from_folder` checks a local diffusers folder (layout, weight files, text encoder,
scheduler) and builds a :class:`~csdtex.guidance.priors.LatentPrior` or :class:`~csdtex.guidance.priors.PixelPrior`
from it.

Weights are always read with ``use_safetensors=True`` (pickled ``.bin``/``.ckpt`` weights are refused) and remote code
is never trusted. A hub id is first fetched into the Hugging Face cache with ``huggingface_hub.snapshot_download``
(only the files a prior needs), then loaded from that folder exactly like a local folder, so every network problem
surfaces in one place and becomes a one-line :class:`~csdtex.errors.ModelError`.

The built-in priors (aliases ``tiny`` and ``tiny-materials``) are loaded from
:func:`csdtex.assets.builtin_prior_folder`. Any folder with a
``tiny_prior_config.json`` (the built-in one, or one trained with ``benchmarks/train_prior.py``) gets
``Prior.preset = "tiny"`` and its closed word list in ``Prior.vocabulary`` (:mod:`csdtex.guidance.vocabulary`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import torch

from csdtex.assets import builtin_prior_folder
from csdtex.devices import resolve_device
from csdtex.errors import ModelError, one_line
from csdtex.guidance.aliases import MODEL_ALIASES
from csdtex.guidance.priors import LatentPrior, PixelPrior, PredictionType, Prior, PriorKind
from csdtex.guidance.vocabulary import Vocabulary, read_vocabulary, tokenizer_words
from csdtex.wording import counted

TINY_PRIOR_CONFIG_NAME = "tiny_prior_config.json"
"""The file that marks a folder as one of csdtex's tiny priors (architecture and closed vocabulary)."""

_PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SAFETENSORS_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.safetensors$"
)
_WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")
_CONFIG_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*", "tokenizer/*"]


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
        raise ModelError(f"cannot read {path} ({one_line(err)}): the model folder is damaged; download it again")
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object: the model folder is damaged; download it again")
    return data


def _not_a_folder(folder: Path) -> ModelError:
    return ModelError(
        f"{folder} is a file, not a diffusers folder: single-file checkpoints are not supported; convert it with "
        "diffusers (StableDiffusionPipeline.from_single_file(...).save_pretrained(folder)) and pass the folder"
    )


def _detect_kind(folder: Path) -> PriorKind:
    """Decide whether ``folder`` is a latent (SD) or pixel (IF stage I) pipeline; raise ModelError if neither."""
    index_path = folder / "model_index.json"
    index = _read_json(index_path) if index_path.is_file() else {}
    if not index and not (folder / "unet").is_dir():
        if (folder.parent / "model_index.json").is_file() and (folder / "config.json").is_file():
            raise ModelError(f"{folder} is the {folder.name}/ of a pipeline: pass the pipeline folder itself, "
                             f"{folder.parent}")
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
    if not (folder / "vae").is_dir():
        unet_config = _read_json(folder / "unet" / "config.json")
        if unet_config.get("in_channels") == 4 and unet_config.get("out_channels", 4) in (4, 8):
            raise ModelError(f"{folder} has a latent UNet (4 channels) but no vae/: a Stable Diffusion folder without "
                             "its VAE; download the model again")
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
        raise ModelError(f"unsupported noise schedule in {config_path} ({one_line(err)})") from None
    return scheduler.alphas_cumprod.clone().float(), config.get("prediction_type", "epsilon")


def _sample_size(unet_config: Any) -> int:
    size = unet_config.sample_size
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ModelError(f"non-square UNet sample_size {tuple(size)} is not supported")
        size = size[0]
    return int(size)


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide the progress bars of diffusers, transformers and huggingface_hub (e.g. the per-component "Loading
    weights" bars; csdtex shows its own progress) while the ``with`` block runs, then restore their previous state.

    transformers switches huggingface_hub's bars together with its own, so huggingface_hub's per-group settings are
    saved and restored too. Not thread-safe: the settings are process-wide while the block runs.
    """
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    hub_states = getattr(getattr(hub_utils, "tqdm", None), "progress_bar_states", None)
    saved_hub_states = dict(hub_states) if isinstance(hub_states, dict) else None
    hub_disabled = hub_utils.are_progress_bars_disabled()
    enabled = [(m, m.is_progress_bar_enabled()) for m in (transformers_logging, diffusers_logging)]
    for module, _ in enabled:
        module.disable_progress_bar()
    try:
        yield
    finally:
        for module, was_enabled in enabled:
            if was_enabled:
                module.enable_progress_bar()
        if saved_hub_states is not None:
            hub_states.clear()
            hub_states.update(saved_hub_states)
        elif not hub_disabled:
            hub_utils.enable_progress_bars()


def _load_component(loader: Any, what: Path, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` on a local folder; turn file-level failures into a one-line ModelError.

    Networks (every loader but a tokenizer) are loaded with their loading report, and refused when weights are
    missing (the libraries would initialise them at random: a prior that paints nothing or NaNs) or, for diffusers
    networks, when the files hold weights the network has no place for (another architecture)."""
    from safetensors import SafetensorError

    network = not loader.__name__.endswith("Tokenizer")
    try:
        with quiet_progress_bars(), quiet_library_logs():
            loaded = loader.from_pretrained(str(what), local_files_only=True, **kwargs,
                                            **({"output_loading_info": True} if network else {}))
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # RuntimeError: shapes that do not fit
        reason = one_line(err)
        if isinstance(err, RuntimeError) and ("size mismatch" in str(err) or "mismatched_sizes" in str(err)
                                              or "loading state_dict" in str(err)):
            reason = "weights of another shape than its config.json says"
        raise ModelError(
            f"cannot load {what} with {loader.__name__} ({reason}): the files are damaged or of another "
            "architecture; download the model again or use another folder"
        ) from None
    except Exception as err:  # e.g. the tokenizers library raises a bare Exception for a damaged vocabulary
        raise ModelError(f"cannot load {what} with {loader.__name__} ({one_line(err)}): the files are damaged; "
                         "download the model again") from None
    if not network:
        return loaded
    model, info = loaded
    problems = [(kind, sorted(info.get(key) or ())) for kind, key in
                (("missing", "missing_keys"), ("of the wrong shape", "mismatched_keys"))]
    if not loader.__module__.startswith("transformers"):  # transformers lists benign leftovers (buffers) here
        problems.append(("not used by the network", sorted(info.get("unexpected_keys") or ())))
    for kind, keys in problems:
        if keys:
            shown = ", ".join(str(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            raise ModelError(f"{what} does not fit {loader.__name__}: {counted(len(keys), 'weight')} {kind} "
                             f"({shown}); the folder is incomplete or holds another architecture: download the model "
                             "again or use another folder")
    return model


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Keep diffusers' and transformers' warnings (load reports, accelerate hints) off the terminal while the block
    runs; csdtex reports what matters itself, in one line. Process-wide while the block runs, then restored."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    levels = [(module, module.get_verbosity()) for module in (diffusers_logging, transformers_logging)]
    for module, _ in levels:
        module.set_verbosity_error()
    try:
        yield
    finally:
        for module, level in levels:
            module.set_verbosity(level)


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


def load_prior_from_folder(
    folder: str | os.PathLike, device: torch.device | str = "cpu", dtype: Any = None, *, low_vram: bool = False
) -> Prior:
    """Load a prior from a local diffusers pipeline folder (no network access).

    Args:
        folder: a folder as written by ``DiffusionPipeline.save_pretrained`` (model_index.json, unet/, text_encoder/,
            tokenizer/, scheduler/, and vae/ for latent priors). Weights must be safetensors; fp16 variants
            (``*.fp16.safetensors``) are used when loading in half precision and present.
        device: where to put the networks (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device; see
            :func:`csdtex.devices.resolve_device`).
        dtype: network dtype (torch dtype or "fp16" / "bf16" / "fp32"); default fp16 on CUDA, fp32 on CPU.
        low_vram: keep the text encoder in CPU memory (moved to ``device`` only while it encodes,
            :meth:`Prior.offload_text_encoder`) and the UNet and VAE encoder there until their first use
            (:meth:`Prior.defer_placement`), so the text encoder never shares the device with them. Without it every
            network used is moved to ``device`` now. The VAE decoder is never used and always stays in CPU memory.

    Returns:
        A :class:`LatentPrior` or :class:`PixelPrior`, frozen and in eval mode.

    Raises:
        ModelError: the folder is missing, of the wrong kind, incomplete, holds pickled weights only, or unreadable.
        DeviceError: CUDA requested but unavailable.
        ConfigError: an unknown device name.
    """
    folder = Path(folder).expanduser()
    device = resolve_device(device)
    dtype = _resolve_dtype(dtype, device)
    if not folder.exists():
        raise ModelError(
            f"model folder {folder} does not exist: pass an existing diffusers folder, a hub id or an alias"
        )
    if not folder.is_dir():
        raise _not_a_folder(folder)
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

    unet_config = _read_json(folder / "unet" / "config.json") if (folder / "unet" / "config.json").is_file() else {}
    unet_class = unet_config.get("_class_name")
    if unet_class not in (None, "UNet2DConditionModel"):
        raise ModelError(f"{folder / 'unet'} holds a {unet_class}, not the text-conditioned UNet2DConditionModel of a "
                         "text-to-image pipeline: use a Stable Diffusion 1.x / 2.x or DeepFloyd IF stage I folder")
    added = unet_config.get("addition_embed_type")
    if added in UNSUPPORTED_ADDED_CONDITIONING:
        raise ModelError(f"{folder / 'unet'} needs added conditioning (addition_embed_type {added!r}, as SDXL / "
                         "Kandinsky UNets): not supported; use a Stable Diffusion 1.x / 2.x or DeepFloyd IF stage I "
                         "folder")
    unet = _load_component(
        UNet2DConditionModel, folder / "unet", use_safetensors=True, torch_dtype=dtype,
        variant=variants["unet"], low_cpu_mem_usage=is_accelerate_available(),
    )  # fmt: skip
    text_encoder = _load_component(
        text_classes[text_model_type], folder / "text_encoder", use_safetensors=True, dtype=dtype,
        variant=variants["text_encoder"], trust_remote_code=False,
    )  # fmt: skip
    _check_components_fit(folder, unet.config, text_encoder.config, tokenizer)
    if device.type == "cpu":
        # The CPU's convolution kernels (oneDNN) prefer channels-last weights: the built-in prior's UNet forward on
        # 12 samples of 64^2 took 198 instead of 224 ms on 2 cores, same values up to float rounding (1.4e-5). Not on
        # CUDA, where the SD-2.1-base UNet was slower in channels last (38.9 vs 35.5 ms on an H200;
        # benchmarks/results/memory_format_h200.json).
        unet.to(memory_format=torch.channels_last)
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
        if (folder / TINY_PRIOR_CONFIG_NAME).is_file():
            prior.preset = "tiny"
            prior.vocabulary = _tiny_prior_vocabulary(folder / TINY_PRIOR_CONFIG_NAME, tokenizer)
    for module in modules:
        module.eval().requires_grad_(False)
    prior.defer_placement()  # everything is in CPU memory so far
    if low_vram:
        prior.offload_text_encoder()  # on the device only while it encodes; the UNet / VAE follow at first use
    else:
        text_encoder.to(device)
        prior.place_networks()
    return prior


UNSUPPORTED_ADDED_CONDITIONING = ("text_time", "image", "image_hint", "text_image")
"""UNet ``addition_embed_type`` values that need inputs besides the prompt embedding (SDXL's pooled text and image
sizes, Kandinsky's image embeddings): csdtex gives a UNet the prompt only."""


def _check_components_fit(folder: Path, unet_config: Any, text_config: Any, tokenizer: Any) -> None:
    """Refuse, in one line and before any work, a pipeline whose parts cannot run together (they would fail at the
    first step with a shape error): the text encoder's width against the UNet's cross-attention input, the
    tokenizer's ids against the text encoder's embedding table. (A UNet that needs added conditioning is refused
    from its config before loading.)"""
    width = getattr(text_config, "hidden_size", None) or getattr(text_config, "d_model", None)
    takes = getattr(unet_config, "encoder_hid_dim", None) or getattr(unet_config, "cross_attention_dim", None)
    if isinstance(takes, (list, tuple)):
        takes = takes[0] if len(set(takes)) == 1 else None
    if width is not None and takes is not None and int(width) != int(takes):
        raise ModelError(f"{folder}: the text encoder makes {width}-wide embeddings but the UNet takes {takes}: the "
                         "components come from different models; download the model again")
    vocab_size = getattr(text_config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > int(vocab_size):
        raise ModelError(f"{folder}: the tokenizer has {len(tokenizer)} tokens but the text encoder only "
                         f"{vocab_size} embeddings: the components come from different models; download the model "
                         "again")


def _tiny_prior_vocabulary(config_path: Path, tokenizer: Any) -> Vocabulary | frozenset[str]:
    """The closed vocabulary of a tiny prior: the ``vocabulary`` entry of its config (with word groups), or the
    words of its whole-word tokenizer for folders saved before that entry existed."""
    try:
        vocabulary = read_vocabulary(_read_json(config_path))
    except ValueError as err:
        raise ModelError(f"{config_path}: {one_line(err)}; the model folder is damaged, download it again") from None
    return vocabulary if vocabulary is not None else tokenizer_words(tokenizer)


def builtin_prior_vocabularies() -> dict[str, Vocabulary]:
    """The words of every built-in prior installed: alias (``"tiny"``, ``"tiny-materials"``) -> its
    :class:`~csdtex.guidance.vocabulary.Vocabulary`, read from the folder's ``tiny_prior_config.json`` (no weights
    loaded). A built-in prior missing from the installation or without a readable word list is left out."""
    vocabularies = {}
    for alias in MODEL_ALIASES.values():
        if not alias.builtin:
            continue
        try:
            vocabulary = read_vocabulary(_read_json(builtin_prior_folder(alias.alias) / TINY_PRIOR_CONFIG_NAME))
        except (ModelError, ValueError):
            continue
        if vocabulary is not None:
            vocabularies[alias.alias] = vocabulary
    return vocabularies


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
        return ModelError(f"{repo_id}: the requested revision does not exist on the hub ({one_line(err)})")
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
        return ModelError(f"downloading {repo_id} failed ({one_line(err)}); check your network and retry")
    return ModelError(f"downloading {repo_id} failed ({one_line(err)}); check disk space and network, then retry")


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
                f"network error while downloading {repo_id} ({type(err).__name__}: {one_line(err)}): check your "
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


def model_reference(model: str | os.PathLike) -> tuple[str, str]:
    """Where a ``--model`` points, checked without loading or downloading anything: ``("folder", path)`` for an alias
    of a built-in prior or an existing local folder, ``("hub", repo_id)`` for a hub alias or an ``org/name`` id (see
    :func:`load_prior` for the order).

    Raises:
        ModelError: an empty name, a path that does not exist, or a name that is none of the three (one line).
    """
    given = os.fspath(model)
    if given.strip() and given != given.strip() and Path(given).expanduser().is_dir():
        return "folder", given  # a folder whose name has spaces
    name = given.strip()
    if not name:
        raise ModelError("no model given: pass an alias (csdtex models), a local diffusers folder or a hub id")
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None:
        return ("folder", str(builtin_prior_folder(alias.alias))) if alias.builtin else ("hub", alias.repo_id)
    if Path(name).expanduser().exists():
        return "folder", name
    if _looks_like_path(name):
        raise ModelError(f"model folder {name} does not exist: pass an existing diffusers folder, a hub id or an alias")
    if name.count("/") != 1:
        raise ModelError(
            f"unknown model {name!r}: use an alias ({', '.join(MODEL_ALIASES)}; list them with `csdtex models`), "
            "a hub id like org/name, or a local diffusers folder"
        )
    return "hub", name


def model_preset(model: str | os.PathLike) -> str | None:
    """The :data:`csdtex.config.PRESETS` name a run with ``model`` will use (``"tiny"``, ``"latent"`` or
    ``"pixel"``), read from the folder without loading it; None for a hub id (known once downloaded).

    Raises:
        ModelError: see :func:`model_reference`, and a local folder that is not a usable pipeline.
    """
    where, value = model_reference(model)
    if where == "hub":
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise _not_a_folder(folder)
    kind = _detect_kind(folder)
    return "tiny" if (folder / TINY_PRIOR_CONFIG_NAME).is_file() else kind


def load_prior(
    model: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    low_vram: bool = False,
) -> Prior:
    """Load a diffusion prior from an alias, a local diffusers folder or a Hugging Face Hub id.

    Resolution order: an alias from :data:`~csdtex.guidance.aliases.MODEL_ALIASES` (``tiny`` = the built-in prior,
    ``tiny-materials`` = the built-in prior with material words, ``sd21``, ``sd15``, ``if``; case-insensitive), then an
    existing local path, then a hub id ``org/name`` (downloaded into the HF cache, or taken from it when offline).

    Args:
        model: alias, folder path or hub repo id.
        device: where the networks run (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or a torch.device; see
            :func:`csdtex.devices.resolve_device`).
        dtype: network dtype; default fp16 on CUDA (pass ``torch.bfloat16`` / ``"bf16"`` for bf16) and fp32 on CPU.
        cache_dir: Hugging Face cache folder for hub ids (default: the standard HF cache, ``HF_HUB_CACHE``).
        low_vram: where the networks wait (see :func:`load_prior_from_folder`).

    Returns:
        A frozen :class:`LatentPrior` (SD 1.x/2.x layout) or :class:`PixelPrior` (IF stage I layout).

    Raises:
        ModelError: unknown id, offline without a cached copy, gated repository, wrong kind of folder, missing files,
            pickled-only weights. The message is one line with a remedy.
        DeviceError: CUDA requested but unavailable.
        ConfigError: an unknown device name.
    """
    where, value = model_reference(model)
    if where == "folder":
        return load_prior_from_folder(value, device, dtype, low_vram=low_vram)
    repo_id = value
    resolved_device = resolve_device(device)
    resolved_dtype = _resolve_dtype(dtype, resolved_device)
    variant = "fp16" if resolved_dtype in (torch.float16, torch.bfloat16) else None
    folder = _download(repo_id, variant, cache_dir)
    return load_prior_from_folder(folder, resolved_device, resolved_dtype, low_vram=low_vram)
