"""Score a cross-validation run's held-out cases, BraTS-ready and as thick-slice exams, with their tumour components.

    python score_folds.py RUN CASES THICK OUT.json [FOLD ...]

RUN is a ``recoseg crossval`` folder (``fold<k>/cases.json``, ``fold<k>/recoseg/last.pt``); CASES the BraTS-ready
cases; THICK the output of ``make_thick_exams.py``. Each held-out case is segmented by its fold's segmenter with
the cross-validation's post-processing (``POSTPROCESS``), once from CASES and once from its prepared thick-slice
exam (outputs on the thick T1ce grid), with the uncertainty map. Per case and version: the metrics of
``recoseg_cli.metrics.region_metrics`` and every predicted whole-tumour component with what may tell a false one
from a true one. Folds already in OUT are kept.
"""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from recoseg_cli.api import Segmenter
from recoseg_cli.crossval import POSTPROCESS_CANDIDATES
from recoseg_cli.io.json_io import write_json
from recoseg_cli.metrics import region_metrics
from recoseg_cli.prepare.exam import PreparedExam
from recoseg_cli.regions import REGIONS, region_mask

POSTPROCESS = POSTPROCESS_CANDIDATES[4]
"""Whole-tumour components under 1 mL removed: what the bundled recipe's cross-validation chose."""

RIM_MM = 5.0
"""A component voxel this close to the brain's outline counts as at the rim."""


def components(result, truth: np.ndarray, brain: np.ndarray, zooms) -> list[dict]:
    """Each whole-tumour component of a result (arrays in file order): its size, probability, uncertainty, distance
    from the largest component, share at the brain's rim, and whether it touches the true tumour."""
    whole = result.labels > 0
    labelled, count = ndimage.label(whole, np.ones((3, 3, 3)))
    if count == 0:
        return []
    probability = np.asarray(result.probabilities["whole"].dataobj)
    uncertainty = np.asarray(result.uncertainty.dataobj)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    sizes = ndimage.sum_labels(whole, labelled, range(1, count + 1))
    largest = labelled == int(np.argmax(sizes)) + 1
    from_largest = ndimage.distance_transform_edt(~largest, sampling=zooms)
    from_outside = ndimage.distance_transform_edt(brain, sampling=zooms)
    found = []
    for k in range(1, count + 1):
        part = labelled == k
        found.append({"ml": round(float(sizes[k - 1]) * voxel_ml, 3),
                      "largest": bool(sizes[k - 1] == sizes.max()),
                      "true": bool((truth[part] > 0).any()),
                      "overlap_ml": round(float((truth[part] > 0).sum()) * voxel_ml, 3),
                      "mean_probability": round(float(probability[part].mean()), 4),
                      "max_probability": round(float(probability[part].max()), 4),
                      "mean_uncertainty": round(float(uncertainty[part].mean()), 4),
                      "distance_mm": round(float(from_largest[part].min()), 1),
                      "rim_share": round(float((from_outside[part] <= RIM_MM).mean()), 3),
                      "enhancing_ml": round(float((result.labels[part] == 4).sum()) * voxel_ml, 3)})
    return found


def score(result, truth_path: Path, brain: np.ndarray) -> dict:
    truth_image = nib.load(str(truth_path))
    truth = np.asarray(truth_image.dataobj).astype(np.uint8)
    zooms = tuple(float(z) for z in truth_image.header.get_zooms()[:3])
    masks = {region: region_mask(result.labels, region) for region in REGIONS}
    truth_ml = round(float((truth > 0).sum()) * float(np.prod(zooms)) / 1000.0, 3)
    return {"metrics": region_metrics(masks, truth, zooms), "volumes_ml": result.volumes_ml, "truth_whole_ml": truth_ml,
            "components": components(result, truth, brain, zooms), "seconds": result.seconds}


def score_case(segmenter: Segmenter, case: Path, thick: Path) -> dict:
    name = case.name
    clean = segmenter(case, probabilities=True, uncertainty=True, prepare="off")
    brain = np.asarray(nib.load(str(case / f"{name}_t1ce.nii.gz")).dataobj) != 0
    exam = PreparedExam.read(thick / "prepared" / name)
    thick_result = segmenter(exam, probabilities=True, uncertainty=True)
    thick_brain = np.asarray(nib.load(str(exam.native_reference)).dataobj) != 0
    return {"case_id": name, "clean": score(clean, case / f"{name}_seg.nii.gz", brain),
            "thick": score(thick_result, thick / "exams" / name / f"{name}_seg.nii.gz", thick_brain)}


def main(run: Path, cases: Path, thick: Path, out: Path, folds: list[int]) -> None:
    scored = json.loads(out.read_text()) if out.is_file() else {"postprocess": POSTPROCESS.to_dict(), "cases": []}
    done = {c["fold"] for c in scored["cases"]}
    for fold in folds:
        if fold in done:
            continue
        # force: a sequence check that refuses a clean exam must not end the scoring (the checks are measured
        # on their own, fault_matrix.py); it changes nothing else
        segmenter = Segmenter(run / f"fold{fold}" / "recoseg" / "last.pt", "cpu", force=True)
        segmenter.postprocess = POSTPROCESS
        held_out = json.loads((run / f"fold{fold}" / "cases.json").read_text())["test"]
        for name in held_out:
            scored["cases"].append({**score_case(segmenter, cases / name, thick), "fold": fold})
            print(f"fold {fold}: {name}", flush=True)
        write_json(out, scored)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), [int(f) for f in sys.argv[5:]])
