#!/usr/bin/env bash
# Issue #13: the VAE encoder through torch.compile (csdtex paint --compile-encoder), eager vs compiled, on one GPU.
# 1. tests/test_compile_encoder.py: the compiled encoder gives the eager latents and input gradient (fp16, tiny
#    random VAE) and its step has no host synchronization (the CPU cases run too; the slow CPU compile is skipped).
# 2. benchmarks/speed.py --prior sd21 --compile-encoder: SD-2.1-base architecture with random fp16 weights, 4 views at
#    512^2, default plan vs the same with the encoder compiled: per-phase step profile (encoder forward / backward,
#    UNet, step), first-step wall time (the compilation), peak allocated / reserved GPU memory, and `csdtex paint`
#    end to end with the compilation counted. The end-to-end runs paint 100 steps, not the preset's 1000, to stay
#    within a few minutes; the report adds a projection to 1000 steps (wall + 900 x the median step).
#    The renderer is the portable torch rasterizer in both runs (no nvdiffrast plugin build).
# inductor's cache starts empty (a fresh TORCHINDUCTOR_CACHE_DIR), so the end-to-end compiled run pays a cold
# compilation, as a user's first run does; the step profile's compiled run then finds those graphs in the cache.
# Usage (repository root as working directory; diffusers, trimesh, click installed, or their wheels in $WHEELS):
#   OUT=/some/folder bash benchmarks/gpu_speed_compile.sh
# Writes to $OUT: gpu.txt (GPU, versions), compile_encoder_tests.log, speed_sd21_compile_cuda.json and .log.
# Expected wall time: about 4-5 minutes (about 35 s of it building the random SD-2.1 folder).
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d -t csdtex-inductor-XXXXXX)
start=$(date +%s)

if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install --no-index --find-links "$WHEELS" "$WHEELS"/*.whl 2>&1 | tail -2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/gpu.txt"
import sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
for name in ("diffusers", "trimesh", "click", "triton"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError as error:  # without triton inductor cannot compile for CUDA: the run shows the eager fallback
        print(f"{'absent' if name == 'triton' else 'MISSING'} {name}: {error}")
PY
if grep -q "^MISSING" "$OUT/gpu.txt"; then
  echo "missing packages (see $OUT/gpu.txt); install them or set WHEELS to a folder of wheels" >&2
  exit 2
fi

echo "== tests/test_compile_encoder.py ($(($(date +%s) - start)) s)"
timeout 180 python3 -m pytest -q -s -rs tests/test_compile_encoder.py 2>&1 | tee "$OUT/compile_encoder_tests.log" \
  | tail -15

echo "== benchmarks/speed.py eager vs compiled encoder ($(($(date +%s) - start)) s)"
timeout 420 python3 benchmarks/speed.py --device cuda --prior sd21 --compile-encoder --steps 100 --renderer torch \
  --warmup 3 --profile-steps 15 --json "$OUT/speed_sd21_compile_cuda.json" 2>&1 \
  | tee "$OUT/speed_sd21_compile_cuda.log" | tail -70

rm -rf "$TORCHINDUCTOR_CACHE_DIR"
echo "== done in $(($(date +%s) - start)) s; outputs in $OUT"
