"""Provenance of a run for its report: package versions, peak memory and stage timings."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import nibabel
import numpy as np

from recoseg_cli import __version__


def seconds_since_start() -> float | None:
    """Wall seconds since this process started (interpreter start, imports and weights included), from Linux's
    /proc; None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return round(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_gb() -> float | None:
    """Peak resident memory of this process so far, in GiB; None where the platform does not report it.

    Linux: VmHWM, which starts afresh when the program starts (ru_maxrss would keep the peak of the parent
    that forked it); elsewhere ru_maxrss (bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**30 if sys.platform == "darwin" else 2**20), 3)


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on; torch and ONNX Runtime from their installed metadata (reading it
    does not import them)."""
    return {"recoseg": __version__, "torch": installed_version("torch"),
            "onnxruntime": installed_version("onnxruntime"), "numpy": np.__version__,
            "nibabel": nibabel.__version__, "python": platform.python_version()}


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class StageTimer:
    """Seconds per stage (into ``seconds``, a new dict by default), each timed from the end of the one before;
    ``on_stage(name)`` is called as each one ends."""

    def __init__(self, on_stage: Callable[[str], None] | None = None, seconds: dict[str, float] | None = None):
        self.seconds = {} if seconds is None else seconds
        self._clock = time.perf_counter()
        self._on_stage = on_stage

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 3)
        self._clock = now
        if self._on_stage:
            self._on_stage(name)
