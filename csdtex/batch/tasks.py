"""What a worker does with one asset, and the messages between workers and the runner.

A worker (a local process, :mod:`csdtex.batch.local`, or a Ray actor, :mod:`csdtex.batch.ray_backend`) keeps a
:class:`WorkerState` (its device and the prior it loaded once) and runs :func:`execute_task` for every
:class:`AssetTask` it is given. :func:`execute_task` calls the function of the row's task (:data:`TASK_FUNCTIONS`:
:func:`run_paint_row`, :func:`run_edit_row`) into the task's staging folder and never raises: any exception becomes
a failed :class:`TaskResult` whose ``error`` is the line the single-asset command prints
(:func:`csdtex.errors.user_message`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Union

from csdtex.batch.manifest import AssetRow
from csdtex.errors import CsdtexError, one_line, user_message
from csdtex.pipeline.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from csdtex.config import EditConfig, PaintConfig

EDIT_UNAVAILABLE = "csdtex edit is not available in this version"


@dataclass(frozen=True)
class AssetTask:
    """One attempt at one asset.

    Attributes:
        row: the validated manifest row.
        staging: the folder this attempt writes into (``<out>/.staging/<name>.<token>``); the runner renames it to
            ``<out>/<name>`` when the attempt succeeds.
        attempt: 1 for the first try, 2 for the first retry, ...
        token: unique id of this attempt (results of an attempt that was given up are ignored).
    """

    row: AssetRow
    staging: Path
    attempt: int
    token: str


@dataclass
class TaskResult:
    """The outcome of one :class:`AssetTask`.

    Attributes:
        name, token, attempt: of the task.
        ok: the asset's outputs are complete in the staging folder.
        seconds: wall time of the attempt in the worker.
        error: the one line (``"error: ..."``) the single-asset command would print, when not ``ok``.
        exit_code: the exit code the single-asset command would return (None when ``ok``).
        retryable: worth another attempt (a crash or an unexpected error; never a user error such as a corrupt
            mesh, which fails the same way every time).
        traceback: the Python traceback of an unexpected error (a bug), else None.
        warnings: warnings the run gave (mesh problems, prompt words the prior does not know).
        worker: which worker ran it (``"local-1 cpu pid 1234"``, ``"ray actor 3"``).
    """

    name: str
    token: str
    attempt: int
    ok: bool
    seconds: float
    error: str | None = None
    exit_code: int | None = None
    retryable: bool = False
    traceback: str | None = None
    warnings: list[str] = field(default_factory=list)
    worker: str = ""


@dataclass(frozen=True)
class Started:
    """A worker began ``token`` (the attempt ``attempt`` at asset ``name``); ``pid`` is the worker's process id."""

    worker: int
    name: str
    token: str
    attempt: int
    pid: int | None


@dataclass(frozen=True)
class StepProgress:
    """Worker ``worker`` has done ``done`` of ``total`` optimization steps of asset ``name``."""

    worker: int
    name: str
    done: int
    total: int


@dataclass(frozen=True)
class Finished:
    """An attempt ended (done, failed, or its worker died): ``result``."""

    result: TaskResult


Event = Union[Started, StepProgress, Finished]


class Backend(Protocol):
    """Runs tasks on workers. ``submit`` queues a task; ``next_event`` returns the next :data:`Event` (or None after
    ``timeout`` seconds). Every submitted task ends in exactly one :class:`Finished` (a dead worker's task too);
    ``close`` stops the workers."""

    slots: int
    """How many tasks run at once."""
    shows_steps: bool
    """Whether :class:`StepProgress` events come."""

    def start(self) -> None:
        """Start the workers (each loads the prior)."""

    def submit(self, task: AssetTask) -> None:
        """Queue ``task`` for the next idle worker."""

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when none came within ``timeout`` seconds."""

    def close(self) -> None:
        """Stop the workers."""

    def pid_of(self, worker: int) -> int | None:
        """Process id of worker ``worker`` (None when unknown)."""


class WorkerState:
    """What one worker keeps between assets: its device, its thread count and the prior it loaded.

    The prior is loaded on first use and kept; a row with another ``model`` replaces it (the runner hands a worker
    rows of its current model first). A model that failed to load is not tried again: its error is raised again.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; every asset of this worker runs there.
        label: the worker's name in results (``"local-0 cpu"``).
    """

    def __init__(self, device: str, label: str = "") -> None:
        self.device, self.label = device, label
        self.model: str | None = None
        self.load_seconds = 0.0
        self._prior = None
        self._failed: dict[str, CsdtexError] = {}

    def prior(self, model: str):
        """The loaded prior of ``model`` (:func:`csdtex.guidance.load_prior`), loading it when it is not the current
        one. Raises the :class:`CsdtexError` of a model that cannot be loaded (also on later calls)."""
        if model in self._failed:
            raise self._failed[model]
        if model != self.model or self._prior is None:
            from csdtex.devices import resolve_device
            from csdtex.guidance import load_prior

            self._prior, self.model = None, None
            start = time.perf_counter()
            try:
                self._prior = load_prior(model, resolve_device(self.device))
            except CsdtexError as error:
                self._failed[model] = error
                raise
            finally:
                self.load_seconds += time.perf_counter() - start
            self.model = model
        return self._prior


Notify = Callable[[str], None]
TaskFunction = Callable[[AssetTask, WorkerState, Progress, Notify, Notify], None]


def worker_config(row: AssetRow, state: WorkerState):
    """The row's :class:`~csdtex.config.PaintConfig` on the worker's device."""
    return dataclasses.replace(row.config, device=state.device)


def run_paint_row(task: AssetTask, state: WorkerState, progress: Progress, warn: Notify, notify: Notify) -> None:
    """``--task paint``: :func:`csdtex.painting.paint` of the row into ``task.staging`` with the worker's prior."""
    from csdtex.painting import paint

    row = task.row
    paint(row.mesh, row.prompt, worker_config(row, state), out_dir=task.staging, prior=state.prior(row.config.model),
          progress=progress, warn=warn, notify=notify)


