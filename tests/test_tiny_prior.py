"""Tests of the built-in tiny prior's construction (csdtex.tinyprior.model) and of its training script."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from csdtex import tinyprior as T
from csdtex import tinyprior as synthetic  # the vocabulary and dataset names
from csdtex.guidance import PixelPrior, load_prior_from_folder

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_FOLDER = ROOT / "assets" / "priors" / "tiny"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_prior")
    components = T.build_tiny_prior(folder, seed=0)
    return components, folder


def _train_prior_module():
    spec = importlib.util.spec_from_file_location("train_prior", ROOT / "benchmarks" / "train_prior.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tokenizer_has_one_token_per_vocabulary_word(built, tmp_path):
    components, folder = built
    tokenizer = components.tokenizer
    from transformers import T5Tokenizer

    loaded = T5Tokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    assert (folder / "tokenizer" / "tokenizer.json").is_file()
    assert len(loaded) == len(tokenizer) == len(synthetic.VOCABULARY) + 3
    assert (loaded.pad_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2)
    for word in synthetic.VOCABULARY:
        text = word if word.isalpha() else "a" + word  # punctuation follows a word in captions ("box, side view")
        ids = loaded(text, add_special_tokens=False).input_ids
        assert len(ids) == (1 if word.isalpha() else 2) and min(ids) > 2, word
    caption = "a red and blue striped box, side view"
    ids, mask = T.tokenize(loaded, [caption, ""])
    assert ids.shape == mask.shape == (2, T.MAX_TEXT_LENGTH)
    assert int(mask[0].sum()) == len(synthetic.caption_words(caption)) + 1  # one token per word, then </s>
    assert ids[1, 0] == loaded.eos_token_id and int(mask[1].sum()) == 1
    assert torch.equal(ids, T.tokenize(tokenizer, [caption, ""])[0])
    unknown = T.tokenize(loaded, ["a vase"])[0][0]
    assert unknown[1] == loaded.unk_token_id


def test_unknown_words():
    assert T.unknown_words("A red and blue striped box, side view") == []
    assert T.unknown_words("a red vase. a red vase") == ["vase", "."]
    assert T.unknown_words("oversaturated color, ugly")[:2] == ["oversaturated", "color"]


def test_size_and_parameters(built):
    components, folder = built
    counts = components.parameter_count()
    assert 1_000_000 < counts["unet"] < 6_000_000 and counts["text_encoder"] < 1_000_000
    size = T.folder_weight_bytes(folder)
    assert size <= T.SIZE_LIMIT_BYTES
    assert size == pytest.approx(4 * (counts["unet"] + counts["text_encoder"]), rel=0.01)
    assert not list(folder.rglob("*.bin"))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "IFPipeline" and index["tokenizer"] == ["transformers", "T5Tokenizer"]


def test_build_is_deterministic_per_seed():
    a = T.build_tiny_prior(None, seed=3)
    b = T.build_tiny_prior(None, seed=3)
    c = T.build_tiny_prior(None, seed=4)
    pa, pb, pc = (next(m.unet.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_folder_loads_as_a_pixel_prior(built):
    components, folder = built
    prior = load_prior_from_folder(folder, device="cpu")
    assert isinstance(prior, PixelPrior) and prior.kind == "pixel"
    assert prior.render_resolution == 64 and prior.prediction_type == "epsilon"
    assert prior.num_train_timesteps == 1000 and prior.max_text_length == T.MAX_TEXT_LENGTH
    captions = ["a red and blue striped box, side view", "", "A Solid Green Sphere", "an object with dots"]
    embeddings = prior.encode_text(captions)
    assert embeddings.shape == (4, 77, components.config.text_width) and torch.isfinite(embeddings).all()
    components.text_encoder.eval()
    with torch.no_grad():
        reference = T.encode_captions(components.tokenizer, components.text_encoder, captions)
    torch.testing.assert_close(embeddings, reference)
    x = prior.encode_images(torch.rand(2, 3, 64, 64) * 2 - 1)
    eps = prior.predict_noise(x, torch.tensor([10, 900]), embeddings[:2])
    assert eps.shape == (2, 3, 64, 64) and eps.dtype == torch.float32 and torch.isfinite(eps).all()
    # The cosine schedule: abar decreases from ~1 to ~0.
    assert prior.alphas_cumprod[0] > 0.999 and prior.alphas_cumprod[-1] < 1e-3


def test_load_components_round_trip(built):
    components, folder = built
    loaded = T.load_components(folder)
    assert loaded.config == components.config
    for a, b in zip(loaded.unet.state_dict().values(), components.unet.state_dict().values()):
        assert torch.equal(a, b)


def test_sample_images_shapes(built):
    components, _ = built
    images = T.sample_images(components, ["a solid red sphere", ""], num_per_prompt=2, steps=2, seed=1)
    assert images.shape == (4, 64, 64, 3) and images.dtype == torch.uint8
    again = T.sample_images(components, ["a solid red sphere", ""], num_per_prompt=2, steps=2, seed=1)
    assert torch.equal(images, again)


def test_sampler_recovers_the_image_of_an_oracle_model(built):
    """With a UNet that returns the exact noise of a fixed image x0, DDIM + CFG must land on x0."""
    components, _ = built
    alphas = components.scheduler.alphas_cumprod
    x0 = torch.tensor([0.8, -0.6, -0.6]).view(1, 3, 1, 1).expand(1, 3, 64, 64)

    class Oracle(torch.nn.Module):
        config = components.unet.config

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t, encoder_hidden_states):
            a = alphas[t.long()].view(-1, 1, 1, 1)
            return type("Out", (), {"sample": (x - a.sqrt() * x0) / (1 - a).sqrt()})()

    oracle = T.TinyPriorComponents(Oracle(), components.text_encoder, components.tokenizer, components.scheduler)
    images = T.sample_images(oracle, ["a solid red sphere"], num_per_prompt=2, steps=10, guidance_scale=4.0)
    expected = ((x0[0].permute(1, 2, 0) + 1) * 127.5).round()
    assert (images.float() - expected).abs().max() <= 1.0


def test_training_helpers():
    train_prior = _train_prior_module()
    lr = [train_prior.learning_rate(s, 1000, 1e-3, 50) for s in range(1000)]
    assert lr[0] == pytest.approx(1e-3 / 50) and max(lr) == pytest.approx(1e-3)
    assert lr[-1] == pytest.approx(1e-4, rel=0.01) and all(a >= b for a, b in zip(lr[50:], lr[51:]))
    ema, live = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    train_prior.ema_update([ema], [live], 0.9)
    torch.testing.assert_close(ema.weight, 0.9 * before + 0.1 * live.weight.detach())


def test_train_script_smoke(tmp_path):
    """A 5-step CPU run on 64 images writes the folder, the PNGs, the README and the record."""
    train_prior = _train_prior_module()
    out = tmp_path / "tiny"
    cache = tmp_path / "data.npz"
    argv = ["--out", str(out), "--device", "cpu", "--images", "64", "--steps", "5", "--batch", "8",
            "--eval-images", "16", "--data-cache", str(cache), "--sample-steps", "2", "--samples-per-prompt", "1",
            "--checkpoint-every", "0", "--quiet"]  # fmt: skip
    record = train_prior.main(argv)
    assert record["training"]["steps"] == 5 and len(record["training"]["losses"]) == 5
    assert all(np.isfinite(record["training"]["losses"]))
    assert record["data"]["train"]["images"] == 64 and cache.is_file()
    for name in ("loss_curve.png", "samples.png", "data_examples.png", "README.md", "training.json",
                 "model_index.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                 "tokenizer/tokenizer.json", "scheduler/scheduler_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    from PIL import Image

    with Image.open(out / "samples.png") as image:
        assert image.size[1] > 64 * len(train_prior.DEFAULT_SAMPLE_PROMPTS)
    readme = (out / "README.md").read_text()
    assert "python benchmarks/train_prior.py" in readme and "64 training images" in readme
    assert load_prior_from_folder(out).render_resolution == 64
    # A second run reads the cached data instead of generating it.
    again = train_prior.main(argv[:-1] + ["--quiet", "--steps", "1", "--eval-images", "0"])
    assert again["data"]["train"]["source"] == str(cache)


def test_train_script_role_loss_smoke(tmp_path):
    """--role-loss with the neighbour init: the role loss is recorded and finite; the saved prior keeps its
    config (the read-out head is not part of the prior)."""
    train_prior = _train_prior_module()
    out = tmp_path / "tiny_roles"
    argv = ["--out", str(out), "--device", "cpu", "--images", "96", "--steps", "12", "--batch", "16",
            "--eval-images", "0", "--sample-steps", "1", "--samples-per-prompt", "1", "--checkpoint-every", "0",
            "--data-version", "2", "--role-loss", "0.5", "--arch", "text_neighbour_bias=4", "--lr", "3e-3",
            "--quiet"]  # fmt: skip
    record = train_prior.main(argv)
    training = record["training"]
    assert training["role_loss_weight"] == 0.5 and np.isfinite(training["final_role_loss"])
    assert record["model"]["config"]["text_neighbour_bias"] == 4.0
    assert not any("role" in p.name for p in out.rglob("*"))
    folder = load_prior_from_folder(out)
    assert folder.render_resolution == 64


@pytest.fixture
def importable_train_prior(monkeypatch):
    """The training script as module ``train_prior``, importable by the processes it spawns."""
    import sys

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    module = _train_prior_module()
    monkeypatch.setitem(sys.modules, "train_prior", module)
    return module


def test_parallel_data_rendering_matches_one_process(importable_train_prior):
    """Chunks rendered by worker processes assemble into exactly the single-process dataset."""
    train_prior = importable_train_prior
    images, captions = train_prior.generate_parallel(264, 5, "train", torch.device("cpu"), None, 2, False)
    expected, expected_captions, _ = synthetic.generate_dataset(264, seed=5)
    assert np.array_equal(images, expected) and captions == expected_captions


@pytest.mark.gpu
def test_train_script_cuda_graph_steps(tmp_path, importable_train_prior):
    """On CUDA the step is captured as a CUDA graph after 3 warm-up steps; the loss falls and stays finite, and
    the run matches an eager run's behaviour (same data, same model, loss in the same range)."""
    train_prior = importable_train_prior
    common = ["--device", "cuda", "--images", "1024", "--eval-images", "0", "--batch", "32", "--steps", "60",
              "--sample-steps", "2", "--samples-per-prompt", "1", "--checkpoint-every", "0", "--data-workers", "2",
              "--quiet"]  # fmt: skip
    graphed = train_prior.main(["--out", str(tmp_path / "graph"), *common])
    eager = train_prior.main(["--out", str(tmp_path / "eager"), *common, "--no-cuda-graph"])
    assert graphed["training"]["cuda_graph"] is True and eager["training"]["cuda_graph"] is False
    for record in (graphed, eager):
        losses = np.array(record["training"]["losses"])
        assert len(losses) == 60 and np.all(np.isfinite(losses))
        assert losses[-10:].mean() < 0.95 * losses[:5].mean()
    ratio = np.mean(graphed["training"]["losses"][-20:]) / np.mean(eager["training"]["losses"][-20:])
    assert 0.5 < ratio < 2.0


