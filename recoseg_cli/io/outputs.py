"""Output files: checks on their paths before any work starts, and atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from recoseg_cli.errors import InputError


def check_output_file(path: Path | None, overwrite: bool) -> None:
    """Refuse a file output that is a folder, lies below a file, or exists without ``overwrite``.

    Missing folders above it are fine: they are created when the file is written.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file path")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: already exists; use --overwrite to replace it")
    blocking = next((parent for parent in path.absolute().parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError(f"{blocking}: is a file, so {path} cannot be written below it")
    if blocking is not None:
        check_writable(blocking, path)


def check_writable(folder: Path, path: Path) -> None:
    """Refuse ``path`` when ``folder`` (its nearest existing folder) does not take new files, with the reason."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot create files in {folder} ({exc.strerror})") from None


def check_nifti_output(path: Path, overwrite: bool) -> None:
    """``check_output_file`` plus a .nii or .nii.gz name (nibabel picks the format from it)."""
    check_output_file(path, overwrite)
    if not Path(path).name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: output name must end in .nii.gz or .nii")


def check_output_folder(path: Path) -> None:
    """Refuse a folder output that is an existing file, or that cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file, expected a folder")
    nearest = next(folder for folder in (path.absolute(), *path.absolute().parents) if folder.exists())
    if not nearest.is_dir():
        raise InputError(f"{nearest}: is a file, so {path} cannot be created below it")
    check_writable(nearest, path)


def write_atomically(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file in the target folder (created if missing), then move it
    into place."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file path")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=folder)
    except OSError as exc:
        raise InputError(f"{path}: output folder is not writable ({exc.strerror})") from None
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
