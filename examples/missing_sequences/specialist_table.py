"""A specialist's table: its Dice on the sets it serves, paired against the any-subset model and the full-set model.

    python specialist_table.py SPECIALIST SPECIALIST_GLOB SUBSET_GLOB REFERENCE_GLOB OUT.md OUT_DICE.json [DEFAULT_GLOB]

SPECIALIST is the set the specialist reads ("flair+t1ce"); SPECIALIST_GLOB names ``score_subsets.py`` outputs of
its cross-validation run scored on that set (``--sets SPECIALIST``), SUBSET_GLOB those of the any-subset run,
REFERENCE_GLOB the full-set model's held-out scores (as for ``subset_table.py``). The specialist serves every set
in ``subset_table.LABELS`` that holds its sequences but not all four (the full-set model's), reading only its
own, so its mask is the same for each. Each row pairs it with the any-subset model on that set and, with
DEFAULT_GLOB (``score_subsets.py`` outputs of the full-set model's run on the incomplete set it takes: no T1ce),
with the full-set model there; the last row with the full-set model on all four. OUT_DICE.json gets the
specialist's mean Dice for every set it serves, as its bundled weights record it (``extra["subset_dice"]``).
"""

import glob
import json
import sys
from pathlib import Path

import numpy as np

from recoseg_cli.constants import MODALITIES
from recoseg_cli.io.json_io import write_json
from recoseg_cli.metrics import paired_difference
from recoseg_cli.regions import REGION_ABBREVIATIONS, REGIONS
from subset_table import LABELS, reference_dice


def dice_by_case(pattern: str, subset: str) -> tuple[dict[str, dict[str, float]], dict]:
    """Per case and region, the Dice of the files' ``subset`` scores (cases scored on it), and the post-processing
    they were scored with."""
    files = [json.loads(Path(path).read_text()) for path in sorted(glob.glob(pattern))]
    if not files:
        raise SystemExit(f"{pattern}: no files")
    return ({case["case_id"]: {r: case["subsets"][subset]["metrics"][r]["dice"] for r in REGIONS}
             for f in files for case in f["cases"] if subset in case["subsets"]}, files[0]["postprocess"])


def row(label: str, ours: dict, theirs: dict, ids: list[str]) -> str:
    """One table row over the cases both scored."""
    ids = [i for i in ids if i in theirs]
    cells = []
    for region in REGIONS:
        a, b = [ours[i][region] for i in ids], [theirs[i][region] for i in ids]
        diff = paired_difference(a, b)
        cells.append(f"{np.mean(a):.3f} | {np.mean(b):.3f} | {diff['mean']:+.3f} [{diff['ci_low']:+.3f}, "
                     f"{diff['ci_high']:+.3f}]")
    return f"| {label} ({len(ids)} cases) | " + " | ".join(cells) + " |"


def main(specialist: str, specialist_glob: str, subset_glob: str, reference_glob: str, out_md: Path,
         out_dice: Path, default_glob: str | None = None) -> None:
    ours, postprocess = dice_by_case(specialist_glob, specialist)
    reference = reference_dice(reference_glob, postprocess)
    ids = sorted(set(ours) & set(reference))
    served = [s for s in LABELS if set(specialist.split("+")) <= set(s.split("+")) != set(MODALITIES)]
    header = " | ".join(f"{REGION_ABBREVIATIONS[r]} specialist | {REGION_ABBREVIATIONS[r]} other | "
                        f"{REGION_ABBREVIATIONS[r]} Δ" for r in REGIONS)
    lines = [f"{len(ids)} held-out cases; mean Dice of the {specialist} specialist (which reads {specialist} only) "
             "and of the other model; Δ = paired mean difference, specialist − other, 95% bootstrap interval", "",
             f"| exam holds / other model | {header} |", "|---|" + "---|---|---|" * len(REGIONS)]
    for subset in served:
        others, _ = dice_by_case(subset_glob, subset)
        lines.append(row(f"{LABELS[subset]} / any-subset", ours, others, ids))
        if default_glob is not None and (default := dice_by_case(default_glob, subset)[0]):
            lines.append(row(f"{LABELS[subset]} / full-set model", ours, default, ids))
    lines.append(row("all four / full-set model", ours, reference, ids))
    out_md.write_text("\n".join(lines) + "\n")
    means = {region: round(float(np.mean([ours[i][region] for i in ids])), 3) for region in REGIONS}
    write_json(out_dice, {subset: means for subset in served})
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8):
        raise SystemExit(__doc__)
    main(*sys.argv[1:5], Path(sys.argv[5]), Path(sys.argv[6]), *sys.argv[7:])
