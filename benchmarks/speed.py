"""How fast is `csdtex paint`, where does a step's time go, and how far is it from the compute floor?

    python benchmarks/speed.py --device cuda                   # SD-2.1-base architecture (random weights), fp16
    python benchmarks/speed.py --device cuda --prior tiny      # the built-in prior on CUDA
    python benchmarks/speed.py --device cpu --steps 2          # a CPU smoke run

Three measurements, one JSON (``benchmarks/results/speed_<prior>_<device>.json``):

1. **End to end**: ``csdtex paint`` as a user runs it, in a fresh process (``python -m csdtex.cli paint ...``), from
   process start to the files written: imports, prior load, text encoding, CUDA-graph capture, the optimization,
   bake, export and preview. The run's own per-phase timings (``run.json``) are listed too.
2. **Per phase of one step** (CUDA events, median over ``--profile-steps`` steps after warm-up): sampling the views
   (host work and copies), rasterize, field forward (+ compositing), prior encode forward (the VAE encoder for a
   latent prior), the guidance (UNet calls), encode backward (VAE encoder backward), field backward, optimizer.
   Also the number of host synchronizations per step (``torch.cuda.set_sync_debug_mode``) and peak GPU memory.
3. **Compute floor**: the FLOPs of one step's UNet call and VAE-encoder forward + backward
   (``torch.utils.flop_counter``) divided by the bf16 matmul throughput measured in the same run (8192^3 GEMMs);
   the step time over that floor is the "ratio to floor".

The random-weight folder (real architecture, so the compute is the real model's) is built once into ``--cache``
(safetensors) and loaded through the same ``load_prior`` path as a downloaded model; its build time is not part of
any figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import environment, print_table, write_json  # noqa: E402

from csdtex.config import PaintConfig  # noqa: E402
from csdtex.guidance.random_priors import build_random_sd21_base_folder  # noqa: E402

PHASES = ("views", "rasterize", "field_forward", "encode_forward", "guidance_unet", "encode_backward",
          "field_backward", "optimizer")


def end_to_end(model: str, args: argparse.Namespace, out_dir: Path) -> dict:
    """Wall time of ``csdtex paint`` in a fresh process, and the run's own phase timings."""
    command = [sys.executable, "-m", "csdtex.cli", "paint", str(args.mesh), "a weathered bronze statue",
               "--model", model, "--device", args.device, "--out", str(out_dir), "--quiet"]
    for flag, value in (("--steps", args.steps), ("--views-per-step", args.views), ("--texture-size", args.texture_size),
                        ("--renderer", args.renderer)):
        if value is not None:
            command += [flag, str(value)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"paint failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    record = json.loads((out_dir / "run.json").read_text())
    return {"wall_s": round(wall, 2), "command": " ".join(command[1:]), "run_timings_s": record["timings_s"],
            "steps": record["config"]["steps"], "seconds_per_step": record["metrics"]["seconds_per_step"]}


def profile_phases(model: str, args: argparse.Namespace, out_dir: Path) -> dict:
    """Median CUDA-event milliseconds per phase of a step, host syncs per step and peak memory."""
    import warnings

    from csdtex.guidance.scores import ScoreDistillation
    from csdtex.painting import seeded_field
    from csdtex.pipeline import optimize as optimize_module
    from csdtex.pipeline.prepare import prepare_run
    from csdtex.render import rasterize
    from csdtex.render.views import composite_on_background, surface_samples

    config = PaintConfig(model=model, device=args.device, views_per_step=args.views or 4, renderer=args.renderer,
                         checkpoint_every=0)
    run = prepare_run(args.mesh, "a weathered bronze statue", config, out_dir)
    field = seeded_field(run.config.field, 0, run.device)
    distillation = ScoreDistillation(run.prior, run.guidance)
    optimizer = optimize_module.make_optimizer(field, run.config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    resolution = run.config.render_resolution
    on_cuda = run.device.type == "cuda"

    def step(index: int, events: list | None) -> None:
        def mark(position: int) -> None:
            if events is not None:
                events[position].record()

        mark(0)
        views = optimize_module.sample_step_views(run, generator)
        mark(1)
        fragments = rasterize(views.cameras.project(run.render_mesh.positions), run.render_mesh.faces, resolution,
                              backend=run.backend, candidate_budget=run.candidate_budget)  # as render_step_views
        samples = surface_samples(run.render_mesh, fragments, need_normals=False, need_uvs=False)
        mark(2)
        colors = field(samples.points, None, samples.materials)
        images = composite_on_background(colors, fragments.mask, views.backgrounds, pixel_index=samples.pixel_index)
        mark(3)
        leaf = images.detach().requires_grad_(True)
        x = run.prior.encode_images(leaf.permute(0, 3, 1, 2) * 2.0 - 1.0)
        mark(4)
        loss, _ = distillation.step(x, run.embeddings.for_rows(views.prompt_rows), (index % 100) / 99, generator)
        mark(5)
        (gradient,) = torch.autograd.grad(loss, leaf)
        mark(6)
        optimizer.zero_grad(set_to_none=True)
        images.backward(gradient)
        mark(7)
        optimizer.step()
        mark(8)

    for index in range(args.warmup):
        step(index, None)
    samples_ms: dict[str, list[float]] = {name: [] for name in PHASES}
    totals = []
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for index in range(args.profile_steps):
        events = [torch.cuda.Event(enable_timing=True) for _ in range(len(PHASES) + 1)] if on_cuda else None
        start = time.perf_counter()
        step(args.warmup + index, events)
        if on_cuda:
            torch.cuda.synchronize()
            for name, (a, b) in zip(PHASES, zip(events[:-1], events[1:])):
                samples_ms[name].append(a.elapsed_time(b))
        totals.append((time.perf_counter() - start) * 1000.0)
    result = {"phases_ms": {name: round(statistics.median(v), 3) for name, v in samples_ms.items() if v},
              "step_ms": round(statistics.median(totals), 3)}
    if on_cuda:
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for index in range(5):
                    step(1000 + index, None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
        result["host_syncs_per_step"] = len(syncs) / 5
        result["sync_kinds"] = sorted(set(syncs))
        result["floor"] = compute_floor(run, views_per_step=run.config.views_per_step)
        result["ratio_to_floor"] = round(result["step_ms"] / result["floor"]["floor_ms"], 2)
    return result


def compute_floor(run, views_per_step: int) -> dict:
    """FLOPs of one step's UNet call and encoder forward + backward, over the measured bf16 matmul throughput."""
    from torch.utils.flop_counter import FlopCounterMode

    prior = run.prior
    resolution = prior.render_resolution
    images = torch.rand(views_per_step, 3, resolution, resolution, device=run.device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        x = prior.encode_images(images * 2 - 1)
        x.sum().backward()
    encode_flops = counter.get_total_flops()
    conditions = 3 if run.guidance.negative_prompt else 2
    batch = views_per_step * conditions
    x_t = torch.randn(batch, *x.shape[1:], device=run.device)
    t = torch.full((batch,), 300, device=run.device)
    embeddings = run.embeddings.prompt[:1].expand(batch, -1, -1)
    use_graphs, prior.use_cuda_graphs = prior.use_cuda_graphs, False
    with FlopCounterMode(display=False) as counter:
        prior.predict_noise(x_t, t, embeddings)
    prior.use_cuda_graphs = use_graphs
    unet_flops = counter.get_total_flops()
    size = 8192
    a = torch.randn(size, size, device=run.device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=run.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    tflops = 20 * 2 * size**3 / (start.elapsed_time(end) / 1000.0) / 1e12
    total = encode_flops + unet_flops
    return {"unet_tflop": round(unet_flops / 1e12, 3), "encode_fwd_bwd_tflop": round(encode_flops / 1e12, 3),
            "bf16_matmul_tflops": round(tflops, 1), "floor_ms": round(total / (tflops * 1e12) * 1000.0, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prior", choices=("sd21", "tiny"), default="sd21",
                        help="sd21: SD-2.1-base architecture with random weights; tiny: the built-in prior")
    parser.add_argument("--steps", type=int, default=None, help="paint steps [default: the preset's]")
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument("--texture-size", type=int, default=None)
    parser.add_argument("--renderer", default="auto")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--mesh", type=Path, default=ROOT / "assets/meshes/vase.obj")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-sd21-base")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    if args.prior == "sd21":
        if not (args.cache / "model_index.json").exists():
            build_random_sd21_base_folder(args.cache, dtype=torch.float16)
        model = str(args.cache)
    else:
        model = "tiny"
    report: dict = {"environment": environment(), "device": args.device, "prior": args.prior}
    with tempfile.TemporaryDirectory() as work:
        if not args.skip_end_to_end:
            report["end_to_end"] = end_to_end(model, args, Path(work) / "paint")
        report["step"] = profile_phases(model, args, Path(work) / "profile")

    rows = []
    if "end_to_end" in report:
        e2e = report["end_to_end"]
        rows.append({"what": f"end to end, {e2e['steps']} steps (process start -> files)", "value": f"{e2e['wall_s']:.1f} s"})
        rows += [{"what": f"  run phase {k}", "value": f"{v:.2f} s"} for k, v in e2e["run_timings_s"].items()]
    step = report["step"]
    rows += [{"what": f"step phase {k}", "value": f"{v:.2f} ms"} for k, v in step["phases_ms"].items()]
    rows.append({"what": "step (wall, median)", "value": f"{step['step_ms']:.1f} ms"})
    for key in ("host_syncs_per_step", "peak_gpu_memory_gib", "ratio_to_floor"):
        if key in step:
            rows.append({"what": key, "value": str(step[key])})
    if "floor" in step:
        rows += [{"what": f"floor {k}", "value": str(v)} for k, v in step["floor"].items()]
    print(f"\ncsdtex paint speed: prior {args.prior}, device {args.device}")
    print_table(rows, ["what", "value"])
    out = args.json or ROOT / f"benchmarks/results/speed_{args.prior}_{'cuda' if args.device.startswith('cuda') else 'cpu'}.json"
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
