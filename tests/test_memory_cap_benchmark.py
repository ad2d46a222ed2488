"""benchmarks/memory_cap.py on a machine without a GPU: options, the child script, the clean refusal."""

import pytest
import torch
from benchmark_scripts import load_benchmark


def test_variants_are_checked_and_the_child_script_parses():
    bench = load_benchmark("memory_cap")
    args = bench.parse_args(["--variants", "default,no-graphs,low-vram"])
    assert args.variants == ["default", "no-graphs", "low-vram"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "default,fastest"])
    compile(bench.CAPPED_PAINT, "<capped paint>", "exec")
    assert bench.VARIANTS["no-graphs"] == {"graphs": False}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_without_cuda(tmp_path):
    bench = load_benchmark("memory_cap")
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        bench.main(["--variants", "default", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())
