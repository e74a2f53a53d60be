"""Score the held-out cases of several cross-validation runs' segmenters averaged, fold by fold.

    python examples/crossval_real38/score_ensemble.py DATA OUT_PREFIX RUN_DIR RUN_DIR [RUN_DIR ...]

The runs share their folds (the same held-out cases in each ``foldK/cases.json``), so every member of a fold's
ensemble was trained without that fold's cases. For each held-out case, each run's ``foldK/recoseg/last.pt``
gives region probabilities (``Segmenter.predict``), their mean is scored by ``crossval.score_prediction`` with
every post-processing candidate, and the fold's scores go to ``OUT_PREFIX_foldK.json`` (a fold already scored is
skipped). DATA is the cache or cohort the runs were given with ``--data``.
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from recoseg_cli.api import Segmenter
from recoseg_cli.crossval import score_prediction
from recoseg_cli.data.cache import MANIFEST
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.io.json_io import write_json


def main(data: Path, out_prefix: str, runs: list[Path]) -> None:
    manifest = json.loads((data / MANIFEST).read_text())
    folders = {entry["case_id"]: Path(entry["folder"]) for entry in manifest["subjects"]}
    for fold_dir in sorted(runs[0].glob("fold*")):
        out = Path(f"{out_prefix}_{fold_dir.name}.json")
        if out.is_file():
            continue
        held_out = json.loads((fold_dir / "cases.json").read_text())["test"]
        members = []
        for run in runs:
            if json.loads((run / fold_dir.name / "cases.json").read_text())["test"] != held_out:
                raise SystemExit(f"{run / fold_dir.name}: other held-out cases than {fold_dir}")
            members.append(Segmenter(run / fold_dir.name / "recoseg" / "last.pt", "cpu"))
        cases = []
        for case in held_out:
            patient = discover_patient(folders[case])
            predictions = [member.predict(patient) for member in members]
            mean = {region: np.mean([p.probabilities[region] for p in predictions], axis=0)
                    for region in predictions[0].probabilities}
            fold = int(fold_dir.name.removeprefix("fold"))
            cases.append({**score_prediction(case, replace(predictions[0], probabilities=mean)), "fold": fold})
        write_json(out, {"cases": cases})
        print(f"{fold_dir.name}: {len(cases)} held-out cases scored by {len(members)} segmenters", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], [Path(run) for run in sys.argv[3:]])
