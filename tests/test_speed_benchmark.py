"""benchmarks/speed.py: CPU smoke runs with toy-size random priors of the SD and IF layouts (structure only: the
numbers mean nothing), and the IF-I-XL configuration it benchmarks on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from benchmark_scripts import load_benchmark

FAST = ["--device", "cpu", "--toy", "--steps", "1", "--views", "1", "--texture-size", "32", "--warmup", "1",
        "--profile-steps", "1"]


def _speed_benchmark():
    return load_benchmark("speed")


def _fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text("preview_frames = 1\npreview_size = 32\n")
    return path


def test_speed_smoke_if_layout_end_to_end_default_and_low_vram(tmp_path):
    bench = _speed_benchmark()
    out = tmp_path / "speed.json"
    report = bench.main(["--prior", "if", "--low-vram", "--cache", str(tmp_path / "cache"), "--config",
                         str(_fast_config(tmp_path)), "--json", str(out), *FAST])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["prior"] == "if-toy" and (tmp_path / "cache" / "if-toy" / "model_index.json").is_file()
    for section, low_vram in ((report, False), (report["low_vram"], True)):
        e2e = section["end_to_end"]
        assert e2e["steps"] == 1 and e2e["wall_s"] > 0 and e2e["run_timings_s"]["optimize"] > 0
        assert e2e["command"].startswith("csdtex paint ") and ("--low-vram" in e2e["command"]) == low_vram
        step = section["step"]
        assert step["step_ms"] > 0 and step["memory_plan"]["cuda_graphs"] is not low_vram
    assert report["low_vram"]["step"]["memory_plan"]["encode_views"] == 1


def test_speed_smoke_sd_layout_profile_only(tmp_path):
    bench = _speed_benchmark()
    report = bench.main(["--prior", "sd21", "--low-vram", "--keep-all", "--skip-end-to-end", "--cache",
                         str(tmp_path / "cache"), "--json", str(tmp_path / "speed.json"), *FAST])
    assert report["prior"] == "sd21-toy" and "end_to_end" not in report and "end_to_end" not in report["low_vram"]
    assert report["step"]["memory_plan"] == {"unet_batch": None, "encode_views": None, "recompute_elementwise": True,
                                             "cuda_graphs": True, "compile_encoder": False, "matmul_attention": True}
    assert report["low_vram"]["step"]["memory_plan"]["unet_batch"] == 4
    assert report["keep_all"]["step"]["memory_plan"]["recompute_elementwise"] is False


def test_speed_smoke_compiled_encoder_profile(tmp_path, monkeypatch):
    """The "compiled" section and its comparison to the default; torch.compile is replaced by the identity here (a
    real inductor compilation of the toy encoder takes over a minute on 2 CPU cores: tests/test_compile_encoder.py)."""
    bench = _speed_benchmark()
    monkeypatch.setattr(torch, "compile", lambda function, **options: function)
    report = bench.main(["--prior", "sd21", "--compile-encoder", "--skip-end-to-end", "--cache",
                         str(tmp_path / "cache"), "--json", str(tmp_path / "speed.json"), *FAST])
    compiled = report["compiled"]
    assert compiled["step"]["memory_plan"]["compile_encoder"] is True
    assert report["step"]["memory_plan"]["compile_encoder"] is False
    assert compiled["step"]["encoder_compilation"] == "compiled" and compiled["step"]["first_step_s"] > 0
    assert "compile_s_estimate" in compiled["step"]
    versus = compiled["versus_default"]
    # on the CPU the phases are timed by the host clock; there is no GPU memory to compare
    assert set(versus) == {"step_ms"} | {f"{name}_ms" for name in bench.COMPARED}
    assert all(versus[f"{name}_ms"]["compiled"] >= 0 for name in bench.COMPARED)
    assert versus["step_ms"]["ratio"] == round(compiled["step"]["step_ms"] / report["step"]["step_ms"], 3)


def test_if_i_xl_configuration_has_the_published_size():
    from diffusers import UNet2DConditionModel

    from csdtex.guidance.random_priors import IF_I_XL_UNET_CONFIG

    with torch.device("meta"):
        unet = UNet2DConditionModel(**IF_I_XL_UNET_CONFIG)
    assert 4.25e9 < sum(p.numel() for p in unet.parameters()) < 4.35e9  # "4.3B parameters"
    assert unet.config.encoder_hid_dim == 4096 and unet.config.in_channels == 3 and unet.config.out_channels == 6


def test_memory_estimate_orders_the_plans(tmp_path):
    """benchmarks/memory_estimate.py on the meta device: the real SD-2.1-base architecture, no memory used."""
    report = load_benchmark("memory_estimate").main(
        ["--prior", "sd21", "--views", "4", "--json", str(tmp_path / "memory.json")])
    peaks = {name: entry["step_peak_with_weights_gib"] for name, entry in report["estimates"].items()}
    assert peaks["low-vram"] < 6.0 and peaks["default"] < 8.0  # the targets, before the field's share
    assert peaks["low-vram"] < peaks["default"] < peaks["keep-all"]
    assert report["estimates"]["low-vram"]["kept_after_encode_gib"] < 0.1
    assert 1.6 < report["estimates"]["default"]["weights_gib"] < 1.8  # UNet 1.61 + VAE encoder 0.07 GiB in fp16
