"""benchmarks/memory_format.py: a CPU smoke run with the toy-size random SD-layout prior (structure only: the numbers
mean nothing) and the kernel-kind classifier of its ``--kernels`` table."""

from __future__ import annotations

import json

from benchmark_scripts import load_benchmark


def test_memory_format_smoke_compares_every_layout_with_the_reference(tmp_path):
    memory_format = load_benchmark("memory_format")
    payload = memory_format.main(["--device", "cpu", "--toy", "--repeats", "1", "--warmup", "1", "--views", "2",
                                  "--cache", str(tmp_path / "priors"), "--name", str(tmp_path / "smoke")])
    rows = payload["rows"]
    encoder = [row for row in rows if row["network"].startswith("VAE encoder")]
    assert {(row["plan"], row["layout"]) for row in encoder} == {
        (plan, layout) for plan in ("recompute (default)", "keep all") for layout in ("nchw", "input-nhwc", "nhwc")}
    # the default path hands the encoder contiguous input: the renders' own strides give the very same values
    for row in encoder:
        if row["layout"] in ("nchw", "input-nhwc"):
            assert float(row["rel_diff_out"]) < 1e-6 and float(row["rel_diff_grad"]) < 1e-5, row
    assert all(row["ms"] > 0 for row in rows) and payload["encoder_kernels"] is None  # --kernels is CUDA-only
    assert json.loads((tmp_path / "smoke.json").read_text())["rows"] == rows


def test_kernel_kinds():
    kind = load_benchmark("memory_format").kernel_kind
    assert kind("sm90_xmma_dgrad_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc") == "convolution / matmul"
    assert kind("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<c10::Half>") == "normalization"
    assert kind("void at::native::vectorized_elementwise_kernel<8, at::native::silu_kernel>") == "element-wise"
    assert kind("fmha_cutlassB_f16_aligned_128x64_k65536_sm80") == "attention"
    assert kind("void at::native::reduce_kernel<512, 1>") == "reduction" and kind("void foo_kernel()") == "other"
