"""Time per phase of `paint` with a randomly initialized prior of the real Stable Diffusion 2.1-base architecture.

    python benchmarks/speed.py --device cpu    # tiny settings: 2 steps, 1 view, 128^2 texture
    python benchmarks/speed.py --device cuda   # 20 steps, 4 views, 1024^2 texture, fp16

Random weights make the images meaningless but the compute identical to the real model. The pipeline folder is
written once (safetensors) to --cache and loaded through the same `load_prior` path as a downloaded model.
Prints a table of per-phase seconds and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, write_json  # noqa: E402

from csdtex.config import PaintConfig  # noqa: E402
from csdtex.guidance import load_prior  # noqa: E402
from csdtex.guidance.random_priors import build_random_sd21_base_folder  # noqa: E402
from csdtex.painting import paint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument("--texture-size", type=int, default=None)
    parser.add_argument("--mesh", type=Path, default=Path(__file__).resolve().parents[1] / "assets/meshes/vase.obj")
    parser.add_argument("--renderer", default="auto")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-sd21-base")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    on_cuda = args.device.startswith("cuda")
    steps = args.steps or (20 if on_cuda else 2)
    views = args.views or (4 if on_cuda else 1)
    texture_size = args.texture_size or (1024 if on_cuda else 128)

    start = time.perf_counter()
    if not (args.cache / "model_index.json").exists():
        build_random_sd21_base_folder(args.cache, dtype=torch.float16)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prior = load_prior(str(args.cache), args.device)
    load_seconds = time.perf_counter() - start
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()

    config = PaintConfig(model=str(args.cache), steps=steps, views_per_step=views, texture_size=texture_size,
                         device=args.device, renderer=args.renderer, checkpoint_every=0, preview_frames=12)
    with tempfile.TemporaryDirectory() as out_dir:
        result = paint(args.mesh, "a weathered bronze statue", config, out_dir=out_dir, prior=prior)
    timings = {"build_random_folder": round(build_seconds, 2), "load_prior": round(load_seconds, 2),
               **result.timings}
    rows = [{"phase": name, "seconds": f"{value:.3f}"} for name, value in timings.items()]
    rows.append({"phase": "per step (optimize / steps)", "seconds": f"{result.metrics['seconds_per_step']:.3f}"})
    if on_cuda:
        rows.append({"phase": "peak GPU memory (GiB)",
                     "seconds": f"{torch.cuda.max_memory_allocated() / 2**30:.2f}"})
    print(f"\npaint, SD-2.1-base architecture (random weights), {args.device}, {steps} steps x {views} views, "
          f"texture {texture_size}^2, prior {prior.dtype}")
    print_table(rows, ["phase", "seconds"])
    device_name = "cuda" if on_cuda else "cpu"
    out = args.json or Path(f"benchmarks/results/speed_{device_name}.json")
    write_json(out, {"environment": environment(), "device": args.device, "steps": steps, "views": views,
                     "texture_size": texture_size, "timings_s": timings, "metrics": result.metrics,
                     "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if on_cuda else None})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
