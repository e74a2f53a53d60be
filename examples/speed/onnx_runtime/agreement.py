"""ONNX Runtime against torch (fp32) on real cases: per case and region, the largest probability difference, its
99.9th percentile over the voxels where either runtime gives a non-zero probability, and the Dice between the two
runtimes' masks.

    python examples/speed/onnx_runtime/agreement.py CASES_DIR OUT.json [MODEL ...]
"""

import json
import sys
from pathlib import Path

import numpy as np

from recoseg_cli.api import Segmenter
from recoseg_cli.metrics import dice
from recoseg_cli.regions import region_mask

REGIONS = ("whole", "core", "enhancing")


def agreement(cases: list[Path], model: str) -> list[dict]:
    runtimes = {name: Segmenter(model=model, device="cpu", runtime=name, bf16=False) for name in ("onnx", "torch")}
    rows = []
    for case in cases:
        a, b = (runtimes[name](case, probabilities=True) for name in ("onnx", "torch"))
        row = {"case": case.name, "model": model}
        for region in REGIONS:
            p, q = a.probabilities[region].get_fdata(), b.probabilities[region].get_fdata()
            difference = np.abs(p - q)[(p > 0) | (q > 0)]
            mask_a, mask_b = region_mask(a.labels, region), region_mask(b.labels, region)
            row[region] = {"max_probability_difference": float(difference.max()),
                           "p999_probability_difference": float(np.percentile(difference, 99.9)),
                           "dice": dice(mask_a, mask_b) if mask_a.any() or mask_b.any() else 1.0,
                           "voxels_differing": int((mask_a != mask_b).sum())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    cases = sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir())
    models = sys.argv[3:] or ["accurate"]
    rows = [row for model in models for row in agreement(cases, model)]
    summary = {model: {region: {"dice_min": min(r[region]["dice"] for r in rows if r["model"] == model),
                                "max_probability_difference": max(r[region]["max_probability_difference"]
                                                                  for r in rows if r["model"] == model),
                                "p999_probability_difference": max(r[region]["p999_probability_difference"]
                                                                   for r in rows if r["model"] == model)}
                       for region in REGIONS} for model in models}
    Path(sys.argv[2]).write_text(json.dumps({"cases": len(cases), "summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
