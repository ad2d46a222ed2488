"""--low-vram (csdtex.guidance.priors.MemoryPlan): the same loss and gradients as the default with less kept for the
backward pass, the option on every run command, and GPU out-of-memory errors that name it."""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path

import pytest
import torch
import trimesh
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from csdtex import painting as paint_module
from csdtex.cli import main
from csdtex.config import EditConfig, PaintConfig
from csdtex.devices import gpu_memory_budget_gib
from csdtex.errors import GpuOutOfMemoryError, call_with_gpu_memory_errors, out_of_memory_message, user_message
from csdtex.guidance import (
    PromptEmbeddings,
    ScoreDistillation,
    latent_guidance_config,
    load_prior,
    pixel_guidance_config,
)
from csdtex.guidance.priors import (
    CUDA_GRAPHS_MIN_GIB,
    DEFAULT_PLAN,
    LOW_VRAM_PLAN,
    SMALL_GPU_PLAN,
    MemoryPlan,
    memory_plan,
)
from csdtex.guidance.random_priors import build_tiny_latent_folder, build_tiny_pixel_folder
from csdtex.pipeline.checkpoint import checkpoint_identity

KEEP_ALL = dataclasses.replace(DEFAULT_PLAN, recompute_elementwise=False)
PLANS = {
    "keep-all": KEEP_ALL,
    "default": DEFAULT_PLAN,
    "low-vram": LOW_VRAM_PLAN,
    "small-gpu": SMALL_GPU_PLAN,
    "fused-attention": dataclasses.replace(DEFAULT_PLAN, matmul_attention=False),
    "two-views-five-samples": MemoryPlan(unet_batch=5, encode_views=2, cuda_graphs=False),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("low_vram_priors")
    return {"latent": build_tiny_latent_folder(root / "latent"), "pixel": build_tiny_pixel_folder(root / "pixel")}


@pytest.fixture(scope="module")
def priors(folders):
    return {kind: load_prior(folder, "cpu") for kind, folder in folders.items()}


@pytest.fixture(scope="module")
def small_mesh(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("meshes") / "ball.obj"
    trimesh.creation.icosphere(1).export(path)
    return path


def _step(prior, plan: MemoryPlan, views: int = 3, progress: float = 0.2):
    """One CSD step (prompt, empty and negative prompt: 3 x ``views`` UNet samples) from fixed renders; returns the
    loss and the gradient w.r.t. the renders."""
    size = prior.render_resolution
    images = torch.rand(views, 3, size, size, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    embeddings = PromptEmbeddings(prior, "a red chair", "a blue chair")
    cfg = latent_guidance_config() if prior.kind == "latent" else pixel_guidance_config(w2_start=1.0)
    x = prior.encode_images(images * 2 - 1, plan=plan)
    rows = embeddings.for_views([0.0] * views, [0.0, 90.0, 180.0][:views])
    loss, _ = ScoreDistillation(prior, cfg, plan).step(x, rows, progress, torch.Generator().manual_seed(7))
    loss.backward()
    return loss.detach(), images.grad


@pytest.mark.parametrize("kind", ["latent", "pixel"])
@pytest.mark.parametrize("plan", [name for name in PLANS if name != "default"])
def test_every_memory_plan_gives_the_default_loss_and_gradient(priors, kind, plan):
    reference_loss, reference_grad = _step(priors[kind], DEFAULT_PLAN)
    loss, grad = _step(priors[kind], PLANS[plan])
    assert reference_grad.abs().sum() > 0
    torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=1e-7)
    # float32 sums in another order: elementwise rtol 1e-4, and an absolute floor of 1e-5 of the gradient's scale for
    # elements near 0 (one such element differed by 1.6e-7, relative 4e-4, on another CPU)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-5 * float(reference_grad.abs().max()))


class _KeptBytes(TorchDispatchMode):
    """Bytes of the tensors created in the ``with`` block that are still alive (held for the backward pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if id(storage) not in self.sizes:
                    self.sizes[id(storage)] = storage.nbytes()
                    weakref.finalize(storage, self.sizes.pop, id(storage))
        return out

    @property
    def kept(self) -> int:
        return sum(self.sizes.values())


def test_the_encoder_keeps_less_for_its_backward_pass(priors):
    """What the VAE encoder holds between its forward and backward passes: everything (keep-all), the convolution
    outputs only (default), nothing but its input (low-vram)."""
    kept = {}
    for name in ("keep-all", "default", "low-vram"):
        images = torch.rand(3, 3, 16, 16, requires_grad=True)
        with _KeptBytes() as mode:
            x = priors["latent"].encode_images(images * 2 - 1, plan=PLANS[name])
        kept[name] = mode.kept
        x.sum().backward()  # the recomputation works
        assert images.grad is not None and images.grad.abs().sum() > 0
    assert kept["default"] < 0.7 * kept["keep-all"], kept
    assert kept["low-vram"] < 0.1 * kept["keep-all"], kept


def test_low_vram_splits_the_unet_batch(priors):
    batches = []
    unet = priors["latent"].unet
    handle = unet.register_forward_pre_hook(lambda module, args, kwargs: batches.append(args[0].shape[0]),
                                            with_kwargs=True)
    try:
        _step(priors["latent"], LOW_VRAM_PLAN)  # 3 views x 3 conditions
        _step(priors["latent"], DEFAULT_PLAN)
    finally:
        handle.remove()
    assert batches == [4, 4, 1, 9]


def test_memory_plan_of_the_option():
    assert memory_plan(False) is DEFAULT_PLAN and memory_plan(True) is LOW_VRAM_PLAN
    assert LOW_VRAM_PLAN.encode_views == 1 and not LOW_VRAM_PLAN.cuda_graphs and LOW_VRAM_PLAN.unet_batch == 4
    with pytest.raises(ValueError, match="unet_batch"):
        MemoryPlan(unet_batch=0)


def test_memory_plan_of_the_gpu_budget():
    """Under 12 GiB (an 8 GB card, or a per-process cap) the default plan drops its CUDA graphs and nothing else;
    --low-vram wins over the budget; no budget (the CPU) keeps the default."""
    assert SMALL_GPU_PLAN == dataclasses.replace(DEFAULT_PLAN, cuda_graphs=False)
    assert memory_plan(False, memory_budget_gib=8 * 10**9 / 2**30) is SMALL_GPU_PLAN
    assert memory_plan(False, memory_budget_gib=CUDA_GRAPHS_MIN_GIB) is DEFAULT_PLAN
    assert memory_plan(False, memory_budget_gib=139.8) is DEFAULT_PLAN
    assert memory_plan(True, memory_budget_gib=5.0) is LOW_VRAM_PLAN
    assert memory_plan(False, True, 7.45) == dataclasses.replace(SMALL_GPU_PLAN, compile_encoder=True,
                                                                 matmul_attention=False)
    assert memory_plan(False, memory_budget_gib=None) is DEFAULT_PLAN
    assert gpu_memory_budget_gib(torch.device("cpu")) is None


@pytest.mark.gpu
def test_gpu_memory_budget_follows_the_per_process_cap():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    before = torch.cuda.get_per_process_memory_fraction(0)
    try:
        torch.cuda.set_per_process_memory_fraction(0.25, 0)
        assert gpu_memory_budget_gib(device) == pytest.approx(total * 0.25)
    finally:
        torch.cuda.set_per_process_memory_fraction(before, 0)
    assert gpu_memory_budget_gib(device) == pytest.approx(total * before)


def test_low_vram_loading_on_the_cpu_changes_nothing(folders, priors):
    prior = load_prior(folders["latent"], "cpu", low_vram=True)
    embeddings = prior.encode_text(["a red chair"])
    torch.testing.assert_close(embeddings, priors["latent"].encode_text(["a red chair"]))
    loss, grad = _step(prior, LOW_VRAM_PLAN)
    reference_loss, reference_grad = _step(priors["latent"], DEFAULT_PLAN)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-7)


def test_low_vram_does_not_change_the_checkpoint_identity():
    plain = checkpoint_identity("a ball", PaintConfig(steps=4), None, "ImplicitTextureField")
    low = checkpoint_identity("a ball", PaintConfig(steps=4, low_vram=True), None, "ImplicitTextureField")
    assert plain == low  # --resume works across --low-vram: the results do not depend on it


# ------------------------------------------------------------------------------------------------ command line


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", ["paint", "edit", "batch"])
def test_every_run_command_has_the_option(command):
    result = _invoke(command, "--help")
    assert result.exit_code == 0 and "--low-vram" in result.output


def test_the_option_reaches_the_paint_config(tmp_path, small_mesh, monkeypatch):
    seen = []

    def fake_paint(mesh, prompt, config, **kwargs):
        seen.append(config.low_vram)
        raise GpuOutOfMemoryError("stop here")

    monkeypatch.setattr(paint_module, "paint", fake_paint)
    for extra in ([], ["--low-vram"]):
        _invoke("paint", str(small_mesh), "a ball", "--out", str(tmp_path / "o"), *extra)
    toml = tmp_path / "options.toml"
    toml.write_text("low_vram = true\n")
    _invoke("paint", str(small_mesh), "a ball", "--out", str(tmp_path / "o"), "--config", str(toml))
    assert seen == [False, True, True]


def _out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of "
                                      "7.63 GiB of which 1.02 GiB is free.")


@pytest.mark.parametrize("low_vram", [False, True])
def test_paint_out_of_memory_is_one_line_naming_the_option(tmp_path, folders, small_mesh, monkeypatch, low_vram):
    monkeypatch.setattr(paint_module, "optimize", _out_of_memory)  # inside the run, after the prior is loaded
    result = _invoke("paint", str(small_mesh), "a ball", "--model", str(folders["pixel"]), "--out",
                     str(tmp_path / "o"), "--steps", "2", "--texture-size", "32", "--quiet",
                     *(["--low-vram"] if low_vram else []))
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if not line.startswith("note: ")]  # the unwrap notice
    assert len(lines) == 1 and lines[0].startswith("error: the GPU ran out of memory"), result.output
    assert "(an allocation of 2.50 GiB failed on a 7.63 GiB GPU)" in lines[0]
    assert "--views-per-step" in lines[0] and "--texture-size" in lines[0]
    if low_vram:
        assert "even with --low-vram" in lines[0] and "rerun" not in lines[0]
    else:
        assert "rerun with --low-vram" in lines[0]
    assert not (tmp_path / "o" / "run.json").exists()


def test_edit_out_of_memory_names_the_option_but_not_the_texture_size():
    with pytest.raises(GpuOutOfMemoryError) as caught:
        call_with_gpu_memory_errors(_out_of_memory, low_vram=EditConfig().low_vram, texture_option=False)
    message = str(caught.value)
    assert "--low-vram" in message and "--views-per-step" in message and "--texture-size" not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # the GPU tensors are not kept
    assert user_message(caught.value) == (f"error: {message}", 3)


def test_other_errors_pass_through_and_raw_out_of_memory_is_explained():
    def not_memory():
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        call_with_gpu_memory_errors(not_memory, low_vram=False)
    assert call_with_gpu_memory_errors(lambda: 5, low_vram=False) == 5
    line, code = user_message(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert code == 3 and line == "error: " + out_of_memory_message(None)
    assert "--low-vram" in line and "paint / edit / batch" in line


def test_batch_row_out_of_memory_records_the_same_line(tmp_path, folders, small_mesh, monkeypatch):
    from csdtex.batch.manifest import AssetRow
    from csdtex.batch.tasks import AssetTask, WorkerState, execute_task

    monkeypatch.setattr(paint_module, "optimize", _out_of_memory)
    config = PaintConfig(model=str(folders["pixel"]), steps=2, texture_size=32, device="cpu")
    row = AssetRow(where="test row", name="ball", task="paint", mesh=small_mesh, prompt="a ball", config=config)
    result = execute_task(AssetTask(row=row, staging=tmp_path / "staging", attempt=1, token="t"), WorkerState("cpu"))
    assert not result.ok and result.exit_code == 3
    assert result.error.startswith("error: the GPU ran out of memory") and "rerun with --low-vram" in result.error


# ------------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_low_vram_placement_and_same_step(folders):
    prior = load_prior(folders["latent"], "cuda", low_vram=True)
    assert next(prior.text_encoder.parameters()).device.type == "cpu"
    assert next(prior.unet.parameters()).device.type == "cpu"  # placed at first use, after the text encoding
    embeddings = prior.encode_text(["a red chair"])
    assert embeddings.device.type == "cuda" and next(prior.text_encoder.parameters()).device.type == "cpu"
    low_loss, low_grad = _step(prior, LOW_VRAM_PLAN)
    assert next(prior.unet.parameters()).device.type == "cuda"
    assert next(prior.vae.encoder.parameters()).device.type == "cuda"
    assert next(prior.vae.decoder.parameters()).device.type == "cpu"  # never used
    reference = load_prior(folders["latent"], "cuda")
    assert next(reference.vae.decoder.parameters()).device.type == "cpu"
    loss, grad = _step(reference, DEFAULT_PLAN)

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    # fp16 kernels chosen for 1 view and for 3 views round differently; recomputation repeats the same kernels
    assert relative(low_loss, loss) < 1e-2 and relative(low_grad, grad) < 2e-2
    loss_keep, grad_keep = _step(reference, KEEP_ALL)
    assert relative(loss_keep, loss) < 1e-3 and relative(grad_keep, grad) < 1e-3