def test_train_script_architecture_changes(importable_train_prior):
    """--arch FIELD=VALUE changes the TinyPriorConfig the script builds (tuples as comma lists); unknown fields,
    bad values and inconsistent shapes stop with one line."""
    train_prior = importable_train_prior
    assert train_prior.architecture([]) == T.TinyPriorConfig()
    config = train_prior.architecture(["cross_attention_levels=2,3", "text-layers=4"])
    assert config.cross_attention_levels == (2, 3) and config.text_layers == 4
    assert config.unet_kwargs()["down_block_types"][2] == "CrossAttnDownBlock2D"
    for bad in (["depth=3"], ["text_layers=four"], ["layers_per_block=1,1"], ["text_layers="]):
        with pytest.raises(SystemExit, match="--arch"):
            train_prior.architecture(bad)


def test_prior_architecture_cost_benchmark_smoke(tmp_path):
    """benchmarks/prior_arch_cost.py paints with every candidate architecture (1 step) and records its cost."""
    from benchmark_scripts import load_benchmark

    record = load_benchmark("prior_arch_cost").main(["--steps", "1", "--repeats", "1", "--texture-size", "32",
                                                     "--out", str(tmp_path), "--name", "cost"])
    saved = json.loads((tmp_path / "cost.json").read_text())
    assert saved["variants"].keys() == record["variants"].keys() >= {"default", "xattn16"}
    params = {name: row["parameters"] for name, row in saved["variants"].items()}
    assert params["xattn16"] > params["default"] and params["wide"] > params["default"]
    assert all(row["best_seconds_per_step"] > 0 for row in saved["variants"].values())


