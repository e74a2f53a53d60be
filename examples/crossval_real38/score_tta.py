"""Score a cross-validation run's held-out cases again with mirror test-time augmentation.

    python examples/crossval_real38/score_tta.py RUN_DIR DATA [VARIANT]

DATA is the cache or cohort the run was given with ``--data`` (it names each case's folder). For every fold,
the fold's segmenter (``RUN_DIR/foldK/VARIANT/last.pt``) segments its held-out cases with
``Segmenter(tta=True)``, and ``crossval.evaluate_case`` scores them with every post-processing candidate into
``RUN_DIR/foldK/VARIANT/scores_tta.json`` (a fold already scored is skipped).
"""

import json
import sys
from pathlib import Path

from recoseg_cli.api import Segmenter
from recoseg_cli.crossval import evaluate_case
from recoseg_cli.data.cache import MANIFEST
from recoseg_cli.io.json_io import write_json


def main(run: Path, data: Path, variant: str = "recoseg") -> None:
    manifest = json.loads((data / MANIFEST).read_text())
    folders = {entry["case_id"]: Path(entry["folder"]) for entry in manifest["subjects"]}
    for fold_dir in sorted(run.glob("fold*")):
        out, weights = fold_dir / variant / "scores_tta.json", fold_dir / variant / "last.pt"
        if out.is_file() or not weights.is_file():
            continue
        segmenter = Segmenter(weights, "cpu", tta=True)
        fold = int(fold_dir.name.removeprefix("fold"))
        cases = [{**evaluate_case(segmenter, folders[case]), "fold": fold}
                 for case in json.loads((fold_dir / "cases.json").read_text())["test"]]
        write_json(out, {"cases": cases})
        print(f"{fold_dir.name}: {len(cases)} held-out cases scored with TTA", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])
