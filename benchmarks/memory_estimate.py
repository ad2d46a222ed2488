"""GPU memory of one score-distillation step per memory plan, estimated without a GPU.

    python benchmarks/memory_estimate.py                      # SD-2.1-base, 4 views at 512^2, fp16
    python benchmarks/memory_estimate.py --prior if --views 4 # DeepFloyd IF-I-XL UNet
    python benchmarks/memory_estimate.py --views 8 --json out.json

The real architectures (:data:`csdtex.guidance.random_priors.SD21_BASE_UNET_CONFIG` / ``SD21_BASE_VAE_CONFIG`` /
``IF_I_XL_UNET_CONFIG``) are built on PyTorch's ``meta`` device (shapes only, no memory, no arithmetic) and one
training step of the prior's part (image encoder forward, the stacked UNet batch of 3 conditions, the surrogate loss
and its backward pass to the renders) runs through csdtex's own ``encode_images`` / ``ScoreDistillation`` with each
:class:`~csdtex.guidance.priors.MemoryPlan`. A dispatch mode follows every tensor storage from the operator that
creates it until it is freed, which gives the live bytes at each moment and their peak: what
``torch.cuda.max_memory_allocated`` measures, minus the caching allocator's rounding, cuDNN / cuBLAS workspaces,
fragmentation, and the texture field's own share (a few hundred MiB). Attention is counted as the flash /
memory-efficient kernels allocate it (output and log-sum-exp only), which is what CUDA runs; the meta device's own
fallback would materialise the attention matrix. Not counted either: CUDA graphs' private pools (the UNet's
activations, reserved rather than allocated once captured).

A check of ``speed.py``'s GPU figures and a way to try a plan before a GPU run; the numbers are estimates.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import weakref
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, write_json  # noqa: E402

from csdtex.guidance.priors import DEFAULT_PLAN, LOW_VRAM_PLAN, LatentPrior, MemoryPlan, PixelPrior  # noqa: E402
from csdtex.guidance.random_priors import (  # noqa: E402
    IF_I_XL_UNET_CONFIG,
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
    T5_XXL_WIDTH,
)
from csdtex.guidance.scores import ScoreDistillation, latent_guidance_config, pixel_guidance_config  # noqa: E402

PLANS = {
    "keep-all": dataclasses.replace(DEFAULT_PLAN, recompute_elementwise=False),
    "default": DEFAULT_PLAN,
    "low-vram": LOW_VRAM_PLAN,
}


class LiveBytes(TorchDispatchMode):
    """Live storage bytes of the tensors created while the mode is active (plus those passed to :meth:`track`), and
    their peak; :meth:`mark` records both at a named moment."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {}
        self.live = 0
        self.peak = 0
        self.marks: dict[str, tuple[int, int]] = {}

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = id(storage)
        if key not in self.sizes:
            self.sizes[key] = storage.nbytes()
            self.live += self.sizes[key]
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self.track(tensor)
        return out

    def mark(self, name: str) -> None:
        self.marks[name] = (self.live, self.peak)


@contextlib.contextmanager
def flash_style_attention() -> Iterator[None]:
    """While the block runs, route ``F.scaled_dot_product_attention`` to the memory-efficient kernel's operator so
    that the meta device allocates what CUDA's flash / memory-efficient kernels do; restored afterwards."""
    original = F.scaled_dot_product_attention

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        keep = torch.is_grad_enabled() and query.requires_grad
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, attn_mask, keep, dropout_p, is_causal, scale=scale)[0]

    F.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def meta_prior(kind: str) -> LatentPrior | PixelPrior:
    """SD-2.1-base (``"sd21"``) or IF-I-XL (``"if"``) on the meta device in fp16, as a csdtex prior (no text
    encoder: the benchmark feeds embeddings of the right shape)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        config = SD21_BASE_UNET_CONFIG if kind == "sd21" else IF_I_XL_UNET_CONFIG
        unet = UNet2DConditionModel(**config).half().eval().requires_grad_(False)
        vae = AutoencoderKL(**SD21_BASE_VAE_CONFIG).half().eval().requires_grad_(False) if kind == "sd21" else None
    common = dict(unet=unet, text_encoder=None, tokenizer=None, alphas_cumprod=torch.linspace(0.9999, 0.005, 1000),
                  prediction_type="epsilon", max_text_length=77, text_uses_attention_mask=False,
                  lowercase_prompts=False, device="meta", dtype=torch.float16, source=f"{kind} on the meta device")
    if vae is not None:
        return LatentPrior(vae=vae, render_resolution=512, **common)
    return PixelPrior(render_resolution=64, **common)


def estimate(prior, plan: MemoryPlan, views: int) -> dict:
    """Live GiB after the encoder forward, after the UNet batch, and the step's peak (weights included)."""
    weights = [p for module in prior._device_modules() for p in module.parameters()]
    width = T5_XXL_WIDTH if prior.kind == "pixel" else 1024
    config = latent_guidance_config() if prior.kind == "latent" else pixel_guidance_config(w2_start=1.0)
    size = prior.render_resolution
    tracker = LiveBytes()
    with flash_style_attention(), tracker:
        for parameter in weights:
            tracker.track(parameter)
        tracker.mark("weights")
        images = torch.empty(views, 3, size, size, device="meta", requires_grad=True)
        embeddings = torch.empty(views, 77, width, device="meta", dtype=torch.float16)
        tracker.track(images)
        tracker.track(embeddings)
        x = prior.encode_images(images * 2 - 1, plan=plan)
        tracker.mark("encoded")
        loss, _ = ScoreDistillation(prior, config, plan).step(x, (embeddings,) * 3, 0.5,
                                                             torch.Generator().manual_seed(0))
        tracker.mark("guided")
        loss.backward()
        tracker.mark("backward")

    def gib(value: int) -> float:
        return round(value / 2**30, 3)

    base = tracker.marks["weights"][0]
    return {"weights_gib": gib(base), "kept_after_encode_gib": gib(tracker.marks["encoded"][0] - base),
            "peak_through_unet_gib": gib(tracker.marks["guided"][1] - base),
            "peak_through_backward_gib": gib(tracker.marks["backward"][1] - base),
            "step_peak_with_weights_gib": gib(tracker.peak)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", choices=("sd21", "if"), default="sd21")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--plans", default=",".join(PLANS), help=f"comma-separated, of {', '.join(PLANS)}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.plans.split(",") if name.strip()]
    unknown = [name for name in names if name not in PLANS]
    if unknown:
        parser.error(f"unknown plan(s) {', '.join(unknown)}: use {', '.join(PLANS)}")
    prior = meta_prior(args.prior)
    report = {"prior": args.prior, "views": args.views, "estimates": {}}
    rows = []
    for name in names:
        result = estimate(prior, PLANS[name], args.views)
        report["estimates"][name] = {"memory_plan": dataclasses.asdict(PLANS[name]), **result}
        rows.append({"plan": name, **{key.removesuffix("_gib"): f"{value:.2f}" for key, value in result.items()}})
    print(f"\nestimated GPU memory (GiB) of one step: prior {args.prior}, {args.views} views, fp16")
    print_table(rows, list(rows[0]))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