def test_word_order_probe_reads_the_training_data_and_runs_on_a_prior(tmp_path, built):
    """benchmarks/prior_word_order.py's measure on data-version-2 renders of dotted objects (colours[0] is the base,
    the caption's order): the base colour holds most of the A/B pixels, so a prior that learned the data would show
    a large response; the script runs end to end on a (random) prior folder."""
    from benchmark_scripts import load_benchmark

    probe = load_benchmark("prior_word_order")
    images, _, metadata = synthetic.generate_dataset(300, seed=9, split="test", views_per_object=1, data_version=2)

    def shares_of(pattern, measure):
        """The measure on every render of ``pattern`` whose two colours are chromatic (colours[0] = base / top)."""
        chosen = [i for i, m in enumerate(metadata) if m["texture"]["pattern"] == pattern
                  and not set(m["texture"]["colors"]) & {"white", "black", "gray"}]
        return [measure(images[i : i + 1], *(np.asarray(T.COLORS[c], np.float32)
                                             for c in metadata[i]["texture"]["colors"][:2]), 0.35)[0]
                for i in chosen]  # fmt: skip

    shares = shares_of("dots", probe.base_colour_shares)
    assert len(shares) >= 15
    assert np.mean(shares) > 0.75 and np.mean(np.array(shares) > 0.5) > 0.85
    top = shares_of("halves", probe.top_colour_shares)
    assert len(top) >= 8
    assert np.mean(top) > 0.6 and np.mean(np.array(top) > 0.5) > 0.7  # the top colour holds the image's top half
    assert probe.role_prompt(probe.ROLE_PROBES["halves"][0], "orange", "blue") == \
        "an object with an orange top and a blue bottom"
    _, folder = built
    record = probe.main([str(folder), "--samples", "2", "--steps", "2", "--out", str(tmp_path), "--name", "wo",
                         "--roles", "dots,halves"])
    entry = record["priors"][str(folder)]
    assert len(entry["halves"]["pairs"]) == len(probe.PAIRS) and -1.0 <= entry["halves"]["mean_response"] <= 1.0
    assert len(entry["pairs"]) == len(probe.PAIRS) and -1.0 <= entry["mean_response"] <= 1.0
    assert -1.0 <= entry["mean_encoder_role_cosine"] <= 1.0 + 1e-6
    components, _ = built
    same = probe.role_cosine(components, "a red object with blue dots", "a red object with blue dots", ("red",))
    assert same == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "wo.json").is_file()


