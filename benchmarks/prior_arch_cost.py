"""CPU cost of built-in prior architectures: seconds per paint step for random-weight priors of each candidate
``TinyPriorConfig`` (``train_prior.py --arch`` changes), so that an architecture for the next prior can be chosen
knowing what it does to the README's CPU command (at most 60 s on 2 cores, issue #15).

Each variant is built with random weights (``csdtex.tinyprior.model.build_tiny_prior``, data version 2's vocabulary),
saved as a diffusers folder and loaded by :func:`csdtex.paint` exactly like the shipped prior; the vase is painted
``--steps`` steps (``--texture-size`` texels, 2 preview frames) per repetition, variants interleaved so that a busy
machine slows them alike; the best repetition counts. Weights do not change the cost, so no training is needed.

Example (2-core CPU, about 4 minutes)::

    python benchmarks/prior_arch_cost.py --out benchmarks/results --name prior_arch_cost_cpu
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "xattn16": ["cross_attention_levels=2,3"],
    "xattn16+text4": ["cross_attention_levels=2,3", "text_layers=4"],
    "wide": ["block_out_channels=16,48,96,160"],
}
"""Candidate architectures, as ``train_prior.py --arch`` changes of the default ``TinyPriorConfig``."""


def main(argv: Sequence[str] | None = None) -> dict:
    import csdtex
    from csdtex.config import PaintConfig
    from csdtex.tinyprior import model as tiny_model
    from csdtex.tinyprior.vocabulary import vocabulary_for
    from common import write_json
    from train_prior import architecture

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--texture-size", type=int, default=128)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="prior_arch_cost_cpu")
    args = p.parse_args(argv)
    start = time.perf_counter()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="csdtex_arch_") as work:
        for name, changes in VARIANTS.items():
            components = tiny_model.build_tiny_prior(f"{work}/{name}", seed=0, config=architecture(changes),
                                                     words=vocabulary_for(2))
            parameters = sum(q.numel() for m in (components.unet, components.text_encoder) for q in m.parameters())
            rows[name] = {"arch": changes, "parameters": parameters, "seconds_per_step": []}
        for repeat in range(args.repeats):
            for name, row in rows.items():
                config = PaintConfig(model=f"{work}/{name}", steps=args.steps, texture_size=args.texture_size,
                                     preview_frames=2, preview_size=32, seed=0, checkpoint_every=0)
                result = csdtex.paint(ROOT / "assets" / "meshes" / "vase.obj", "a red object", config,
                                      out_dir=f"{work}/out_{name}_{repeat}", show_progress=False)
                row["seconds_per_step"].append(round(result.timings["optimize"] / args.steps, 4))
    base = min(rows["default"]["seconds_per_step"])
    print(f"{'variant':<16} {'parameters':>10} {'s/step':>8} {'vs default':>10}")
    for name, row in rows.items():
        row["best_seconds_per_step"] = min(row["seconds_per_step"])
        row["ratio_to_default"] = round(row["best_seconds_per_step"] / base, 3)
        print(f"{name:<16} {row['parameters'] / 1e6:>9.2f}M {row['best_seconds_per_step']:>8.4f} "
              f"{row['ratio_to_default']:>10.2f}")
    record = {"command": "python benchmarks/prior_arch_cost.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
              "steps": args.steps, "repeats": args.repeats, "texture_size": args.texture_size,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "variants": rows,
              "seconds": round(time.perf_counter() - start, 1)}
    path = write_json(Path(args.out) / f"{args.name}.json", record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
