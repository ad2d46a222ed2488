"""Choosing the compute device."""

from __future__ import annotations

import torch

from csdtex.errors import ConfigError, DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str | torch.device = "auto") -> torch.device:
    """Turn a device choice into a usable :class:`torch.device`.

    Args:
        choice: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; or a
            ``torch.device`` (CPU and CUDA devices are checked like the strings; other device types, e.g. ``mps``,
            are returned as given).

    Returns:
        The device.

    Raises:
        DeviceError: CUDA requested but not available, or ``cuda:N`` beyond the machine's CUDA devices.
        ConfigError: an unknown device string.
    """
    if isinstance(choice, torch.device):
        if choice.type != "cuda":
            return choice
        choice = str(choice)
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {choice} was requested but no CUDA GPU is available: use --device cpu "
                              "(or auto)")
        try:
            device = torch.device(choice)
        except RuntimeError:
            raise ConfigError(f"unknown device {choice!r}: use cuda or cuda:N with N a device index") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{choice} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ConfigError(f"unknown device {choice!r}: choose one of {', '.join(DEVICE_CHOICES)}")


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device`` without a host synchronization: a CPU tensor bound for CUDA is copied through pinned
    memory with ``non_blocking=True`` (a plain ``.to('cuda')`` of pageable memory waits for the GPU queue)."""
    device = torch.device(device)
    if tensor.device == device or (device.type == tensor.device.type and device.index is None):
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def gpu_memory_budget_gib(device: torch.device) -> float | None:
    """GiB of GPU memory this process may use on ``device``: the card's total memory times the process's memory
    fraction (``torch.cuda.set_per_process_memory_fraction``, 1.0 unless set); None for a non-CUDA device.

    Other processes on the same card are not subtracted: the budget describes the card and the cap, which is what
    :func:`csdtex.guidance.priors.memory_plan` needs to choose a plan that fits (an 8 GB card: 7.45 GiB)."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    return total * torch.cuda.get_per_process_memory_fraction(index) / 2**30