def test_train_script_data_cache_is_used_only_for_the_data_it_holds(tmp_path):
    """--data-cache records its seed, split and data version beside it; another run's request, or a cache without
    that record, stops with a one-line error instead of training on the wrong data."""
    train_prior = _train_prior_module()
    cache = tmp_path / "data.npz"
    device = torch.device("cpu")
    images, captions, info = train_prior.load_or_generate(8, 0, "train", device, str(cache), 8, False)
    assert info["source"] == "generated" and cache.is_file()
    again, again_captions, info = train_prior.load_or_generate(8, 0, "train", device, str(cache), 8, False)
    assert info["source"] == str(cache) and np.array_equal(again, images) and again_captions == captions
    for request in ({"seed": 1}, {"split": "test"}, {"data_version": 3}):
        arguments = {"seed": 0, "split": "train", "data_version": 1, **request}
        with pytest.raises(SystemExit, match="holds data for"):
            train_prior.load_or_generate(8, arguments["seed"], arguments["split"], device, str(cache), 8, False,
                                         data_version=arguments["data_version"])
    train_prior.cache_identity_path(cache).unlink()
    with pytest.raises(SystemExit, match="no readable record"):
        train_prior.load_or_generate(8, 0, "train", device, str(cache), 8, False)


def test_train_script_material_share_reaches_the_data_and_its_cache_record(tmp_path):
    """--material-share (data version 3 only) sets the share of material objects; the data cache records it, so a
    cache of another share is refused; without the flag version 3 uses MATERIAL_PROBABILITY_V3."""
    from csdtex.tinyprior import synthetic

    train_prior = _train_prior_module()
    device = torch.device("cpu")
    cache = tmp_path / "v3.npz"
    _, all_material, info = train_prior.load_or_generate(16, 0, "train", device, str(cache), 16, False,
                                                         data_version=3, material_probability=1.0)
    assert info["material_probability"] == 1.0
    _, none_material, _ = train_prior.load_or_generate(16, 0, "train", device, None, 16, False, data_version=3,
                                                       material_probability=0.0)
    _, default_share, _ = train_prior.load_or_generate(16, 0, "train", device, None, 16, False, data_version=3)
    _, version_1, _ = train_prior.load_or_generate(16, 0, "train", device, None, 16, False)
    materials = ("wood", "marble", "brick", "camouflage")
    assert all_material != version_1  # empty captions (the unconditional share) aside, every one names a material
    assert all(any(word in caption for word in materials) for caption in all_material if caption)
    assert none_material == version_1  # a share of 0: version 1's objects and captions
    assert default_share == synthetic.generate_dataset(
        16, seed=0, split="train", data_version=3, material_probability=synthetic.MATERIAL_PROBABILITY_V3)[1]
    with pytest.raises(SystemExit, match="holds data for"):
        train_prior.load_or_generate(16, 0, "train", device, str(cache), 16, False, data_version=3)
    assert json.loads(train_prior.cache_identity_path(cache).read_text())["material_probability"] == 1.0
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--material-share", "0.05"])  # needs --data-version 3
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--data-version", "3", "--material-share", "1.5"])
    assert train_prior.parse_args(["--data-version", "3", "--material-share", "0.05"]).material_share == 0.05


