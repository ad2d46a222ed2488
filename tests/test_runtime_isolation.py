"""A paint run needs none of the training code, and building or loading a model leaves process-wide state alone:
the global RNG, the progress-bar settings of diffusers / transformers / huggingface_hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from csdtex.devices import resolve_device
from csdtex.errors import ConfigError, DeviceError

ROOT = Path(__file__).resolve().parents[1]


def test_paint_path_never_imports_the_training_package(tmp_path):
    """Load the built-in prior and compute the unknown-word warning in a fresh process: csdtex.tinyprior stays out."""
    code = (
        "import sys\n"
        "import csdtex, csdtex.cli\n"
        "from csdtex.guidance import load_prior\n"
        "from csdtex.guidance.vocabulary import unknown_words_message\n"
        "prior = load_prior('tiny', 'cpu')\n"
        "message = unknown_words_message('a blue bronze vase', prior.vocabulary)\n"
        "assert message and \"'bronze', 'vase'\" in message, message\n"
        "config = csdtex.PaintConfig(steps=2, texture_size=32, preview_frames=1, preview_size=32)\n"
        f"csdtex.paint({str(ROOT / 'assets' / 'meshes' / 'vase.obj')!r}, 'a blue bronze vase', config,\n"
        "             out_dir='out', show_progress=False, prior=prior, warn=lambda message: None)\n"
        "print(csdtex.__file__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['csdtex', 'tinyprior']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    package_file, loaded = result.stdout.strip().splitlines()[-2:]
    assert Path(package_file).is_relative_to(ROOT)
    assert loaded == "[]"


def _rng_states() -> tuple[torch.Tensor, ...]:
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return tuple(states)


def _same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_building_models_leaves_the_global_rng_alone(tmp_path):
    from csdtex.guidance.random_priors import build_tiny_latent_folder, build_tiny_pixel_folder
    from csdtex.tinyprior import build_tiny_prior

    torch.manual_seed(1234)
    before = _rng_states()
    build_tiny_latent_folder(tmp_path / "latent")
    build_tiny_pixel_folder(tmp_path / "pixel")
    first = build_tiny_prior(None, seed=5)
    assert _same(before, _rng_states())
    # The weights depend on the seed only, not on the caller's RNG state.
    torch.manual_seed(99)
    torch.rand(10)
    second = build_tiny_prior(None, seed=5)
    for a, b in zip(first.unet.state_dict().values(), second.unet.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("initially_enabled", [True, False])
def test_loading_and_saving_restore_the_progress_bar_settings(tmp_path, initially_enabled):
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    from csdtex.guidance import load_prior_from_folder
    from csdtex.guidance.loading import quiet_progress_bars
    from csdtex.guidance.random_priors import build_tiny_pixel_folder
    from csdtex.tinyprior import build_tiny_prior, load_components, save_prior_folder

    def settings() -> tuple[bool, bool, bool]:
        return (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled(),
                not hub_utils.are_progress_bars_disabled())  # fmt: skip

    original = settings()
    try:
        for module in (diffusers_logging, transformers_logging):
            (module.enable_progress_bar if initially_enabled else module.disable_progress_bar)()
        expected = settings()
        assert expected == (initially_enabled,) * 3
        with quiet_progress_bars():
            assert settings() == (False, False, False)
        assert settings() == expected
        load_prior_from_folder(build_tiny_pixel_folder(tmp_path / "pixel"))
        assert settings() == expected
        save_prior_folder(build_tiny_prior(None, seed=0), tmp_path / "tiny")
        load_components(tmp_path / "tiny")
        assert settings() == expected
    finally:
        for module, enabled in zip((diffusers_logging, transformers_logging), original):
            (module.enable_progress_bar if enabled else module.disable_progress_bar)()


def test_resolve_device_accepts_torch_devices():
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU is available"):
            resolve_device(torch.device("cuda", 0))
