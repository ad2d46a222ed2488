"""Progress reporting of the optimization loop through a small callback object (tqdm is the CLI's default)."""

from __future__ import annotations

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
        from tqdm.auto import tqdm

        self._done = initial
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
