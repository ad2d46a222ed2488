"""How fast is `csdtex paint`, where does a step's time and memory go, and how far is it from the compute floor?

    python benchmarks/speed.py --device cuda                       # SD-2.1-base architecture (random weights), fp16
    python benchmarks/speed.py --device cuda --low-vram            # ... and the same with --low-vram, in one report
    python benchmarks/speed.py --device cuda --compile-encoder     # ... and with the VAE encoder compiled (eager vs
                                                                   # compiled in one report)
    python benchmarks/speed.py --device cuda --prior if --low-vram # DeepFloyd IF-I-XL UNet (random weights), fp16
    python benchmarks/speed.py --device cuda --prior tiny          # the built-in prior on CUDA
    python benchmarks/speed.py --device cpu --toy --low-vram --steps 2 --views 1 --warmup 1 --profile-steps 1
                                                                   # smoke run: toy-size models of the same layout

Per memory plan (the default; ``--low-vram`` with ``--low-vram``; with ``--keep-all`` the default path without the
VAE encoder's element-wise recomputation, step profile only; with ``--compile-encoder`` the default path with
``csdtex paint --compile-encoder``, the VAE encoder through ``torch.compile``), one JSON
(``benchmarks/results/speed_<prior>_<device>.json``; the default plan's figures at the top level as before, the
others under ``"low_vram"``, ``"keep_all"`` and ``"compiled"``):

1. **End to end**: ``csdtex paint`` as a user runs it, in a fresh process (the command line's own entry point, in a
   wrapper that only reads the process's peak GPU memory at the end), from process start to the files written:
   imports, prior load, text encoding, CUDA-graph capture, the optimization, bake, export and preview. The run's
   own per-phase timings (``run.json``) are listed too, and the process's peak GPU memory
   (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``, everything included).
2. **Per phase of one step** (CUDA events; host clock on the CPU; median over ``--profile-steps`` steps after
   warm-up): sampling the views (host work and copies), rasterize, field forward (+ compositing), prior encode
   forward (the VAE encoder for a latent prior), the guidance (UNet calls), encode backward (VAE encoder backward,
   with its recomputation under ``--low-vram``), field backward, optimizer. Also the number of host
   synchronizations per step
   (``torch.cuda.set_sync_debug_mode``) and peak GPU memory: of the steps after warm-up (``peak_gpu_memory_gib``),
   and of everything from loading the prior on (``peak_gpu_memory_with_load_gib``, with the warm-up's graph capture).
   The wall time of the first step (``first_step_s``: CUDA-graph capture, and with ``--compile-encoder`` the
   encoder's compilation; inductor's on-disk cache is warm by then when the end-to-end run compiled the same graphs
   first, so the cold compilation is in the end-to-end figures) and, for ``"compiled"``, ``compile_s_estimate`` (its
   first step minus the default's) and ``versus_default`` (per phase: default ms, compiled ms, ratio).
3. **Compute floor**: the FLOPs of one step's UNet call and VAE-encoder forward + backward
   (``torch.utils.flop_counter``) divided by the bf16 matmul throughput measured in the same run (8192^3 GEMMs);
   the step time over that floor is the "ratio to floor".

Priors: ``sd21`` = the real Stable Diffusion 2.1-base architecture; ``if`` = the real DeepFloyd IF-I-XL UNet
(4.3B parameters, :data:`csdtex.guidance.random_priors.IF_I_XL_UNET_CONFIG`) with a one-layer stand-in for T5-XXL
that gives embeddings of the real shape [B, 77, 4096] (the text encoder is freed before the first step, so the
stand-in changes only load time and load-time memory); ``tiny`` = the built-in prior. ``--toy`` replaces ``sd21`` /
``if`` by the toy-size random folders of the same layouts (numbers meaningless: a smoke test of this script). The
random-weight folders (real architectures, so the compute is the real models') are built once into ``--cache``
(safetensors) and loaded through the same ``load_prior`` path as a downloaded model; their build time is not part
of any figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
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

from csdtex.config import PaintConfig, load_config_file  # noqa: E402
from csdtex.guidance.priors import DEFAULT_PLAN, MemoryPlan  # noqa: E402
from csdtex.guidance.random_priors import (  # noqa: E402
    build_random_if_i_xl_folder,
    build_random_sd21_base_folder,
    build_tiny_latent_folder,
    build_tiny_pixel_folder,
)

PHASES = ("views", "rasterize", "field_forward", "encode_forward", "guidance_unet", "encode_backward",
          "field_backward", "optimizer")

PRIOR_FOLDERS = {
    # --prior: (folder name, builder, toy folder name, toy builder)
    "sd21": ("sd21-base", lambda folder: build_random_sd21_base_folder(folder, dtype=torch.float16),
             "sd21-toy", build_tiny_latent_folder),
    "if": ("if-i-xl", lambda folder: build_random_if_i_xl_folder(folder, dtype=torch.float16),
           "if-toy", build_tiny_pixel_folder),
}

PLANS: dict[str, tuple[bool, bool, MemoryPlan | None]] = {
    "default": (False, False, None),
    "low_vram": (True, False, None),
    "keep_all": (False, False, dataclasses.replace(DEFAULT_PLAN, recompute_elementwise=False)),
    "compiled": (False, True, None),
}
"""Report key -> (the run's ``low_vram``, its ``compile_encoder``, a plan that replaces the run's own in the step
profile). ``keep_all`` is the default path as it was before element-wise recomputation (step profile only: no
command-line option runs it)."""

COMPARED = ("encode_forward", "guidance_unet", "encode_backward")
"""Phases of the ``"compiled"`` section's ``versus_default`` comparison (with the step and peak memory)."""

