"""Write a segmenter weights file with the post-processing a cross-validation run chose, as bundled models carry.

    python examples/crossval_real38/bundle_weights.py SEGMENTER_LAST_PT CROSSVAL_RUN OUT_PT

The run's held-out scores (``foldK/recoseg/scores.json``) give the post-processing candidate with the best mean
Dice over the three regions (``crossval.choose_postprocess``); it goes into the weights' ``extra["postprocess"]``,
which ``recoseg segment`` reads. Prints the candidate.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from recoseg_cli.crossval import POSTPROCESS_CANDIDATES, choose_postprocess


def main(source: Path, run: Path, out: Path) -> None:
    cases = [case for path in sorted(run.glob("fold*/recoseg/scores.json"))
             for case in json.loads(path.read_text())["cases"]]
    if not cases:
        raise SystemExit(f"{run}: no fold*/recoseg/scores.json")
    candidate = choose_postprocess(cases)
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["extra"]["postprocess"] = asdict(POSTPROCESS_CANDIDATES[candidate])
    torch.save(payload, out)
    print(f"{len(cases)} held-out cases: post-processing candidate {candidate}, {payload['extra']['postprocess']}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*map(Path, sys.argv[1:]))
