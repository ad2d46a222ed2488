"""`csdtex batch` throughput on local workers or Ray, on CPU or GPU, and what reusing a worker saves per asset.

    python benchmarks/batch.py                      # 1, 2 and 4 CPU workers, 4 assets each, built-in prior
    python benchmarks/batch.py --workers 1 2 --assets 8 --steps 40
    # GPUs: one worker per GPU, local workers and Ray, SD-2.1-base architecture with random weights (fp16)
    python benchmarks/batch.py --device cuda --model sd21-random --workers 1 --backends local ray --assets 16 \
        --steps 200 --views-per-step 4 --texture-size 1024

For each worker count, one batch of the same assets (the shipped vase, duck, crate and knot meshes, cycled, with
colour prompts the built-in prior knows) runs from scratch with the built-in prior at reduced settings (default:
20 steps instead of 200, 1 view per step instead of 4, 128^2 texture, 8 preview frames at 96 px), so that per-asset
overheads weigh as they do in a batch of short runs. Reported: assets per hour over the whole
batch (wall time including the workers' start), and in steady state (first asset started to last asset finished).

``--device cuda`` runs the same on GPUs (one worker per GPU: ``--workers N`` uses GPUs 0..N-1) and samples GPU
utilisation with ``nvidia-smi`` every 0.5 s during each batch (mean over the batch's GPUs and samples). ``--model``
is ``tiny`` (the built-in prior), ``sd21-random`` (the SD-2.1-base architecture with random weights, fp16, built once
into ``--cache``, as ``benchmarks/speed.py`` does) or a prior folder. ``--backends local ray`` runs every worker
count on both backends (Ray: a local ``ray.init`` with the machine's CPUs and GPUs).

The overhead that worker reuse saves is measured separately, as a fresh ``spawn`` worker would pay it for every
asset without reuse: process start (interpreter + spawn bootstrap), imports (torch, diffusers, transformers,
csdtex) and loading the prior, median of three fresh processes. Prints a table and writes JSON
(``benchmarks/results/batch_cpu_<N>core.json`` on CPU, ``batch_<model>_<N>gpu.json`` on GPUs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = ["vase", "duck", "crate", "knot"]
PROMPTS = ["a red object", "a blue and white checkered object", "a green object with yellow dots",
           "a purple and orange striped object", "a cyan object", "a pink and black gradient object"]


def _probe(conn, started: float, model: str, device: str) -> None:
    """Body of a fresh worker process: timestamps after entering, after the imports, after loading the prior."""
    entered = time.time()
    import csdtex.painting  # noqa: F401 - what a worker imports before its first asset
    from csdtex.guidance import load_prior
    import diffusers  # noqa: F401
    import transformers  # noqa: F401

    imported = time.time()
    load_prior(model, device)
    conn.send({"process_start_s": entered - started, "imports_s": imported - entered,
               "prior_load_s": time.time() - imported})


def worker_overhead(model: str, device: str, repeats: int = 3) -> dict:
    """Median seconds of process start, imports and loading ``model`` on ``device`` of a fresh spawn process
    (``repeats`` processes)."""
    context = multiprocessing.get_context("spawn")
    samples = []
    for _ in range(repeats):
        parent, child = context.Pipe()
        started = time.time()
        process = context.Process(target=_probe, args=(child, started, model, device))
        process.start()
        samples.append(parent.recv())
        process.join()
    result = {key: round(statistics.median(s[key] for s in samples), 2) for key in samples[0]}
    result["total_s"] = round(sum(result.values()), 2)
    return result  # what a process per asset would pay for every asset; a reused worker pays it once


class GpuUtilisation:
    """Samples ``nvidia-smi`` GPU utilisation (percent) of GPUs ``0..count-1`` every ``interval_s`` in a thread, from
    :meth:`start` to :meth:`stop` (which returns the mean over GPUs and samples, or None without nvidia-smi)."""

    def __init__(self, count: int, interval_s: float = 0.5) -> None:
        self.count, self.interval_s = count, interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                text = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=5, check=True).stdout
            except (OSError, subprocess.SubprocessError):
                return
            values = [float(v) for v in text.split()[: self.count] if v.strip()]
            if values:
                self.samples.append(statistics.mean(values))
            self._stop.wait(self.interval_s)

    def start(self) -> "GpuUtilisation":
        self._thread.start()
        return self

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return round(statistics.mean(self.samples), 1) if self.samples else None


def run_once(workers: int, assets: int, settings: dict, folder: Path, device: str = "cpu",
             backend: str = "local") -> dict:
    """One batch from scratch on ``workers`` worker processes (``backend`` ``local`` or ``ray``) on ``device``
    (``cpu`` or ``cuda``); its timings (and mean GPU utilisation on CUDA)."""
    from csdtex.batch import BatchOptions, load_manifest, run_batch
    from csdtex.batch.tasks import Finished, Started
    from csdtex.config import PaintConfig

    manifest = folder / "bench.csv"
    lines = ["mesh,prompt,out"] + [f"{ROOT / 'assets/meshes' / (MESHES[i % len(MESHES)] + '.obj')},"
                                   f"{PROMPTS[i % len(PROMPTS)]},asset{i:02d}" for i in range(assets)]
    manifest.write_text("\n".join(lines) + "\n")
    first_start, last_end, seconds = [], [], []

    def observe(event, backend) -> None:
        if isinstance(event, Started):
            first_start.append(time.perf_counter())
        elif isinstance(event, Finished):
            last_end.append(time.perf_counter())
            seconds.append(event.result.seconds)

    out = folder / f"out_{backend}_{workers}"
    sampler = GpuUtilisation(workers).start() if device == "cuda" else None
    start = time.perf_counter()
    outcome = run_batch(load_manifest(manifest, config=PaintConfig(device=device, **settings), roots=[ROOT]),
                        BatchOptions(out_dir=out, workers=workers, device=device, show_progress=False,
                                     ray=backend == "ray"),
                        observer=observe)
    wall = time.perf_counter() - start
    utilisation = sampler.stop() if sampler else None
    if outcome.counts.get("done") != assets:
        raise SystemExit(f"batch with {workers} workers did not finish every asset: {outcome.counts}")
    steady = max(last_end) - min(first_start)
    return {
        "backend": backend, "device": device, "workers": workers, "assets": assets, "wall_s": round(wall, 1),
        "assets_per_hour": round(3600 * assets / wall),
        "steady_state_s": round(steady, 1), "steady_assets_per_hour": round(3600 * assets / steady),
        "mean_asset_s": round(statistics.mean(seconds), 2),
        "torch_threads_per_worker": max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                            else os.cpu_count() or 1) // workers),
        "gpu_utilisation_pct": utilisation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--views-per-step", type=int, default=1)
    parser.add_argument("--texture-size", type=int, default=128)
    parser.add_argument("--preview-frames", type=int, default=8)
    parser.add_argument("--preview-size", type=int, default=96)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", default="tiny",
                        help="tiny (built-in prior), sd21-random (SD-2.1-base architecture, random fp16 weights) or a "
                             "prior folder")
    parser.add_argument("--backends", nargs="+", choices=("local", "ray"), default=["local"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-sd21-base")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = args.model
    if model == "sd21-random":
        import torch

        from csdtex.guidance.random_priors import build_random_sd21_base_folder

        if not (args.cache / "model_index.json").exists():
            build_random_sd21_base_folder(args.cache, dtype=torch.float16)
        model = str(args.cache)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import environment, print_table, write_json

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = {"model": model, "steps": args.steps, "views_per_step": args.views_per_step,
                "texture_size": args.texture_size, "preview_frames": args.preview_frames,
                "preview_size": args.preview_size}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    overhead = worker_overhead(model, args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="csdtex-bench-batch-") as tmp:
        for backend in args.backends:
            for workers in args.workers:
                rows.append(run_once(workers, args.assets, settings, Path(tmp), args.device, backend))
                print(f"{backend}, {workers} worker(s): {rows[-1]['assets_per_hour']} assets/h", flush=True)
    for row in rows:  # throughput on N workers / (N x throughput on 1 worker of the same backend)
        single = next((r for r in rows if r["backend"] == row["backend"] and r["workers"] == 1), None)
        row["scaling_efficiency"] = (round(row["assets_per_hour"] / (row["workers"] * single["assets_per_hour"]), 3)
                                     if single else None)
    best = min(row["mean_asset_s"] for row in rows)
    overhead["share_of_fastest_mean_asset"] = round(overhead["total_s"] / best, 2)

    gpus = None
    if args.device == "cuda":
        import torch

        gpus = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    machine = f"CPU, {cores} cores" + (f"; GPUs: {gpus}" if gpus else "")
    print(f"\n{args.model} prior on {args.device} ({machine}), settings: {settings}")
    print_table(rows, ["backend", "workers", "assets", "wall_s", "assets_per_hour", "steady_state_s",
                       "steady_assets_per_hour", "mean_asset_s", "scaling_efficiency", "gpu_utilisation_pct",
                       "torch_threads_per_worker"])
    print(f"\nper-asset overhead a reused worker saves: {overhead}")
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    payload = {"machine": machine, "environment": environment(), "prior": args.model, "device": args.device,
               "command": "python benchmarks/batch.py " + " ".join(sys.argv[1:]),
               "settings": settings, "rows": rows, "worker_overhead": overhead,
               "load_average_before": load_before, "load_average_after": load_after}
    default_name = (f"batch_cpu_{cores}core.json" if args.device == "cpu"
                    else f"batch_{args.model}_{max(args.workers)}gpu.json")
    path = args.json or ROOT / "benchmarks" / "results" / default_name
    print(f"wrote {write_json(path, payload)}")


if __name__ == "__main__":
    main()
