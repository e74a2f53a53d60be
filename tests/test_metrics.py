"""Segmentation metrics agree with MONAI's implementations on random masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recoseg_cli.metrics import dice, hd95, iou, sensitivity, slice_dice, specificity

monai_metrics = pytest.importorskip("monai.metrics")


def random_masks(seed: int, shape=(24, 20, 16)) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping blobs with ragged edges."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    masks = []
    for _ in range(2):
        centre = [rng.uniform(0.3, 0.7) * s for s in shape]
        radius = rng.uniform(3, 7)
        distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
        masks.append(distance + rng.normal(0, 1.0, shape) < radius)
    return masks[0], masks[1]


def as_batch(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask[None, None].astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_volume_metrics_match_monai(seed):
    prediction, truth = random_masks(seed)
    spacing = (1.0, 1.2, 2.5)
    p, t = as_batch(prediction), as_batch(truth)
    assert dice(prediction, truth) == pytest.approx(monai_metrics.compute_dice(p, t).item(), abs=1e-6)
    assert iou(prediction, truth) == pytest.approx(monai_metrics.compute_iou(p, t).item(), abs=1e-6)
    expected_hd95 = monai_metrics.compute_hausdorff_distance(p, t, percentile=95, spacing=spacing).item()
    assert hd95(prediction, truth, spacing) == pytest.approx(expected_hd95, abs=1e-4)
    confusion = monai_metrics.get_confusion_matrix(p, t)
    for name, ours in (("sensitivity", sensitivity), ("specificity", specificity)):
        expected = monai_metrics.compute_confusion_matrix_metric(name, confusion).item()
        assert ours(prediction, truth) == pytest.approx(expected, abs=1e-6)


def test_per_slice_protocol_counts_only_slices_with_ground_truth_tumour():
    prediction, truth = random_masks(1)
    truth[..., :4] = False
    prediction[..., 0] = True
    dices, _ = slice_dice(prediction, truth)
    with_tumour = [z for z in range(truth.shape[-1]) if truth[..., z].any()]
    assert len(dices) == len(with_tumour)
    expected = [monai_metrics.compute_dice(as_batch(prediction[..., z]), as_batch(truth[..., z])).item()
                for z in with_tumour]
    np.testing.assert_allclose(dices, expected, atol=1e-6)
