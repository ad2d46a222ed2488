"""Does the memory layout of the frozen networks change the step's cost? (issue #13)

    python benchmarks/memory_format.py --device cuda        # SD-2.1-base architecture, random fp16 weights
    python benchmarks/memory_format.py --device cpu --toy --repeats 1 --warmup 1   # smoke run (numbers meaningless)

A paint step runs the VAE encoder forward and backward on the views (4 renders of 512^2) and the UNet forward on the
stacked conditions (3 x 4 latents of 64^2). Both are convolution networks; on tensor-core GPUs cuDNN's convolution
kernels work in NHWC ("channels last"), so NCHW tensors are transposed around every convolution. This script times
(``common.time_call``: wall time with the device synchronized around each call, median of ``--repeats`` calls after
``--warmup``; the session-10 record was taken with CUDA events):

- the encoder's forward + backward through :meth:`csdtex.guidance.priors.LatentPrior.encode_images` (the paint
  step's own path, with the default plan's selective recomputation, and with everything kept), for each layout:
  ``nchw`` (weights and input contiguous), ``input-nhwc`` (NCHW weights, the render's own NHWC strides: what a
  paint step passes today), ``nhwc`` (weights and input channels last);
- the UNet forward (eager, no CUDA graph) on NCHW and channels-last weights and input;
- each with ``torch.backends.cudnn.benchmark`` off and on (set per variant and restored: the library does not set it).

With ``--kernels N`` the default path (``nchw``, default plan) is also run once under ``torch.profiler`` and its
device time is split by kernel: the N most expensive kernels and a sum per kind (fused attention, convolution /
matrix multiply, normalization, element-wise, reduction and other), to show where the encoder's time goes.

Every variant's latents, input gradient and UNet output are compared with the ``nchw`` ones (max abs difference
relative to the reference's max abs), since a layout changes kernels and so rounding, never the maths. Peak
allocated GPU memory per variant too. Prints a table and writes ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, time_call, write_json  # noqa: E402


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """``torch.backends.cudnn.benchmark`` set for the block and restored after it."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def to_layout(modules: list[torch.nn.Module], channels_last: bool) -> None:
    """Move the 4-D parameters of ``modules`` to channels-last (or back to contiguous) memory, in place."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in modules:
        module.to(memory_format=fmt)


def timed(function, device: torch.device, repeats: int, warmup: int) -> tuple[float, float]:
    """(median ms per call from :func:`common.time_call`, peak allocated GiB over the calls) of ``function()``."""
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    milliseconds = time_call(function, device, repeats=repeats, warmup=warmup)
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_cuda else 0.0
    return milliseconds, peak


def relative_difference(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value - reference| / max |reference| (float64 on the host)."""
    ref = reference.double()
    return float((value.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


KERNEL_KINDS = (
    ("attention", ("fmha", "flash", "attention")),
    ("convolution / matmul", ("conv", "gemm", "cutlass", "sm90", "sm80", "xmma", "cudnn", "nchwtonhwc", "nhwctonchw",
                               "implicit", "wgrad", "dgrad", "fprop")),
    ("normalization", ("norm", "welford", "moments", "internalgradients")),
    ("element-wise", ("elementwise", "vectorized", "unrolled", "silu", "mul_kernel", "add_kernel", "copy")),
    ("reduction", ("reduce",)),
)


def kernel_kind(name: str) -> str:
    """A coarse kind of a CUDA kernel from its (lower-cased) name: the first of :data:`KERNEL_KINDS` that matches."""
    lowered = name.lower()
    for kind, markers in KERNEL_KINDS:
        if any(marker in lowered for marker in markers):
            return kind
    return "other"


def kernel_table(function, top: int) -> dict:
    """Device time of one ``function()`` call split by kernel (``torch.profiler``, CUDA activity).

    Returns ``{"total_ms", "by_kind": {kind: ms}, "top": [{"kernel", "kind", "calls", "ms"}]}``; names cut to 90 chars.
    """
    from torch.profiler import ProfilerActivity, profile

    function()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        function()
        torch.cuda.synchronize()
    kernels: dict[str, list] = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        entry = kernels.setdefault(event.name, [0, 0.0])
        entry[0] += 1
        entry[1] += event.device_time_total / 1000.0  # a kernel event: its own duration, in microseconds
    by_kind: dict[str, float] = {}
    for name, (_, ms) in kernels.items():
        by_kind[kernel_kind(name)] = by_kind.get(kernel_kind(name), 0.0) + ms
    ranked = sorted(kernels.items(), key=lambda item: -item[1][1])[:top]
    return {"total_ms": round(sum(ms for _, ms in kernels.values()), 2),
            "by_kind": {kind: round(ms, 2) for kind, ms in sorted(by_kind.items(), key=lambda item: -item[1])},
            "top": [{"kernel": name[:90], "kind": kernel_kind(name), "calls": calls, "ms": round(ms, 2)}
                    for name, (calls, ms) in ranked]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--toy", action="store_true", help="toy-size random SD folder (smoke test)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-priors")
    parser.add_argument("--kernels", type=int, default=0, metavar="N",
                        help="also profile the default encoder path per kernel and list the N most expensive (CUDA)")
    parser.add_argument("--name", default=None, help="results name (default memory_format_<device>)")
    args = parser.parse_args(argv)

    from csdtex.guidance import load_prior
    from csdtex.guidance.priors import DEFAULT_PLAN, MemoryPlan
    from csdtex.guidance.random_priors import build_random_sd21_base_folder, build_tiny_latent_folder

    device = torch.device(args.device)
    folder = args.cache / ("tiny_latent" if args.toy else "sd21_base_random_fp16")
    if not (folder / "model_index.json").exists():
        print(f"building {folder} (random weights, once)", flush=True)
        (build_tiny_latent_folder if args.toy else build_random_sd21_base_folder)(folder)
    prior = load_prior(str(folder), device=device)
    prior.release_text_encoder()
    size = prior.render_resolution
    generator = torch.Generator().manual_seed(0)
    renders_nhwc = torch.rand(args.views, size, size, 3, generator=generator).to(device)  # as a rasterizer gives
    latent = prior.vae_scale_factor
    conditions = 3
    unet_x = torch.randn(conditions * args.views, prior.unet.config.in_channels, size // latent, size // latent,
                         generator=generator).to(device, prior.dtype)
    unet_t = torch.randint(20, 980, (conditions * args.views,), generator=generator).to(device)
    unet_text = torch.randn(conditions * args.views, prior.max_text_length,
                            prior.unet.config.cross_attention_dim, generator=generator).to(device, prior.dtype)
    encoder_modules = [prior.vae.encoder] + ([prior.vae.quant_conv] if prior.vae.quant_conv is not None else [])
    keep_all = MemoryPlan(recompute_elementwise=False)

    def encoder_call(images_layout: str, plan: MemoryPlan):
        def run():
            leaf = renders_nhwc.detach().requires_grad_(True)
            images = leaf.permute(0, 3, 1, 2) * 2.0 - 1.0  # NHWC strides, as a paint step's renders
            if images_layout == "nchw":
                images = images.contiguous()
            x = prior.encode_images(images, plan=plan)
            (gradient,) = torch.autograd.grad(x, leaf, torch.ones_like(x))
            return x.detach(), gradient
        return run

    rows, reference = [], {}
    for plan_name, plan in (("recompute (default)", DEFAULT_PLAN), ("keep all", keep_all)):
        for layout in ("nchw", "input-nhwc", "nhwc"):
            for bench in (False, True):
                to_layout(encoder_modules, channels_last=layout == "nhwc")
                run = encoder_call("nchw" if layout == "nchw" else "nhwc", plan)
                with cudnn_benchmark(bench):
                    x, gradient = run()
                    ms, peak = timed(run, device, args.repeats, args.warmup)
                key = ("encoder", plan_name)
                if key not in reference:
                    reference[key] = (x, gradient)
                rows.append({
                    "network": "VAE encoder fwd+bwd", "plan": plan_name, "layout": layout, "cudnn_benchmark": bench,
                    "ms": round(ms, 2), "peak_gib": round(peak, 2),
                    "rel_diff_out": f"{relative_difference(x, reference[key][0]):.1e}",
                    "rel_diff_grad": f"{relative_difference(gradient, reference[key][1]):.1e}",
                })
                print(rows[-1], flush=True)
    to_layout(encoder_modules, channels_last=False)
    kernels = None
    if args.kernels and device.type == "cuda":
        kernels = kernel_table(encoder_call("nchw", DEFAULT_PLAN), args.kernels)
        print(f"encoder fwd+bwd kernels: {kernels['total_ms']} ms of device time; by kind {kernels['by_kind']}")
        print_table(kernels["top"], ["kernel", "kind", "calls", "ms"])

    for layout in ("nchw", "nhwc"):
        for bench in (False, True):
            to_layout([prior.unet], channels_last=layout == "nhwc")
            x_in = unet_x.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else unet_x

            @torch.no_grad()
            def run():
                return prior.unet(x_in, unet_t, encoder_hidden_states=unet_text, return_dict=False)[0]

            with cudnn_benchmark(bench):
                out = run()
                ms, peak = timed(run, device, args.repeats, args.warmup)
            reference.setdefault("unet", out)
            rows.append({
                "network": f"UNet fwd ({conditions}x{args.views})", "plan": "eager", "layout": layout,
                "cudnn_benchmark": bench, "ms": round(ms, 2), "peak_gib": round(peak, 2),
                "rel_diff_out": f"{relative_difference(out, reference['unet']):.1e}", "rel_diff_grad": "",
            })
            print(rows[-1], flush=True)
    to_layout([prior.unet], channels_last=False)

    print_table(rows, ["network", "plan", "layout", "cudnn_benchmark", "ms", "peak_gib", "rel_diff_out",
                       "rel_diff_grad"])
    payload = {"environment": environment(), "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "prior": "toy" if args.toy else "sd21-base random fp16", "views": args.views,
               "repeats": args.repeats, "warmup": args.warmup, "rows": rows, "encoder_kernels": kernels}
    name = args.name or f"memory_format_{device.type}"
    path = write_json(Path(__file__).resolve().parent / "results" / f"{name}.json", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
