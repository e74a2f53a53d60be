"""The separate lesions of a mask, and the flag for distant ones."""

import numpy as np

from scipy import ndimage

from recoseg_cli.components import (DISTANT_MM, components_by_size, distances_from_largest, distant_warning,
                                   lesion_components)
from recoseg_cli.regions import bounding_box


def test_components_are_listed_largest_first_with_their_distance_and_distant_ones_are_flagged():
    whole = np.zeros((80, 60, 40), bool)
    whole[10:30, 10:30, 10:30] = True            # the main lesion: 8000 voxels of 1 mm
    whole[34:37, 10:13, 10:13] = True            # a satellite 4 voxels away
    whole[70:73, 50:53, 30:33] = True            # a distant component
    core = np.zeros_like(whole)
    core[15:20, 15:20, 15:20] = True
    masks = {"whole": whole, "core": core, "enhancing": np.zeros_like(whole)}
    found = lesion_components(masks, whole * 0.9, (1.0, 1.0, 1.0))
    assert [c["ml"] for c in found] == [8.0, 0.027, 0.027] and found[0]["core_ml"] == 0.125
    assert found[0]["distance_mm"] == 0.0 and found[1]["distance_mm"] == 5.0 and found[2]["distance_mm"] > DISTANT_MM
    assert found[0]["mean_probability"] == 0.9
    warning = distant_warning(found)
    assert len(warning) == 1 and warning[0].startswith("1 tumour component(s) lie more than 20 mm")
    assert distant_warning(found[:2]) == [] and lesion_components({**masks, "whole": ~np.ones_like(whole)},
                                                                  whole * 0.0, (1.0, 1.0, 1.0)) == []


def test_distances_agree_with_a_distance_transform_on_anisotropic_voxels():
    rng = np.random.default_rng(1)
    for trial in range(6):
        whole = ndimage.binary_dilation((rng.random((30, 40, 20)) > 0.985) & (rng.random((30, 40, 20)) > 0.3))
        zooms = (1.0, 0.9, 3.0 + trial)
        labelled, labels, _ = components_by_size(whole)
        box = bounding_box(whole)
        reference = ndimage.minimum(ndimage.distance_transform_edt(labelled != labels[0], sampling=zooms), labelled,
                                    range(1, len(labels) + 1))
        assert len(labels) > 3 and np.allclose(distances_from_largest(labelled, labels, zooms), reference)
        assert np.array_equal(components_by_size(whole[box])[2], components_by_size(whole)[2])
