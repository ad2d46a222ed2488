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

CAPPED_PAINT = r"""
import json, sys, torch
limit_bytes = float(sys.argv[1]) * 2**30
torch.cuda.set_per_process_memory_fraction(limit_bytes / torch.cuda.get_device_properties(0).total_memory)
from csdtex import PaintConfig, paint
config = PaintConfig(model=sys.argv[2], device="cuda", steps=8, views_per_step=4, texture_size=1024,
                     low_vram=sys.argv[3] == "1", preview_frames=2, checkpoint_every=0,
                     compile_encoder=sys.argv[5] == "1")
result = paint("assets/meshes/vase.obj", "a red vase", config, sys.argv[4], show_progress=False)
print(json.dumps({"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
                  "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
                  "obj": str(result.files.obj)}))
"""


def _random_sd21_folder() -> Path:
    cache = Path(tempfile.gettempdir()) / "csdtex-random-priors"  # speed.py's default --cache
    return Path(load_benchmark("speed").prior_model(argparse.Namespace(prior="sd21", toy=False, cache=cache)))


# Measured on one H200 on 2026-12-02 (benchmarks/results/memory_cap_h200.log): the default paint runs out of memory
# under the 7.45 GiB cap although its allocated peak is 6.94 GiB (speed_sd21_memory_h200.json): the caching allocator
# reserves 10.87 GiB (fragmentation). Issue #13's 8 GB target is not met yet; the case stays as the target, expected to
# fail until it is (non-strict: it reports XPASS once it fits).
DEFAULT_PATH_OVER_CAP = pytest.mark.xfail(strict=False, reason="issue #13: default path OOMs under an 8 GB cap "
                                                               "(allocator reserve 10.87 GiB for a 6.94 GiB peak)")


@pytest.mark.gpu
@pytest.mark.parametrize(("low_vram", "limit_gib", "allocator", "compile_encoder"), [
    pytest.param(False, 8 * 10**9 / 2**30, None, False, marks=DEFAULT_PATH_OVER_CAP),
    # segments that grow in place instead of new blocks: measured in session 7, also out of memory (a 256 MiB
    # allocation failed; results/memory_cap_session7_h200.log)
    pytest.param(False, 8 * 10**9 / 2**30, "expandable_segments:True", False,
                 marks=pytest.mark.xfail(strict=False, reason="issue #13: OOM under the 8 GB cap with expandable "
                                                              "segments too (session 7)")),
    # the compiled encoder reserves less (8.66 vs 10.67 GiB uncapped, results/speed_sd21_compile_h200.json), but
    # it too runs out of memory under the cap (an 84 MiB allocation; results/memory_cap_compiled_session7_h200.log)
    pytest.param(False, 8 * 10**9 / 2**30, None, True,
                 marks=pytest.mark.xfail(strict=False, reason="issue #13: OOM under the 8 GB cap with "
                                                              "--compile-encoder too (session 7)")),
    (True, 6 * 10**9 / 2**30, None, False),
])
def test_sd21_paint_fits_the_memory_target_under_a_hard_cap(tmp_path, low_vram, limit_gib, allocator,
                                                            compile_encoder):
    """8 GB (7.45 GiB) for the default path, 6 GB (5.59 GiB) with --low-vram: the paint finishes under the cap and
    writes its mesh; its allocated peak stays below the cap. ``allocator``: the subprocess's
    ``PYTORCH_CUDA_ALLOC_CONF`` (None = unset); ``compile_encoder``: ``--compile-encoder``."""
    folder = _random_sd21_folder()
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_CUDA_ALLOC_CONF"}
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
    assert report["peak_allocated_gib"] <= limit_gib
