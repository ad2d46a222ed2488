"""Where does the memory of a capped SD-2.1 paint go? A diagnostic for issue #13's 8 GB target (GPU).

``tests/test_memory_cap.py`` shows the default SD-2.1-base paint running out of memory under an 8 GB cap
(``torch.cuda.set_per_process_memory_fraction``) although its uncapped allocated peak is 6.94 GiB, and neither
expandable segments nor the compiled encoder rescue it. This script runs the same 8-step paint (vase, 4 views,
1024^2 texture, random SD-2.1-base weights) in one fresh process per variant, each under the cap, and reports for
each: whether it finished, the allocated and reserved peaks, and at the end (or at the out-of-memory error) the
allocator's state: reserved bytes, inactive split bytes (free space stranded inside segments: fragmentation), the
bytes in private pools (the UNet's CUDA graphs keep theirs for the whole run) and the number of retries / OOMs.

Variants (``--variants``, comma-separated):

- ``default``: ``csdtex paint``'s default plan. Since session 8 that is chosen by the GPU's memory budget
  (:func:`csdtex.guidance.priors.memory_plan`): under a cap below 12 GiB it already runs without CUDA graphs, so
  ``default`` = ``no-graphs`` and ``expandable`` = what the ``csdtex`` command runs (it sets expandable segments).
  ``results/memory_cap_variants_h200.json`` was measured before that change (``default`` with graphs).
- ``no-graphs``: the same without CUDA graphs for the UNet (``prior.use_cuda_graphs = False``), i.e. no private pool.
- ``expandable``: default with ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True``.
- ``no-graphs-expandable``: both.
- ``compiled``: ``--compile-encoder``.
- ``low-vram``: ``--low-vram`` (under ``--low-vram-cap-gb``, default 6).

Example (one GPU, about 2 minutes per variant with the random folder built)::

    python benchmarks/memory_cap.py --variants default,no-graphs,no-graphs-expandable --name memory_cap_h200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from csdtex.entry import ALLOCATOR_SETTINGS, ALLOCATOR_VARIABLES  # noqa: E402  (the command line's settings)

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-graphs": {"graphs": False},
    "expandable": {"allocator": ALLOCATOR_SETTINGS},
    "no-graphs-expandable": {"graphs": False, "allocator": ALLOCATOR_SETTINGS},
    "compiled": {"compile_encoder": True},
    "low-vram": {"low_vram": True},
}
"""Variant name -> settings of the capped paint (see the module docstring)."""

CAPPED_PAINT = r"""
import json, sys, torch
settings = json.loads(sys.argv[1])
total = torch.cuda.get_device_properties(0).total_memory
torch.cuda.set_per_process_memory_fraction(settings["cap_gib"] * 2**30 / total)
from csdtex import PaintConfig, paint
from csdtex.errors import GpuOutOfMemoryError
from csdtex.guidance import load_prior

def allocator_state():
    stats = torch.cuda.memory_stats()
    segments = torch.cuda.memory_snapshot()
    private = sum(s["total_size"] for s in segments if tuple(s.get("segment_pool_id", (0, 0))) != (0, 0))
    gib = lambda v: round(v / 2**30, 3)
    return {"allocated_gib": gib(stats.get("allocated_bytes.all.current", 0)),
            "peak_allocated_gib": gib(stats.get("allocated_bytes.all.peak", 0)),
            "reserved_gib": gib(stats.get("reserved_bytes.all.current", 0)),
            "peak_reserved_gib": gib(stats.get("reserved_bytes.all.peak", 0)),
            "inactive_split_gib": gib(stats.get("inactive_split_bytes.all.current", 0)),
            "private_pool_gib": gib(private),
            "alloc_retries": int(stats.get("num_alloc_retries", 0)), "ooms": int(stats.get("num_ooms", 0))}

low_vram = settings.get("low_vram", False)
prior = load_prior(settings["model"], device="cuda", low_vram=low_vram)
if settings.get("graphs", True) is False:
    prior.use_cuda_graphs = False
config = PaintConfig(model=settings["model"], device="cuda", steps=8, views_per_step=4, texture_size=1024,
                     low_vram=low_vram, preview_frames=2, checkpoint_every=0,
                     compile_encoder=settings.get("compile_encoder", False))
report = {"finished": False}
try:
    paint("assets/meshes/vase.obj", "a red vase", config, settings["out"], show_progress=False, prior=prior)
    report["finished"] = True
except GpuOutOfMemoryError as error:
    report["error"] = str(error)
report.update(allocator_state())
print("MEMORY_CAP_REPORT " + json.dumps(report))
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="default,no-graphs,no-graphs-expandable",
                   help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--cap-gb", type=float, default=8.0, help="cap in GB (10^9 bytes) for every variant but low-vram")
    p.add_argument("--low-vram-cap-gb", type=float, default=6.0, help="cap in GB for the low-vram variant")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-priors",
                   help="folder of the random-weight SD-2.1 prior (speed.py's --cache)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per variant")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="memory_cap")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        p.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    return args


def run_variant(name: str, model: str, cap_gib: float, timeout: float, work: Path) -> dict[str, Any]:
    """One capped paint in a fresh process; its report (``finished``, peaks, allocator state) plus the variant's
    settings, the cap and the wall time."""
    settings = {**VARIANTS[name], "model": model, "cap_gib": cap_gib, "out": str(work / name)}
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    if settings.get("allocator"):
        env["PYTORCH_CUDA_ALLOC_CONF"] = settings["allocator"]
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", CAPPED_PAINT, json.dumps(settings)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"variant": name, "cap_gib": round(cap_gib, 3), "finished": False, "error": f"timeout {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("MEMORY_CAP_REPORT ")]
    report = json.loads(lines[-1].split(" ", 1)[1]) if lines else {"finished": False,
                                                                  "error": done.stderr.strip()[-600:]}
    return {"variant": name, "cap_gib": round(cap_gib, 3), **settings, **report,
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    from common import write_json

    if not torch.cuda.is_available():
        raise SystemExit("memory_cap.py needs a CUDA GPU (the cap is on GPU memory)")
    speed = __import__("speed")
    model = speed.prior_model(argparse.Namespace(prior="sd21", toy=False, cache=args.cache))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.variants:
            cap = (args.low_vram_cap_gb if name == "low-vram" else args.cap_gb) * 1e9 / 2**30
            row = run_variant(name, model, cap, args.timeout, Path(work))
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = ("variant", "finished", "peak_allocated_gib", "peak_reserved_gib", "reserved_gib", "inactive_split_gib",
              "private_pool_gib", "alloc_retries")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row.get(k, "-")) for k in header))
    record = {"command": "python benchmarks/memory_cap.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}
    write_json(Path(args.out) / f"{args.name}.json", record)
    return record


if __name__ == "__main__":
    main()
