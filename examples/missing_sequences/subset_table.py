"""The subset table: Dice per region for each set of sequences, paired against the full-set model on all four.

    python subset_table.py "SUBSET_SCORES_GLOB" "REFERENCE_GLOB" OUT.md OUT_DICE.json

SUBSET_SCORES_GLOB names the outputs of ``score_subsets.py`` (one file, or one per process of folds run side by
side); REFERENCE_GLOB the held-out scores of the full-set model on
the same folds (``recoseg crossval``'s ``fold*/<variant>/scores.json`` or the lever files of
``examples/crossval_real38/levers``), read at the same post-processing candidate. OUT.md gets per set and region:
mean ± std, the range, and the mean paired difference (set - full-set model) with its 95% bootstrap interval over
the cases both scored. OUT_DICE.json gets the mean Dice per set and region, as bundled weights record it
(``extra["subset_dice"]``).
"""

import glob
import json
import sys
from pathlib import Path

import numpy as np

from recoseg_cli.crossval import POSTPROCESS_CANDIDATES
from recoseg_cli.io.json_io import write_json
from recoseg_cli.metrics import paired_difference
from recoseg_cli.regions import REGION_ABBREVIATIONS, REGIONS

LABELS = {"flair+t1+t1ce+t2": "all four", "flair+t1+t2": "no T1ce", "flair+t1+t1ce": "no T2",
          "flair+t1ce+t2": "no T1", "flair+t1ce": "FLAIR + T1ce", "flair+t1": "FLAIR + T1", "flair": "FLAIR only",
          "t1ce+t2": "T2 + T1ce"}


def reference_dice(pattern: str, candidate: dict) -> dict[str, dict[str, float]]:
    """Per case and region, the reference model's Dice at the post-processing ``candidate``."""
    index = [c.to_dict() for c in POSTPROCESS_CANDIDATES].index(candidate)
    found = {}
    for path in sorted(glob.glob(pattern)):
        for case in json.loads(Path(path).read_text())["cases"]:
            found[case["case_id"]] = {r: case["postprocess"][index][r]["dice"] for r in REGIONS}
    return found


def main(scores_pattern: str, pattern: str, out_md: Path, out_dice: Path) -> None:
    files = [json.loads(Path(path).read_text()) for path in sorted(glob.glob(scores_pattern))]
    scored = {"postprocess": files[0]["postprocess"], "cases": [case for f in files for case in f["cases"]]}
    if any(f["postprocess"] != scored["postprocess"] for f in files):
        raise SystemExit(f"{scores_pattern}: the files were scored with different post-processing")
    reference = reference_dice(pattern, scored["postprocess"])
    cases = [c for c in scored["cases"] if c["case_id"] in reference]
    lines = [f"{len(cases)} held-out cases ({len(scored['cases'])} scored, {len(reference)} by the reference); "
             "Dice mean ± std [min, max]; Δ = paired mean difference against the full-set model on all four "
             "sequences, 95% bootstrap interval", "",
             "| sequences | " + " | ".join(f"{REGION_ABBREVIATIONS[r]} Dice | {REGION_ABBREVIATIONS[r]} Δ"
                                          for r in REGIONS) + " |",
             "|---|" + "---|---|" * len(REGIONS)]
    ref = {r: [reference[c["case_id"]][r] for c in cases] for r in REGIONS}
    lines.insert(4, "| full-set model, all four | " + " | ".join(
        f"{np.mean(ref[r]):.3f} ± {np.std(ref[r]):.3f} [{min(ref[r]):.2f}, {max(ref[r]):.2f}] | –" for r in REGIONS)
        + " |")
    means = {}
    for subset, label in LABELS.items():
        cells, means[subset] = [], {}
        for region in REGIONS:
            dice = [c["subsets"][subset]["metrics"][region]["dice"] for c in cases]
            diff = paired_difference(dice, ref[region])
            means[subset][region] = round(float(np.mean(dice)), 3)
            cells.append(f"{np.mean(dice):.3f} ± {np.std(dice):.3f} [{min(dice):.2f}, {max(dice):.2f}] | "
                         f"{diff['mean']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    out_md.write_text("\n".join(lines) + "\n")
    write_json(out_dice, means)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
