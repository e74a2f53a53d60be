"""Checks on output paths before any work starts."""

from __future__ import annotations

from pathlib import Path

from recoseg_cli.errors import InputError


def check_output_file(path: Path | None, overwrite: bool) -> None:
    """Refuse a file output that is a folder, sits in a missing folder, or exists without ``overwrite``."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file path")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: already exists; use --overwrite to replace it")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: output folder does not exist")


def check_nifti_output(path: Path, overwrite: bool) -> None:
    """``check_output_file`` plus a .nii or .nii.gz name (nibabel picks the format from it)."""
    check_output_file(path, overwrite)
    if not Path(path).name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: output name must end in .nii.gz or .nii")


def check_output_folder(path: Path) -> None:
    """Refuse a folder output that is an existing file."""
    if Path(path).exists() and not Path(path).is_dir():
        raise InputError(f"{path}: is a file, expected a folder")
