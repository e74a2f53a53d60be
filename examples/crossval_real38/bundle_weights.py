"""Write a segmenter weights file with the post-processing a cross-validation run chose, as bundled models carry.

    python examples/crossval_real38/bundle_weights.py SEGMENTER_LAST_PT CROSSVAL_RUN OUT_PT [VARIANT [SUBSET_DICE]]

The run's held-out scores (``foldK/<VARIANT>/scores.json``, VARIANT ``recoseg`` by default) give the
post-processing candidate with the best mean Dice over the three regions (``crossval.choose_postprocess``); it goes
into the weights' ``extra["postprocess"]``, which ``recoseg segment`` reads. SUBSET_DICE, the mean Dice per set of
sequences that ``examples/missing_sequences/subset_table.py`` writes, goes into ``extra["subset_dice"]``, which the
report and the warning of an exam missing sequences quote. Prints the candidate.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from recoseg_cli.crossval import POSTPROCESS_CANDIDATES, choose_postprocess


def main(source: Path, run: Path, out: Path, variant: str = "recoseg", subset_dice: Path | None = None) -> None:
    cases = [case for path in sorted(run.glob(f"fold*/{variant}/scores.json"))
             for case in json.loads(path.read_text())["cases"]]
    if not cases:
        raise SystemExit(f"{run}: no fold*/{variant}/scores.json")
    candidate = choose_postprocess(cases)
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["extra"]["postprocess"] = asdict(POSTPROCESS_CANDIDATES[candidate])
    if subset_dice is not None:
        payload["extra"]["subset_dice"] = json.loads(subset_dice.read_text())
    torch.save(payload, out)
    print(f"{len(cases)} held-out cases: post-processing candidate {candidate}, {payload['extra']['postprocess']}")


if __name__ == "__main__":
    if not 4 <= len(sys.argv) <= 6:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:5],
         *(Path(p) for p in sys.argv[5:6]))
