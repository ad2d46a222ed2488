"""Choosing the compute device."""

from __future__ import annotations

import torch

from csdtex.errors import ConfigError, DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without CUDA is a :class:`DeviceError`; 'cuda:N' is accepted."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was requested but no CUDA GPU is available: use --device cpu (or auto)")
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{choice} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ConfigError(f"unknown device {choice!r}: choose one of {', '.join(DEVICE_CHOICES)}")
