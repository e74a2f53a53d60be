"""The synthetic cohort: determinism, MRI-like contrasts, tumour compartments, shared physics."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import TINY
from recoseg_cli.data.synthetic import SyntheticConfig, _atlas, generate_patient


def tissue_masks(config: SyntheticConfig, volumes):
    """CSF, GM and WM voxels away from the tumour, from the atlas sampled without deformation."""
    from recoseg_cli.data import synthetic

    gm, wm, mask, affine = _atlas()
    world = synthetic._grid_world(config, config.shape)
    voxels = np.moveaxis((world @ np.linalg.inv(affine)[:3, :3].T + np.linalg.inv(affine)[:3, 3]), -1, 0)
    g, w, m = (ndimage.map_coordinates(a, voxels, order=1) for a in (gm, wm, mask))
    healthy = ~ndimage.binary_dilation(volumes["seg"] > 0, iterations=3) & (volumes["t1"] > 0)
    return {"csf": healthy & (m > 0.9) & (g + w < 0.1), "gm": healthy & (g > 0.8), "wm": healthy & (w > 0.9)}


def test_deterministic_per_seed(tiny_volumes):
    again = generate_patient(3, TINY)
    for key in tiny_volumes:
        np.testing.assert_array_equal(again[key], tiny_volumes[key])


def test_formats_and_labels(tiny_volumes):
    for name in ("flair", "t1", "t1ce", "t2"):
        assert tiny_volumes[name].dtype == np.int16 and tiny_volumes[name].shape == TINY.shape
    assert tiny_volumes["seg"].dtype == np.uint8
    assert set(np.unique(tiny_volumes["seg"])) <= {0, 1, 2, 4}
    assert np.all(tiny_volumes["t1"][tiny_volumes["flair"] == 0] == 0)


@pytest.mark.slow
def test_tissue_contrasts_are_ordered_like_mri():
    config = SyntheticConfig(shape=(96, 96, 62))
    volumes = generate_patient(11, config)
    masks = tissue_masks(config, volumes)
    mean = {m: {t: float(volumes[m][masks[t]].mean()) for t in masks} for m in ("t1", "t2", "flair")}
    assert mean["t1"]["csf"] < mean["t1"]["gm"] < mean["t1"]["wm"]
    assert mean["t2"]["wm"] < mean["t2"]["gm"] < mean["t2"]["csf"]
    assert mean["flair"]["csf"] < mean["flair"]["wm"] and mean["flair"]["csf"] < mean["flair"]["gm"]
    seg = volumes["seg"]
    edema = seg == 2
    assert volumes["flair"][edema].mean() > mean["flair"]["wm"] * 1.5


def test_t1ce_is_t1_plus_uptake_only():
    """Outside tumour and vessels T1ce follows T1 up to one gain and noise; the rim shows only on T1ce."""
    volumes = generate_patient(5, TINY)
    seg = volumes["seg"]
    t1, t1ce = volumes["t1"].astype(float), volumes["t1ce"].astype(float)
    background = (seg == 0) & (t1 > 0)
    gain = np.median(t1ce[background] / np.maximum(t1[background], 1))
    relative = np.abs(t1ce[background] - gain * t1[background]) / (gain * t1[background].mean())
    assert np.median(relative) < 0.06
    rim = seg == 4
    assert rim.any()
    assert t1ce[rim].mean() / gain > 1.3 * t1[rim].mean()
    assert abs(volumes["flair"][rim].mean() - volumes["flair"][seg == 2].mean()) < 0.15 * volumes["flair"][seg == 2].mean()


def test_low_grade_cases_have_no_enhancement():
    grades = []
    for seed in range(12):
        seg = generate_patient(seed, SyntheticConfig(shape=(24, 24, 16)))["seg"]
        grades.append(4 in seg)
    assert 0 < grades.count(False) < len(grades)


def test_noise_redraw_changes_only_noise(tiny_volumes):
    redrawn = generate_patient(3, TINY, noise_draw=1)
    np.testing.assert_array_equal(redrawn["seg"], tiny_volumes["seg"])
    a, b = tiny_volumes["t1ce"].astype(float), redrawn["t1ce"].astype(float)
    brain = a > 0
    assert not np.array_equal(a, b)
    assert np.corrcoef(a[brain], b[brain])[0, 1] > 0.9
