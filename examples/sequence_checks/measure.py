"""The sequence checks on a folder of real cases: false alarms on the cases as they are, and what each swap of
T1 with T1ce and of FLAIR with T2 gives.

    python examples/sequence_checks/measure.py REAL_CASES_FOLDER
"""

import json
import sys
from pathlib import Path

from recoseg_cli.checks import SWAP_REFUSAL, sequence_statistics
from recoseg_cli.constants import MODALITIES
from recoseg_cli.io.discovery import discover_patient, find_patient_folders
from recoseg_cli.pipeline import load_patient
from recoseg_cli.preprocess import brain_mask

PAIRS = (("t1", "t1ce"), ("flair", "t2"))


def verdict(value: float) -> str:
    return "refused" if value < SWAP_REFUSAL else "warned" if value < 0 else "passed"


def main(root: Path) -> None:
    rows = []
    for folder in find_patient_folders(root):
        volumes = load_patient(discover_patient(folder), MODALITIES)
        brain = brain_mask(list(volumes.images.values()))
        row = {"case": folder.name, "as given": sequence_statistics(volumes.images, brain)}
        for first, second in PAIRS:
            swapped = {**volumes.images, first: volumes.images[second], second: volumes.images[first]}
            row[f"{first}<->{second}"] = sequence_statistics(swapped, brain)
        rows.append(row)
        print(json.dumps(row), flush=True)
    given = [min(r["as given"].values()) for r in rows]
    print(f"as given: {sum(v < 0 for v in given)} false alarms in {len(rows)} cases (smallest statistic "
          f"{min(given):.3f})")
    for first, second in PAIRS:
        verdicts = [verdict(r[f"{first}<->{second}"][f"{first}/{second}"]) for r in rows]
        print(f"{first} swapped with {second}: " + ", ".join(f"{verdicts.count(k)} {k}"
                                                               for k in ("refused", "warned", "passed")))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
