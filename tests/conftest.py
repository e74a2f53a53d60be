"""Shared fixtures: tiny synthetic patients and NIfTI helpers."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from recoseg_cli.data.synthetic import SyntheticConfig, generate_patient, write_patient

TINY = SyntheticConfig(shape=(48, 48, 32))


@pytest.fixture(scope="session")
def tiny_volumes() -> dict[str, np.ndarray]:
    return generate_patient(3, TINY)


@pytest.fixture()
def tiny_patient(tmp_path: Path, tiny_volumes) -> Path:
    """A BraTS2020-layout patient folder on a 48 x 48 x 32 grid."""
    folder = tmp_path / "Synth_00003"
    write_patient(folder, "Synth_00003", tiny_volumes, TINY.affine)
    return folder


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, str(path))
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""
    from recoseg_cli.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