COMPILE_FAILED_LINE = "compiling the VAE encoder failed"
"""What :meth:`csdtex.guidance.priors.LatentPrior._compiled_latents` logs when it falls back to the eager encoder."""

_PAINT_AND_REPORT_MEMORY = """
import json, sys
import torch
from csdtex.cli import main
code = main(sys.argv[2:], prog_name="csdtex", standalone_mode=False)
memory = {}
if torch.cuda.is_available() and torch.cuda.is_initialized():
    memory = {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
              "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
with open(sys.argv[1], "w") as handle:
    json.dump(memory, handle)
sys.exit(code if isinstance(code, int) else 0)
"""
"""``python -c`` body: ``csdtex paint`` through the command line's entry point, then the process's peak GPU memory
into the file named by the first argument."""


def prior_model(args: argparse.Namespace) -> str:
    """The ``--model`` of the benchmarked prior: ``"tiny"``, or a random-weight folder under ``--cache`` (built on
    first use)."""
    if args.prior == "tiny":
        return "tiny"
    name, build, toy_name, toy_build = PRIOR_FOLDERS[args.prior]
    folder = args.cache / (toy_name if args.toy else name)
    if not (folder / "model_index.json").exists():
        print(f"building {folder} (random weights, once)", flush=True)
        (toy_build if args.toy else build)(folder)
    return str(folder)


