#!/usr/bin/env bash
# Everything csdtex checks on a CUDA machine, in one go: GPU tests and the paint speed / memory benchmark (SD-2.1-base
# architecture and the DeepFloyd IF-I-XL UNet with random weights, each also with --low-vram; the built-in prior).
# The render/bake benchmarks run with --render.
# Usage: bash benchmarks/gpu_suite.sh OUTPUT_DIR [--render]   (wheels for missing packages pre-installed)
set -uo pipefail
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)" | tee -a "$out/gpu.txt"
# Build nvdiffrast's plugin once (about a minute) so that its time does not land inside a test or benchmark.
timeout 200 python3 - <<'PY' 2>&1 | tail -3 | tee "$out/nvdiffrast_build.txt"
import time
start = time.time()
from csdtex.render.nvdiffrast_raster import _context
_context(0)
print(f"nvdiffrast ready in {time.time() - start:.1f} s")
PY
timeout 300 python3 -m pytest -q -s -m gpu tests 2>&1 | tee "$out/gpu_tests.log" | tail -30
timeout 900 python3 benchmarks/speed.py --device cuda --prior sd21 --low-vram --keep-all \
  --json "$out/speed_sd21_cuda.json" 2>&1 | tee "$out/speed_sd21_cuda.log" | tail -80
timeout 1200 python3 benchmarks/speed.py --device cuda --prior if --low-vram --json "$out/speed_if_cuda.json" 2>&1 \
  | tee "$out/speed_if_cuda.log" | tail -60
timeout 120 python3 benchmarks/speed.py --device cuda --prior tiny --json "$out/speed_tiny_cuda.json" 2>&1 \
  | tee "$out/speed_tiny_cuda.log" | tail -32
if [ "${2:-}" = "--render" ]; then
  python3 benchmarks/field.py --device cuda --compile --json "$out/field_cuda.json" 2>&1 | tee "$out/field_cuda.log" | tail -12
  python3 benchmarks/render.py --devices cuda --json "$out/render_cuda.json" 2>&1 | tee "$out/render_cuda.log" | tail -60
fi
