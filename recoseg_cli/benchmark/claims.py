"""The paper's four claims as paired comparisons over the test patients: for each region, the mean per-volume
Dice difference with a 95% bootstrap confidence interval, and a verdict that holds only when it excludes zero."""

from __future__ import annotations

import numpy as np

from recoseg_cli.benchmark.plan import TARGETS
from recoseg_cli.metrics import MIN_PAIRED, paired_difference


def claims(label_fractions: list[float]) -> list[dict]:
    """Each claim: a title and the (system, reference) pairs that test it."""
    fewer = [(f"ReCoSeg, {f:.0%} labels", f"UNet2D, {f:.0%} labels") for f in label_fractions if f < 1.0]
    return [
        {"claim": "Table 1: ReCoSeg beats UNet2D, UNet3D and DDMM-Synth",
         "pairs": [("ReCoSeg", "UNet2D"), ("ReCoSeg", "UNet3D"), ("ReCoSeg", "DDMM-Synth")]},
        {"claim": "Ablations: the DDPM residual beats its alternatives",
         "pairs": [("ReCoSeg", "Residual + FLAIR"), ("ReCoSeg", "ReCoSeg, healthy-tissue DDPM"),
                   ("ReCoSeg", "T1ce - T1 subtraction"), ("ReCoSeg", "Regressor residual")]},
        {"claim": "Label efficiency: with fewer labelled patients ReCoSeg beats UNet2D", "pairs": fewer},
        {"claim": "Missing T1ce: ReCoSeg without T1ce at test time beats UNet2D trained without T1ce",
         "pairs": [("ReCoSeg, T1ce missing", "UNet2D without T1ce")]},
    ]


def verdict(difference: dict) -> str:
    if difference["n"] < MIN_PAIRED:
        return "too few patients"
    if difference["ci_low"] > 0:
        return "holds"
    return "reversed" if difference["ci_high"] < 0 else "not shown"


def patient_dice(repeats: list[dict], system: str, region: str) -> dict[str, float]:
    """Per-volume Dice of each patient holding ``region``, averaged over the repeats (seeds)."""
    values: dict[str, list[float]] = {}
    for repeat in repeats:
        for patient in repeat["patients"].get(system, []):
            if region in patient:
                values.setdefault(patient["case_id"], []).append(patient[region]["dice"])
    return {case: float(np.mean(v)) for case, v in values.items()}


def claim_comparisons(repeats: list[dict], label_fractions: list[float], seed: int = 0) -> list[dict]:
    """Every claim's paired comparisons by region, with the verdict of each."""
    out = []
    for claim in claims(label_fractions):
        rows = []
        for system, reference in claim["pairs"]:
            for region in TARGETS:
                first, second = patient_dice(repeats, system, region), patient_dice(repeats, reference, region)
                cases = sorted(first.keys() & second.keys())
                if not cases:
                    continue
                difference = paired_difference([first[c] for c in cases], [second[c] for c in cases], seed)
                rows.append({"system": system, "reference": reference, "region": region, **difference,
                             "verdict": verdict(difference)})
        out.append({"claim": claim["claim"], "comparisons": rows})
    return out
