"""Tables of a cross-validation's systems: Dice per region overall and per institution, paired differences.

    python examples/crossval_real38/compare.py CANDIDATE LABEL=SOURCE [LABEL=SOURCE ...]

SOURCE is a glob of crossval score files (``runs/cv38/fold*/recoseg/scores.json``) scored with post-processing
candidate number CANDIDATE (``crossval.POSTPROCESS_CANDIDATES``; ``SOURCE@K`` scores that system with candidate K
instead, e.g. the one its own cross-validation chose), or a cohort CSV report of `recoseg segment`.
The first system is the reference of the paired differences (per case, 95% percentile bootstrap), computed
over the cases both systems scored.
"""

import csv
import glob
import json
import sys

import numpy as np

from recoseg_cli.data.institutions import institution
from recoseg_cli.metrics import paired_difference

REGIONS = (("whole", "WT"), ("core", "TC"), ("enhancing", "ET"))


def load(source: str, candidate: int) -> dict[str, dict]:
    """Per case: Dice and HD95 per region."""
    if source.endswith(".csv"):
        return {row["case_id"]: {r: {"dice": float(row[f"dice_{r}"]),
                                     "hd95": float(row[f"hd95_mm_{r}"] or "nan")} for r, _ in REGIONS}
                for row in csv.DictReader(open(source))}
    paths = sorted(glob.glob(source))
    if not paths:
        raise SystemExit(f"{source}: matches no score file")
    cases = {}
    for path in paths:
        for case in json.load(open(path))["cases"]:
            cases[case["case_id"]] = {"fold": case["fold"], **{r: case["postprocess"][candidate][r] for r, _ in REGIONS}}
    return cases


def row(label: str, cases: dict[str, dict]) -> str:
    cells = []
    for region, _ in REGIONS:
        dice = np.array([c[region]["dice"] for c in cases.values()])
        cells.append(f"{dice.mean():.3f} ± {dice.std():.3f} ({np.median(dice):.3f})")
    hd95 = np.array([c["whole"]["hd95"] for c in cases.values()], float)
    hd95 = hd95[np.isfinite(hd95)]
    lesion = " / ".join(f"{np.mean([c[r]['lesion_dice'] for c in cases.values()]):.3f}"
                        if all("lesion_dice" in c[r] for c in cases.values()) else "n/a" for r, _ in REGIONS)
    return f"| {label} | {len(cases)} | " + " | ".join(cells) + f" | {np.median(hd95):.1f} | {lesion} |"


def main(systems: list[tuple[str, dict]]) -> None:
    print("| system | cases | Dice WT | Dice TC | Dice ET | median HD95 WT (mm) | lesion-wise Dice WT / TC / ET |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, cases in systems:
        print(row(label, cases))
    folds = sorted({c["fold"] for _, cases in systems for c in cases.values() if "fold" in c})
    if folds:
        print("\n| system | " + " | ".join(f"fold {k}: Dice WT / TC / ET" for k in folds) + " |")
        print("| --- |" + " --- |" * len(folds))
        for label, cases in systems:
            print(f"| {label} | " + " | ".join(" / ".join(
                f"{np.mean([c[r]['dice'] for c in cases.values() if c.get('fold') == k] or [np.nan]):.3f}"
                for r, _ in REGIONS) for k in folds) + " |")
    names = sorted({institution(c) for _, cases in systems for c in cases})
    print("\n| system | institution | cases | Dice WT | Dice TC | Dice ET |\n| --- | --- | --- | --- | --- | --- |")
    for label, cases in systems:
        for name in names:
            group = [c for case, c in cases.items() if institution(case) == name]
            if group:
                print(f"| {label} | {name} | {len(group)} | " + " | ".join(
                    f"{np.mean([c[r]['dice'] for c in group]):.3f}" for r, _ in REGIONS) + " |")
    reference_label, reference = systems[0]
    print(f"\n| system minus {reference_label} | cases | WT | TC | ET |\n| --- | --- | --- | --- | --- |")
    for label, cases in systems[1:]:
        common = sorted(set(cases) & set(reference))
        diffs = [paired_difference([cases[c][r]["dice"] for c in common], [reference[c][r]["dice"] for c in common])
                 for r, _ in REGIONS]
        print(f"| {label} | {len(common)} | " + " | ".join(
            f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" for d in diffs) + " |")


if __name__ == "__main__":
    chosen = int(sys.argv[1])
    systems = []
    for item in sys.argv[2:]:
        label, source = item.split("=", 1)
        source, _, own = source.partition("@")
        systems.append((label, load(source, int(own) if own else chosen)))
    main(systems)