class _HostMark:
    """A CPU stand-in for ``torch.cuda.Event(enable_timing=True)``: ``record()`` notes the host clock (on the CPU
    every operation has finished when it returns, so host time is the phase's time)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def record(self) -> None:
        self.seconds = time.perf_counter()

    def elapsed_time(self, end: "_HostMark") -> float:
        """Milliseconds from this mark to ``end``, as ``torch.cuda.Event.elapsed_time``."""
        return (end.seconds - self.seconds) * 1000.0


def _gib(value: float) -> float:
    return round(value / 2**30, 3)


def end_to_end(model: str, args: argparse.Namespace, out_dir: Path, low_vram: bool,
               compile_encoder: bool = False) -> dict:
    """Wall time of ``csdtex paint`` in a fresh process, the run's own phase timings and the process's peak GPU
    memory; with ``compile_encoder`` (``--compile-encoder``) also whether the encoder's compilation failed."""
    paint_args = ["paint", str(args.mesh), "a weathered bronze statue", "--model", model, "--device", args.device,
                  "--out", str(out_dir), "--quiet"]
    for flag, value in (("--steps", args.steps), ("--views-per-step", args.views),
                        ("--texture-size", args.texture_size), ("--renderer", args.renderer)):
        if value is not None:
            paint_args += [flag, str(value)]
    if low_vram:
        paint_args.append("--low-vram")
    if compile_encoder:
        paint_args.append("--compile-encoder")
    if args.config is not None:
        paint_args += ["--config", str(args.config)]
    memory_file = out_dir.parent / f"{out_dir.name}_memory.json"
    command = [sys.executable, "-c", _PAINT_AND_REPORT_MEMORY, str(memory_file), *paint_args]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"paint failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    record = json.loads((out_dir / "run.json").read_text())
    memory = json.loads(memory_file.read_text()) if memory_file.exists() else {}
    result = {"wall_s": round(wall, 2), "command": "csdtex " + " ".join(paint_args),
              "run_timings_s": record["timings_s"], "steps": record["config"]["steps"],
              "seconds_per_step": record["metrics"]["seconds_per_step"]}
    result.update({key: round(value, 3) for key, value in memory.items()})
    if compile_encoder:
        result["encoder_compile_failed"] = COMPILE_FAILED_LINE in completed.stderr
    return result


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def profile_phases(model: str, args: argparse.Namespace, out_dir: Path, low_vram: bool,
                   plan: MemoryPlan | None = None, with_floor: bool = True, compile_encoder: bool = False) -> dict:
    """Median CUDA-event milliseconds per phase of a step, host syncs per step, peak memory and the first step's wall
    time, for a run with ``low_vram`` and ``compile_encoder`` and its memory plan (or ``plan``); with ``with_floor``
    also the compute floor."""
    import warnings

    from csdtex.guidance.scores import ScoreDistillation
    from csdtex.painting import seeded_field
    from csdtex.pipeline import optimize as optimize_module
    from csdtex.pipeline.prepare import prepare_run
    from csdtex.render import rasterize
    from csdtex.render.views import composite_on_background, surface_samples

    device = torch.device(args.device)
    _free_device_memory(device)
    on_cuda = device.type == "cuda"
    base = load_config_file(args.config) if args.config is not None else PaintConfig()
    config = dataclasses.replace(base, model=model, device=args.device, views_per_step=args.views or 4,
                                 renderer=args.renderer, checkpoint_every=0, low_vram=low_vram,
                                 compile_encoder=compile_encoder)
    run = prepare_run(args.mesh, "a weathered bronze statue", config, out_dir)
    plan = plan or run.plan
    field = seeded_field(run.config.field, 0, run.device)
    distillation = ScoreDistillation(run.prior, run.guidance, plan)
    optimizer = optimize_module.make_optimizer(field, run.config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    resolution = run.config.render_resolution

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
        x = run.prior.encode_images(leaf.permute(0, 3, 1, 2) * 2.0 - 1.0, plan=plan)
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

    result: dict = {"memory_plan": dataclasses.asdict(plan)}
    for index in range(args.warmup):
        start = time.perf_counter()
        step(index, None)
        if index == 0:
            if on_cuda:
                torch.cuda.synchronize()
            result["first_step_s"] = round(time.perf_counter() - start, 3)
    if plan.compile_encoder and hasattr(run.prior, "encoder_compilation"):
        result["encoder_compilation"] = run.prior.encoder_compilation
    if on_cuda:
        torch.cuda.synchronize()
        result["peak_gpu_memory_with_load_gib"] = _gib(torch.cuda.max_memory_allocated())
        result["peak_gpu_memory_reserved_with_load_gib"] = _gib(torch.cuda.max_memory_reserved())
        torch.cuda.reset_peak_memory_stats()
    samples_ms: dict[str, list[float]] = {name: [] for name in PHASES}
    totals = []
    for index in range(args.profile_steps):
        events = ([torch.cuda.Event(enable_timing=True) for _ in range(len(PHASES) + 1)] if on_cuda
                  else [_HostMark() for _ in range(len(PHASES) + 1)])
        start = time.perf_counter()
        step(args.warmup + index, events)
        if on_cuda:
            torch.cuda.synchronize()
        for name, (a, b) in zip(PHASES, zip(events[:-1], events[1:])):
            samples_ms[name].append(a.elapsed_time(b))
        totals.append((time.perf_counter() - start) * 1000.0)
    result["phases_ms"] = {name: round(statistics.median(v), 3) for name, v in samples_ms.items() if v}
    result["step_ms"] = round(statistics.median(totals), 3)
    if on_cuda:
        result["peak_gpu_memory_gib"] = _gib(torch.cuda.max_memory_allocated())
        result["peak_gpu_memory_reserved_gib"] = _gib(torch.cuda.max_memory_reserved())
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
        if with_floor:
            result["floor"] = compute_floor(run, views_per_step=run.config.views_per_step)
    return result


def compute_floor(run, views_per_step: int) -> dict:
    """FLOPs of one step's UNet batch and encoder forward + backward, over the measured bf16 matmul throughput."""
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
    with FlopCounterMode(display=False) as counter:
        prior.predict_noise(x_t, t, embeddings, plan=MemoryPlan(cuda_graphs=False))
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


def _rows(report: dict, key: str, label: str) -> list[dict]:
    """Table rows of one memory plan's results (the report itself for ``"default"``, else ``report[key]``)."""
    rows = []
    section = report if key == "default" else report[key]
    if "end_to_end" in section:
        e2e = section["end_to_end"]
        rows.append({"what": f"{label}end to end, {e2e['steps']} steps (process start -> files)",
                     "value": f"{e2e['wall_s']:.1f} s"})
        rows += [{"what": f"{label}  run phase {k}", "value": f"{v:.2f} s"} for k, v in e2e["run_timings_s"].items()]
        for name in ("peak_allocated_gib", "peak_reserved_gib"):
            if name in e2e:
                rows.append({"what": f"{label}  process {name}", "value": str(e2e[name])})
        if "projected_wall_s_1000_steps" in e2e:
            rows.append({"what": f"{label}  projected to 1000 steps (+ steps x step median)",
                         "value": f"{e2e['projected_wall_s_1000_steps']:.1f} s"})
        if "encoder_compile_failed" in e2e:
            rows.append({"what": f"{label}  encoder compile failed", "value": str(e2e["encoder_compile_failed"])})
    step = section["step"]
    rows += [{"what": f"{label}step phase {k}", "value": f"{v:.2f} ms"} for k, v in step["phases_ms"].items()]
    rows.append({"what": f"{label}step (wall, median)", "value": f"{step['step_ms']:.1f} ms"})
    for name in ("host_syncs_per_step", "peak_gpu_memory_gib", "peak_gpu_memory_reserved_gib",
                 "peak_gpu_memory_with_load_gib", "peak_gpu_memory_reserved_with_load_gib", "ratio_to_floor",
                 "first_step_s", "encoder_compilation", "compile_s_estimate"):
        if name in step:
            rows.append({"what": f"{label}{name}", "value": str(step[name])})
    return rows


def compare(default: dict, compiled: dict) -> dict:
    """Per phase of :data:`COMPARED`, the step, peak memory and (when both ran) the end-to-end wall time: the
    default's value, the compiled run's and their ratio (compiled / default; below 1 = the compiled run is faster or
    smaller). Milliseconds for phases and the step, GiB for memory, seconds end to end."""
    pairs = {f"{name}_ms": (default["step"]["phases_ms"].get(name), compiled["step"]["phases_ms"].get(name))
             for name in COMPARED}
    pairs["step_ms"] = (default["step"]["step_ms"], compiled["step"]["step_ms"])
    for name in ("peak_gpu_memory_gib", "peak_gpu_memory_reserved_gib"):
        pairs[name] = (default["step"].get(name), compiled["step"].get(name))
    if "end_to_end" in default and "end_to_end" in compiled:
        pairs["end_to_end_wall_s"] = (default["end_to_end"]["wall_s"], compiled["end_to_end"]["wall_s"])
        for name in ("peak_allocated_gib", "peak_reserved_gib"):
            pairs[f"end_to_end_{name}"] = (default["end_to_end"].get(name), compiled["end_to_end"].get(name))
    return {name: {"default": a, "compiled": b, "ratio": round(b / a, 3) if a and b is not None else None}
            for name, (a, b) in pairs.items() if a is not None or b is not None}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prior", choices=("sd21", "if", "tiny"), default="sd21",
                        help="sd21: SD-2.1-base architecture with random weights; if: DeepFloyd IF-I-XL UNet with "
                             "random weights (T5-XXL-width stand-in text encoder); tiny: the built-in prior")
    parser.add_argument("--toy", action="store_true",
                        help="sd21 / if: toy-size random models of the same layout (a smoke test; numbers meaningless)")
    parser.add_argument("--low-vram", action="store_true",
                        help="also measure everything with --low-vram (report key 'low_vram')")
    parser.add_argument("--keep-all", action="store_true",
                        help="also profile the default path without element-wise recomputation in the VAE encoder "
                             "(report key 'keep_all', step profile only): what the recomputation costs and saves")
    parser.add_argument("--compile-encoder", action="store_true",
                        help="also measure everything with csdtex paint --compile-encoder (the VAE encoder through "
                             "torch.compile; report key 'compiled', with a per-phase comparison to the default)")
    parser.add_argument("--steps", type=int, default=None,
                        help="paint steps of the end-to-end runs [default: the preset's]; below 1000 the report adds "
                             "a projection to 1000 steps")
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument("--texture-size", type=int, default=None)
    parser.add_argument("--renderer", default="auto")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--mesh", type=Path, default=ROOT / "assets/meshes/vase.obj")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML options of every run (csdtex paint --config), e.g. a short preview for a smoke test")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-priors",
                        help="folder of the random-weight prior folders (built once)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    model = prior_model(args)
    name = args.prior + ("-toy" if args.toy and args.prior != "tiny" else "")
    report: dict = {"environment": environment(), "device": args.device, "prior": name}
    wanted = {"default": True, "low_vram": args.low_vram, "keep_all": args.keep_all,
              "compiled": args.compile_encoder}
    plans = [key for key in PLANS if wanted[key]]
    with tempfile.TemporaryDirectory() as work:
        for key in plans:
            low_vram, compile_encoder, plan = PLANS[key]
            section = report if key == "default" else report.setdefault(key, {})
            if not args.skip_end_to_end and plan is None:
                section["end_to_end"] = end_to_end(model, args, Path(work) / f"paint_{key}", low_vram,
                                                   compile_encoder)
            section["step"] = profile_phases(model, args, Path(work) / f"profile_{key}", low_vram, plan,
                                             with_floor=key == "default", compile_encoder=compile_encoder)
    floor = report["step"].get("floor")
    for key in plans:
        section = report if key == "default" else report[key]
        if floor:
            section["step"]["ratio_to_floor"] = round(section["step"]["step_ms"] / floor["floor_ms"], 2)
        e2e = section.get("end_to_end")
        if e2e is not None and e2e["steps"] < 1000:
            e2e["projected_wall_s_1000_steps"] = round(
                e2e["wall_s"] + (1000 - e2e["steps"]) * section["step"]["step_ms"] / 1000.0, 2)
    if "compiled" in plans:
        report["compiled"]["versus_default"] = compare(report, report["compiled"])
        first = (report["compiled"]["step"].get("first_step_s"), report["step"].get("first_step_s"))
        if None not in first:
            report["compiled"]["step"]["compile_s_estimate"] = round(first[0] - first[1], 2)

    rows = []
    for key in plans:
        rows += _rows(report, key, "" if key == "default" else key.replace("_", "-") + ": ")
    if floor:
        rows += [{"what": f"floor {k}", "value": str(v)} for k, v in floor.items()]
    if "compiled" in plans:
        rows += [{"what": f"compiled / default {k}", "value": f"{v['compiled']} / {v['default']} ({v['ratio']}x)"}
                 for k, v in report["compiled"]["versus_default"].items()]
    print(f"\ncsdtex paint speed: prior {name}, device {args.device}")
    print_table(rows, ["what", "value"])
    device_kind = "cuda" if args.device.startswith("cuda") else "cpu"
    out = args.json or ROOT / f"benchmarks/results/speed_{name}_{device_kind}.json"
    write_json(out, report)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
