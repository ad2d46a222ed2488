"""Running a batch on Ray: one long-lived actor per worker, each holding its loaded prior; tasks are assets.

Each actor asks for one GPU where the cluster has GPUs (``num_gpus=1``), else CPUs. The runner's tasks go to idle
actors (preferring an actor that holds the task's model); an actor runs :func:`csdtex.batch.tasks.execute_task`,
so results, failures and retries are the same as with local workers. An actor that dies mid-asset (node lost,
killed, out of memory) raises ``RayActorError`` for that call: the asset ends as a retryable crash (the runner
submits it again, to another actor) and a fresh actor replaces the dead one.

The output folder must be on a file system that every node sees (the actors write the assets' staging folders;
the runner renames them into place). Ray is optional: it is imported only when a batch runs with ``--ray``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

from csdtex.batch.tasks import AssetTask, Event, Finished, Started, WorkerState, crash_result, execute_task
from csdtex.errors import CsdtexError, one_line

INSTALL_HINT = "--ray needs Ray: pip install csdtex[cluster]"


def import_ray():
    """The ``ray`` module, or a :class:`CsdtexError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CsdtexError(INSTALL_HINT) from None
    return ray


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Raise :class:`CsdtexError` when ``address`` names a ``host:port`` (or ``ray://host:port``) that does not
    accept a connection within ``timeout`` seconds: Ray itself retries an unreachable address for minutes, printing
    only its own warnings. ``None``, ``"auto"`` and ``"local"`` are Ray's to resolve and are not checked."""
    import socket

    if not address or address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: Ray says what is wrong with it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise CsdtexError(f"cannot reach the Ray cluster at {address} ({one_line(error)}): check --ray-address (the "
                          "head node's host:port, port 6379 unless it was started with another) and that the "
                          "cluster is running") from None


class AssetWorker:
    """The body of one Ray actor: a :class:`WorkerState` (device, loaded prior) that runs tasks.

    Args:
        index: the actor's number (for results).
        device: ``"cuda"`` (the GPU Ray assigned) or ``"cpu"``.
        threads: torch threads (CPU actors), None = torch's default.
        preload: the model to load now, once.
    """

    def __init__(self, index: int, device: str, threads: int | None, preload: str | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.state = WorkerState(device, label=f"ray actor {index} {device} pid {os.getpid()}")
        if preload:
            try:
                self.state.prior(preload)
            except CsdtexError:
                pass  # every row of this model then fails with the same line

    def pid(self) -> int:
        """This actor's process id."""
        return os.getpid()

    def run(self, task: AssetTask):
        """:func:`~csdtex.batch.tasks.execute_task` of ``task`` -> :class:`~csdtex.batch.tasks.TaskResult`."""
        return execute_task(task, self.state)


@dataclass
class _Actor:
    index: int
    handle: Any
    pid_ref: Any = None
    pid: int | None = None
    task: AssetTask | None = None
    ref: Any = None
    model: str | None = None


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Put back, after the block, the termination-signal handlers the process had before it: ``ray.init`` installs
    its own fatal-signal handler for SIGTERM (a C++ stack dump and exit status 1, or an abort), which would replace
    the ``csdtex`` command's (one line, the staging folders cleaned, exit 143). Only Python-level handlers are put
    back, and only in the main thread (elsewhere Python cannot set them)."""
    import signal
    import threading

    names = [name for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)]
    main_thread = threading.current_thread() is threading.main_thread()
    before = {name: signal.getsignal(getattr(signal, name)) for name in names} if main_thread else {}
    try:
        yield
    finally:
        for name, handler in before.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)


class RayBackend:
    """Runs tasks on Ray actors (see the module docstring).

    Args:
        workers: actors; None = one per GPU of the cluster, else one per CPU (one torch thread each).
        address: the cluster to join (``ray.init(address=...)``); None = ``RAY_ADDRESS`` or a new local Ray. A Ray
            already initialized in this process (``ray.init`` by the caller) is used as it is.
        preload: the model every actor loads when it starts.
        device: ``auto`` (GPUs when the cluster has them), ``cpu`` or ``cuda``.
    """

    shows_steps = False

    def __init__(self, workers: int | None = None, address: str | None = None, preload: str | None = None,
                 device: str = "auto") -> None:
        self.ray = import_ray()
        if workers is not None and workers < 1:
            raise CsdtexError(f"--workers must be at least 1 (got {workers})")
        if device not in ("auto", "cpu", "cuda"):
            raise CsdtexError(f"--device {device} with --ray: use auto, cpu or cuda (Ray assigns the GPUs)")
        self.requested, self.address, self.preload, self.device = workers, address, preload, device
        self.slots = workers or 1
        self._owns_ray = False
        self._actors: list[_Actor] = []
        self._pending: deque[AssetTask] = deque()
        self._events: deque[Event] = deque()
        self._options: dict[str, Any] = {}
        self._actor_class = None

    def start(self) -> None:
        """Join or start Ray, then start the actors (each loads the prior)."""
        ray = self.ray
        if not ray.is_initialized():
            import logging

            check_reachable(self.address)
            try:
                with _signal_handlers_kept():
                    ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            except Exception as error:  # noqa: BLE001 - connection refused, bad address, version mismatch, ...
                where = f"at {self.address}" if self.address else "(RAY_ADDRESS or a new local Ray)"
                raise CsdtexError(f"cannot start or join Ray {where}: {one_line(error)}; check --ray-address and that "
                                  "the cluster runs the same Ray version") from None
            self._owns_ray = True
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if self.device == "cuda" and not gpus:
            raise CsdtexError("--device cuda with --ray, but the Ray cluster has no GPUs: use --device cpu or auto")
        use_gpu = gpus > 0 and self.device != "cpu"
        capacity = gpus if use_gpu else cpus
        if self.requested is not None and self.requested > capacity:
            # an actor Ray cannot place never starts, and the asset given to it would wait forever
            what = f"{gpus} GPU(s)" if use_gpu else f"{cpus} CPU(s)"
            raise CsdtexError(f"--workers {self.requested} asks for more Ray actors than the cluster can place "
                              f"({what}, one actor each): use --workers {capacity} or fewer, or add nodes first")
        self.slots = self.requested or capacity
        threads = None if use_gpu else max(1, cpus // self.slots)
        self._options = {"num_gpus": 1} if use_gpu else {"num_cpus": min(threads, cpus)}
        self._device = "cuda" if use_gpu else "cpu"
        self._threads = threads
        self._actor_class = ray.remote(max_restarts=0, max_task_retries=0)(AssetWorker)
        self._actors = [self._new_actor(i) for i in range(self.slots)]

    def _new_actor(self, index: int) -> _Actor:
        handle = self._actor_class.options(**self._options).remote(index, self._device, self._threads, self.preload)
        # asked now, so the answer comes before any asset (an actor runs its calls in order)
        return _Actor(index=index, handle=handle, pid_ref=handle.pid.remote(), model=self.preload)

    def submit(self, task: AssetTask) -> None:
        """Queue ``task``; it goes to the next idle actor."""
        self._pending.append(task)
        self._dispatch()

    def pid_of(self, worker: int) -> int | None:
        """Process id of actor ``worker`` (None when it does not answer)."""
        try:
            actor = self._actors[worker]
            if actor.pid is None:
                actor.pid = self.ray.get(actor.pid_ref, timeout=120)
            return actor.pid
        except Exception:  # noqa: BLE001 - a dead or unreachable actor has no pid to give
            return None

    def next_event(self, timeout: float) -> Event | None:
        """The next event: :class:`Started` when a task goes to an actor, :class:`Finished` when it ends (or its
        actor died); None after ``timeout`` seconds without one."""
        if self._events:
            return self._events.popleft()
        busy = {actor.ref: actor for actor in self._actors if actor.ref is not None}
        if not busy:
            time.sleep(min(timeout, 0.05))
            return self._events.popleft() if self._events else None
        ready, _ = self.ray.wait(list(busy), num_returns=1, timeout=timeout)
        for ref in ready:
            actor = busy[ref]
            task, actor.task, actor.ref = actor.task, None, None
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                how = f"Ray {type(error).__name__}: {one_line(error, 160)}"
                self._events.append(Finished(crash_result(task, f"ray actor {actor.index}", how)))
                self._actors[actor.index] = self._new_actor(actor.index)
            except self.ray.exceptions.RayTaskError as error:  # execute_task does not raise; a bug of ours
                raise error.as_instanceof_cause() from None
            else:
                self._events.append(Finished(result))
        self._dispatch()
        return self._events.popleft() if self._events else None

    def close(self) -> None:
        """Kill the actors (and shut down a Ray this backend started)."""
        for actor in self._actors:
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self._actors = []
        if self._owns_ray:
            self.ray.shutdown()

    def _dispatch(self) -> None:
        for actor in self._actors:
            if not self._pending:
                return
            if actor.task is not None:
                continue
            task = next((t for t in self._pending if t.row.config.model == actor.model), self._pending[0])
            self._pending.remove(task)
            actor.task, actor.model = task, task.row.config.model
            actor.ref = actor.handle.run.remote(task)
            self._events.append(Started(actor.index, task.row.name, task.token, task.attempt, actor.pid))
