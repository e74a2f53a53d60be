"""Thick-slice exams of BraTS-ready cases, prepared once: ``python make_thick_exams.py CASES OUT``.

For each case folder of CASES: ``OUT/exams/<case>/`` holds its four sequences on axial grids 5-6 mm thick, each with a
head position of its own (``clinical_exam.THICK_GRIDS``), and the ground truth on the T1ce's grid as ``<case>_seg``;
``OUT/prepared/<case>/`` the exam as ``recoseg_cli.prepare`` makes it (registered to T1ce, 1 mm, brain mask).
Nothing is redone that exists.
"""

import sys
from pathlib import Path

from recoseg_cli.data.clinical_exam import THICK_GRIDS, simulate_exam
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.prepare.exam import prepare_exam


def main(cases: Path, out: Path) -> None:
    for case in sorted(p for p in cases.iterdir() if p.is_dir()):
        exam, prepared = out / "exams" / case.name, out / "prepared" / case.name
        if not (prepared / "preparation.json").is_file():
            simulate_exam(case, exam, THICK_GRIDS)
            (exam / f"{case.name}_truth_t1ce_grid.nii.gz").replace(exam / f"{case.name}_seg.nii.gz")
            prepare_exam(discover_patient(exam), prepared)
        print(case.name, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
