"""Calibration of ``recoseg_cli.prepare.faults``: the anatomy match of each sequence with T1ce, on good exams and on
exams with a fault. ``python fault_statistics.py CASES THICK OUT.json [N]``

- BraTS-ready: the 1 mm co-registered cases of CASES (FLAIR, T1, T2 against T1ce, brain = non-zero voxels);
- thick-slice exams: the prepared exams of ``make_thick_exams.py`` (THICK/prepared), as ``prepare_exam`` registered them;
- another patient's FLAIR: each thick exam's T1ce with the next case's FLAIR, registered as ``prepare_exam``
  does;
- a mirrored T2: each thick exam's T2 with its voxels flipped left-right under the same header, registered;
- the shipped check on each clean thick exam (the first N): ``prepare_exam``'s anatomy matches (as is and mirrored)
  and faults.
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.prepare.exam import prepare_exam
from recoseg_cli.prepare.faults import mirrored, structure_matches
from recoseg_cli.prepare.grid import world_grid
from recoseg_cli.prepare.registration import RigidRegistrator


def array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path), sitk.sitkFloat32))


def registered_match(t1ce: sitk.Image, moving: sitk.Image, brain: np.ndarray) -> float:
    """The anatomy match of ``moving`` registered to ``t1ce`` and resampled as ``prepare_exam`` does."""
    grid = world_grid(t1ce, 1.0)
    transform, _ = RigidRegistrator().register(t1ce, moving, "moving")
    resampled = sitk.Resample(moving, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    reference = sitk.Resample(t1ce, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return structure_matches(sitk.GetArrayFromImage(reference), {"moving": sitk.GetArrayFromImage(resampled)},
                             brain)["moving"]


def main(cases: Path, thick: Path, out: Path, limit: int | None = None) -> None:
    found = json.loads(out.read_text()) if out.is_file() else {"brats_ready": {}, "thick": {}, "other_patient": {},
                                                               "mirrored_t2": {}}
    names = sorted(p.name for p in (thick / "prepared").iterdir() if (p / "preparation.json").is_file())
    for name in sorted(p.name for p in cases.iterdir() if p.is_dir()):
        if name not in found["brats_ready"]:
            images = {m: array(cases / name / f"{name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")}
            brain = np.any([v != 0 for v in images.values()], axis=0)
            matches = structure_matches(images["t1ce"], {m: images[m] for m in ("flair", "t1", "t2")}, brain)
            found["brats_ready"][name] = {m: round(v, 4) for m, v in matches.items()}
    for i, name in enumerate(names):
        prepared = thick / "prepared" / name
        brain = array(prepared / f"{name}_brainmask.nii.gz") > 0
        if name not in found["thick"]:
            matches = structure_matches(array(prepared / f"{name}_t1ce.nii.gz"),
                                        {m: array(prepared / f"{name}_{m}.nii.gz") for m in ("flair", "t1", "t2")},
                                        brain)
            found["thick"][name] = {m: round(v, 4) for m, v in matches.items()}
        if name in found["mirrored_t2"]:
            continue
        exam, other = thick / "exams" / name, names[(i + 1) % len(names)]
        t1ce = sitk.ReadImage(str(exam / f"{name}_t1ce.nii.gz"), sitk.sitkFloat32)
        flair = sitk.ReadImage(str(thick / "exams" / other / f"{other}_flair.nii.gz"), sitk.sitkFloat32)
        t2 = sitk.ReadImage(str(exam / f"{name}_t2.nii.gz"), sitk.sitkFloat32)
        found["other_patient"][name] = round(registered_match(t1ce, flair, brain), 4)
        found["mirrored_t2"][name] = round(registered_match(t1ce, mirrored(t2), brain), 4)
        write_json(out, found)
        print(name, found["thick"][name], found["other_patient"][name], found["mirrored_t2"][name], flush=True)
    write_json(out, found)
    checked = found.setdefault("prepared_checks", {})
    for name in [n for n in names if n not in checked][:limit]:
        with tempfile.TemporaryDirectory() as folder:
            report = prepare_exam(discover_patient(thick / "exams" / name), Path(folder)).report
        checked[name] = {"anatomy_match": report["anatomy_match"], "faults": report["faults"]}
        write_json(out, found)
        print(name, checked[name], flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
