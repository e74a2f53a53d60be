"""Checks on output paths before any work starts."""

from __future__ import annotations

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
    blocking = next((parent for parent in path.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError(f"{blocking}: is a file, so {path} cannot be written below it")


def check_nifti_output(path: Path, overwrite: bool) -> None:
    """``check_output_file`` plus a .nii or .nii.gz name (nibabel picks the format from it)."""
    check_output_file(path, overwrite)
    if not Path(path).name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: output name must end in .nii.gz or .nii")


def check_output_folder(path: Path) -> None:
    """Refuse a folder output that is an existing file."""
    if Path(path).exists() and not Path(path).is_dir():
        raise InputError(f"{path}: is a file, expected a folder")
