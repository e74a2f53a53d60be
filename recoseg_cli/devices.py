"""Device selection and mixed precision: bf16 autocast only where it is faster than fp32.

With the bundled networks on a 2-core Xeon with AVX512-BF16 but no AMX, bf16 autocast is slower than fp32 (15
against 11 ms per slice, ``examples/speed/``); it pays on CPUs with AMX (2-3x, not measured here: no such CPU
was at hand) and on GPUs with bf16.
torch is imported only by the functions that need it.
"""

from __future__ import annotations

import contextlib
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from recoseg_cli.errors import InputError

if TYPE_CHECKING:
    import torch


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver is loaded (without importing torch): with none, ``auto`` can only mean the CPU."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def runs_on_cpu(spec: str) -> bool:
    """Whether a ``--device`` value means the CPU, decided without importing torch."""
    return spec == "cpu" or (spec == "auto" and not nvidia_gpu_present())


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:i``; auto picks CUDA when available."""
    import torch

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
    """Whether the hardware computes in bf16 at all (the benchmark times it there)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether the CPU reports AMX tiles for bf16 (Linux's /proc/cpuinfo flag ``amx_bf16``)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 autocast is faster than fp32 here: a GPU with bf16, or a CPU with AMX."""
    if device.type == "cpu" and not cpu_has_amx():
        return False
    return bf16_supported(device)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` when enabled and faster there (``bf16_pays``), otherwise a no-op context."""
    if enabled and bf16_pays(device):
        import torch

        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device | str, requested: int | None = None) -> int:
    """Slices per network call: ``requested``, else 8 on CPU (small batches stay in cache: 20-35% faster than 32
    for the bundled networks on a 2-core Xeon, fp32) and 64 on GPU."""
    return requested or (64 if str(device).startswith("cuda") else 8)


def precision_name(device: torch.device, enabled: bool = True) -> str:
    return "bf16" if enabled and bf16_pays(device) else "fp32"


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), with its bf16 support (AMX, AVX512-BF16) noted."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                "unknown CPU")
    bf16 = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in info]
    return f"{name} ({', '.join(bf16) if bf16 else 'no AVX512-BF16'})"


def machine_description() -> str:
    """CPU model and cores, GPU if any, and the torch version: the context of every timing and score."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu_model()}, {cores} cores{gpu}, torch {torch.__version__}"
