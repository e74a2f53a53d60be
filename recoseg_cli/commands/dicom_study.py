"""``recoseg segment STUDY_DIR``: a DICOM study segmented as a raw exam, its mask on the grid of its reference
series (T1ce, else FLAIR, T2, T1), and optionally a DICOM SEG."""

from __future__ import annotations

from pathlib import Path

from recoseg_cli.commands.segment import SegmentOptions, segment_one
from recoseg_cli.console import console, warn
from recoseg_cli.dicom.exam import report_details, study_as_exam
from recoseg_cli.io.outputs import check_output_file
from recoseg_cli.prepare.exam import reference_sequence


def segment_study(folder: Path, output: Path, options: SegmentOptions, choices: dict[str, str | None],
                  dicom_seg: Path | None = None, case_id: str | None = None) -> dict:
    """Segment the study in ``folder`` into the NIfTI ``output`` (and ``dicom_seg``); returns the report."""
    if dicom_seg is not None:
        check_output_file(dicom_seg, options.overwrite)
        from recoseg_cli.dicom.segmentation import write_segmentation  # fails early when highdicom is missing
    segmenter = options.segmenter()
    with study_as_exam(folder, choices, case_id, segmenter.exam_requirements) as (patient, roles, study):
        for message in study.warnings:
            warn(message)
        if not options.quiet:
            console.print(f"{patient.case_id}: DICOM study, " + ", ".join(
                f"{role.upper()} = series {series.label()}" for role, series in roles.items()), soft_wrap=True)
        report = segment_one(patient, output, options, report_details(folder, roles, study), segmenter)
        if dicom_seg is not None:
            write_segmentation(output, roles[reference_sequence(roles)], dicom_seg)
            if not options.quiet:
                console.print(f"{patient.case_id}: DICOM SEG -> {dicom_seg}", soft_wrap=True)
    return report
