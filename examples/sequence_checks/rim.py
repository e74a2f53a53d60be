"""The sequence checks' statistics with the edge of the signal region left out by 0, 2, 3 or 5 voxels
(``checks.RIM_VOXELS``), on clean and swapped (T1<->T1ce and FLAIR<->T2 at once) versions of each case.

    python examples/sequence_checks/rim.py FOLDER OUT.json

FOLDER holds case folders ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` (and ``<case>_brainmask.nii.gz`` for
prepared exams; otherwise the brain is the non-zero voxels), e.g. the real cases or ``thick38/prepared``.
"""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from recoseg_cli.checks import SWAP_REFUSAL, sequence_statistics

RIMS = (0, 2, 3, 5)


def main(root: Path, out: Path) -> None:
    found = {}
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        name = case.name
        images = {m: np.asarray(nib.load(str(case / f"{name}_{m}.nii.gz")).dataobj, dtype=np.float32)
                  for m in ("flair", "t1", "t1ce", "t2")}
        mask = case / f"{name}_brainmask.nii.gz"
        brain = (np.asarray(nib.load(str(mask)).dataobj) > 0 if mask.exists()
                 else np.any([v != 0 for v in images.values()], axis=0))
        swapped = dict(images, flair=images["t2"], t2=images["flair"], t1=images["t1ce"], t1ce=images["t1"])
        found[name] = {"clean": {rim: sequence_statistics(images, brain, rim) for rim in RIMS},
                       "swapped": {rim: sequence_statistics(swapped, brain, rim) for rim in RIMS}}
    out.write_text(json.dumps(found, indent=1))
    for rim in RIMS:
        for pair in ("t1/t1ce", "flair/t2"):
            row = []
            for version in ("clean", "swapped"):
                values = [case[version][rim][pair] for case in found.values()]
                row.append(f"{version}: {sum(v < SWAP_REFUSAL for v in values)} refused, "
                           f"{sum(SWAP_REFUSAL <= v < 0 for v in values)} warned, {sum(v >= 0 for v in values)} passed")
            print(f"rim {rim}, {pair}: " + "; ".join(row))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
