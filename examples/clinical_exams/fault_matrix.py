"""The shipped fault check (``prepare_exam``) on every thick-slice exam, clean and with each fault:
``python fault_matrix.py THICK OUT.json``.

THICK is ``make_thick_exams.py``'s output (``THICK/exams/<case>/``). For each case, three exams are prepared:

- ``clean``: the exam as it is;
- ``other_patient_flair``: its FLAIR replaced by the next case's (cases in name order, the last takes the first's);
- ``mirrored_t2``: its T2 with the voxels flipped left-right under the same header (``faults.mirrored``).

Each record holds the anatomy matches (as is, mirrored), the refusals (``faults``), the warnings, the registration
metrics and the seconds of each step. Cases already in OUT are skipped, so the script resumes. At the end, the
matrix: per exam kind, the sequences concerned (all three for clean exams) refused, warned about, or silent.
"""

import json
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.prepare.exam import prepare_exam
from recoseg_cli.prepare.faults import mirrored

SEQUENCES = ("flair", "t1", "t1ce", "t2")
CONCERNED = {"clean": ("flair", "t1", "t2"), "other_patient_flair": ("flair",), "mirrored_t2": ("t2",)}
"""Per exam kind, the sequences its flags are counted for (on a clean exam, any flag is a false alarm)."""


def faulty_exam(exam: Path, case: str, folder: Path, replace: dict[str, Path | sitk.Image]) -> Path:
    """A copy of ``exam`` (links) in ``folder`` with some sequences replaced by another file or image."""
    folder.mkdir()
    for role in SEQUENCES:
        target = folder / f"{case}_{role}.nii.gz"
        source = replace.get(role, exam / f"{case}_{role}.nii.gz")
        if isinstance(source, sitk.Image):
            sitk.WriteImage(source, str(target))
        else:
            target.symlink_to(Path(source).resolve())
    return folder


def check(exam: Path) -> dict:
    with tempfile.TemporaryDirectory() as prepared:
        report = prepare_exam(discover_patient(exam), Path(prepared)).report
    return {key: report[key] for key in ("anatomy_match", "faults", "warnings", "registration_metric", "seconds")}


def main(thick: Path, out: Path) -> None:
    found = json.loads(out.read_text()) if out.is_file() else {}
    cases = sorted(p.name for p in (thick / "exams").iterdir() if p.is_dir())
    for i, case in enumerate(cases):
        if case in found:
            continue
        exam, other = thick / "exams" / case, cases[(i + 1) % len(cases)]
        t2 = sitk.ReadImage(str(exam / f"{case}_t2.nii.gz"))
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            found[case] = {
                "clean": check(exam),
                "other_patient_flair": check(faulty_exam(
                    exam, case, work / "other", {"flair": thick / "exams" / other / f"{other}_flair.nii.gz"})),
                "mirrored_t2": check(faulty_exam(exam, case, work / "mirrored", {"t2": mirrored(t2)})),
            }
        write_json(out, found)
        print(case, {kind: (len(r["faults"]), len(r["warnings"])) for kind, r in found[case].items()}, flush=True)


def names_it(messages: list[str], role: str) -> bool:
    return any(f"({role})" in message for message in messages)


def matrix(found: dict) -> str:
    """Per exam kind: the sequences refused, warned about (not refused) and silent; on a clean exam, any flag is a
    false alarm."""
    rows = ["| exams | refused | warned | silent |", "| --- | --- | --- | --- |"]
    for kind, roles in CONCERNED.items():
        refused = warned = silent = 0
        for case in found.values():
            report = case[kind]
            for role in roles:
                is_refused, is_warned = names_it(report["faults"], role), names_it(report["warnings"], role)
                refused += is_refused
                warned += is_warned and not is_refused
                silent += not (is_refused or is_warned)
        rows.append(f"| {kind} | {refused} | {warned} | {silent} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    print(matrix(json.loads(Path(sys.argv[2]).read_text())))
