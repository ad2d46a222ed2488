"""Tests of csdtex.guidance with tiny random priors built and saved in the test session (nothing is downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from csdtex.errors import ConfigError, ModelError
from csdtex.guidance import (
    DEFAULT_NEGATIVE_PROMPT,
    VIEW_SUFFIXES,
    GuidanceConfig,
    LatentPrior,
    PixelPrior,
    PromptEmbeddings,
    ScoreDistillation,
    add_noise,
    csd_direction,
    default_guidance_config,
    distillation_loss,
    eps_from_prediction,
    latent_guidance_config,
    list_model_aliases,
    load_prior,
    normalize_per_sample,
    pixel_guidance_config,
    sds_direction,
    timestep_weights,
    view_suffix,
    wrap_azimuth,
)
from csdtex.guidance.random_priors import build_tiny_latent_folder, build_tiny_pixel_folder

# ---------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_priors")
    return {
        "latent": build_tiny_latent_folder(root / "latent"),
        "pixel": build_tiny_pixel_folder(root / "pixel"),
    }


@pytest.fixture(scope="session")
def latent_prior(tiny_folders) -> LatentPrior:
    return load_prior(str(tiny_folders["latent"]), "cpu")


@pytest.fixture(scope="session")
def pixel_prior(tiny_folders) -> PixelPrior:
    return load_prior(tiny_folders["pixel"], "cpu")


@pytest.fixture(params=["latent", "pixel"])
def prior(request, latent_prior, pixel_prior):
    return latent_prior if request.param == "latent" else pixel_prior


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1


class _CallCounter:
    """Counts forward calls of a module and records the batch size of each."""

    def __init__(self, module: torch.nn.Module):
        self.batches: list[int] = []
        self._handle = module.register_forward_hook(lambda m, args, out: self.batches.append(args[0].shape[0]))

    def remove(self):
        self._handle.remove()


# ------------------------------------------------------------------------------------------------------------ loading


def test_load_latent_layout(latent_prior):
    p = latent_prior
    assert isinstance(p, LatentPrior) and p.kind == "latent"
    assert p.render_resolution == 16  # VAE scale factor 2 x UNet sample_size 8
    assert p.vae_scale_factor == 2
    assert p.device == torch.device("cpu") and p.dtype == torch.float32
    assert p.num_train_timesteps == 1000
    assert p.alphas_cumprod.dtype == torch.float32 and p.alphas_cumprod.shape == (1000,)
    assert bool((p.alphas_cumprod[1:] < p.alphas_cumprod[:-1]).all())
    assert p.prediction_type == "epsilon"
    assert not any(q.requires_grad for q in p.unet.parameters())
    assert not any(q.requires_grad for q in p.vae.parameters())
    assert not p.unet.training and not p.text_encoder.training


def test_load_pixel_layout(pixel_prior):
    p = pixel_prior
    assert isinstance(p, PixelPrior) and p.kind == "pixel"
    assert p.render_resolution == 8  # unet.config.sample_size
    assert p.unet.config.out_channels == 6
    assert p.num_train_timesteps == 1000 and p.alphas_cumprod.shape == (1000,)
    assert type(p.text_encoder).__name__ == "T5EncoderModel"


def test_encode_text_shapes(latent_prior, pixel_prior):
    e = latent_prior.encode_text(["a red chair", ""])
    assert e.shape == (2, 16, 16) and e.dtype == torch.float32 and not e.requires_grad
    e = pixel_prior.encode_text(["A red chair", "a red chair "])
    assert e.shape == (2, 77, 16)
    torch.testing.assert_close(e[0], e[1])  # IF-style prompts are lowercased and stripped


def test_encode_images_latent_has_gradient(latent_prior):
    images = _images(2, 32).requires_grad_(True)  # rendered larger than 16: resized inside
    x = latent_prior.encode_images(images)
    assert x.shape == (2, 4, 8, 8) and x.dtype == torch.float32
    (x * torch.randn_like(x)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()


def test_encode_images_gives_the_vae_contiguous_input(latent_prior, monkeypatch):
    """A paint step's renders are a permuted NHWC tensor; the encoder must get NCHW memory (channels-last input made
    the SD encoder slower and larger: benchmarks/results/memory_format_h200.json), with the same values."""
    nhwc = _images(2, 16).permute(0, 2, 3, 1).contiguous().requires_grad_(True)
    images = nhwc.permute(0, 3, 1, 2)
    assert not images.is_contiguous()
    seen = []
    encode = latent_prior.vae.encode
    monkeypatch.setattr(latent_prior.vae, "encode", lambda x: (seen.append(x.is_contiguous()), encode(x))[1])
    x = latent_prior.encode_images(images)
    assert seen == [True]
    torch.testing.assert_close(x, latent_prior.encode_images(images.contiguous()))
    x.sum().backward()
    assert nhwc.grad is not None and torch.isfinite(nhwc.grad).all() and nhwc.grad.abs().sum() > 0


def test_encode_images_latent_is_scaled_posterior_mean(latent_prior):
    images = _images(1, 16)
    with torch.no_grad():
        expected = latent_prior.vae.encode(images).latent_dist.mean * latent_prior.vae.config.scaling_factor
    torch.testing.assert_close(latent_prior.encode_images(images), expected)


def test_encode_images_pixel_is_identity_at_render_size(pixel_prior):
    images = _images(2, 8).requires_grad_(True)
    x = pixel_prior.encode_images(images)
    torch.testing.assert_close(x, images)
    x.sum().backward()
    torch.testing.assert_close(images.grad, torch.ones_like(images))
    assert pixel_prior.encode_images(_images(2, 32)).shape == (2, 3, 8, 8)


def test_predict_noise_shapes_and_dtype(prior):
    n = 3
    c = prior.unet.config.in_channels
    h = prior.render_resolution // (prior.vae_scale_factor if prior.kind == "latent" else 1)
    x_t = torch.randn(n, c, h, h)
    t = torch.tensor([0, 500, 999])
    e = prior.encode_text(["a", "b", ""])
    eps = prior.predict_noise(x_t, t, e)
    assert eps.shape == (n, c, h, h) and eps.dtype == torch.float32 and not eps.requires_grad
    raw = prior.unet(x_t, t, encoder_hidden_states=e).sample
    torch.testing.assert_close(eps, raw[:, :c])  # IF's learned-variance channels are dropped


def test_eps_from_prediction_matches_hand_computation():
    a = torch.tensor([0.64, 0.36])
    x0 = torch.tensor([1.0, -2.0]).reshape(2, 1, 1, 1)
    eps = torch.tensor([0.5, 3.0]).reshape(2, 1, 1, 1)
    x_t = a.sqrt().reshape(2, 1, 1, 1) * x0 + (1 - a).sqrt().reshape(2, 1, 1, 1) * eps  # [0.8+0.3, -1.2+2.4]
    v = a.sqrt().reshape(2, 1, 1, 1) * eps - (1 - a).sqrt().reshape(2, 1, 1, 1) * x0  # [0.4-0.6, 1.8+1.6]
    torch.testing.assert_close(v.flatten(), torch.tensor([-0.2, 3.4]))
    torch.testing.assert_close(eps_from_prediction(v, x_t, a, "v_prediction"), eps)
    torch.testing.assert_close(eps_from_prediction(x0, x_t, a, "sample"), eps)
    assert eps_from_prediction(eps, x_t, a, "epsilon") is eps


def test_v_prediction_folder_is_converted_to_eps(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "vpred")
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["prediction_type"] = "v_prediction"
    config_path.write_text(json.dumps(config))
    p = load_prior(folder, "cpu")
    assert p.prediction_type == "v_prediction"
    x_t, t, e = torch.randn(2, 4, 8, 8), torch.tensor([100, 700]), p.encode_text(["a", ""])
    v = p.unet(x_t, t, encoder_hidden_states=e).sample
    a = p.alphas_cumprod[t].reshape(2, 1, 1, 1)
    torch.testing.assert_close(p.predict_noise(x_t, t, e), a.sqrt() * v + (1 - a).sqrt() * x_t)


# -------------------------------------------------------------------------------------------------- loading errors


def test_unknown_hub_id_offline_is_a_model_error(offline, tmp_path):
    with pytest.raises(ModelError, match="local diffusers folder") as info:
        load_prior("csdtex-test/no-such-model", "cpu", cache_dir=tmp_path)
    assert "HF_HUB_OFFLINE" in str(info.value) and "\n" not in str(info.value)


def test_alias_offline_without_cache_is_a_model_error(offline, tmp_path):
    with pytest.raises(ModelError, match="stabilityai/stable-diffusion-2-1-base.*local diffusers folder"):
        load_prior("SD21", "cpu", cache_dir=tmp_path)


def test_unknown_name_is_a_model_error():
    with pytest.raises(ModelError, match="unknown model 'sd99'.*sd21") as info:
        load_prior("sd99", "cpu")
    assert "\n" not in str(info.value)


def test_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_prior(str(tmp_path / "nowhere") + "/", "cpu")


def test_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a diffusers pipeline folder"):
        load_prior(tmp_path, "cpu")


def test_single_file_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="single-file"):
        load_prior(ckpt, "cpu")


def test_folder_without_unet_is_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "nounet")
    shutil.rmtree(folder / "unet")
    with pytest.raises(ModelError, match="no unet/"):
        load_prior(folder, "cpu")


def test_folder_without_listed_vae_is_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "novae")
    shutil.rmtree(folder / "vae")
    with pytest.raises(ModelError, match="no vae/"):
        load_prior(folder, "cpu")


def test_pickled_weights_are_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "pickled")
    from safetensors.torch import load_file

    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelError, match="safetensors only"):
        load_prior(folder, "cpu")


def test_missing_weights_are_reported(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "noweights")
    (folder / "text_encoder" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights in .*text_encoder"):
        load_prior(folder, "cpu")


def test_damaged_weights_are_reported(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "damaged")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load") as info:
        load_prior(folder, "cpu")
    assert "\n" not in str(info.value)


def _drop_weights(weights: Path, count: int) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    for key in sorted(tensors)[:count]:
        del tensors[key]
    save_file(tensors, weights)


def test_networks_with_missing_weights_are_refused_not_filled_at_random(tiny_folders, tmp_path):
    # The libraries would initialise missing weights at random (a prior that paints nothing, or NaNs later).
    for component, weights in (("unet", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")):
        folder = shutil.copytree(tiny_folders["latent"], tmp_path / f"missing_{component}")
        _drop_weights(folder / component / weights, 3)
        with pytest.raises(ModelError, match=rf"{component} does not fit .*3 weights missing") as info:
            load_prior(folder, "cpu")
        assert "\n" not in str(info.value) and "download the model again" in str(info.value)


def test_a_unet_of_another_class_or_another_shape_is_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "uncond")
    config_path = folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "_class_name": "UNet2DModel"}))
    with pytest.raises(ModelError, match="holds a UNet2DModel, not the text-conditioned"):
        load_prior(folder, "cpu")
    config_path.write_text(json.dumps({**config, "block_out_channels": [c * 2 for c in config["block_out_channels"]]}))
    with pytest.raises(ModelError, match="weights of another shape than its config.json says") as info:
        load_prior(folder, "cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"addition_embed_type": "text_time"}, "needs added conditioning"),
    ("cross_attention_dim", "the text encoder makes 32-wide embeddings but the UNet takes 16"),
])
def test_components_that_cannot_run_together_are_refused_at_load(tiny_folders, tmp_path, change, message):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "mixed")
    config_path = folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    if change == "cross_attention_dim":  # a text encoder of another width: its embeddings do not fit the UNet
        text_config = json.loads((folder / "text_encoder" / "config.json").read_text())
        assert text_config["hidden_size"] == config["cross_attention_dim"]
        from transformers import CLIPTextConfig, CLIPTextModel

        wide = CLIPTextModel(CLIPTextConfig(**{**text_config, "hidden_size": 32, "intermediate_size": 64}))
        shutil.rmtree(folder / "text_encoder")
        wide.save_pretrained(folder / "text_encoder", safe_serialization=True)
        message = message.replace("16", str(config["cross_attention_dim"]))
    else:
        config_path.write_text(json.dumps({**config, **change}))
    with pytest.raises(ModelError, match=message):
        load_prior(folder, "cpu")


def test_a_tokenizer_beyond_the_text_encoders_table_or_damaged_is_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "tokens")
    text_config_path = folder / "text_encoder" / "config.json"
    text_config = json.loads(text_config_path.read_text())
    from transformers import CLIPTextConfig, CLIPTextModel

    small = CLIPTextModel(CLIPTextConfig(**{**text_config, "vocab_size": 10}))
    shutil.rmtree(folder / "text_encoder")
    small.save_pretrained(folder / "text_encoder", safe_serialization=True)
    with pytest.raises(ModelError, match="tokens but the text encoder only 10 embeddings"):
        load_prior(folder, "cpu")
    damaged = shutil.copytree(tiny_folders["latent"], tmp_path / "vocab")
    (damaged / "tokenizer" / "vocab.json").write_text("garbage")
    with pytest.raises(ModelError, match="cannot load .*tokenizer") as info:
        load_prior(damaged, "cpu")
    assert "\n" not in str(info.value)


def test_near_miss_folders_are_named_for_what_they_are(tiny_folders, tmp_path):
    with pytest.raises(ModelError, match=r"is the unet/ of a pipeline: pass the pipeline folder itself"):
        load_prior(tiny_folders["latent"] / "unet", "cpu")
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "sd_without_vae")
    shutil.rmtree(folder / "vae")
    index = json.loads((folder / "model_index.json").read_text())
    index.pop("vae", None)
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="a Stable Diffusion folder without its VAE"):
        load_prior(folder, "cpu")


def test_a_folder_name_with_a_trailing_space_is_found(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "my prior ")
    assert load_prior(str(folder), "cpu").kind == "pixel"


def test_two_text_encoder_pipelines_are_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["latent"], tmp_path / "xl")
    shutil.copytree(folder / "text_encoder", folder / "text_encoder_2")
    with pytest.raises(ModelError, match="two text encoders"):
        load_prior(folder, "cpu")


def test_hub_id_is_loaded_from_the_cache_when_offline(offline, tiny_folders, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = tmp_path / "models--csdtex-test--tiny-if"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_folders["pixel"], storage / "snapshots" / commit)
    p = load_prior("csdtex-test/tiny-if", "cpu", cache_dir=tmp_path)
    assert p.kind == "pixel" and p.render_resolution == 8


def _hub_failure(kind: str):
    import httpx2
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    def fail(repo_id, **kwargs):
        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        if kind == "gated":
            response = httpx2.Response(403, request=request)
            raise GatedRepoError(f"Access to model {repo_id} is restricted.", response=response)
        if kind == "missing":
            raise RepositoryNotFoundError("Repository Not Found", response=httpx2.Response(404, request=request))
        raise httpx2.ProxyError("proxy refused the connection")

    return fail


@pytest.mark.parametrize(
    "failure, model, message",
    [
        ("gated", "if", r"DeepFloyd/IF-I-XL-v1.0 is gated: accept its licence.*hf auth login"),
        ("missing", "csdtex-test/missing", r"no model 'csdtex-test/missing' on the Hugging Face Hub.*local diffusers"),
        ("proxy", "sd15", r"network error while downloading stable-diffusion-v1-5/stable-diffusion-v1-5 \(ProxyError"),
    ],
)
def test_hub_failures_become_one_line_model_errors(failure, model, message, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _hub_failure(failure))
    with pytest.raises(ModelError, match=message) as info:
        load_prior(model, "cpu")
    assert "\n" not in str(info.value)


def test_unsupported_text_encoder_is_refused(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "bert")
    config_path = folder / "text_encoder" / "config.json"
    config = json.loads(config_path.read_text())
    config["model_type"] = "bert"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="unsupported text encoder.*'bert'"):
        load_prior(folder, "cpu")


def test_fp16_variant_is_preferred_in_half_precision(tiny_folders, tmp_path):
    folder = shutil.copytree(tiny_folders["pixel"], tmp_path / "variants")
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    for q in unet.parameters():
        q.data.zero_()
    unet.to(torch.float16).save_pretrained(folder / "unet", variant="fp16")
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    half = load_prior(folder, "cpu", dtype="fp16")
    assert half.dtype == torch.float16 and all(q.dtype == torch.float16 for q in half.unet.parameters())
    assert all(bool((q == 0).all()) for q in half.unet.parameters())  # the fp16 file was read
    full = load_prior(folder, "cpu")
    assert full.dtype == torch.float32 and any(bool((q != 0).any()) for q in full.unet.parameters())


def test_list_model_aliases():
    aliases = {a: (repo, desc) for a, repo, desc in list_model_aliases()}
    assert aliases["sd21"][0] == "stabilityai/stable-diffusion-2-1-base"
    assert aliases["sd15"][0] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert aliases["if"][0] == "DeepFloyd/IF-I-XL-v1.0"
    assert all(desc for _, desc in aliases.values())


def test_bad_dtype_is_a_model_error(tiny_folders):
    with pytest.raises(ModelError, match="dtype"):
        load_prior(tiny_folders["pixel"], "cpu", dtype="int8")


# ------------------------------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize(
    "elevation, azimuth, expected",
    [
        (0, 0, ", front view"),
        (30, 44.9, ", front view"),
        (30, -44.9, ", front view"),
        (0, 45, ", side view"),
        (0, -90, ", side view"),
        (0, 135, ", side view"),
        (0, 135.1, ", back view"),
        (0, 180, ", back view"),
        (0, -180, ", back view"),
        (0, 359, ", front view"),
        (0, 270, ", side view"),
        (0, -200, ", back view"),
        (60, 0, ", front view"),
        (60.1, 0, ", overhead view"),
        (89, 180, ", overhead view"),
        (-30, 170, ", back view"),
    ],
)
def test_view_suffix_table(elevation, azimuth, expected):
    assert view_suffix(elevation, azimuth) == expected


@pytest.mark.parametrize("azimuth, wrapped", [(0, 0), (180, 180), (-180, 180), (540, 180), (190, -170), (-190, 170)])
def test_wrap_azimuth(azimuth, wrapped):
    assert wrap_azimuth(azimuth) == pytest.approx(wrapped)


def test_prompt_embeddings_are_computed_once(latent_prior, monkeypatch):
    calls = []
    original = latent_prior.encode_text
    monkeypatch.setattr(latent_prior, "encode_text", lambda texts: calls.append(list(texts)) or original(texts))
    counter = _CallCounter(latent_prior.text_encoder)
    try:
        pe = PromptEmbeddings(latent_prior, "a red chair")
        for _ in range(3):
            e_y, e_0, e_neg = pe.for_views(torch.tensor([0.0, 10.0, 70.0, 0.0]), torch.tensor([0.0, 90.0, 0.0, 180.0]))
    finally:
        counter.remove()
    assert len(calls) == 1 and counter.batches == [6]
    assert calls[0] == [
        "a red chair, front view",
        "a red chair, side view",
        "a red chair, back view",
        "a red chair, overhead view",
        "",
        DEFAULT_NEGATIVE_PROMPT,
    ]
    assert e_y.shape == e_0.shape == e_neg.shape == (4, 16, 16)
    rows = [VIEW_SUFFIXES.index(s) for s in (", front view", ", side view", ", overhead view", ", back view")]
    torch.testing.assert_close(e_y, pe.prompt[rows])
    direct = original(["a red chair, side view", "", DEFAULT_NEGATIVE_PROMPT])
    torch.testing.assert_close(e_y[1], direct[0])
    torch.testing.assert_close(e_0[3], direct[1])
    torch.testing.assert_close(e_neg[2], direct[2])


def test_prompt_embeddings_without_views_or_negative(pixel_prior):
    pe = PromptEmbeddings(pixel_prior, "a red chair", negative_prompt=None, view_dependent=False)
    assert pe.texts == ["a red chair", ""]
    e_y, e_0, e_neg = pe.for_views([0.0, 80.0], [180.0, 0.0])
    assert e_neg is None and e_y.shape == (2, 77, 16)
    torch.testing.assert_close(e_y[0], e_y[1])
    assert PromptEmbeddings(pixel_prior, "x", negative_prompt="  ").negative is None


# ----------------------------------------------------------------------------------------------------- pure functions


def test_csd_direction_matches_hand_computation():
    eps_y = torch.tensor([1.0, 2.0, -1.0])
    eps_0 = torch.tensor([0.5, 1.0, 1.0])
    eps_n = torch.tensor([0.0, 3.0, 2.0])
    # w1 * (y - 0) - w2 * (n - 0) with w1 = 1, w2 = 0.5: [0.5, 1, -2] - 0.5 * [-0.5, 2, 1] = [0.75, 0, -2.5]
    torch.testing.assert_close(csd_direction(eps_y, eps_0, eps_n, 1.0, 0.5), torch.tensor([0.75, 0.0, -2.5]))
    # w1 = 2, w2 = 0: only the prompt's classifier score
    torch.testing.assert_close(csd_direction(eps_y, eps_0, eps_n, 2.0, 0.0), torch.tensor([1.0, 2.0, -4.0]))
    torch.testing.assert_close(csd_direction(eps_y, eps_0, None, 1.0, 0.0), torch.tensor([0.5, 1.0, -2.0]))


def test_sds_direction_matches_hand_computation():
    eps_y = torch.tensor([1.0, 2.0])
    eps_0 = torch.tensor([0.5, 1.0])
    noise = torch.tensor([0.25, -1.0])
    # 0 + s * (y - 0) - noise with s = 10: [0.5 + 5 - 0.25, 1 + 10 + 1]
    torch.testing.assert_close(sds_direction(eps_y, eps_0, noise, 10.0), torch.tensor([5.25, 12.0]))


def test_timestep_weights_add_noise_and_normalize():
    a = torch.tensor([0.75, 0.19])
    torch.testing.assert_close(timestep_weights(a, "one_minus_alphas_cumprod"), torch.tensor([0.25, 0.81]))
    torch.testing.assert_close(timestep_weights(a, "one"), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(timestep_weights(a, "sqrt_one_minus_alphas_cumprod"), torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError):
        timestep_weights(a, "nope")
    x = torch.tensor([2.0, 1.0]).reshape(2, 1, 1, 1)
    noise = torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1)
    # sqrt(abar) * x + sqrt(1 - abar) * noise with abar = [0.64, 0.36]: [0.8 * 2 + 0.6 * 1, 0.6 * 1 - 0.8 * 1]
    torch.testing.assert_close(add_noise(x, noise, torch.tensor([0.64, 0.36])).flatten(), torch.tensor([2.2, -0.2]))
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0]]).reshape(2, 2, 1, 1)
    torch.testing.assert_close(normalize_per_sample(g).flatten(), torch.tensor([0.6, 0.8, 0.0, 0.0]))


def test_loss_gradient_identity():
    b = 3
    x = torch.randn(b, 4, 5, 5, requires_grad=True)
    g = torch.randn(b, 4, 5, 5)
    loss = distillation_loss(x, g)
    loss.backward()
    # loss = 0.5 * ||x - sg(x - g)||^2 / B  =>  d loss / d x = g / B, value 0.5 * ||g||^2 / B
    torch.testing.assert_close(x.grad, g / b)
    torch.testing.assert_close(loss.detach(), 0.5 * (g**2).sum() / b)


# ---------------------------------------------------------------------------------------------- config and schedules


def test_presets_match_the_design_defaults():
    lat = latent_guidance_config()
    assert (lat.method, lat.weighting, lat.normalize_gradient, lat.w1) == ("csd", "one_minus_alphas_cumprod", False, 1)
    assert lat.negative_prompt == "oversaturated color, ugly, tiling, low quality, noisy"
    pix = pixel_guidance_config()
    assert (pix.weighting, pix.normalize_gradient) == ("one", True)
    assert default_guidance_config("latent") == lat and default_guidance_config("pixel", w1=2.0).w1 == 2.0
    assert GuidanceConfig() == lat


@pytest.mark.parametrize(
    "preset, progress, w2, t_range",
    [
        (latent_guidance_config, 0.0, 1.0, (0.02, 0.5)),
        (latent_guidance_config, 0.5, 0.75, (0.02, 0.5)),
        (latent_guidance_config, 1.0, 0.5, (0.02, 0.5)),
        (pixel_guidance_config, 0.0, 0.0, (0.02, 0.98)),
        (pixel_guidance_config, 0.5, 0.5, (0.02, 0.74)),
        (pixel_guidance_config, 1.0, 1.0, (0.02, 0.5)),
    ],
)
def test_schedules(preset, progress, w2, t_range):
    cfg = preset()
    assert cfg.w2_at(progress) == pytest.approx(w2)
    assert cfg.t_range_at(progress) == pytest.approx(t_range)


def test_timestep_bounds(pixel_prior, latent_prior):
    lat = ScoreDistillation(latent_prior, latent_guidance_config())
    assert lat.timestep_bounds(0.0) == lat.timestep_bounds(1.0) == (20, 500)
    pix = ScoreDistillation(pixel_prior, pixel_guidance_config())
    assert pix.timestep_bounds(0.0) == (20, 980)
    assert pix.timestep_bounds(0.5) == (20, 740)
    assert pix.timestep_bounds(1.0) == (20, 500)
    full = ScoreDistillation(pixel_prior, pixel_guidance_config(t_max_start=1.0, t_min_start=0.0))
    assert full.timestep_bounds(0.0) == (0, 999)
    with pytest.raises(ValueError):
        pix.timestep_bounds(1.5)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(method="vsd"),
        dict(weighting="snr"),
        dict(t_min_start=0.6, t_max_start=0.5),
        dict(t_max_end=1.5),
        dict(method="sds", cfg_scale=0.0),
        dict(w1=1e30),  # the gradient norm overflowed and the texture stayed unpainted, "done" (session 16)
        dict(w2_end=float("nan")),
        dict(cfg_scale=1e5),
    ],
)
def test_invalid_config_is_a_config_error(overrides):
    with pytest.raises(ConfigError):
        GuidanceConfig(**overrides)


# ------------------------------------------------------------------------------------------------ ScoreDistillation


def _step_inputs(prior, b=2, negative=DEFAULT_NEGATIVE_PROMPT):
    pe = PromptEmbeddings(prior, "a red chair", negative)
    embeddings = pe.for_views(torch.zeros(b), torch.linspace(0, 180, b))
    images = _images(b, prior.render_resolution, seed=1).requires_grad_(True)
    return images, embeddings


def _expected_g(prior, cfg, x, embeddings, progress, seed):
    """Recompute g by hand: same draws as ScoreDistillation (t first, then noise), three separate UNet calls."""
    sd = ScoreDistillation(prior, cfg)
    lo, hi = sd.timestep_bounds(progress)
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(lo, hi + 1, (x.shape[0],), generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    a = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = a.sqrt() * x.detach() + (1 - a).sqrt() * noise
    e_y, e_0, e_neg = embeddings
    eps_y, eps_0, eps_n = (prior.predict_noise(x_t, t, e) for e in (e_y, e_0, e_neg))
    w2 = cfg.w2_at(progress)
    if cfg.method == "csd":
        d = cfg.w1 * (eps_y - eps_0) - w2 * (eps_n - eps_0)
    else:
        d = eps_0 + cfg.cfg_scale * (eps_y - eps_0) - noise
    w = (1 - a) if cfg.weighting == "one_minus_alphas_cumprod" else torch.ones_like(a)
    g = w * d
    if cfg.normalize_gradient:
        g = g / g.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    return g, t


@pytest.mark.parametrize(
    "kind, cfg",
    [
        ("latent", latent_guidance_config()),
        ("pixel", pixel_guidance_config()),
        ("latent", latent_guidance_config(method="sds", cfg_scale=7.5)),
    ],
    ids=["csd-latent", "csd-pixel-normalized", "sds-latent"],
)
def test_score_distillation_gradient_is_g_over_b(kind, cfg, latent_prior, pixel_prior):
    prior = latent_prior if kind == "latent" else pixel_prior
    images, embeddings = _step_inputs(prior)
    x = prior.encode_images(images)
    progress = 0.3
    loss, metrics = ScoreDistillation(prior, cfg)(x, embeddings, progress, torch.Generator().manual_seed(7))
    x.retain_grad()
    loss.backward()
    g, t = _expected_g(prior, cfg, x, embeddings, progress, seed=7)
    b = x.shape[0]
    torch.testing.assert_close(x.grad, g / b, rtol=1e-4, atol=1e-6)
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert metrics["method"] == cfg.method
    assert metrics["t"] == pytest.approx(t.float().mean().item())
    assert metrics["w2"] == pytest.approx(cfg.w2_at(progress))
    assert metrics["grad_norm"] > 0
    if cfg.normalize_gradient:
        torch.testing.assert_close((x.grad * b).flatten(1).norm(dim=1), torch.ones(b))


@pytest.mark.parametrize(
    "cfg, progress, negative, expected_batch",
    [
        (latent_guidance_config(), 0.0, DEFAULT_NEGATIVE_PROMPT, 6),  # [x_t|e_y, x_t|e_0, x_t|e_neg]
        (pixel_guidance_config(), 0.0, DEFAULT_NEGATIVE_PROMPT, 4),  # w2 = 0 at the start: negative term skipped
        (latent_guidance_config(), 0.5, None, 4),  # no negative prompt
        (latent_guidance_config(method="sds"), 0.5, DEFAULT_NEGATIVE_PROMPT, 4),
    ],
)
def test_one_stacked_unet_call_per_step(cfg, progress, negative, expected_batch, latent_prior, pixel_prior):
    prior = pixel_prior if cfg.weighting == "one" else latent_prior
    images, embeddings = _step_inputs(prior, b=2, negative=negative)
    sd = ScoreDistillation(prior, cfg)
    counter = _CallCounter(prior.unet)
    try:
        for step in range(2):
            sd(prior.encode_images(images), embeddings, progress, torch.Generator().manual_seed(step))
    finally:
        counter.remove()
    assert counter.batches == [expected_batch, expected_batch]


def test_same_seed_same_step(latent_prior):
    images, embeddings = _step_inputs(latent_prior)
    sd = ScoreDistillation(latent_prior, latent_guidance_config())
    results = []
    for seed in (3, 3, 4):
        x = latent_prior.encode_images(images)
        x.retain_grad()
        loss, metrics = sd(x, embeddings, 0.2, torch.Generator().manual_seed(seed))
        loss.backward()
        results.append((loss.item(), metrics["t"], x.grad.clone()))
    assert results[0][0] == results[1][0] and results[0][1] == results[1][1]
    assert torch.equal(results[0][2], results[1][2])
    assert results[0][0] != results[2][0]


def test_sampled_timesteps_stay_in_range(pixel_prior, monkeypatch):
    monkeypatch.setattr(pixel_prior, "predict_noise", lambda x_t, t, e, plan=None: torch.zeros_like(x_t))  # t matters
    sd = ScoreDistillation(pixel_prior, pixel_guidance_config())
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 3, 8, 8)
    e = PromptEmbeddings(pixel_prior, "a", None, view_dependent=False).for_views([0.0], [0.0])
    ts = [sd(x, e, 1.0, gen)[1]["t"] for _ in range(50)]
    assert all(20 <= t <= 500 for t in ts) and len(set(ts)) > 1


def test_uniform_timesteps_are_the_same_draws_as_before(pixel_prior):
    # The default keeps the random stream: t first (randint over the bounds), then the noise, from the generator.
    sd = ScoreDistillation(pixel_prior, pixel_guidance_config())
    t = sd.sample_timesteps(4, 0.3, torch.Generator().manual_seed(7))
    lo, hi = sd.timestep_bounds(0.3)
    assert torch.equal(t, torch.randint(lo, hi + 1, (4,), generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("preset", [latent_guidance_config, pixel_guidance_config])
def test_descending_timesteps_fall_from_the_top_of_the_range_to_its_bottom(preset, pixel_prior, monkeypatch):
    cfg = preset(timestep_sampling="descending")
    sd = ScoreDistillation(pixel_prior, cfg)
    progresses = np.linspace(0.0, 1.0, 21)
    values = [sd.sample_timesteps(3, float(p), torch.Generator().manual_seed(0)) for p in progresses]
    assert all(len(set(v.tolist())) == 1 for v in values)  # one t for all views of a step
    firsts = [int(v[0]) for v in values]
    assert firsts[0] == round(cfg.t_max_start * 1000) and firsts[-1] == round(cfg.t_min_end * 1000)
    assert all(a >= b for a, b in zip(firsts, firsts[1:]))  # never rises
    assert all(lo <= t <= hi for t, (lo, hi) in zip(firsts, map(sd.timestep_bounds, progresses)))
    t_min, t_max = cfg.t_range_at(0.5)
    assert firsts[10] == round((t_max - (t_max - t_min) * 0.5) * 1000)
    # The step reports the scheduled t and draws nothing for it: same loss whatever generator stream came before.
    monkeypatch.setattr(pixel_prior, "predict_noise", lambda x_t, t, e, plan=None: torch.zeros_like(x_t))
    e = PromptEmbeddings(pixel_prior, "a", None, view_dependent=False).for_views([0.0], [0.0])
    _, metrics = sd(torch.zeros(1, 3, 8, 8), e, 0.5, torch.Generator().manual_seed(1))
    assert metrics["t"] == firsts[10]


def test_timestep_sampling_is_checked_and_travels_through_configs(tmp_path):
    from csdtex.config import PaintConfig, load_config_file, resolve_guidance

    with pytest.raises(ConfigError, match="timestep sampling"):
        GuidanceConfig(timestep_sampling="random")
    path = tmp_path / "fast.toml"
    path.write_text('[guidance]\ntimestep_sampling = "descending"\n')
    config = load_config_file(path)
    config.validate()
    assert resolve_guidance(config, "latent").timestep_sampling == "descending"
    python_config = PaintConfig(guidance={"timestep_sampling": "descending"})
    python_config.validate()
    path.write_text('[guidance]\ntimestep_sampling = "sideways"\n')
    with pytest.raises(ConfigError, match="uniform"):
        load_config_file(path)


def test_non_finite_gradient_raises(latent_prior, monkeypatch):
    images, embeddings = _step_inputs(latent_prior)
    monkeypatch.setattr(latent_prior, "predict_noise", lambda x_t, t, e, plan=None: torch.full_like(x_t, float("nan")))
    sd = ScoreDistillation(latent_prior, latent_guidance_config())
    with pytest.raises(RuntimeError, match="NaN"):
        sd(latent_prior.encode_images(images), embeddings, 0.0, torch.Generator().manual_seed(0))


@pytest.mark.gpu
def test_cuda_half_precision_step_matches_cpu_draws(tiny_folders):
    prior = load_prior(tiny_folders["latent"], "cuda")
    assert prior.dtype == torch.float16 and prior.alphas_cumprod.device.type == "cuda"
    pe = PromptEmbeddings(prior, "a red chair")
    images = _images(2, 16, seed=1).cuda().requires_grad_(True)
    sd = ScoreDistillation(prior, latent_guidance_config())
    metrics = []
    for _ in range(2):
        x = prior.encode_images(images)
        loss, m = sd(x, pe.for_views([0.0, 0.0], [0.0, 90.0]), 0.5, torch.Generator().manual_seed(5))
        loss.backward()
        metrics.append(m)
    assert x.dtype == torch.float32 and loss.device.type == "cuda" and torch.isfinite(loss)
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert metrics[0]["t"] == metrics[1]["t"]  # CPU generator: same draws whatever the prior's device


def test_vae_encoder_attends_with_explicit_matmuls_and_the_same_values(latent_prior):
    """By default the VAE encoder's self-attention runs as baddbmm / softmax / bmm (the fused kernel's backward was
    15 of 75 ms on an H200, benchmarks/results/memory_format_kernels_h200.json); ``MemoryPlan.matmul_attention=False``
    gives the fused SDPA path back. Latents and input gradient agree."""
    import dataclasses

    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from csdtex.guidance.priors import DEFAULT_PLAN, attention_layers

    layers = attention_layers(latent_prior.vae.encoder)
    assert layers

    def latents_and_gradient(plan):
        images = _images(2, 16).requires_grad_(True)
        x = latent_prior.encode_images(images, plan=plan)
        cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        (gradient,) = torch.autograd.grad(x, images, cotangent)
        return x.detach(), gradient, [type(layer.processor) for layer in layers]

    x, gradient, processors = latents_and_gradient(DEFAULT_PLAN)
    assert DEFAULT_PLAN.matmul_attention and set(processors) == {AttnProcessor}
    reference, reference_gradient, processors = latents_and_gradient(
        dataclasses.replace(DEFAULT_PLAN, matmul_attention=False))
    assert set(processors) == {AttnProcessor2_0}
    torch.testing.assert_close(x, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gradient, reference_gradient, rtol=1e-5, atol=1e-6)
    assert gradient.abs().sum() > 0
    assert set(latents_and_gradient(DEFAULT_PLAN)[2]) == {AttnProcessor}  # switched back for the next plan
