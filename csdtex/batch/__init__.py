"""``csdtex batch``: paint (or edit) many assets from a manifest, with worker processes or Ray.

Modules (one role each):

- :mod:`csdtex.batch.manifest`: CSV / JSONL manifests and folders of meshes -> validated rows with safe, unique
  output names.
- :mod:`csdtex.batch.tasks`: what a worker does with one row (one function per task: paint, edit) and the messages
  between workers and the runner.
- :mod:`csdtex.batch.runner`: plan (skip what is done), run with retries, commit each asset atomically, report.
- :mod:`csdtex.batch.local`: worker processes on this machine (one per GPU, or N on the CPU).
- :mod:`csdtex.batch.ray_backend`: one Ray actor per worker (Ray is imported only there).
- :mod:`csdtex.batch.display`: progress bars and log lines.
- :mod:`csdtex.batch.report`: ``summary.json`` and the self-contained ``summary.html``.

Typical use::

    from csdtex.batch import BatchOptions, load_manifest, run_batch

    manifest = load_manifest("jobs.csv", config=PaintConfig(steps=300))
    outcome = run_batch(manifest, BatchOptions(out_dir=Path("out"), workers=2))
    print(outcome.counts, outcome.summary_html)
"""

from __future__ import annotations

from csdtex.batch.manifest import AssetRow, Manifest, ManifestError, load_manifest
from csdtex.batch.runner import BatchOptions, BatchOutcome, plan_batch, run_batch

__all__ = ["AssetRow", "BatchOptions", "BatchOutcome", "Manifest", "ManifestError", "load_manifest", "plan_batch",
           "run_batch"]
