"""The body of ``csdtex batch``: read the manifest, run (or list) the assets, print the outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from csdtex.batch.manifest import ManifestError, load_manifest
from csdtex.batch.runner import BatchOptions, plan_batch, run_batch
from csdtex.batch.tasks import edit_config
from csdtex.config import PaintConfig
from csdtex.export import safe_asset_name
from csdtex.wording import counted


def default_out_dir(manifest_path: Path) -> Path:
    """``csdtex-out/<manifest file stem or folder name>`` (made safe)."""
    path = Path(os.path.abspath(manifest_path))
    return Path("csdtex-out") / safe_asset_name(path.name if path.is_dir() else path.stem)


def check_rows(rows, device: str, use_ray: bool = False) -> None:
    """What a single ``csdtex paint`` / ``edit`` refuses before any long work, checked for every row before the
    batch starts (also by ``--dry-run``), so that a bad batch-wide option is one line and nothing is written, not
    one identical failure per asset: options an edit refuses (``--unwrap``), a model that does not exist or is not
    a usable pipeline folder, a guidance schedule that does not fit the prior's preset (``t_min_start`` above
    ``t_max_start``), an unknown device or CUDA without a GPU, and a renderer the device cannot run (the last two
    not with ``--ray``: the cluster's devices decide).

    Raises:
        ManifestError: one line naming the first row that fails (the folder's mesh or the manifest line).
        ConfigError, DeviceError: the device (one line).
    """
    from csdtex.config import DEFAULT_MODEL, resolve_guidance
    from csdtex.devices import resolve_device
    from csdtex.errors import CsdtexError
    from csdtex.guidance.loading import model_preset
    from csdtex.render import resolve_backend

    presets: dict[str, str | None] = {}
    checked: set[str] = set()
    local_device = None if use_ray else resolve_device(device)  # an unknown device, or CUDA without a GPU
    for row in rows:
        try:
            if row.task == "edit":
                edit_config(row.config).validate()
            model = str(row.config.model or DEFAULT_MODEL)
            if model not in presets:
                presets[model] = model_preset(model)
            preset = presets[model]
            if row.task == "paint" and preset is not None:
                key = repr((preset, row.config.guidance_method, row.config.negative_prompt,
                            sorted(row.config.guidance.items())))
                if key not in checked:
                    resolve_guidance(row.config, preset)
                    checked.add(key)
            if local_device is not None and row.config.renderer != "auto":
                resolve_backend(row.config.renderer, local_device)
        except CsdtexError as error:
            raise ManifestError(f"{row.where}: {error}") from None


def run_batch_command(
    manifest_path: Path,
    config: PaintConfig,
    *,
    out_dir: Path | None = None,
    task: str = "paint",
    prompt: str | None = None,
    workers: int | None = None,
    retries: int = 1,
    roots: Sequence[Path] = (),
    use_ray: bool = False,
    ray_address: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    echo: Callable[..., None] = print,
) -> int:
    """Run ``csdtex batch`` and return its exit code (0: every asset done; 1: some failed).

    Args:
        manifest_path: a ``.csv`` / ``.jsonl`` manifest or a folder of meshes.
        config: the batch's options (command line and ``--config``); each row starts from it.
        out_dir: output folder (default :func:`default_out_dir`).
        task, prompt, roots: see :func:`csdtex.batch.manifest.load_manifest`.
        workers, retries, use_ray, ray_address: see :class:`csdtex.batch.runner.BatchOptions`.
        dry_run: list each asset with what a run would do (new / changed / done) and run nothing.
        quiet: no progress bars; one line per finished asset on stderr.
        echo: ``click.echo``-like printer (``err=True`` for stderr).
    Raises:
        csdtex.errors.CsdtexError: bad input (one line; nothing written).
    """
    if prompt is not None and not prompt.strip():
        raise ManifestError("--prompt is empty: describe the texture every mesh of the folder gets, e.g. --prompt "
                            "\"a weathered bronze statue\"")
    if prompt is not None and Path(manifest_path).exists() and not Path(manifest_path).is_dir():
        raise ManifestError("--prompt is for a folder of meshes; a manifest gives each row its prompt")
    out_dir = Path(out_dir) if out_dir else default_out_dir(manifest_path)
    manifest = load_manifest(manifest_path, task=task, config=config, prompt=prompt, roots=roots, out_dir=out_dir)
    for note in manifest.notes:
        echo(f"note: {note}", err=True)
    check_rows(manifest.rows, config.device, use_ray)
    if dry_run:
        planned = plan_batch(manifest.rows, out_dir)
        width = max(len(asset.row.name) for asset in planned)
        missing = 0
        for asset in planned:
            status = asset.status if asset.row.mesh.is_file() else "missing"  # it would fail: no mesh file
            missing += status == "missing"
            echo(f"{status:8s} {asset.row.name.ljust(width)}  {asset.row.mesh}  {asset.row.prompt!r}")
        todo = sum(asset.status != "done" for asset in planned) - missing
        done = len(planned) - todo - missing
        echo(f"{counted(len(planned), 'asset')} in {manifest.description}: {todo} to run, {done} done"
             + (f", {missing} with a missing mesh file (they would fail)" if missing else "")
             + f"; output folder {out_dir}")
        return 0
    options = BatchOptions(
        out_dir=out_dir, workers=workers, retries=retries, device=config.device, ray=use_ray, ray_address=ray_address,
        show_progress=not quiet, log=(lambda line: echo(line, err=True)) if quiet else None,
    )
    outcome = run_batch(manifest, options)
    counts = outcome.counts
    parts = [f"{counts.get(status, 0)} {status}" for status in ("done", "failed", "skipped") if counts.get(status)]
    if counts.get("not run"):
        parts.append(f"{counts['not run']} not run")
    warned = sum(1 for entry in outcome.entries if entry.get("warnings") and entry.get("status") == "done")
    if warned:
        parts[0] += f" ({warned} with warnings, listed above and in the report)"
    summary = ", ".join(parts) or "nothing to do"
    echo(f"{counted(len(outcome.entries), 'asset')}: {summary}; report: {outcome.summary_html}")
    return outcome.exit_code
