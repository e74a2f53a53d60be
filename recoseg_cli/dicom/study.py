"""One DICOM study read from a folder (any depth, any file names, non-DICOM files ignored): its MR image series,
each with the tags that tell its role and its slices in spatial order (``recoseg[dicom]``: pydicom)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recoseg_cli.errors import InputError

FEWEST_SLICES = 10
"""Series with fewer slices (localizers, single slices) are skipped: too thin to register."""

SPACING_TOLERANCE_MM = 0.01
"""Largest deviation of a gap between slice positions from the series' spacing."""

STACK_TOLERANCE_MM = 0.05
"""Largest in-plane offset between slice positions (more is a gantry tilt or a sheared stack)."""


def pydicom_module():
    """pydicom, or one line naming the extra that installs it."""
    try:
        import pydicom
    except ImportError:
        raise InputError("DICOM input needs pydicom: pip install 'recoseg[dicom]'") from None
    return pydicom


@dataclass
class Series:
    """An image series: its tags and its files, sorted along the slice normal once ``geometry`` has run."""

    uid: str
    number: int
    description: str
    text: str
    """Series and protocol descriptions and sequence names, lower case: what the role rules read."""
    image_type: tuple[str, ...]
    modality: str
    contrast_agent: str
    repetition_ms: float | None
    echo_ms: float | None
    inversion_ms: float | None
    files: list[Path] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    orientations: list[np.ndarray] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.number} ({self.description or 'no description'})"

    def skip_reason(self) -> str | None:
        """Why this series cannot be one of the four sequences (None when it can)."""
        if self.modality != "MR":
            return f"modality {self.modality or 'missing'}"
        if "LOCALIZER" in self.image_type or re.search(r"locali[sz]er|scout|survey|3.?plane", self.text):
            return "localizer"
        if "DERIVED" in self.image_type:
            return "derived images"
        if len(self.files) < FEWEST_SLICES:
            return f"{len(self.files)} slice(s)"
        return None

    def sorted_files(self) -> list[Path]:
        """The files in order along the slice normal; refuses tilted, uneven or incomplete stacks in one line."""
        where = f"series {self.label()}"
        if any(not np.allclose(o, self.orientations[0], atol=1e-4) for o in self.orientations):
            raise InputError(f"{where}: its images have several orientations")
        row, column = self.orientations[0][:3], self.orientations[0][3:]
        normal = np.cross(row, column)
        along = np.array([p @ normal for p in self.positions])
        order = np.argsort(along)
        steps = np.diff(along[order])
        if np.any(steps < SPACING_TOLERANCE_MM):
            raise InputError(f"{where}: several images at one position (echoes or time points in one series)")
        spacing = float(np.median(steps))
        if np.max(np.abs(steps - spacing)) > SPACING_TOLERANCE_MM:
            gap = float(steps[np.argmax(np.abs(steps - spacing))])
            raise InputError(f"{where}: uneven slice spacing ({spacing:.2f} mm, but one gap of {gap:.2f} mm): "
                             "missing slices?")
        offsets = np.array([p - p @ normal * normal for p in self.positions])
        if np.max(np.linalg.norm(offsets - offsets[0], axis=1)) > STACK_TOLERANCE_MM:
            raise InputError(f"{where}: slices are not stacked along their normal (gantry tilt): not supported")
        return [self.files[i] for i in order]


@dataclass
class Study:
    folder: Path
    patient_id: str
    study_uid: str
    patient_name: str
    series: list[Series]
    warnings: list[str]

    def case_id(self) -> str:
        """A file-safe name: the patient id, else the study's UID."""
        return _safe(self.patient_id or self.study_uid) or self.folder.name


