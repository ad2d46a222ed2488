"""The issue's memory targets as a test on the GPU machine: a default SD-2.1-base paint runs inside 8 GB of GPU memory
and a ``--low-vram`` one inside 6 GB, with the process's allocator capped at that size
(``torch.cuda.set_per_process_memory_fraction``), so fragmentation and the caching allocator's own slack count too.

Each paint runs in its own process (the cap is process-wide state). The prior is the real SD-2.1-base architecture
with random weights (the compute and memory of the real model), built once by ``benchmarks/speed.py``'s
:func:`prior_model` into its cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from csdtex.entry import ALLOCATOR_SETTINGS, ALLOCATOR_VARIABLES

CAPPED_PAINT = r"""
import json, sys, torch
limit_bytes = float(sys.argv[1]) * 2**30
torch.cuda.set_per_process_memory_fraction(limit_bytes / torch.cuda.get_device_properties(0).total_memory)
from csdtex import PaintConfig, paint
config = PaintConfig(model=sys.argv[2], device="cuda", steps=8, views_per_step=4, texture_size=1024,
                     low_vram=sys.argv[3] == "1", preview_frames=2, checkpoint_every=0,
                     compile_encoder=sys.argv[5] == "1")
result = paint("assets/meshes/vase.obj", "a red vase", config, sys.argv[4], show_progress=False)
from csdtex.devices import gpu_memory_budget_gib
print(json.dumps({"budget_gib": gpu_memory_budget_gib(torch.device("cuda")),
                  "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
                  "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
                  "obj": str(result.files.obj)}))
"""


def _random_sd21_folder() -> Path:
    cache = Path(tempfile.gettempdir()) / "csdtex-random-priors"  # speed.py's default --cache
    return Path(load_benchmark("speed").prior_model(argparse.Namespace(prior="sd21", toy=False, cache=cache)))


# The default path as the ``csdtex`` command runs it: its allocator settings (expandable segments, set by the console
# script before torch starts) and the plan the 7.45 GiB budget selects (SMALL_GPU_PLAN: no CUDA graphs, whose private
# pool of 0.9 GiB stays reserved). Session 8's diagnosis (benchmarks/memory_cap.py,
# results/memory_cap_variants_h200.json): with graphs OOM (0.9 GiB private pool), without graphs but with the default
# allocator OOM (a 256 MiB allocation), without graphs and with expandable segments finished (7.30 GiB allocated).
@pytest.mark.gpu
@pytest.mark.parametrize(("low_vram", "limit_gib", "allocator", "compile_encoder"), [
    pytest.param(False, 8 * 10**9 / 2**30, ALLOCATOR_SETTINGS, False, id="default-command-line"),
    # the Python API in a process whose allocator nobody configured: the same plan, fixed-size segments
    pytest.param(False, 8 * 10**9 / 2**30, None, False, id="default-api-unset-allocator",
                 marks=pytest.mark.xfail(strict=False, reason="issue #13: without expandable segments the "
                                                              "no-graphs plan ran out of memory under 8 GB in "
                                                              "session 8 and passed in session 9 with 7.445 of "
                                                              "7.451 GiB reserved: no headroom")),
    # --compile-encoder under the command line's settings (no graphs at this budget, expandable segments): OOM in
    # session 7 with graphs; passed in session 10 (peak allocated 7.14 GiB, reserved 7.28 of 7.45 GiB;
    # benchmarks/results/memory_cap_compiled_session10_h200.log)
    pytest.param(False, 8 * 10**9 / 2**30, ALLOCATOR_SETTINGS, True, id="compiled-command-line"),
    pytest.param(True, 6 * 10**9 / 2**30, None, False, id="low-vram"),
])
def test_sd21_paint_fits_the_memory_target_under_a_hard_cap(tmp_path, low_vram, limit_gib, allocator,
                                                            compile_encoder):
    """8 GB (7.45 GiB) for the default path, 6 GB (5.59 GiB) with --low-vram: the paint finishes under the cap and
    writes its mesh; its allocated peak stays below the cap. ``allocator``: the subprocess's
    ``PYTORCH_CUDA_ALLOC_CONF`` (None = unset); ``compile_encoder``: ``--compile-encoder``."""
    folder = _random_sd21_folder()
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    if allocator is not None:
        env["PYTORCH_CUDA_ALLOC_CONF"] = allocator
    done = subprocess.run(
        [sys.executable, "-c", CAPPED_PAINT, f"{limit_gib:.4f}", str(folder), "1" if low_vram else "0",
         str(tmp_path / "out"), "1" if compile_encoder else "0"],
        cwd=root, capture_output=True, text=True, timeout=540, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"low_vram={low_vram} cap {limit_gib:.2f} GiB: {report}")
    assert Path(report["obj"]).exists()
    assert report["budget_gib"] == pytest.approx(limit_gib, rel=1e-3)  # the budget memory_plan chose from
    assert report["peak_allocated_gib"] <= limit_gib
