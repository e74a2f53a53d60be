"""The command's process: the allocator settings and the fast exit of ``console_main``."""

import platform
import subprocess
import sys

import pytest

MAPPED_WHILE_ALIVE = """
import ctypes, sys
import numpy as np
from recoseg_cli.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
activation = np.ones((8, 16, 240, 240), np.float32)  # 29 MB, like a batch of network activations
print(libc.mallinfo2().hblkhd - before >= activation.nbytes)
"""


LIBC, LIBC_VERSION = platform.libc_ver()


@pytest.mark.skipif(LIBC != "glibc" or tuple(map(int, LIBC_VERSION.split(".")[:2])) < (2, 33),
                    reason="glibc's allocator, with mallinfo2 (2.33 and later)")
def test_network_sized_blocks_come_from_the_reusable_heap_once_tuned():
    def mapped(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", MAPPED_WHILE_ALIVE, mode], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert mapped("default") == "True"  # glibc maps a fresh block for it, to be unmapped when freed
    assert mapped("tuned") == "False"


def test_the_program_exits_with_mains_codes_and_flushed_output(tmp_path):
    def program(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "recoseg_cli", *args], capture_output=True, text=True,
                              timeout=120)

    version = program("--version")
    assert version.returncode == 0 and version.stdout.startswith("recoseg ")
    missing = program("segment", str(tmp_path / "missing"), "-o", str(tmp_path / "mask.nii.gz"))
    assert missing.returncode == 2 and missing.stderr == f"error: {tmp_path / 'missing'}: no such folder\n"
    usage = program("segment", str(tmp_path), "-o", str(tmp_path / "mask.nii.gz"), "--threshold", "2")
    assert usage.returncode == 2 and "Invalid value for '--threshold'" in usage.stderr


def test_large_arrays_are_no_longer_advised_to_huge_pages():
    check = ("import numpy as np\nfrom recoseg_cli.allocator import small_pages_for_arrays\n"
             "core = getattr(np, '_core', None) or np.core\n"
             "before = core.multiarray._set_madvise_hugepage(True)\n"  # returns the setting it replaces
             "assert small_pages_for_arrays()\n"
             "print(before, core.multiarray._set_madvise_hugepage(False))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
