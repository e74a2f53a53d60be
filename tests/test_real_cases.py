"""The bundled models on real BraTS 2018 cases (../shared/real/cases): a regression floor, not an accuracy claim.

The three smallest cases were among the 38 training cases of the bundled weights, so these scores sit above
the cross-validated ones (README); the floors are set below the cross-validated means so that only a real
regression (broken preprocessing, label conversion, geometry or weights) fails them.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from recoseg_cli.metrics import dice
from recoseg_cli.regions import region_mask
from recoseg_cli.weights import BUNDLED_MODELS

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
SMALLEST = ("Brats18_TCIA03_265_1", "Brats18_2013_3_1", "Brats18_TCIA02_370_1")
FLOORS = {"whole": 0.80, "core": 0.65, "enhancing": 0.55}
"""Mean Dice over the three cases; the cross-validated means are in the README."""
NO_CONTRAST_FLOORS = {"whole": 0.80, "core": 0.45, "enhancing": 0.25}
"""The same for the model that does not read T1ce (cross-validated TC 0.55, ET 0.32)."""


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")
@pytest.mark.parametrize("model", BUNDLED_MODELS)
def test_bundled_models_segment_real_cases_above_the_floor(model, tmp_path, capsys):
    scores = {region: [] for region in FLOORS}
    for case in SMALLEST:
        folder = REAL_CASES / case
        output, report = tmp_path / f"{case}.nii.gz", tmp_path / f"{case}.json"
        code, _, err = run_cli(["segment", folder, "-o", output, "--report", report, "--device", "cpu",
                                "--model", model, "-q"], capsys)
        assert code == 0, err
        written, source = nib.load(str(output)), nib.load(str(folder / f"{case}_flair.nii.gz"))
        np.testing.assert_allclose(written.affine, source.affine)
        labels = np.asanyarray(written.dataobj)
        truth = np.asanyarray(nib.load(str(folder / f"{case}_seg.nii.gz")).dataobj)
        assert set(np.unique(labels)) <= {0, 1, 2, 4}
        written_report = json.loads(report.read_text())
        assert Path(written_report["weights"]).name == BUNDLED_MODELS[model]
        assert written_report["warnings"] == [], written_report["warnings"]  # no false alarm on a real case
        metrics = written_report["metrics_vs_ground_truth"]
        for region in FLOORS:
            scores[region].append(dice(region_mask(labels, region, "brats2020"),
                                       region_mask(truth, region, "brats2020")))
            assert metrics[region]["dice"] == pytest.approx(scores[region][-1], abs=1e-4)  # reports round to 4 places
    means = {region: float(np.mean(values)) for region, values in scores.items()}
    for region, floor in (NO_CONTRAST_FLOORS if model == "flair+t1+t2" else FLOORS).items():
        assert means[region] >= floor, f"{region}: mean Dice {means[region]:.3f} over {SMALLEST} below {floor}"
