"""DICOM studies made from NIfTI exams, as an archive exports them: one MR Image Storage file per slice, four
series plus a localizer, files without extension in shuffled sub-folders. For testing and measuring
``recoseg_cli.dicom``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SERIES_TAGS = {
    "t1": dict(number=3, description="T1 SE AX", repetition_ms=550.0, echo_ms=12.0),
    "t2": dict(number=4, description="T2 TSE AX", repetition_ms=4000.0, echo_ms=100.0),
    "flair": dict(number=5, description="FLAIR AX", repetition_ms=9000.0, echo_ms=120.0, inversion_ms=2500.0),
    "t1ce": dict(number=7, description="T1 MPRAGE POST", repetition_ms=2000.0, echo_ms=3.0, inversion_ms=900.0,
                 contrast="GADOBUTROL"),
}
"""Series number, description and timing a scanner would give each sequence."""


@dataclass(frozen=True)
class StudyIds:
    patient_id: str = "RECOSEG-TEST-01"
    patient_name: str = "Test^Patient"
    study_uid: str | None = None


def _dataset(image: sitk.Image, k: int, tags: dict, series_uid: str, frame_uid: str, ids: StudyIds,
             study_uid: str, image_type: list[str]):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    pixels = sitk.GetArrayViewFromImage(image)[k].astype(np.int16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = ids.patient_id, ids.patient_name, "", "O"
    ds.StudyInstanceUID, ds.StudyID, ds.StudyDate, ds.StudyTime = study_uid, "1", "20260101", "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyDescription = "", "", "MR HEAD"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, tags["number"], tags["description"]
    ds.Modality, ds.Manufacturer, ds.FrameOfReferenceUID = "MR", "recoseg test", frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageType = image_type
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
    ds.RepetitionTime, ds.EchoTime = tags.get("repetition_ms", 500.0), tags.get("echo_ms", 10.0)
    if "inversion_ms" in tags:
        ds.InversionTime = tags["inversion_ms"]
    if "contrast" in tags:
        ds.ContrastBolusAgent = tags["contrast"]
    ds.EchoTrainLength, ds.MagneticFieldStrength = 1, 3.0
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
    ds.ImageOrientationPatient = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    spacing = image.GetSpacing()
    ds.PixelSpacing, ds.SliceThickness = [float(spacing[1]), float(spacing[0])], float(spacing[2])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = 0.0, 1.0
    ds.PixelData = pixels.tobytes()
    return ds


def write_study(exam: dict[str, Path], folder: Path, ids: StudyIds = StudyIds(), seed: int = 0,
                localizer: bool = True, tags: dict[str, dict] = SERIES_TAGS) -> dict[str, str]:
    """Write the exam's sequences (role -> NIfTI) as one DICOM study in ``folder``; returns each role's series
    UID. Files are named by random hex digits, spread over three sub-folders, with a text file among them."""
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    study_uid, frame_uid = ids.study_uid or generate_uid(), generate_uid()
    datasets, uids = [], {}
    for role, path in exam.items():
        image = sitk.ReadImage(str(path))
        uids[role] = generate_uid()
        datasets += [_dataset(image, k, tags[role], uids[role], frame_uid, ids, study_uid,
                              ["ORIGINAL", "PRIMARY", "M", "NONE"]) for k in range(image.GetSize()[2])]
    if localizer:
        source = sitk.ReadImage(str(next(iter(exam.values()))))
        scout = source[:, :, source.GetSize()[2] // 2 - 1:source.GetSize()[2] // 2 + 2]
        scout_uid = generate_uid()
        datasets += [_dataset(scout, k, dict(number=1, description="3-plane localizer"), scout_uid, frame_uid, ids,
                              study_uid, ["ORIGINAL", "PRIMARY", "LOCALIZER"]) for k in range(3)]
    for ds in datasets:
        target = folder / f"{rng.integers(3):02d}" / f"{rng.integers(16 ** 12):012x}"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    (folder / "README.txt").write_text("exported study\n")
    return uids
