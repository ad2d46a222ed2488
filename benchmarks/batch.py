"""`csdtex batch` throughput on local CPU workers, and what reusing a worker saves per asset.

    python benchmarks/batch.py                      # 1, 2 and 4 workers, 4 assets each, built-in prior
    python benchmarks/batch.py --workers 1 2 --assets 8 --steps 40

For each worker count, one batch of the same assets (the shipped vase, duck, crate and knot meshes, cycled, with
colour prompts the built-in prior knows) runs from scratch with the built-in prior at reduced settings (default:
20 steps instead of 200, 1 view per step instead of 4, 128^2 texture, 8 preview frames at 96 px), so that per-asset
overheads weigh as they do in a batch of short runs. Reported: assets per hour over the whole
batch (wall time including the workers' start), and in steady state (first asset started to last asset finished).

The overhead that worker reuse saves is measured separately, as a fresh ``spawn`` worker would pay it for every
asset without reuse: process start (interpreter + spawn bootstrap), imports (torch, diffusers, transformers,
csdtex) and loading the prior, median of three fresh processes. Prints a table and writes JSON
(``benchmarks/results/batch_cpu_<N>core.json``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = ["vase", "duck", "crate", "knot"]
PROMPTS = ["a red object", "a blue and white checkered object", "a green object with yellow dots",
           "a purple and orange striped object", "a cyan object", "a pink and black gradient object"]


def _probe(conn, started: float) -> None:
    """Body of a fresh worker process: timestamps after entering, after the imports, after loading the prior."""
    entered = time.time()
    import csdtex.painting  # noqa: F401 - what a worker imports before its first asset
    from csdtex.guidance import load_prior
    from csdtex.guidance.priors import asset_roots  # noqa: F401
    import diffusers  # noqa: F401
    import transformers  # noqa: F401

    imported = time.time()
    load_prior("tiny", "cpu")
    conn.send({"process_start_s": entered - started, "imports_s": imported - entered,
               "prior_load_s": time.time() - imported})


def worker_overhead(repeats: int = 3) -> dict:
    """Median seconds of process start, imports and prior load of a fresh spawn process (``repeats`` processes)."""
    context = multiprocessing.get_context("spawn")
    samples = []
    for _ in range(repeats):
        parent, child = context.Pipe()
        started = time.time()
        process = context.Process(target=_probe, args=(child, started))
        process.start()
        samples.append(parent.recv())
        process.join()
    result = {key: round(statistics.median(s[key] for s in samples), 2) for key in samples[0]}
    result["total_s"] = round(sum(result.values()), 2)
    return result  # what a process per asset would pay for every asset; a reused worker pays it once


def run_once(workers: int, assets: int, settings: dict, folder: Path) -> dict:
    """One batch from scratch on ``workers`` CPU worker processes; its timings."""
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

    out = folder / f"out_{workers}"
    start = time.perf_counter()
    outcome = run_batch(load_manifest(manifest, config=PaintConfig(device="cpu", **settings), roots=[ROOT]),
                        BatchOptions(out_dir=out, workers=workers, device="cpu", show_progress=False),
                        observer=observe)
    wall = time.perf_counter() - start
    if outcome.counts.get("done") != assets:
        raise SystemExit(f"batch with {workers} workers did not finish every asset: {outcome.counts}")
    steady = max(last_end) - min(first_start)
    return {
        "workers": workers, "assets": assets, "wall_s": round(wall, 1),
        "assets_per_hour": round(3600 * assets / wall),
        "steady_state_s": round(steady, 1), "steady_assets_per_hour": round(3600 * assets / steady),
        "mean_asset_s": round(statistics.mean(seconds), 2),
        "torch_threads_per_worker": max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                            else os.cpu_count() or 1) // workers),
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
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import environment, print_table, write_json

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = {"steps": args.steps, "views_per_step": args.views_per_step, "texture_size": args.texture_size,
                "preview_frames": args.preview_frames, "preview_size": args.preview_size}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    overhead = worker_overhead()
    rows = []
    with tempfile.TemporaryDirectory(prefix="csdtex-bench-batch-") as tmp:
        for workers in args.workers:
            rows.append(run_once(workers, args.assets, settings, Path(tmp)))
            print(f"{workers} worker(s): {rows[-1]['assets_per_hour']} assets/h", flush=True)
    best = min(row["mean_asset_s"] for row in rows)
    overhead["share_of_fastest_mean_asset"] = round(overhead["total_s"] / best, 2)

    print(f"\nbuilt-in prior, CPU ({cores} cores), settings: {settings}")
    print_table(rows, ["workers", "assets", "wall_s", "assets_per_hour", "steady_state_s", "steady_assets_per_hour",
                       "mean_asset_s", "torch_threads_per_worker"])
    print(f"\nper-asset overhead a reused worker saves: {overhead}")
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    payload = {"machine": f"CPU, {cores} cores", "environment": environment(), "prior": "tiny (built-in)",
               "settings": settings, "rows": rows, "worker_overhead": overhead,
               "load_average_before": load_before, "load_average_after": load_after}
    path = args.json or ROOT / "benchmarks" / "results" / f"batch_cpu_{cores}core.json"
    print(f"wrote {write_json(path, payload)}")


if __name__ == "__main__":
    main()
