"""The ``csdtex`` console script: the process-wide settings of a csdtex process, then the click command line.

The command line owns its process, so before torch is imported it chooses the CUDA caching allocator's settings:
:data:`ALLOCATOR_SETTINGS` unless the user set ``PYTORCH_CUDA_ALLOC_CONF`` (or torch's newer ``PYTORCH_ALLOC_CONF``)
themselves. The library (``csdtex.paint`` and friends) never touches process-wide state; Python callers who want the
same on a small GPU set the variable before importing torch.
"""

from __future__ import annotations

import os
from typing import MutableMapping

ALLOCATOR_SETTINGS = "expandable_segments:True"
"""CUDA allocator settings of the command line: segments that grow in place instead of new fixed-size blocks, so
memory freed by one phase of a step (the UNet's activations) can be reused by the next (the VAE encoder's backward
pass). Under an 8 GB cap the default SD-2.1-base paint (without CUDA graphs, :data:`csdtex.guidance.SMALL_GPU_PLAN`)
finishes with them and runs out of memory without (``benchmarks/results/memory_cap_variants_h200.json``)."""

ALLOCATOR_VARIABLES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")
"""Environment variables torch reads its allocator settings from (the second is the newer, device-neutral name)."""


def prefer_allocator_settings(environ: MutableMapping[str, str]) -> bool:
    """Set ``PYTORCH_CUDA_ALLOC_CONF`` to :data:`ALLOCATOR_SETTINGS` in ``environ`` unless one of
    :data:`ALLOCATOR_VARIABLES` is already set; True when it set it. Takes effect only before torch initialises CUDA
    (read once per process)."""
    if any(name in environ for name in ALLOCATOR_VARIABLES):
        return False
    environ["PYTORCH_CUDA_ALLOC_CONF"] = ALLOCATOR_SETTINGS
    return True


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``kill``, ``timeout``, ``docker stop``, a CI job cancelled, a closed terminal), raised in
    the main thread like Ctrl-C, so that the same clean-up runs: temporaries removed, the folder lock released, a
    kept checkpoint named; the exit status is 128 + the signal number (143 for SIGTERM)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number


_received: list[int] = []
"""The termination signal this process received (at most one: later ones are ignored), for
:func:`received_termination`."""


def received_termination() -> int | None:
    """The number of the termination signal :func:`stop_on_termination_signals` turned into :class:`Terminated`, or
    None. Code between the signal and the command's handler (Ray's ``ray.get``) may re-raise the
    :class:`Terminated` as a plain ``KeyboardInterrupt``; the command still reports a termination, not a Ctrl-C."""
    return _received[0] if _received else None


def stop_on_termination_signals() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (the command line owns its process; the
    library never installs handlers). A second signal while the first is being handled is ignored."""
    import signal

    _received.clear()

    def handler(signal_number, frame):
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)
        _received.append(int(signal_number))
        raise Terminated(signal_number)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def run() -> None:
    """Entry point of the ``csdtex`` script (and ``python -m csdtex``): allocator settings, termination signals, then
    :func:`csdtex.cli.main`."""
    prefer_allocator_settings(os.environ)
    stop_on_termination_signals()
    from csdtex.cli import main

    main()
