"""Provenance of a run for its report: package versions and peak memory."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import nibabel
import numpy as np
import torch

from recoseg_cli import __version__


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
    return {"recoseg": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "nibabel": nibabel.__version__, "python": platform.python_version()}
