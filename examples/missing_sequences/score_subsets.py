"""Score a cross-validation run's held-out cases with every clinically common subset of their sequences.

    python score_subsets.py RUN VARIANT CASES OUT.json [FOLD ...] [--sets flair+t1+t2,...]

RUN is a ``recoseg crossval`` folder (``fold<k>/cases.json``, ``fold<k>/<VARIANT>/last.pt``), CASES the folder of
BraTS-ready cases. Each held-out case is segmented by its fold's segmenter from each set in ``SUBSETS`` (the other
files left out), with the post-processing the bundled recipe's cross-validation chose (``POSTPROCESS``), in fp32 as
the run's own scoring. Per case and set: the metrics of ``recoseg_cli.metrics.region_metrics``. Folds already in
OUT are kept. ``--sets`` scores only the sets named (``sequences.subset_name`` keys), e.g. a full-set model on
the one incomplete set it takes.
"""

import json
import sys
from pathlib import Path

from recoseg_cli.api import Segmenter
from recoseg_cli.crossval import POSTPROCESS_CANDIDATES
from recoseg_cli.io.json_io import write_json
from recoseg_cli.sequences import subset_name

SUBSETS = (("flair", "t1", "t1ce", "t2"), ("flair", "t1", "t2"), ("flair", "t1", "t1ce"), ("flair", "t1ce", "t2"),
           ("flair", "t1ce"), ("flair", "t1"), ("flair",), ("t1ce", "t2"))
"""All four; no T1ce; no T2; no T1; FLAIR + T1ce; FLAIR + T1; FLAIR only; T2 + T1ce."""

POSTPROCESS = POSTPROCESS_CANDIDATES[4]
"""Whole-tumour components under 1 mL removed: what the bundled recipe's cross-validation chose."""


def score_case(segmenter: Segmenter, case: Path, subsets: tuple[tuple[str, ...], ...]) -> dict:
    name = case.name
    scores = {}
    for subset in subsets:
        files = {role: case / f"{name}_{role}.nii.gz" for role in subset}
        result = segmenter({**files, "seg": case / f"{name}_seg.nii.gz"}, prepare="off")
        scores[subset_name(subset)] = {"metrics": result.metrics, "volumes_ml": result.volumes_ml,
                                       "seconds": result.seconds}
    return {"case_id": name, "subsets": scores}


def main(run: Path, variant: str, cases: Path, out: Path, folds: list[int],
         subsets: tuple[tuple[str, ...], ...] = SUBSETS) -> None:
    scored = json.loads(out.read_text()) if out.is_file() else {"postprocess": POSTPROCESS.to_dict(),
                                                                 "variant": variant, "cases": []}
    done = {c["fold"] for c in scored["cases"]}
    for fold in folds:
        if fold in done:
            continue
        segmenter = Segmenter(run / f"fold{fold}" / variant / "last.pt", "cpu", bf16=False)
        segmenter.postprocess = POSTPROCESS
        for name in json.loads((run / f"fold{fold}" / "cases.json").read_text())["test"]:
            scored["cases"].append({**score_case(segmenter, cases / name, subsets), "fold": fold})
            print(f"fold {fold}: {name}", flush=True)
        write_json(out, scored)


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = SUBSETS
    if "--sets" in args:
        at = args.index("--sets")
        chosen = tuple(tuple(name.split("+")) for name in args[at + 1].split(","))
        del args[at:at + 2]
    if len(args) < 5:
        raise SystemExit(__doc__)
    main(Path(args[0]), args[1], Path(args[2]), Path(args[3]), [int(f) for f in args[4:]], chosen)
