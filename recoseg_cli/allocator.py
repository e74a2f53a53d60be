"""Memory settings for a command's process: freed network activations stay for reuse, and large arrays take
ordinary pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""glibc's ``mallopt`` parameters (malloc.h)."""
MMAP_THRESHOLD_MAX = 32 << 20
"""The largest ``M_MMAP_THRESHOLD`` glibc accepts on 64-bit systems."""


def keep_freed_memory() -> bool:
    """On glibc, serve blocks up to 32 MB from the heap and keep freed ones for reuse, instead of mapping each
    network activation afresh and faulting its pages in on every call (glibc's defaults, until its adaptive
    threshold catches up). Returns whether the settings took; a no-op on other C libraries."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
        return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    except (OSError, AttributeError):
        return False


def small_pages_for_arrays() -> bool:
    """Stop numpy advising the kernel to back large arrays with transparent huge pages. Where the kernel compacts
    memory to serve such advice at once (``/sys/kernel/mm/transparent_hugepage/defrag`` set to ``madvise``, as on
    Ubuntu), each new volume-sized array can stall on compaction: a `segment` of the demo patient took 7.5 s with
    the advice and 5.2 s without (2-core Xeon, examples/speed/). Returns whether the setting took."""
    core = getattr(np, "_core", None) or np.core
    setter = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        return False
    setter(False)
    return True
