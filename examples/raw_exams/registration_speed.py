"""Registration with the moving image as it is against binned to 2 mm first (``registration.MOVING_SPACING_MM``):
errors against the true motion and seconds, on exams simulated from BraTS-ready cases.

    python examples/raw_exams/registration_speed.py thick|clinical OUT.json CASE_FOLDER [CASE_FOLDER ...]

``thick``: ``clinical_exam.THICK_GRIDS`` (all four sequences 5-6 mm axial); ``clinical``: ``CLINICAL_GRIDS`` (T1 1 mm
sagittal, T2 0.5 mm in plane, FLAIR 5.5 mm). Errors are ``registration_errors_mm`` (mean, largest; mm).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from recoseg_cli.data.clinical_exam import CLINICAL_GRIDS, THICK_GRIDS, registration_errors_mm, simulate_exam
from recoseg_cli.io.json_io import write_json
from recoseg_cli.prepare.registration import MOVING_SPACING_MM, RigidRegistrator

VARIANTS = {"as it is": RigidRegistrator(moving_spacing_mm=0.0),
            f"binned to {MOVING_SPACING_MM:g} mm": RigidRegistrator()}


def main(grids: str, out: Path, cases: list[Path]) -> None:
    found = json.loads(out.read_text()) if out.is_file() else {}
    for folder in cases:
        case = folder.name
        with tempfile.TemporaryDirectory() as work:
            exam = Path(work) / "exam"
            motions = simulate_exam(folder, exam, THICK_GRIDS if grids == "thick" else CLINICAL_GRIDS)
            t1ce = sitk.ReadImage(str(exam / f"{case}_t1ce.nii.gz"), sitk.sitkFloat32)
            row = {}
            for name, registrator in VARIANTS.items():
                transforms = Path(work) / name.replace(" ", "_")
                transforms.mkdir()
                seconds = {}
                for role in ("flair", "t1", "t2"):
                    moving = sitk.ReadImage(str(exam / f"{case}_{role}.nii.gz"), sitk.sitkFloat32)
                    start = time.perf_counter()
                    transform, _ = registrator.register(t1ce, moving, role)
                    seconds[role] = round(time.perf_counter() - start, 2)
                    sitk.WriteTransform(transform, str(transforms / f"{case}_{role}_to_t1ce.tfm"))
                row[name] = {"errors_mm": registration_errors_mm(transforms, exam, case, motions),
                             "seconds": seconds}
        found.setdefault(grids, {})[case] = row
        write_json(out, found)
        print(case, json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
