"""Local worker processes: a pool of ``spawn``-started processes, each loading the prior once.

The runner submits tasks; the pool hands the next one to a worker whenever that worker says it is idle (the worker
pulls its next task), preferring tasks of the model the worker has loaded. Each worker talks to the runner through
its own pipe, so a worker that dies in the middle of a message cannot disturb the others, and the runner waits on
the pipes and on the processes' sentinels at once: a worker that dies (killed, segfault, out of memory) is noticed
at once, its asset ends as a retryable crash, and a fresh worker takes its place.

A worker exits when the runner closes the pool or when the runner's process goes away (Linux: parent-death
signal; elsewhere: it checks its parent between steps), so a killed batch leaves no worker painting on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Iterator

from csdtex.batch.tasks import (AssetTask, Event, Finished, Started, StepProgress, WorkerState, crash_result,
                                execute_task)
from csdtex.errors import CsdtexError

MAX_STARTUP_DEATHS = 3
"""A batch stops when this many workers in a row die before they are ready (something is broken everywhere)."""


class PipeProgress:
    """A :class:`~csdtex.pipeline.progress.Progress` that sends step counts to the runner, at most every
    ``interval`` seconds (and at the end), and stops the worker when the runner's process is gone."""

    def __init__(self, conn: Connection, parent_pid: int, interval: float = 0.25) -> None:
        self.conn, self.parent_pid, self.interval = conn, parent_pid, interval
        self.total, self._sent_at = 0, 0.0

    def start(self, total: int, initial: int) -> None:
        """The run has ``total`` steps, ``initial`` of them done: tell the runner."""
        self.total = total
        self._send(initial)

    def update(self, done: int, metrics: dict[str, float] | None) -> None:
        """``done`` steps finished: tell the runner (throttled); exit when the runner is gone."""
        exit_if_orphaned(self.parent_pid)
        if done == self.total or time.monotonic() - self._sent_at >= self.interval:
            self._send(done)

    def close(self) -> None:
        """Nothing to release."""

    def _send(self, done: int) -> None:
        self._sent_at = time.monotonic()
        self.conn.send(("progress", done, self.total))


