"""Where does a paint step wait for the GPU? Lists the Python call sites of host synchronizations in a few steps.

    python benchmarks/sync_sources.py --renderer torch [--model tiny] [--steps 3]

Runs warm-up steps, then ``--steps`` optimization steps under ``torch.cuda.set_sync_debug_mode("warn")`` and
records the innermost csdtex (or diffusers) frame of every synchronizing call; prints a count per call site and per
step. Needs CUDA.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csdtex.config import PaintConfig  # noqa: E402
from csdtex.painting import seeded_field  # noqa: E402
from csdtex.pipeline import optimize as optimize_module  # noqa: E402
from csdtex.pipeline.objectives import ScoreObjective  # noqa: E402
from csdtex.pipeline.prepare import prepare_run  # noqa: E402


def call_site() -> str:
    frames = [f for f in traceback.extract_stack()[:-2] if "/warnings.py" not in f.filename]
    interesting = [f for f in frames if "csdtex" in f.filename or "diffusers" in f.filename or "torch/optim" in f.filename]
    frame = (interesting or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--renderer", default="torch")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mesh", type=Path, default=ROOT / "assets/meshes/vase.obj")
    args = parser.parse_args()
    config = PaintConfig(model=args.model, device="cuda", renderer=args.renderer, checkpoint_every=0,
                         metrics_every=1000)
    with tempfile.TemporaryDirectory() as work:
        run = prepare_run(args.mesh, "a red object", config, work)
    model = seeded_field(run.config.field, 0, run.device)
    objective = ScoreObjective(run.prior, run.guidance, run.embeddings, run.plan)
    optimizer = optimize_module.make_optimizer(model, run.config.learning_rate)
    generator = torch.Generator().manual_seed(0)

    def step(index: int) -> None:
        views = optimize_module.sample_step_views(run, generator)
        loss, _ = optimize_module.training_step(run, model, objective, views, (index % 10) / 9, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for index in range(3):
        step(index)
    torch.cuda.synchronize()
    sites: collections.Counter = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            sites[call_site()] += 1

    warnings.showwarning = record
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            for index in range(args.steps):
                step(3 + index)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = original
    total = sum(sites.values())
    print(f"{args.model}, renderer {run.backend}: {total / args.steps:.1f} host synchronizations per step")
    for site, count in sites.most_common():
        print(f"{count / args.steps:6.1f} per step  {site}")


if __name__ == "__main__":
    main()
