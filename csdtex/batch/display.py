"""What a batch shows while it runs: an overall tqdm bar, one step bar per worker, and log lines.

- Overall bar (line 0): assets finished of those to run, ETA, and ``done / failed / left`` counts.
- One bar per worker (lines 1..N) with the current asset's optimization steps, where the backend reports steps
  (local workers; Ray shows the overall bar only). With one worker that is the current asset's step bar.
- Log lines (``log``): one per finished, failed or retried asset, e.g. ``done    chair (12.3 s)`` (then one
  ``warning chair: ...`` per warning of its run, always shown, as ``csdtex paint`` prints them) or
  ``failed  lamp (jobs.csv line 4): error: mesh file ... is not a valid OBJ file ...`` (the manifest line only for
  a manifest's row). Without ``log``, failures and retries are still
  printed above the bars.
"""

from __future__ import annotations

import sys
from typing import Callable

from csdtex.batch.tasks import Started, StepProgress, TaskResult


def first_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class BatchDisplay:
    """Progress of a batch (see the module docstring).

    Args:
        total: assets to run (skipped ones not counted).
        slots: workers.
        steps: show one step bar per worker.
        bars: show tqdm bars at all (False: log lines only).
        log: receives the one-line log of each finished / failed / retried asset; None = failures and retries only,
            written above the bars (or to stderr without bars).
        skipped: assets skipped as already done (shown in the overall bar).
    """

    def __init__(self, total: int, slots: int, steps: bool, bars: bool, log: Callable[[str], None] | None = None,
                 skipped: int = 0) -> None:
        self.total, self.skipped = total, skipped
        self.done = self.failed = 0
        self.log = log
        self._multi = slots > 1
        self._overall = None
        self._workers: list = []
        if bars:
            from tqdm.auto import tqdm

            self._overall = tqdm(total=total, desc="batch", unit="asset", position=0, dynamic_ncols=True,
                                 leave=True, smoothing=0.1)
            if steps:
                self._workers = [tqdm(total=1, desc=self._label(i, "starting"), unit="step", position=i + 1,
                                      dynamic_ncols=True, leave=False, bar_format="{desc} {bar} {n_fmt}/{total_fmt} "
                                      "[{elapsed}<{remaining}]") for i in range(slots)]
            self._refresh_counts()
            self._overall.refresh()

    def _label(self, worker: int, name: str) -> str:
        prefix = f"  worker {worker + 1}" if self._multi else "  asset"
        return f"{prefix} {name[:40]}"

    def _write(self, line: str, always: bool) -> None:
        if self.log is not None:
            self.log(line)
        elif always:
            if self._overall is not None:
                from tqdm.auto import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)

    def _refresh_counts(self) -> None:
        if self._overall is not None:
            left = self.total - self.done - self.failed
            counts = f"done={self.done} failed={self.failed} left={left}"
            self._overall.set_postfix_str(counts + (f" skipped={self.skipped}" if self.skipped else ""), refresh=False)

    def started(self, event: Started) -> None:
        """A worker began an asset: its step bar starts over with the asset's name."""
        if event.worker < len(self._workers):
            bar = self._workers[event.worker]
            retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            bar.reset(total=1)
            bar.set_description_str(self._label(event.worker, event.name + retry))

    def step(self, event: StepProgress) -> None:
        """Steps done of the worker's current asset."""
        if event.worker < len(self._workers):
            bar = self._workers[event.worker]
            if bar.total != event.total:
                bar.reset(total=event.total)
            bar.n = event.done
            bar.refresh()

    def retrying(self, result: TaskResult, attempts: int) -> None:
        """An attempt failed in a way worth retrying; another attempt follows."""
        self._write(f"retry   {result.name} (attempt {result.attempt + 1} of {attempts}): {result.error}", True)

    def finished(self, result: TaskResult, where: str | None = None) -> None:
        """An asset is finished: done, or failed for good. ``where``: the manifest row it came from (``"jobs.csv
        line 3"``), named on a failure so that the row can be found and fixed."""
        if result.ok:
            self.done += 1
            self._write(f"done    {result.name} ({result.seconds:.1f} s)", False)
            for warning in result.warnings:  # what paint would print: an asset painted from unknown words is no win
                self._write(f"warning {result.name}: {first_line(warning)}", True)
        else:
            self.failed += 1
            origin = f" ({where})" if where and " line " in where else ""
            self._write(f"failed  {result.name}{origin}: {result.error}", True)
        if self._overall is not None:
            self._refresh_counts()
            self._overall.update(1)

    def close(self) -> None:
        """Remove the worker bars and close the overall bar."""
        for bar in self._workers:
            bar.close()
        if self._overall is not None:
            self._overall.close()