def exit_if_orphaned(parent_pid: int) -> None:
    """End this worker process at once when the process that started it (pid ``parent_pid``) is gone."""
    if os.getppid() != parent_pid:
        os._exit(0)


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start processes with SIGINT ignored: a spawned Python keeps an ignored SIGINT ignored from its first
    instruction, so a Ctrl-C while a worker is still importing torch (before :func:`worker_main` ignores it) cannot
    print that worker's traceback (about one run in four, new-user test, session 16). The runner's own handler is
    put back at once (main thread only: elsewhere Python cannot change handlers, and the workers start as before)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_main(index: int, device: str, threads: int | None, preload: str | None, conn: Connection,
                parent_pid: int) -> None:
    """Body of a worker process: load ``preload`` (the prior most rows use) once, then run tasks until told to stop.

    Messages to the runner: ``("ready", pid, load_seconds)``, then per task ``("started", token)``, ``("progress",
    done, total)``..., ``("finished", TaskResult)``. From the runner: an :class:`AssetTask`, or None to stop.
    """
    _die_with_parent()
    exit_if_orphaned(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the runner's to handle; it stops the workers
    if threads:
        import torch

        torch.set_num_threads(threads)
    state = WorkerState(device, label=f"local-{index} {device} pid {os.getpid()}")
    if preload:
        try:
            state.prior(preload)
        except CsdtexError:
            pass  # remembered by the state: every row of this model fails with the same line
    conn.send(("ready", os.getpid(), state.load_seconds))
    while True:
        if not conn.poll(1.0):
            exit_if_orphaned(parent_pid)
            continue
        try:
            task = conn.recv()
        except EOFError:
            task = None
        if task is None:
            _quick_exit()
        conn.send(("started", task.token))
        conn.send(("finished", execute_task(task, state, PipeProgress(conn, parent_pid))))


def _quick_exit() -> None:
    """Leave the worker process now: everything it wrote is complete (atomic files, messages sent), and a normal
    interpreter shutdown with diffusers and transformers loaded takes seconds."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass
class _Worker:
    index: int
    device: str
    process: multiprocessing.process.BaseProcess
    conn: Connection
    pid: int | None = None
    ready: bool = False
    task: AssetTask | None = None
    model: str | None = None


class LocalBackend:
    """A pool of worker processes on this machine (see the module docstring).

    Args:
        devices: one device per worker (``["cpu", "cpu"]``, ``["cuda:0", "cuda:1"]``).
        threads: torch threads per worker (CPU workers share the cores), None = torch's default.
        preload: the model each worker loads when it starts.
    """

    shows_steps = True

    def __init__(self, devices: list[str], threads: int | None = None, preload: str | None = None) -> None:
        self.devices, self.threads, self.preload = list(devices), threads, preload
        self.slots = len(self.devices)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * self.slots
        self._pending: deque[AssetTask] = deque()
        self._events: deque[Event] = deque()
        self._startup_deaths = 0
        self.started_at: dict[int, float] = {}
        self.ready_after: list[float] = []
        """Seconds from starting a worker process to its ready message (process start + imports + prior load)."""
        self.load_seconds: list[float] = []
        """Seconds each worker spent loading its prior at start."""

    def start(self) -> None:
        """Start every worker process (they load the prior in parallel)."""
        for index in range(self.slots):
            self._spawn(index)

    def submit(self, task: AssetTask) -> None:
        """Queue ``task``; it goes to the next idle worker."""
        self._pending.append(task)
        self._dispatch()

    def pid_of(self, worker: int) -> int | None:
        """Process id of worker ``worker`` (None before it is ready)."""
        entry = self._workers[worker]
        return entry.pid if entry else None

    def next_event(self, timeout: float) -> Event | None:
        """The next :data:`~csdtex.batch.tasks.Event`, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._events:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            live = [w for w in self._workers if w is not None]
            handles = [w.conn for w in live] + [w.process.sentinel for w in live]
            for handle in wait(handles, timeout=left):
                worker = next(w for w in live if handle in (w.conn, w.process.sentinel))
                if handle is worker.conn:
                    self._receive(worker)
            for worker in live:
                if self._workers[worker.index] is worker and not worker.process.is_alive():
                    self._receive(worker)  # what it sent before it died still counts
                    self._buried(worker)
        return self._events.popleft()

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy or still starting ones are terminated; any left
        after a few seconds are killed."""
        live = [w for w in self._workers if w is not None]
        for worker in live:
            try:
                if worker.ready and worker.task is None:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5.0
        for worker in live:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5.0)
            worker.conn.close()
        self._workers = [None] * self.slots

    # ------------------------------------------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=worker_main, name=f"csdtex-batch-worker-{index}", daemon=True,
            args=(index, self.devices[index], self.threads, self.preload, child_conn, os.getpid()),
        )
        with _sigint_ignored_by_children():
            process.start()
        child_conn.close()
        self.started_at[index] = time.perf_counter()
        self._workers[index] = _Worker(index=index, device=self.devices[index], process=process, conn=parent_conn,
                                       model=self.preload)

    def _receive(self, worker: _Worker) -> None:
        while True:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except Exception:  # noqa: BLE001 - EOF or a message cut short: the worker died; its sentinel says so
                return
            self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready, worker.pid = True, message[1]
            self._startup_deaths = 0
            self.ready_after.append(time.perf_counter() - self.started_at[worker.index])
            self.load_seconds.append(message[2])
            self._dispatch()
        elif kind == "started" and worker.task is not None:
            task = worker.task
            self._events.append(Started(worker.index, task.row.name, task.token, task.attempt, worker.pid))
        elif kind == "progress" and worker.task is not None:
            self._events.append(StepProgress(worker.index, worker.task.row.name, message[1], message[2]))
        elif kind == "finished" and worker.task is not None and message[1].token == worker.task.token:
            worker.task = None
            self._events.append(Finished(message[1]))
            self._dispatch()

    def _buried(self, worker: _Worker) -> None:
        """``worker`` died: end its task as a crash and start a replacement."""
        code = worker.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                pass
        worker.conn.close()
        self._workers[worker.index] = None
        if worker.task is not None:
            self._events.append(Finished(crash_result(worker.task, f"local-{worker.index} {worker.device}", how)))
        if not worker.ready:
            self._startup_deaths += 1
            if self._startup_deaths >= MAX_STARTUP_DEATHS:
                raise CsdtexError(f"batch worker processes die while starting ({how}): run `csdtex paint` on one "
                                  "asset to see why; from a Python script, call the batch under "
                                  "`if __name__ == \"__main__\":` (workers are started with spawn)")
        self._spawn(worker.index)
        self._dispatch()

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker is None or not worker.ready or worker.task is not None:
                continue
            task = next((t for t in self._pending if t.row.config.model == worker.model), self._pending[0])
            self._pending.remove(task)
            worker.task, worker.model = task, task.row.config.model
            try:
                worker.conn.send(task)
            except (OSError, ValueError):
                pass  # it died; its sentinel ends the task as a crash
