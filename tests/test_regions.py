"""BraTS regions and labels: scheme conversion, region-to-label conversion, post-processing, volumes, lesion Dice."""

import numpy as np
import pytest

from recoseg_cli.metrics import lesion_wise_dice
from recoseg_cli.regions import (PostprocessConfig, convert_labels, labels_from_regions, region_mask, region_masks,
                                 region_stack, region_volumes_ml)


def brats2020_map() -> np.ndarray:
    seg = np.zeros((6, 6, 4), np.uint8)
    seg[1:5, 1:5, 1:3] = 2
    seg[2:4, 2:4, 1:3] = 1
    seg[2, 2, 1:3] = 4
    return seg


def test_scheme_conversion_both_ways():
    seg = brats2020_map()
    seg2023 = convert_labels(seg, "brats2020", "brats2023")
    assert set(np.unique(seg2023)) == {0, 1, 2, 3}
    assert (seg2023 == 3).sum() == (seg == 4).sum() and (seg2023 == 1).sum() == (seg == 1).sum()
    np.testing.assert_array_equal(convert_labels(seg2023, "brats2023", "brats2020"), seg)
    with pytest.raises(ValueError, match="label scheme"):
        convert_labels(seg, "brats2020", "brats2019")


@pytest.mark.parametrize("scheme", ["brats2020", "brats2023"])
def test_regions_nest_and_round_trip_through_labels(scheme):
    seg = convert_labels(brats2020_map(), "brats2020", scheme)
    whole, core, enhancing = (region_mask(seg, r, scheme) for r in ("whole", "core", "enhancing"))
    assert whole.sum() == 32 and core.sum() == 8 and enhancing.sum() == 2
    np.testing.assert_array_equal(labels_from_regions(whole, core, enhancing, scheme), seg)
    np.testing.assert_array_equal(region_stack(seg[None], ("whole", "core", "enhancing"))[0, 2], enhancing)


def test_labels_from_regions_keeps_inner_regions_inside_outer_ones():
    whole = np.zeros((4, 4, 1), bool)
    whole[:2] = True
    core = np.zeros_like(whole)
    core[1:3] = True  # half outside the whole tumour
    enhancing = np.ones_like(whole)
    labels = labels_from_regions(whole, core, enhancing, "brats2020")
    assert set(np.unique(labels[2:])) == {0}
    assert set(np.unique(labels[1])) == {4} and set(np.unique(labels[0])) == {2}


def probability_maps(shape=(20, 20, 10)) -> dict[str, np.ndarray]:
    whole = np.zeros(shape, np.float32)
    whole[2:12, 2:12, 2:8] = 0.9  # 600 voxels
    whole[16:18, 16:18, 1:3] = 0.8  # an 8-voxel blob far away
    core = np.zeros(shape, np.float32)
    core[4:8, 4:8, 3:6] = 0.8
    enhancing = np.zeros(shape, np.float32)
    enhancing[5:7, 5:7, 3:5] = 0.7  # 8 voxels
    enhancing[10:12, 10:12, 4] = 0.9  # inside whole, outside core: still enhancing tumour, so core too
    return {"whole": whole, "core": core, "enhancing": enhancing}


def test_postprocess_on_an_anisotropic_grid():
    probabilities = probability_maps()
    voxel_ml = 0.5 * 0.5 * 3.0 / 1000  # 0.75 mm^3 voxels
    plain = region_masks(probabilities, PostprocessConfig(), voxel_ml)
    assert plain["whole"].sum() == 608 and plain["enhancing"].sum() == 12
    assert not (plain["enhancing"] & ~plain["core"]).any() and not (plain["core"] & ~plain["whole"]).any()
    # the far 8-voxel blob is 6 mm^3 = 0.006 mL: removed with a 0.01 mL floor, kept with 0.005
    assert region_masks(probabilities, PostprocessConfig(min_component_ml=0.01), voxel_ml)["whole"].sum() == 600
    assert region_masks(probabilities, PostprocessConfig(min_component_ml=0.005), voxel_ml)["whole"].sum() == 608
    # 12 enhancing voxels are 0.009 mL: below a 0.01 mL floor they become necrotic core, not background
    small_et = region_masks(probabilities, PostprocessConfig(min_enhancing_ml=0.01), voxel_ml)
    assert not small_et["enhancing"].any() and small_et["core"].sum() == plain["core"].sum()
    labels = labels_from_regions(small_et["whole"], small_et["core"], small_et["enhancing"], "brats2023")
    assert set(np.unique(labels)) == {0, 1, 2}
    volumes = region_volumes_ml(plain, voxel_ml)
    assert volumes["whole"] == pytest.approx(608 * voxel_ml, abs=1e-3)
    assert volumes["necrotic"] + volumes["edema"] + volumes["enhancing"] == pytest.approx(volumes["whole"], abs=2e-3)
    assert volumes["core"] == pytest.approx((plain["core"].sum()) * voxel_ml, abs=1e-3)


def test_lesion_wise_dice_counts_false_positive_components():
    truth = np.zeros((30, 30, 30), bool)
    truth[2:8, 2:8, 2:8] = True
    prediction = truth.copy()
    assert lesion_wise_dice(prediction, truth) == pytest.approx(1.0)
    prediction[20:22, 20:22, 20:22] = True  # one false-positive component: (1 + 0) / 2
    assert lesion_wise_dice(prediction, truth) == pytest.approx(0.5)
    truth[20:26, 2:8, 2:8] = True  # a second, missed lesion: (1 + 0 + 0) / 3
    assert lesion_wise_dice(prediction, truth) == pytest.approx(1 / 3)
    assert lesion_wise_dice(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