def test_train_script_splits_its_time_budget_over_resumed_invocations(tmp_path):
    """--stop-after-minutes pauses with the state saved (schedule horizon, budget used); --resume continues from that
    step with the same horizon, counting the budget on from what the first invocation used."""
    import torch as torch_module

    train_prior = _train_prior_module()
    out, state = tmp_path / "tiny_split", tmp_path / "state.pt"
    common = ["--out", str(out), "--device", "cpu", "--images", "64", "--batch", "8", "--eval-images", "0",
              "--data-cache", str(tmp_path / "data.npz"), "--sample-steps", "1", "--samples-per-prompt", "1",
              "--checkpoint-every", "0", "--state", str(state), "--time-limit-minutes", "10",
              "--reserve-seconds", "1", "--quiet"]  # fmt: skip
    first = train_prior.main(common + ["--stop-after-minutes", "0.2"])["training"]
    assert first["stopped_by"] == "paused (--stop-after-minutes)" and first["steps"] > 0
    # 12 s asked; a step on a busy 2-core CI machine can take seconds (21.7 s seen with another job running): the
    # bound checks that it paused near the request, not at the 10-minute limit
    assert first["resumed_at_step"] == 0 and 5 < first["budget_seconds_used"] < 60
    saved = torch_module.load(state, weights_only=True)
    assert saved["step"] == first["steps"] and saved["horizon"] == first["schedule_horizon"]
    assert first["steps"] < first["schedule_horizon"]  # the schedule spans the whole 10-minute budget
    second = train_prior.main(common + ["--stop-after-minutes", "0.1", "--resume"])["training"]
    assert second["resumed_at_step"] == first["steps"] and second["steps"] > first["steps"]
    assert second["stopped_by"] == "paused (--stop-after-minutes)"
    # the budget goes on from the first invocation's (the second's data loading is not counted)
    assert first["budget_seconds_used"] < second["budget_seconds_used"] < first["budget_seconds_used"] + 30
    assert len(second["losses"]) == second["steps"]
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--stop-after-minutes", "1"])  # nothing to resume from without --state


