"""Paired comparison of two ``score_folds.py`` outputs (same cases): Dice per region on BraTS-ready and thick-slice
versions, false whole-tumour components, and rules that would remove components.

    python compare.py BEFORE.json AFTER.json > compare.md
"""

import json
import sys
from pathlib import Path

from recoseg_cli.data.institutions import institution
from recoseg_cli.metrics import paired_difference, summary_stats

REGIONS = {"whole": "WT", "core": "TC", "enhancing": "ET"}
VERSIONS = {"clean": "BraTS-ready", "thick": "thick-slice exam (mask on the 6 mm T1ce grid)"}


def by_case(path: Path) -> dict[str, dict]:
    return {case["case_id"]: case for case in json.loads(path.read_text())["cases"]}


def false_ml(version: dict) -> float:
    """Volume of the predicted whole-tumour components that touch no true tumour."""
    return sum(c["ml"] for c in version["components"] if not c["true"])


def interval(diff: dict) -> str:
    return f"{diff['mean']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]"


def dice_tables(before: dict, after: dict, cases: list[str]) -> list[str]:
    lines = ["| version | region | before: mean ± std (median) | after | after − before, 95% CI |",
             "| --- " * 5 + "|"]
    for version, label in VERSIONS.items():
        for region, short in REGIONS.items():
            first = [before[c][version]["metrics"][region]["dice"] for c in cases]
            second = [after[c][version]["metrics"][region]["dice"] for c in cases]
            cells = [f"{s['mean']:.3f} ± {s['std']:.3f} ({s['median']:.3f})"
                     for s in map(summary_stats, (first, second))]
            diff = interval(paired_difference(second, first))
            lines.append(f"| {label} | {short} | {cells[0]} | {cells[1]} | {diff} |")
    return lines


def false_components(before: dict, after: dict, cases: list[str]) -> list[str]:
    lines = ["| version | false-component volume before: total mL (cases with any) | after "
             "| after − before per case, mL |", "| --- | --- | --- | --- |"]
    for version, label in VERSIONS.items():
        first = [false_ml(before[c][version]) for c in cases]
        second = [false_ml(after[c][version]) for c in cases]
        diff = paired_difference(second, first)
        lines.append(f"| {label} | {sum(first):.1f} ({sum(v > 0 for v in first)}) | {sum(second):.1f} "
                     f"({sum(v > 0 for v in second)}) | {diff['mean']:+.2f} "
                     f"[{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}] |")
    return lines


def per_case(before: dict, after: dict, cases: list[str]) -> list[str]:
    lines = ["| case | fold | institution | BraTS-ready WT/TC/ET before → after | thick-slice WT/TC/ET before → after "
             "| false mL (ready, thick) before → after |", "| --- " * 6 + "|"]
    for c in cases:
        cells = []
        for version in VERSIONS:
            dices = [" / ".join(f"{run[c][version]['metrics'][r]['dice']:.2f}" for r in REGIONS)
                     for run in (before, after)]
            cells.append(" → ".join(dices))
        falses = " → ".join(f"{false_ml(run[c]['clean']):.1f}, {false_ml(run[c]['thick']):.1f}"
                            for run in (before, after))
        lines.append(f"| {c} | {before[c]['fold']} | {institution(c)} | {cells[0]} | {cells[1]} | {falses} |")
    return lines


def features(runs: list[dict], cases: list[str]) -> list[str]:
    """What the non-largest components look like, true against false, over both runs and versions."""
    parts = [comp for run in runs for c in cases for version in VERSIONS for comp in run[c][version]["components"]
             if not comp["largest"]]
    keys = ("ml", "mean_probability", "max_probability", "mean_uncertainty", "distance_mm", "rim_share", "enhancing_ml")
    lines = ["| component (not the largest) | count | " + " | ".join(f"{k}: median (min–max)" for k in keys) + " |",
             "| --- " * (len(keys) + 2) + "|"]
    for truth in (True, False):
        chosen = [p for p in parts if p["true"] == truth]
        stats = [summary_stats([p[k] for p in chosen]) for k in keys]
        lines.append(f"| {'touches the true tumour' if truth else 'false'} | {len(chosen)} | "
                     + " | ".join(f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})" for s in stats) + " |")
    return lines


def rule_effect(run: dict, cases: list[str], rule) -> list[str]:
    """Whole-tumour Dice after removing the components a rule names (never the largest), paired with none removed."""
    lines = []
    for version, label in VERSIONS.items():
        plain, ruled, removed_true, removed_false = [], [], 0, 0
        for c in cases:
            entry = run[c][version]
            dice, truth_ml = entry["metrics"]["whole"]["dice"], entry["truth_whole_ml"]
            predicted = sum(comp["ml"] for comp in entry["components"])
            overlap = dice * (predicted + truth_ml) / 2
            gone = [comp for comp in entry["components"] if not comp["largest"] and rule(comp)]
            removed_true += sum(comp["true"] for comp in gone)
            removed_false += sum(not comp["true"] for comp in gone)
            left = predicted - sum(comp["ml"] for comp in gone)
            kept = overlap - sum(comp["overlap_ml"] for comp in gone)
            plain.append(dice)
            ruled.append(2 * kept / (left + truth_ml) if left + truth_ml > 0 else 1.0)
        lines.append(f"{label}: WT Dice {interval(paired_difference(ruled, plain))}, removes {removed_false} false and "
                     f"{removed_true} true components")
    return lines


def main(before_path: Path, after_path: Path) -> None:
    before, after = by_case(before_path), by_case(after_path)
    cases = sorted(set(before) & set(after))
    out = [f"# {after_path.name} against {before_path.name}: {len(cases)} held-out cases, paired", "",
           "Dice per region, mean ± std (median) over cases; differences with 95% percentile-bootstrap intervals.", ""]
    out += dice_tables(before, after, cases) + ["", "## False whole-tumour components (touching no true tumour)", ""]
    out += false_components(before, after, cases) + ["", "## Per case", ""] + per_case(before, after, cases)
    out += ["", "## Components other than the largest: true against false (both runs, both versions)", ""]
    out += features([before, after], cases) + ["", "## Rules that would remove components (after's predictions)", ""]
    rules = {"under 3 mL and farther than 20 mm from the largest": lambda p: p["ml"] < 3 and p["distance_mm"] > 20,
             "mean probability under 0.75": lambda p: p["mean_probability"] < 0.75,
             "mostly at the brain's rim (over half within 5 mm)": lambda p: p["rim_share"] > 0.5,
             "farther than 30 mm from the largest": lambda p: p["distance_mm"] > 30}
    for name, rule in rules.items():
        out += [f"- {name}:"] + [f"  - {line}" for line in rule_effect(after, cases, rule)]
    print("\n".join(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
