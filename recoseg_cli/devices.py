"""Device selection and mixed precision (bf16 autocast where the hardware supports it)."""

from __future__ import annotations

import contextlib

import torch

from recoseg_cli.errors import InputError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:i``; auto picks CUDA when available."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(f"--device must be auto, cpu or cuda[:i], not {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise InputError(f"--device must be auto, cpu or cuda[:i], not {spec!r}")
    return device


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` when supported and enabled, otherwise a no-op context."""
    if enabled and bf16_supported(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_name(device: torch.device, enabled: bool = True) -> str:
    return "bf16" if enabled and bf16_supported(device) else "fp32"
