"""Input and result checks: swapped sequences caught on real cases, no false alarm on unswapped ones,
implausible masks flagged."""

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from recoseg_cli.checks import mask_warnings, sequence_statistics, sequence_warnings
from recoseg_cli.constants import MODALITIES
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.pipeline import load_patient
from recoseg_cli.preprocess import brain_mask

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
needs_real = pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")
FILES = {m: Path(f"case_{m}.nii.gz") for m in MODALITIES}


@needs_real
@pytest.mark.slow
def test_every_real_case_passes_and_every_swap_is_flagged():
    for folder in sorted(REAL_CASES.iterdir()):
        volumes = load_patient(discover_patient(folder), MODALITIES)
        brain = brain_mask(list(volumes.images.values()))
        statistics = sequence_statistics(volumes.images, brain)
        assert sequence_warnings(statistics, FILES) == [], folder.name
        for first, second in (("t1", "t1ce"), ("flair", "t2")):
            swapped = {**volumes.images, first: volumes.images[second], second: volumes.images[first]}
            flagged = sequence_statistics(swapped, brain)
            assert flagged[f"{first}/{second}"] < 0, (folder.name, first, second)
            assert sequence_warnings(flagged, FILES, force=True), (folder.name, first, second)


def test_the_rim_of_a_resampled_exam_is_not_taken_for_fluid():
    """Resampling blends a prepared exam's edge with the zero background: there T1 is darkest, and a FLAIR can be
    brighter than the T2. The fluid of the FLAIR/T2 check is looked for inside, away from that rim."""
    grid = np.indices((40, 40, 40)) - 19.5
    radius = np.sqrt((grid ** 2).sum(axis=0))
    brain, rim, fluid = radius < 18, (radius < 18) & (radius >= 16.5), radius < 5
    rng = np.random.default_rng(0)
    images = {m: np.where(brain, 100.0 + rng.normal(0, 3, brain.shape), 0.0) for m in MODALITIES}
    images["t1"][fluid], images["t2"][fluid], images["flair"][fluid] = 30.0, 200.0, 30.0  # CSF
    images["t1"][rim], images["t2"][rim], images["flair"][rim] = 5.0, 10.0, 60.0  # blended with the background
    images["t1ce"] = images["t1"].copy()
    images["t1ce"][radius < 2] = 400.0  # a vessel
    statistics = sequence_statistics(images, brain)
    assert statistics["flair/t2"] > 0 and sequence_warnings(statistics, FILES) == []
    swapped = {**images, "flair": images["t2"], "t2": images["flair"]}
    assert sequence_statistics(swapped, brain)["flair/t2"] < 0


def test_a_clear_swap_is_refused_naming_both_files_unless_forced():
    statistics = {"t1/t1ce": -3.0, "flair/t2": 2.0}
    with pytest.raises(InputError, match=r"case_t1.nii.gz \(t1\) and case_t1ce.nii.gz \(t1ce\) look swapped"):
        sequence_warnings(statistics, FILES)
    assert "may be swapped" in sequence_warnings(statistics, FILES, force=True)[0]
    assert "may be swapped" in sequence_warnings({"t1/t1ce": 1.0, "flair/t2": -0.2}, FILES)[0]


def test_implausible_masks_are_flagged():
    brain = np.zeros((100, 100, 100), bool)
    brain[10:90, 10:90, 10:90] = True  # 512 mL at 1 mm
    tumour = np.zeros_like(brain)
    tumour[40:50, 40:50, 40:50] = True
    assert mask_warnings(tumour, brain, 0.001) == []
    assert "of the brain" in mask_warnings(brain.copy(), brain, 0.001)[0]
    outside = tumour.copy()
    outside[0:5, 0:10, 0:10] = True
    assert "outside the brain" in mask_warnings(outside, brain, 0.001)[0]
    assert "little or no brain" in mask_warnings(tumour, brain & (np.arange(100) < 20)[:, None, None], 0.001)[0]


@needs_real
def test_segment_refuses_swapped_t1_and_t1ce_before_the_networks_run(tmp_path, capsys):
    case = "Brats18_TCIA03_265_1"
    folder = tmp_path / case
    folder.mkdir()
    for mine, theirs in (("flair", "flair"), ("t2", "t2"), ("t1", "t1ce"), ("t1ce", "t1")):
        (folder / f"{case}_{mine}.nii.gz").symlink_to(REAL_CASES / case / f"{case}_{theirs}.nii.gz")
    output = tmp_path / "mask.nii.gz"
    code, _, err = run_cli(["segment", folder, "-o", output, "--device", "cpu"], capsys)
    assert code == 2 and "look swapped" in err and f"{case}_t1ce.nii.gz (t1ce)" in err and "--force" in err
    assert not output.exists() and len(err.strip().splitlines()) == 1
