"""Progress reporting of the optimization loop through a small callback object (tqdm is the CLI's default)."""

from __future__ import annotations

import sys
import time

from typing import Protocol


class Progress(Protocol):
    """Receives the progress of an optimization: ``start`` once, ``update`` after every step, ``close`` at the end
    (also after an error or an interrupt)."""

    def start(self, total: int, initial: int) -> None:
        """``total`` steps in the run, ``initial`` of them already done (a resumed run)."""

    def update(self, done: int, metrics: dict[str, float] | None) -> None:
        """``done`` steps finished; ``metrics`` (``loss``, ``grad_norm``, ``t``) when they were read back from the
        device at this step (every ``metrics_every`` steps), else None."""

    def close(self) -> None:
        """The loop has ended."""


class SilentProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, total: int, initial: int) -> None:
        pass

    def update(self, done: int, metrics: dict[str, float] | None) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A :class:`Progress` drawn as a tqdm bar with ETA and the latest gradient norm and timestep.

    Args:
        description: the bar's label.
        position: tqdm line (a batch shows its overall bar on line 0 and an asset's steps on line 1).
        leave: keep the finished bar on screen.
    """

    def __init__(self, description: str = "painting", position: int | None = None, leave: bool = True) -> None:
        self.description, self.position, self.leave = description, position, leave
        self._bar = None
        self._done = 0

    def start(self, total: int, initial: int) -> None:
        self._done = initial
        if not _stderr_is_terminal():  # a log file, a pipe, CI: plain lines instead of redraws
            self._bar = _LineProgress(self.description, total, initial)
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=self.description, unit="step", dynamic_ncols=True,
                         position=self.position, leave=self.leave)

    def update(self, done: int, metrics: dict[str, float] | None) -> None:
        if self._bar is None:
            return
        if metrics:
            self._bar.set_postfix(grad=f"{metrics['grad_norm']:.3g}", t=int(metrics["t"]), refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _LineProgress:
    """Progress for a stderr that is not a terminal: one plain line at every tenth of the run (and at most one a
    second, at least one a minute), e.g. ``painting: 40/200 steps (20%), 12 s, about 48 s left, grad 4.2, t 263``;
    the tqdm calls it stands in for (``update``, ``set_postfix``, ``close``)."""

    def __init__(self, description: str, total: int, initial: int) -> None:
        self.description, self.total, self.done, self.first = description, total, initial, initial
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.next_share = (initial * 10 // max(total, 1) + 1) / 10

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        share = self.done / max(self.total, 1)
        if (share >= self.next_share and now - self.last >= 1.0) or now - self.last >= 60.0 or self.done >= self.total:
            self._line(now)
            while self.next_share <= share:
                self.next_share += 0.1

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        left = f", about {(self.total - self.done) / rate:.0f} s left" if rate > 0 and self.done < self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.description}: {self.done}/{self.total} steps ({100 * self.done // max(self.total, 1)}%), "
              f"{elapsed:.0f} s{left}{extra}", file=sys.stderr, flush=True)
        self.last = now

    def close(self) -> None:
        pass