def test_warm_start_carries_every_known_word_and_refuses_another_architecture():
    """warm_start copies the UNet and text encoder; the shipped prior's words keep their embeddings under a larger
    vocabulary (other token ids), so a known caption encodes exactly as before; new words keep the seeded init."""
    from csdtex.tinyprior import model as tiny_prior
    from csdtex.tinyprior.training import warm_start
    from csdtex.tinyprior.vocabulary import vocabulary_for

    source = tiny_prior.load_components(BUILTIN_FOLDER)
    target = tiny_prior.build_tiny_prior(None, seed=0, config=source.config, words=vocabulary_for(3))
    untouched = target.text_encoder.get_input_embeddings().weight.detach().clone()
    carried = warm_start(target, source)
    assert carried["new_tokens"] and "\u2581wooden" in carried["new_tokens"]
    assert carried["carried_tokens"] == len(source.tokenizer.get_vocab())
    caption = ["a red sphere with blue dots, side view"]
    ids, mask = tiny_prior.tokenize(source.tokenizer, caption)
    target_ids, target_mask = tiny_prior.tokenize(target.tokenizer, caption)
    assert not torch.equal(ids, target_ids)  # the ids moved, the meaning must not
    with torch.no_grad():
        expected = source.text_encoder.eval()(ids, attention_mask=mask)[0]
        got = target.text_encoder.eval()(target_ids, attention_mask=target_mask)[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    wooden = target.tokenizer.get_vocab()["\u2581wooden"]
    assert torch.equal(target.text_encoder.get_input_embeddings().weight[wooden], untouched[wooden])
    for name, value in source.unet.state_dict().items():
        assert torch.equal(target.unet.state_dict()[name], value), name
    other = tiny_prior.build_tiny_prior(None, seed=0, config=dataclasses.replace(source.config, text_layers=2))
    with pytest.raises(ValueError, match="text_layers"):
        warm_start(other, source)


def test_train_only_new_words_keeps_every_known_weight_bit_for_bit(tmp_path):
    """--train-only new-words (with --init-from) trains the embeddings of the words the source prior lacks and
    nothing else: the UNet, every other text-encoder weight and every known word's embedding come out equal to the
    source's (so prompts of known words paint exactly as before), the new words' embeddings move, and the record and
    model card say what trained. Without --init-from the option is refused."""
    train_prior = _train_prior_module()
    out = tmp_path / "tiny_words"
    record = train_prior.main(
        ["--out", str(out), "--device", "cpu", "--images", "32", "--steps", "3", "--batch", "8", "--eval-images", "0",
         "--sample-steps", "1", "--samples-per-prompt", "1", "--checkpoint-every", "0", "--data-version", "3",
         "--material-share", "1.0", "--init-from", str(BUILTIN_FOLDER), "--train-only", "new-words", "--lr", "1e-2",
         "--ema", "0", "--quiet"])  # fmt: skip
    assert record["training"]["trained"] == record["init_from"]["trained"] == "new word embeddings only"
    tiny_prior = train_prior.tiny_prior
    source, trained = tiny_prior.load_components(BUILTIN_FOLDER, "cpu"), tiny_prior.load_components(out, "cpu")
    for name, value in source.unet.state_dict().items():
        assert torch.equal(trained.unet.state_dict()[name], value), name
    source_embeddings = source.text_encoder.get_input_embeddings().weight
    trained_embeddings = trained.text_encoder.get_input_embeddings().weight
    for name, value in source.text_encoder.state_dict().items():
        if value.data_ptr() != source_embeddings.data_ptr():
            assert torch.equal(trained.text_encoder.state_dict()[name], value), name
    known, new = source.tokenizer.get_vocab(), trained.tokenizer.get_vocab()
    for piece, row in new.items():
        if piece in known:
            assert torch.equal(trained_embeddings[row], source_embeddings[known[piece]]), piece
    untrained = tiny_prior.build_tiny_prior(None, seed=0, config=source.config, words=train_prior.vocabulary_for(3))
    moved = [piece for piece in record["init_from"]["new_tokens"]
             if not torch.equal(trained_embeddings[new[piece]], untrained.text_encoder.get_input_embeddings().weight[
                 untrained.tokenizer.get_vocab()[piece]].to(trained_embeddings))]  # fmt: skip
    assert "\u2581marble" in moved and "\u2581wooden" in moved
    assert "Only the new words' embeddings trained" in (out / "README.md").read_text()
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--train-only", "new-words"])


def test_preserve_weight_adds_a_term_towards_the_source_predictions(tmp_path):
    """--preserve-weight W (with --init-from) adds W x the squared difference from the source prior's predictions on
    captions without a new word: the same seeded run with and without it ends with other weights (the term is zero
    at the first step, where the model is the source, and pulls once it has moved); the weight is recorded; without
    --init-from it is refused."""
    train_prior = _train_prior_module()
    tiny_prior = train_prior.tiny_prior

    def train(name: str, weight: float) -> dict:
        out = tmp_path / name
        record = train_prior.main(
            ["--out", str(out), "--device", "cpu", "--images", "16", "--steps", "3", "--batch", "4",
             "--eval-images", "0", "--sample-steps", "1", "--samples-per-prompt", "1", "--checkpoint-every", "0",
             "--data-version", "3", "--init-from", str(BUILTIN_FOLDER), "--lr", "3e-3", "--ema", "0",
             "--preserve-weight", str(weight), "--quiet"])  # fmt: skip
        assert record["training"]["preserve_weight"] == weight
        return tiny_prior.load_components(out, "cpu").unet.state_dict()

    plain, preserved = train("plain", 0.0), train("preserved", 100.0)
    assert any(not torch.equal(plain[name], preserved[name]) for name in plain)
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--preserve-weight", "1.0"])


def test_train_script_init_from_a_trained_prior_records_its_source(tmp_path):
    """--init-from fine-tunes a trained prior (here the shipped one, on data version 3): the run starts from its
    weights, says so in training.json and the model card; a folder that is not a prior stops with one line."""
    train_prior = _train_prior_module()
    out = tmp_path / "tiny_ft"
    argv = ["--out", str(out), "--device", "cpu", "--images", "32", "--steps", "2", "--batch", "8",
            "--eval-images", "0", "--sample-steps", "1", "--samples-per-prompt", "1", "--checkpoint-every", "0",
            "--data-version", "3", "--init-from", str(BUILTIN_FOLDER), "--quiet"]  # fmt: skip
    record = train_prior.main(argv)
    init = record["init_from"]
    assert init["folder"] == str(BUILTIN_FOLDER) and "\u2581marble" in init["new_tokens"]
    assert init["source_command"].startswith("python benchmarks/train_prior.py") and init["source_seconds"] > 0
    assert record["model"]["config"]["text_neighbour_bias"] == train_prior.tiny_prior.read_config(
        BUILTIN_FOLDER).text_neighbour_bias
    readme = (out / "README.md").read_text()
    assert f"Started from `{BUILTIN_FOLDER}`" in readme and "marble" in readme
    with pytest.raises(SystemExit, match="not a readable tiny prior folder"):
        train_prior.main(argv[:-3] + ["--init-from", str(tmp_path)])
    with pytest.raises(SystemExit):
        train_prior.parse_args(["--init-from", str(BUILTIN_FOLDER), "--arch", "text_layers=2"])
