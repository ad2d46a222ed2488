"""Running a batch: plan (what is done already), execute on a backend with retries, commit, report.

Output folder layout::

    <out>/<name>/                 one finished asset: the files of csdtex paint, run.json, batch.json
    <out>/summary.json, summary.html
    <out>/.staging/               attempts in progress (removed at the end and when a batch starts)
    <out>/.csdtex.lock            held while a batch writes here (a second batch, or a paint / edit, into the same
                                  folder is refused; removed at the end)

Every attempt writes into its own ``.staging/<name>.<token>/`` folder; only a complete attempt is renamed to
``<out>/<name>`` (one ``rename``), after ``batch.json`` (the hash of the row's settings) was written into it. A batch
killed at any moment therefore leaves finished asset folders and staging leftovers, never a half-written asset
folder. A rerun skips every asset whose ``batch.json`` hash matches its row (settings and mesh file contents),
redoes the rest (replacing changed ones), and retries failed attempts up to ``retries`` times when retrying can help
(a crashed worker, an unexpected error; a user error such as a corrupt mesh is final at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from csdtex import __version__
from csdtex.batch.display import BatchDisplay
from csdtex.batch.manifest import AssetRow, Manifest
from csdtex.batch.report import asset_entry, check_summaries_are_ours, write_summary
from csdtex.batch.tasks import (EDIT_UNAVAILABLE, AssetTask, Backend, Event, Finished, Started, StepProgress,
                                TaskResult, edit_available)
from csdtex.config import to_dict
from csdtex.errors import ConfigError, CsdtexError, one_line
from csdtex.fileio import file_sha256, folder_lock, write_text_atomic
from csdtex.pipeline.outputs import RUN_LOCK, read_run_record

STAGING = ".staging"
LOCK_FILE = RUN_LOCK  # the lock paint and edit take too, so that none of them writes into a folder another one holds
MARKER = "batch.json"
"""Written into every finished asset folder: the row's settings, their hash, how the asset was made."""
NOT_SETTINGS = ("device", "checkpoint_every", "metrics_every", "overwrite", "low_vram", "compile_encoder")
"""Options that do not change an asset's outputs (where it runs, how often it saves, whether it may replace a
folder, and the memory / speed options documented as giving the same result); changing them does not redo finished
assets."""
SUMMARY_EVERY_S = 5.0
MAX_DEFAULT_CPU_WORKERS = 8


@dataclass
class BatchOptions:
    """How to run a batch (what to run is the :class:`~csdtex.batch.manifest.Manifest`).

    Attributes:
        out_dir: output folder (created).
        workers: worker processes / actors; None = one per GPU, or one per core (at most 8) on the CPU.
        retries: extra attempts for an asset whose attempt crashed or failed unexpectedly.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: where the workers run.
        ray: run on Ray (``ray_address``: an existing cluster; None = ``RAY_ADDRESS`` or a local Ray).
        show_progress: tqdm bars (overall, and each worker's current asset where the backend reports steps).
        log: receives one line per finished, failed or retried asset (None: only failures, above the bars).
    """

    out_dir: Path
    workers: int | None = None
    retries: int = 1
    device: str = "auto"
    ray: bool = False
    ray_address: str | None = None
    show_progress: bool = True
    log: Callable[[str], None] | None = None


@dataclass
class PlannedAsset:
    """A row and its state before the run: ``status`` ``"done"`` (finished with these settings: skipped),
    ``"changed"`` (finished with other settings: redone) or ``"new"``; ``settings`` and their ``settings_hash``."""

    row: AssetRow
    status: str
    settings: dict[str, Any]
    settings_hash: str
    mesh_stat: list[int] | None


@dataclass
class BatchOutcome:
    """What a batch did: one summary ``entries`` row per asset (manifest order), the counts per status, the
    summary files, and the exit code (0 when no asset failed, 1 otherwise)."""

    entries: list[dict[str, Any]]
    counts: dict[str, int]
    summary_json: Path
    summary_html: Path

    @property
    def exit_code(self) -> int:
        """0 when every asset is done (or skipped as done), else 1."""
        return 1 if self.counts.get("failed", 0) or self.counts.get("not run", 0) else 0


