"""``recoseg prepare``: a raw exam co-registered, resampled to 1 mm and skull-stripped, written with BraTS names."""

from __future__ import annotations

from pathlib import Path

from recoseg_cli.console import console, progress_bar, warn
from recoseg_cli.devices import resolve_device
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.outputs import check_output_file, check_output_folder
from recoseg_cli.overlay import check_picture_name
from recoseg_cli.prepare.exam import prepare_exam
from recoseg_cli.prepare.qc import qc_figure, write_qc


def run_prepare(patient: Patient, output: Path, qc: Path | None, overwrite: bool, quiet: bool, device: str = "auto",
                bf16: bool = True) -> None:
    """Prepare one exam into ``output`` (an empty or new folder unless ``overwrite``), with its QC picture."""
    check_output_folder(output)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise InputError(f"{output}: is not empty; use --overwrite to write into it")
    if qc is not None:
        check_output_file(qc, overwrite)
        check_picture_name(qc)
    with progress_bar(quiet) as progress:
        progress.add_task(f"{patient.case_id}: preparing", total=None, info="")
        exam = prepare_exam(patient, output, device=resolve_device(device), bf16=bf16)
        if qc is not None:
            write_qc(qc, qc_figure(exam))
    for message in exam.report["warnings"]:
        warn(f"{patient.case_id}: {message}")
    if not quiet:
        seconds = exam.report["seconds"]
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in exam.report["registration_metric"].items())
        console.print(f"{patient.case_id}: prepared in {sum(seconds.values()):.1f} s (registration metric {metrics}; "
                      f"brain {exam.report['brain_ml'] / 1000:.2f} L, {exam.report['brain_extraction']}) -> {output}",
                      soft_wrap=True)