def _number(dataset, keyword: str) -> float | None:
    value = dataset.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def is_dicom_folder(folder: Path, sample: int = 50) -> bool:
    """Whether ``folder`` (at any depth) holds DICOM files and no NIfTI image."""
    if any(folder.rglob("*.nii")) or any(folder.rglob("*.nii.gz")):
        return False
    for count, path in enumerate(p for p in folder.rglob("*") if p.is_file()):
        if count >= sample:
            return False
        with open(path, "rb") as handle:
            if handle.read(132)[128:] == b"DICM":
                return True
    return False


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def study_folders(root: Path) -> list[tuple[Path, str | None]]:
    """``[(root, None)]`` when ``root`` holds one study; for a folder of studies, each sub-folder holding one
    study with its name (the patient id, or patient id and study date where a patient has several studies,
    else the folder's name). Studies mixed within one folder are refused by ``read_study``, naming them."""
    pydicom = pydicom_module()
    owners: dict[Path, set[tuple[str, str, str]]] = defaultdict(set)
    for path in (p for p in Path(root).rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue  # read_study names unreadable files
        if "StudyInstanceUID" in header:
            top = Path(root) / path.relative_to(root).parts[0] if path.parent != Path(root) else Path(root)
            owners[top].add((str(header.get("PatientID", "")), str(header.StudyInstanceUID),
                                          str(header.get("StudyDate", ""))))
    studies = {key for keys in owners.values() for key in keys}
    if len(studies) != len(owners) or Path(root) in owners or any(len(keys) > 1 for keys in owners.values()):
        return [(Path(root), None)]
    patients = [patient for patient, _, _ in studies]
    names = []
    for folder, keys in sorted(owners.items()):
        patient, _, date = next(iter(keys))
        name = _safe(patient) if patients.count(patient) == 1 else _safe(f"{patient}_{date}")
        names.append((folder, name))
    if len({name for _, name in names}) < len(names) or not all(name for _, name in names):
        return [(folder, folder.name) for folder, _ in names]
    return names


def read_study(folder: Path) -> Study:
    """The study in ``folder``; a folder mixing patients or studies is refused, naming them; unreadable files are
    skipped with a warning (a needed series then shows its missing slice)."""
    pydicom = pydicom_module()
    series: dict[str, Series] = {}
    patients, studies, warnings = defaultdict(set), defaultdict(set), []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # not DICOM: ignored
        except Exception as error:  # a DICOM file that cannot be parsed
            warnings.append(f"{path}: unreadable DICOM file skipped ({error.__class__.__name__})")
            continue
        if "SOPInstanceUID" not in dataset and "DirectoryRecordSequence" not in dataset:
            warnings.append(f"{path}: incomplete DICOM file skipped (no SOP Instance UID)")
            continue
        if "ImagePositionPatient" not in dataset or "SeriesInstanceUID" not in dataset:
            continue  # not an image of a volume (DICOMDIR, reports, presentation states)
        patients[str(dataset.get("PatientID", ""))].add(str(dataset.get("PatientName", "")))
        studies[str(dataset.get("StudyInstanceUID", ""))].add(str(dataset.get("StudyDescription", "")))
        uid = str(dataset.SeriesInstanceUID)
        if uid not in series:
            texts = (dataset.get(k, "") for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
            series[uid] = Series(
                uid=uid, number=int(dataset.get("SeriesNumber") or 0),
                description=str(dataset.get("SeriesDescription", "")).strip(),
                text=" ".join(str(t) for t in texts).lower(),
                image_type=tuple(str(v).upper() for v in dataset.get("ImageType", [])),
                modality=str(dataset.get("Modality", "")), contrast_agent=str(dataset.get("ContrastBolusAgent", "")),
                repetition_ms=_number(dataset, "RepetitionTime"), echo_ms=_number(dataset, "EchoTime"),
                inversion_ms=_number(dataset, "InversionTime"))
        series[uid].files.append(path)
        series[uid].positions.append(np.array([float(v) for v in dataset.ImagePositionPatient]))
        series[uid].orientations.append(np.array([float(v) for v in dataset.ImageOrientationPatient]))
    if not series:
        raise InputError(f"{folder}: no DICOM image series found")
    if len(patients) > 1:
        raise InputError(f"{folder}: holds {len(patients)} patients ({', '.join(sorted(patients))}); give one "
                         "study per folder")
    if len(studies) > 1:
        raise InputError(f"{folder}: holds {len(studies)} studies of one patient ({', '.join(sorted(studies))}); "
                         "give one study per folder")
    patient_id = next(iter(patients))
    return Study(Path(folder), patient_id, next(iter(studies)), ", ".join(sorted(patients[patient_id])),
                 sorted(series.values(), key=lambda s: s.number), warnings)
