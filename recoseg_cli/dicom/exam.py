"""A DICOM study as a raw exam: roles chosen, series written as NIfTI into a scratch folder, and the record of
the choice for the report."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from recoseg_cli.dicom.roles import assign_roles
from recoseg_cli.dicom.study import Series, Study, read_study
from recoseg_cli.dicom.volume import write_exam
from recoseg_cli.io.discovery import Patient


def report_details(folder: Path, roles: dict[str, Series], study: Study) -> dict:
    """What the report keeps of the study: its ids and each role's series, as ``dicom`` and ``inputs``."""
    record = {"patient_id": study.patient_id, "study_instance_uid": study.study_uid,
              "series": {role: {"number": s.number, "description": s.description, "uid": s.uid,
                                "slices": len(s.files)} for role, s in roles.items()},
              "warnings": study.warnings}
    return {"dicom": record, "inputs": {role: f"{folder} series {s.label()}" for role, s in roles.items()}}


@contextlib.contextmanager
def study_as_exam(folder: Path, choices: dict[str, str | None] | None = None, case_id: str | None = None,
                  required: tuple[str, ...] = ()):
    """Yield (patient, roles, study) for the DICOM study in ``folder`` (``required`` sequences refused when absent);
    the NIfTI files live until the block ends."""
    study = read_study(folder)
    roles = assign_roles(study, choices or {}, required)
    with tempfile.TemporaryDirectory() as scratch:
        patient: Patient = write_exam(roles, Path(scratch) / "exam", case_id or study.case_id())
        yield patient, roles, study