# ----------------------------------------------------------------------------------------------------------------
# Plan


def row_settings(row: AssetRow, mesh_sha256: str | None) -> dict[str, Any]:
    """The settings that decide an asset's outputs: task, prompt, options (without :data:`NOT_SETTINGS`), the mesh
    file's name and SHA-256, the edit columns. JSON-ready."""
    config = to_dict(row.config)
    for name in NOT_SETTINGS:
        config.pop(name, None)
    settings = {"task": row.task, "prompt": row.prompt, "mesh": row.mesh.name, "mesh_sha256": mesh_sha256,
                "config": config}
    if row.task == "edit":
        settings.update(source=row.source, mask=str(row.mask) if row.mask else None,
                        mask_sha256=file_sha256(row.mask), material=row.material)
    return json.loads(json.dumps(settings, default=str))


def _same_as_recorded(recorded: Any, row: AssetRow, mesh_sha256: str | None, settings: dict[str, Any]) -> bool:
    """Whether the settings a finished asset's ``batch.json`` recorded (``recorded``, written by this or an earlier
    version) match ``row``'s: compared without :data:`NOT_SETTINGS` (earlier versions kept some of them), and for
    an edit row also in the form of the time when an edit batch's rows carried a PaintConfig (no edit-only fields,
    the guidance keys the user set rather than the edit schedule's), so that an upgrade redoes no finished asset."""
    from csdtex.config import EDIT_GUIDANCE, EditConfig, PaintConfig

    if not isinstance(recorded, dict) or not isinstance(recorded.get("config"), dict):
        return False

    unused = getattr(row.config, "UNUSED_FIELDS", ())  # an edit record of an earlier version kept seam_erasure

    def without_non_settings(values: dict[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in values["config"].items() if k not in NOT_SETTINGS and k not in unused}
        return {**values, "config": config}

    recorded = without_non_settings(recorded)
    if recorded == without_non_settings(settings):
        return True
    if isinstance(row.config, EditConfig):
        values = {f.name: getattr(row.config, f.name) for f in dataclasses.fields(PaintConfig)}
        values["guidance"] = {k: v for k, v in row.config.guidance.items() if EDIT_GUIDANCE.get(k, object()) != v}
        as_paint = dataclasses.replace(row, config=PaintConfig(**values))
        return recorded == without_non_settings(row_settings(as_paint, mesh_sha256))
    return False


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``settings`` as canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def _stat(path: Path) -> list[int] | None:
    """Size, modification and status-change times: a file replaced by a copy of the same size and mtime (``cp -p``,
    ``rsync -t``) still gets a new ctime, so it is hashed again."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _input_files_changed(marker: dict, mesh: Path) -> bool:
    """Whether a file the finished asset's mesh load read (``batch.json``'s ``input_files``: the ``.bin`` of a
    ``.gltf``, its images, an OBJ's MTL files and textures) differs now; each is hashed only when its size or times
    changed."""
    for record in marker.get("input_files") or []:
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            return True
        path = mesh.parent / record["path"]
        stat = _stat(path)
        if stat is None or stat != record.get("stat"):
            if file_sha256(path) != record.get("sha256"):
                return True
    return False


def _input_file_records(staging: Path, mesh: Path) -> list[dict[str, Any]]:
    """The files the run's mesh load read (its ``run.json``: ``mesh.files``), with their current stat, for
    ``batch.json``."""
    try:
        files = json.loads((staging / "run.json").read_text(encoding="utf-8"))["mesh"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [{**record, "stat": _stat(mesh.parent / record["path"])} for record in files
            if isinstance(record, dict) and isinstance(record.get("path"), str)]


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The ``batch.json`` of a finished asset folder, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def same_file_path(path: str | os.PathLike) -> Path:
    """``path`` absolute with its symbolic links resolved: the form in which a batch compares mesh paths, so that a
    mesh or output folder reached through a link (``out -> /mnt/big/out``) and by its real path is one file."""
    return Path(os.path.realpath(os.path.abspath(path)))


def finished_mesh_path(marker: dict[str, Any], out_dir: Path) -> Path | None:
    """Where the mesh of a finished asset is now (:func:`same_file_path` form), from its ``batch.json``:
    ``mesh_relative`` (the mesh's path relative to the output folder) when a file is there, so a project folder
    moved or reached through another path (another mount point, a copy on a new machine) still matches its meshes;
    else the absolute ``mesh_path`` (the output folder alone moved, or reached through a link); else the relative
    form (a mesh gone from both places)."""
    relative = marker.get("mesh_relative")
    moved = same_file_path(out_dir / relative) if isinstance(relative, str) and relative else None
    recorded = marker.get("mesh_path")
    absolute = same_file_path(recorded) if isinstance(recorded, str) and os.path.isabs(recorded) else None
    for candidate in (moved, absolute):
        if candidate is not None and candidate.is_file():
            return candidate
    return moved or absolute


_RESOLVED_WHEN = {"renderer": "auto"}
"""Options whose "resolve it for me" value is not None: ``renderer = "auto"`` (run.json records the backend used)."""


def _only_defaults_spelled_out(recorded: Any, settings: dict[str, Any], run_record: dict[str, Any] | None) -> bool:
    """Whether ``settings`` differ from a finished asset's ``recorded`` ones only by options the earlier run left to
    the prior's preset (None, or ``renderer = "auto"``) and that ``settings`` now spell out with the very value the
    run resolved (its ``run.json``): ``--texture-size 512``, ``--renderer torch`` or ``--negative ""`` after a run
    with the built-in prior's defaults make the same asset, so it stays done. A guidance table is compared key by
    key against the run's resolved guidance."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("config"), dict) or run_record is None:
        return False
    resolved = run_record.get("config")
    if not isinstance(resolved, dict):
        return False
    resolved = {**resolved, "renderer": run_record.get("renderer"), "model": run_record.get("model")}
    if {k: v for k, v in recorded.items() if k != "config"} != {k: v for k, v in settings.items() if k != "config"}:
        return False
    before, now = recorded["config"], settings["config"]
    for key in set(before) | set(now):
        if key in NOT_SETTINGS or before.get(key) == now.get(key):
            continue
        if key == "guidance" and isinstance(before.get(key), dict) and isinstance(now.get(key), dict):
            resolved_guidance = resolved.get("guidance") if isinstance(resolved.get("guidance"), dict) else {}
            for name in set(before[key]) | set(now[key]):
                if before[key].get(name) != now[key].get(name) and not (
                        name not in before[key] and resolved_guidance.get(name) == now[key][name]):
                    return False
            continue
        left_to_preset = before.get(key) in (None, _RESOLVED_WHEN.get(key))
        if not (left_to_preset and key in resolved and resolved[key] == now.get(key)):
            return False
    return True


def _outputs_replaced(marker: dict[str, Any], folder: Path) -> bool:
    """Whether the asset's ``run.json`` is no longer the one the batch committed (``batch.json``'s
    ``run_record_sha256``): a ``csdtex paint`` into the asset's folder made other outputs, which the batch must not
    report as its own (the asset is redone). Markers of earlier versions, without the digest, are trusted."""
    recorded = marker.get("run_record_sha256")
    return isinstance(recorded, str) and file_sha256(folder / "run.json") != recorded


def keep_finished_names(rows: list[AssetRow], out_dir: Path) -> list[AssetRow]:
    """``rows`` with each derived name (not an ``out`` cell) replaced by the name of the folder that already holds
    that row's finished asset, so a finished asset is never renamed and painted again when rows or mesh files are
    added, removed or reordered (derived names shift: ``chair``, ``chair-2``; ``a_chair`` / ``b_chair``).

    A folder belongs to a row when its ``batch.json`` names the row's mesh (:func:`finished_mesh_path`). Folders are
    handed out in two rounds: first to rows of the same mesh *and* prompt (the row's own derived name preferred),
    then, to rows still without one, any unclaimed folder of their mesh (the own derived name first: a changed
    prompt repaints that asset in place). A row left without a folder keeps its derived name unless another row
    claimed it, and then gets the first free ``<name>-<k>``. Names of ``out`` cells are never taken."""
    if not out_dir.is_dir():
        return rows
    finished: dict[Path, list[tuple[str, str | None]]] = {}
    for folder in sorted(out_dir.iterdir()):
        marker = read_marker(folder) if folder.is_dir() and not folder.name.startswith(".") else None
        mesh = finished_mesh_path(marker, out_dir) if marker is not None else None
        if mesh is not None:
            finished.setdefault(mesh, []).append((folder.name, (marker.get("settings") or {}).get("prompt")))
    taken = {row.name.lower() for row in rows if row.named_by_out}
    chosen: dict[int, str] = {}

    def claim(index: int, names: list[str]) -> None:
        free = [name for name in names if name.lower() not in taken]
        if free:
            pick = rows[index].name if rows[index].name in free else free[0]
            chosen[index] = pick
            taken.add(pick.lower())

    movable = [i for i, row in enumerate(rows) if not row.named_by_out]
    for index in movable:  # round 1: the same mesh and prompt
        row = rows[index]
        claim(index, [name for name, prompt in finished.get(same_file_path(row.mesh), [])
                      if prompt == row.prompt])
    for index in movable:  # round 2: the same mesh
        if index not in chosen:
            claim(index, [name for name, _ in finished.get(same_file_path(rows[index].mesh), [])])
    result = list(rows)
    for index in movable:
        row = rows[index]
        name = chosen.get(index)
        if name is None:  # no folder of its own: its derived name, unless another row's asset lives there
            name, k = row.name, 1
            while name.lower() in taken or (name != row.name and (out_dir / name).exists()):
                k += 1
                name = f"{row.name}-{k}"
            taken.add(name.lower())
        if name != row.name:
            result[index] = dataclasses.replace(row, name=name)
    return result


def plan_batch(rows: list[AssetRow], out_dir: Path) -> list[PlannedAsset]:
    """The state of each row in ``out_dir`` (see :class:`PlannedAsset`), the rows' names first given way to the
    folders of their finished assets (:func:`keep_finished_names`).

    A mesh file is hashed only when its size or times differ from what the asset's ``batch.json`` recorded; a
    finished asset whose other input files (``input_files``: a ``.gltf``'s buffers and images, an OBJ's MTL and
    textures) changed is ``changed`` too. Raises :class:`ConfigError` when an asset's folder exists but was not made
    by a batch (no ``batch.json``): csdtex never replaces a folder it did not write; and when it holds the finished
    asset of another mesh file (another manifest's ``vase.obj`` into the same ``--out``), unless ``overwrite``.
    """
    planned = []
    for row in keep_finished_names(rows, out_dir):
        folder = out_dir / row.name
        marker = read_marker(folder) if folder.is_dir() else None
        if folder.exists() and marker is None:
            raise ConfigError(f"{folder} exists but was not written by csdtex batch (no {MARKER}): move it away or "
                              "choose another --out")
        recorded = finished_mesh_path(marker, out_dir) if marker else None
        another_mesh = recorded is not None and recorded != same_file_path(row.mesh)
        if another_mesh and not row.config.overwrite:
            raise ConfigError(f"{row.where}: {folder} holds the finished asset of another mesh ({recorded}), not "
                              f"{row.mesh}: give the row its own out name, choose another --out, or pass --overwrite "
                              "to replace it")
        stat = _stat(row.mesh)
        known = marker and marker.get("mesh_stat") == stat and marker.get("settings", {}).get("mesh") == row.mesh.name
        digest = marker["settings"].get("mesh_sha256") if known else file_sha256(row.mesh)
        settings = row_settings(row, digest)
        key = settings_hash(settings)
        recorded_hash = marker.get("settings_hash") if marker else None
        same = recorded_hash == key or (marker is not None and _same_as_recorded(marker.get("settings"), row, digest,
                                                                                 settings))
        if not same and marker is not None:
            same = _only_defaults_spelled_out(marker.get("settings"), settings, read_run_record(folder))
        status = "new" if marker is None else "done" if same and not another_mesh else "changed"
        if status == "done" and (_input_files_changed(marker, row.mesh) or _outputs_replaced(marker, folder)):
            status = "changed"
        planned.append(PlannedAsset(row=row, status=status, settings=settings, settings_hash=key, mesh_stat=stat))
    return planned


# ----------------------------------------------------------------------------------------------------------------
# Run


def run_batch(manifest: Manifest, options: BatchOptions, observer: Callable[[Event, Backend], None] | None = None,
              ) -> BatchOutcome:
    """Run every asset of ``manifest`` that is not done yet; write ``summary.json`` and ``summary.html``.

    Args:
        manifest: validated rows (:func:`~csdtex.batch.manifest.load_manifest`).
        options: :class:`BatchOptions`.
        observer: called with every backend event and the backend (tests use it to kill a worker mid-asset).
    Returns:
        :class:`BatchOutcome`; failed assets are in it, never raised.
    Raises:
        CsdtexError: the batch cannot run at all (output folder not writable or not ours, no CUDA for
            ``--device cuda``, Ray missing, ``--task edit`` without ``csdtex.editing``); nothing is written then.
        KeyboardInterrupt: after stopping the workers, cleaning the staging folders and writing the summary.
    """
    from csdtex.pipeline.prepare import check_writable

    out_dir = Path(options.out_dir)
    if options.retries < 0:
        raise ConfigError(f"--retries must be 0 or more (got {options.retries})")
    if any(row.task == "edit" for row in manifest.rows) and not edit_available():
        raise CsdtexError(EDIT_UNAVAILABLE)
    check_writable(out_dir)
    busy = CsdtexError(f"another csdtex run (a batch, paint or edit) is writing to {out_dir}: wait for it to finish "
                       "or choose another --out")
    with folder_lock(out_dir, LOCK_FILE, busy):  # before planning: the plan reads what another run may be writing
        check_summaries_are_ours(out_dir)
        planned = plan_batch(manifest.rows, out_dir)
        todo = [asset for asset in planned if asset.status != "done"]
        backend = make_backend(options, todo) if todo else None
        if backend is not None:  # before anything is written: a cluster that cannot be joined writes nothing
            try:
                backend.start()
            except BaseException:
                backend.close()
                raise
        results: dict[str, TaskResult] = {}
        started = time.time()
        _clean_staging(out_dir)
        summary = _SummaryWriter(manifest, planned, out_dir, results, started)
        try:
            if backend is not None:
                _execute(todo, backend, options, out_dir, results, summary, observer, len(planned) - len(todo))
        finally:
            _clean_staging(out_dir)
            entries, paths = summary.write()
    counts = Counter(entry["status"] for entry in entries)
    return BatchOutcome(entries=entries, counts=dict(counts), summary_json=paths[0], summary_html=paths[1])


def make_backend(options: BatchOptions, todo: list[PlannedAsset]) -> Backend:
    """The local process pool or the Ray backend for ``options`` (checks the device / Ray before anything runs)."""
    models = Counter(asset.row.config.model for asset in todo)
    preload = models.most_common(1)[0][0] if models else None
    if options.ray:
        from csdtex.batch.ray_backend import RayBackend

        return RayBackend(workers=options.workers, address=options.ray_address, preload=preload,
                          device=options.device)
    from csdtex.batch.local import LocalBackend

    devices, threads = local_devices(options.device, options.workers)
    return LocalBackend(devices, threads=threads, preload=preload)


def local_devices(device: str, workers: int | None) -> tuple[list[str], int | None]:
    """One device per local worker and the torch threads of each.

    On CUDA: one worker per GPU by default (``workers`` round-robin over the GPUs, or all on ``cuda:N``). On the
    CPU: ``workers`` processes (default one per core, at most :data:`MAX_DEFAULT_CPU_WORKERS`) splitting the cores
    between them (``cores // workers`` torch threads each, at least 1): small steps of the built-in prior scale
    better over processes than over threads, and a torch thread pool wider than the CPU time it gets (a busy
    machine) is many times slower (benchmarks/README.md). Raises :class:`~csdtex.errors.DeviceError` for CUDA
    without a GPU.
    """
    import torch

    from csdtex.devices import resolve_device

    resolved = resolve_device(device)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    if resolved.type == "cuda":
        gpus = [f"cuda:{resolved.index}"] if resolved.index is not None else [
            f"cuda:{i}" for i in range(torch.cuda.device_count())]
        count = workers or len(gpus)
        return [gpus[i % len(gpus)] for i in range(count)], None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = workers or min(cores, MAX_DEFAULT_CPU_WORKERS)
    return ["cpu"] * count, max(1, cores // count)


def _execute(todo: list[PlannedAsset], backend: Backend, options: BatchOptions, out_dir: Path,
             results: dict[str, TaskResult], summary: "_SummaryWriter",
             observer: Callable[[Event, Backend], None] | None, skipped: int) -> None:
    by_name = {asset.row.name: asset for asset in todo}
    tasks: dict[str, AssetTask] = {}

    staging_root = Path(os.path.abspath(out_dir)) / STAGING
    workers_rows = {asset.row.name: _with_absolute_paths(asset.row) for asset in todo}

    def submit(asset: PlannedAsset, attempt: int) -> None:
        token = uuid.uuid4().hex[:12]
        # absolute paths: a Ray actor runs in the cluster's working directory, not the caller's
        task = AssetTask(row=workers_rows[asset.row.name], staging=staging_root / f"{asset.row.name}.{token}",
                         attempt=attempt, token=token)
        tasks[token] = task
        backend.submit(task)

    left = len(todo)
    display = None
    try:
        terminal = bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
        log = options.log
        if log is None and options.show_progress and not terminal:  # a log file: a line per asset, no bar redraws
            def log(line: str) -> None:
                print(line, file=sys.stderr, flush=True)
        display = BatchDisplay(len(todo), backend.slots, steps=backend.shows_steps,
                               bars=options.show_progress and terminal, log=log, skipped=skipped)
        for asset in todo:
            submit(asset, 1)
        while left:
            event = backend.next_event(0.5)
            if event is None:
                summary.maybe_write()
                continue
            if observer is not None:
                observer(event, backend)
            if isinstance(event, Started):
                display.started(event)
            elif isinstance(event, StepProgress):
                display.step(event)
            elif isinstance(event, Finished):
                result = event.result
                task = tasks.pop(result.token)
                asset = by_name[result.name]
                if result.ok:
                    result = _commit(task, asset, result, out_dir)
                else:
                    shutil.rmtree(task.staging, ignore_errors=True)
                if not result.ok and result.retryable and result.attempt <= options.retries:
                    display.retrying(result, options.retries + 1)
                    submit(asset, result.attempt + 1)
                    continue
                results[result.name] = result
                left -= 1
                display.finished(result, asset.row.where)
                summary.maybe_write()
    finally:
        if display is not None:
            display.close()
        backend.close()


def _with_absolute_paths(row: AssetRow) -> AssetRow:
    """``row`` with its mesh and mask paths absolute (for workers whose working directory is another)."""
    return dataclasses.replace(row, mesh=Path(os.path.abspath(row.mesh)),
                               mask=Path(os.path.abspath(row.mask)) if row.mask else row.mask)


def _commit(task: AssetTask, asset: PlannedAsset, result: TaskResult, out_dir: Path) -> TaskResult:
    """Write ``batch.json`` into the staging folder and rename it to ``<out>/<name>`` (replacing an older one). A
    worker that reports success without its outputs in the staging folder (a Ray node that writes elsewhere) fails
    the asset: a folder without outputs is never committed as finished."""
    final = out_dir / asset.row.name
    if not (task.staging / "run.json").is_file():
        shutil.rmtree(task.staging, ignore_errors=True)
        return dataclasses.replace(result, ok=False, retryable=False, exit_code=2, error=(
            f"error: the worker ({result.worker}) reported success, but its outputs are not in {task.staging}: on a "
            "Ray cluster, --out must be a folder every node sees at the same path"))
    if final.exists():  # another csdtex run may have written into the asset's folder while the batch ran
        error = None
        if read_marker(final) is None:
            error = (f"error: {final} was written by another csdtex run while the batch ran (it has no {MARKER}); "
                     "not replaced: move it away and run the batch again")
        else:
            try:
                with folder_lock(final, RUN_LOCK, CsdtexError("busy")):
                    pass
            except CsdtexError:
                error = (f"error: another csdtex run is writing into {final}; not replaced: run the batch again "
                         "when it has finished")
        if error is not None:
            shutil.rmtree(task.staging, ignore_errors=True)
            return dataclasses.replace(result, ok=False, retryable=False, exit_code=2, error=error)
    marker = {
        "name": asset.row.name, "where": asset.row.where, "settings_hash": asset.settings_hash,
        "settings": asset.settings, "mesh_stat": asset.mesh_stat, "mesh_path": os.path.abspath(asset.row.mesh),
        "mesh_relative": _relative(asset.row.mesh, out_dir),
        "input_files": _input_file_records(task.staging, asset.row.mesh),
        "run_record_sha256": file_sha256(task.staging / "run.json"),
        "options": asset.row.options, "seconds": round(result.seconds, 3), "attempts": result.attempt,
        "worker": result.worker, "warnings": result.warnings, "csdtex": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        write_text_atomic(task.staging / MARKER, json.dumps(marker, indent=2))
        old = None
        if final.exists():
            old = out_dir / STAGING / f"{asset.row.name}.old-{task.token}"
            os.replace(final, old)
            _carry_foreign_files(old, task.staging)
        os.replace(task.staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(task.staging, ignore_errors=True)
        return dataclasses.replace(result, ok=False, retryable=False, exit_code=2,
                                   error=f"error: cannot move the finished asset into {final} ({one_line(error)}): "
                                         "check the output folder")
    return result


_BATCH_FILES = (MARKER, "checkpoint.safetensors", "checkpoint.json", RUN_LOCK)
"""Files of a finished asset folder that csdtex writes besides a run's outputs (:func:`written_by_csdtex`)."""


def _carry_foreign_files(old: Path, new: Path) -> None:
    """Move the files and folders of a replaced asset folder ``old`` that csdtex did not write (a retouched texture,
    the artist's notes) into its replacement ``new``, as ``csdtex paint`` keeps them in its output folder; a name
    the new outputs use is the new output's."""
    from csdtex.pipeline.outputs import written_by_csdtex

    ours = written_by_csdtex(old) | set(_BATCH_FILES)
    for entry in old.iterdir():
        if entry.name not in ours and not (new / entry.name).exists() and not entry.name.startswith(".csdtex"):
            os.replace(entry, new / entry.name)


def _relative(path: Path, start: Path) -> str | None:
    """``path`` relative to ``start`` (POSIX), or None where there is no relative path (another drive)."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(start))).as_posix()
    except ValueError:
        return None


_STAGING_ENTRY = re.compile(r".+\.(old-)?[0-9a-f]{12}")
"""The name of an attempt's staging folder (``<name>.<token>``) or of a replaced asset on its way out
(``<name>.old-<token>``)."""


def _clean_staging(out_dir: Path) -> None:
    """Remove the batch's staging folders (an earlier batch killed mid-asset leaves some); anything else in
    ``.staging`` is not the batch's and stays (with the folder)."""
    staging = out_dir / STAGING
    if not staging.is_dir() or staging.is_symlink():
        return
    for entry in staging.iterdir():
        if _STAGING_ENTRY.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.rmdir()  # only when empty


class _SummaryWriter:
    """Writes summary.json / summary.html from the plan and the results so far (at most every few seconds while
    the batch runs, and at the end)."""

    def __init__(self, manifest: Manifest, planned: list[PlannedAsset], out_dir: Path,
                 results: dict[str, TaskResult], started: float) -> None:
        self.manifest, self.planned, self.out_dir, self.results = manifest, planned, out_dir, results
        self.started, self.written_at = started, 0.0

    def entries(self) -> list[dict[str, Any]]:
        entries = []
        for asset in self.planned:
            result = self.results.get(asset.row.name)
            if asset.status == "done":
                status = "skipped"
            elif result is None:
                status = "not run"
            else:
                status = "done" if result.ok else "failed"
            entries.append(asset_entry(asset.row, status, self.out_dir, result,
                                       read_marker(self.out_dir / asset.row.name) if status != "not run" else None))
        return entries

    def maybe_write(self) -> None:
        if time.monotonic() - self.written_at >= SUMMARY_EVERY_S:
            self.write()

    def write(self) -> tuple[list[dict[str, Any]], tuple[Path, Path]]:
        self.written_at = time.monotonic()
        entries = self.entries()
        meta = {"manifest": self.manifest.description, "out_dir": str(self.out_dir), "csdtex": __version__,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
                "wall_seconds": round(time.time() - self.started, 1)}
        return entries, write_summary(self.out_dir, entries, meta)