def edit_available() -> bool:
    """True when this csdtex has ``csdtex.editing`` (the module behind ``csdtex edit`` and ``--task edit``)."""
    try:
        return importlib.util.find_spec("csdtex.editing") is not None
    except (ImportError, ValueError):
        return False


def run_edit_row(task: AssetTask, state: WorkerState, progress: Progress, warn: Notify, notify: Notify) -> None:
    """``--task edit``: ``csdtex.editing.edit(mesh, prompt, source, EditConfig, out_dir, mask=, materials=, prior=,
    progress=, warn=, notify=)`` of the row into ``task.staging`` (the row's paint options as an EditConfig; its
    ``material`` column as a one-material selection).

    This is the batch's edit hook: ``csdtex.editing`` is imported here, lazily, so a csdtex without it still runs
    paint batches; without it every edit row fails with :data:`EDIT_UNAVAILABLE` (and the runner refuses an edit
    batch up front with the same line).
    """
    try:
        from csdtex.editing import edit
    except ModuleNotFoundError as error:
        if error.name not in ("csdtex.editing", "csdtex"):
            raise
        raise CsdtexError(EDIT_UNAVAILABLE) from None
    row = task.row
    config = edit_config(worker_config(row, state))
    materials = (row.material,) if isinstance(row.material, str) else tuple(row.material or ())
    edit(row.mesh, row.prompt, row.source, config, task.staging, mask=row.mask, materials=materials,
         prior=state.prior(row.config.model), progress=progress, warn=warn, notify=notify)


def edit_config(paint_config: PaintConfig) -> EditConfig:
    """The :class:`EditConfig` of an edit row from the row's options: every field carried over (the edit-only
    ``preserve`` / ``texel_learning_rate_scale`` too when the batch's config is an EditConfig: ``csdtex batch --task
    edit`` builds one, so a config file shared with ``csdtex edit`` and ``preserve`` columns work; else at their
    defaults), the guidance schedule starting from the edit's own (:data:`csdtex.config.EDIT_GUIDANCE`) with the
    row's ``guidance`` keys on top."""
    from csdtex.config import EDIT_GUIDANCE, EditConfig, PaintConfig

    kind = EditConfig if isinstance(paint_config, EditConfig) else PaintConfig
    values = {f.name: getattr(paint_config, f.name) for f in dataclasses.fields(kind)}
    values["guidance"] = {**EDIT_GUIDANCE, **paint_config.guidance}
    return EditConfig(**values)


TASK_FUNCTIONS: dict[str, TaskFunction] = {"paint": run_paint_row, "edit": run_edit_row}
"""One function per task; each runs one row into its staging folder and raises on failure."""


def execute_task(task: AssetTask, state: WorkerState, progress: Progress | None = None) -> TaskResult:
    """Run ``task`` with the function of its task and report how it went; never raises (but KeyboardInterrupt).

    Args:
        task: the attempt to run.
        state: the worker's state (device, loaded prior).
        progress: receives the optimization's step progress (default: nothing).
    Returns:
        :class:`TaskResult`: ``ok``, or the user-facing error line and exit code of the failure
        (:func:`csdtex.errors.user_message`), or for an unexpected exception an ``internal error`` line with the
        traceback kept.
    """
    warnings: list[str] = []
    start = time.perf_counter()
    common = dict(name=task.row.name, token=task.token, attempt=task.attempt, warnings=warnings,
                  worker=state.label or f"pid {os.getpid()}")
    try:
        TASK_FUNCTIONS[task.row.task](task, state, progress or SilentProgress(), warnings.append, lambda _: None)
    except Exception as error:  # noqa: BLE001 - failure isolation: every failure becomes a recorded result
        seconds = time.perf_counter() - start
        message = user_message(error)
        if message is not None:
            line, code = message
            return TaskResult(ok=False, seconds=seconds, error=line, exit_code=code,
                              retryable=not isinstance(error, CsdtexError), **common)
        line = f"error: internal error ({type(error).__name__}: {one_line(error)}); please report it with summary.json"
        return TaskResult(ok=False, seconds=seconds, error=line, exit_code=1, retryable=True,
                          traceback=traceback.format_exc(), **common)
    return TaskResult(ok=True, seconds=time.perf_counter() - start, **common)


def crash_result(task: AssetTask, worker: str, how: str) -> TaskResult:
    """The failed, retryable result of ``task`` whose worker died (``how``: ``"exit code -9, SIGKILL"``)."""
    return TaskResult(
        name=task.row.name, token=task.token, attempt=task.attempt, ok=False, seconds=0.0, retryable=True,
        error=(f"error: the worker running this asset died ({how}): it may have run out of memory; try fewer "
               "--workers or a smaller --texture-size"),
        exit_code=1, worker=worker,
    )
