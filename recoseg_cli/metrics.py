"""Segmentation metrics (per volume and per slice) and synthesis metrics by region."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from recoseg_cli.regions import REGIONS, bounding_box, nearest_distances, region_mask


def dice(prediction: np.ndarray, truth: np.ndarray, empty: float = 1.0) -> float:
    """Dice of two binary masks; ``empty`` when both are empty."""
    p, t = prediction.astype(bool), truth.astype(bool)
    total = p.sum() + t.sum()
    return float(2 * (p & t).sum() / total) if total else empty


def validation_score(dices: list[float]) -> dict[str, float]:
    """A training loop's validation entry from Dice values (per subject and region): score = 1 - mean Dice."""
    mean = float(np.mean(dices)) if dices else 0.0
    return {"score": 1.0 - mean, "dice": mean}


def iou(prediction: np.ndarray, truth: np.ndarray, empty: float = 1.0) -> float:
    p, t = prediction.astype(bool), truth.astype(bool)
    union = (p | t).sum()
    return float((p & t).sum() / union) if union else empty


def sensitivity(prediction: np.ndarray, truth: np.ndarray) -> float:
    t = truth.astype(bool)
    return float((prediction.astype(bool) & t).sum() / t.sum()) if t.any() else float("nan")


def specificity(prediction: np.ndarray, truth: np.ndarray) -> float:
    negative = ~truth.astype(bool)
    return float((~prediction.astype(bool) & negative).sum() / negative.sum()) if negative.any() else float("nan")


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (the border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(prediction: np.ndarray, truth: np.ndarray, spacing=None) -> float:
    """95th percentile Hausdorff distance (mm with ``spacing``); nan when either mask is empty.

    The larger of the two directed 95th percentiles of surface-to-surface distances, as in MONAI and the
    BraTS evaluation. The surfaces are found inside the masks' bounding box plus one voxel, which holds them all,
    and their distances by nearest-neighbour search among surface voxels (the same values as distance transforms
    of the box, at a fraction of the time for masks far apart).
    """
    p, t = prediction.astype(bool), truth.astype(bool)
    if not p.any() or not t.any():
        return float("nan")
    box = bounding_box(p | t, margin=1)
    on_p, on_t = _surface(p[box]), _surface(t[box])
    spacing = spacing or (1.0,) * p.ndim
    return float(max(np.percentile(nearest_distances(on_p, on_t, spacing), 95),
                     np.percentile(nearest_distances(on_t, on_p, spacing), 95)))


def volume_metrics(prediction: np.ndarray, truth: np.ndarray, spacing=None) -> dict[str, float]:
    """Dice, IoU, HD95, sensitivity and specificity of one volume."""
    return {"dice": dice(prediction, truth), "iou": iou(prediction, truth), "hd95": hd95(prediction, truth, spacing),
            "sensitivity": sensitivity(prediction, truth), "specificity": specificity(prediction, truth)}


def slice_dice(prediction: np.ndarray, truth: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-slice Dice and IoU over axial slices (last axis) whose ground truth holds tumour.

    This is the per-slice protocol: only slices with tumour in the ground truth count, so empty slices
    (where Dice is trivially 1 or undefined) do not inflate the score.
    """
    dices, ious = [], []
    for z in range(truth.shape[-1]):
        t = truth[..., z]
        if t.any():
            dices.append(dice(prediction[..., z], t))
            ious.append(iou(prediction[..., z], t))
    return dices, ious


def residual_ratio(residual: np.ndarray, enhancing: np.ndarray, healthy: np.ndarray) -> float:
    """Mean residual inside enhancing tumour over the mean residual in healthy brain."""
    return float(residual[enhancing].mean() / max(residual[healthy].mean(), 1e-6))


def region_synthesis_metrics(real: np.ndarray, synthetic: np.ndarray, brain: np.ndarray, tumour: np.ndarray | None,
                             spacing, data_range: float = 2.0, margin_mm: float = 3.0) -> dict[str, float]:
    """PSNR and SSIM of a synthetic image inside the brain, for healthy tissue and for the tumour.

    Healthy tissue is the brain minus the tumour dilated by ``margin_mm``.
    """
    _, ssim_map = structural_similarity(real, synthetic, data_range=data_range, full=True)
    regions = {"brain": brain}
    if tumour is not None and tumour.any():
        far = ndimage.distance_transform_edt(~tumour, sampling=spacing) > margin_mm
        regions["healthy"] = brain & far
        regions["tumour"] = tumour & brain
    else:
        regions["healthy"] = brain
    out = {}
    for name, region in regions.items():
        if not region.any():
            continue
        mse = float(np.mean((real[region] - synthetic[region]) ** 2))
        out[f"{name}_psnr"] = float(10 * np.log10(data_range**2 / mse)) if mse > 0 else float("inf")
        out[f"{name}_ssim"] = float(ssim_map[region].mean())
    return out


def lesion_wise_dice(prediction: np.ndarray, truth: np.ndarray, dilation: int = 3) -> float:
    """BraTS 2023 lesion-wise Dice: mean Dice over ground-truth lesions, each false-positive component counting 0.

    Lesions are 26-connected components of the ground truth after a ``dilation``-voxel dilation (nearby pieces
    form one lesion); a lesion's Dice uses the predicted components that touch its dilated extent. 1 when both
    masks are empty. The challenge's additional 50-voxel lesion-size floor is not applied.
    """
    p, t = prediction.astype(bool), truth.astype(bool)
    if not p.any() and not t.any():
        return 1.0
    box = bounding_box(p | t, margin=dilation + 1)
    p, t = p[box], t[box]
    connectivity = np.ones((3,) * t.ndim, bool)
    grouped, lesions = ndimage.label(ndimage.binary_dilation(t, connectivity, iterations=dilation) if t.any() else t,
                                     connectivity)
    components, count = ndimage.label(p, connectivity)
    matched = set()
    scores = []
    for lesion in range(1, lesions + 1):
        extent = grouped == lesion
        touching = np.unique(components[extent & p])
        matched.update(int(c) for c in touching)
        scores.append(dice(np.isin(components, touching) & p, t & extent))
    false_positives = count - len(matched - {0})
    return float(np.sum(scores) / (len(scores) + false_positives))


def summary_stats(values: list) -> dict[str, float]:
    """Mean, std, median, min, max and count of the finite values (None and NaN skipped)."""
    array = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    if not len(array):
        return {"mean": float("nan"), "std": float("nan"), "median": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    return {"mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array)),
            "min": float(array.min()), "max": float(array.max()), "n": int(len(array))}


def region_metrics(masks: dict[str, np.ndarray], seg: np.ndarray, spacing) -> dict[str, dict[str, float]]:
    """Per region (whole, core, enhancing): volume Dice, IoU, HD95, sensitivity, specificity, lesion-wise Dice;
    for the whole tumour also the per-slice Dice over slices with tumour."""
    out = {}
    for region in REGIONS:
        truth = region_mask(seg, region)
        metrics = volume_metrics(masks[region], truth, spacing)
        metrics["lesion_dice"] = lesion_wise_dice(masks[region], truth)
        metrics["truth_ml"] = float(truth.sum()) * float(np.prod(spacing)) / 1000.0
        out[region] = {key: round(value, 4) for key, value in metrics.items()}
    slice_dices, _ = slice_dice(masks["whole"], region_mask(seg, "whole"))
    out["whole"]["slice_dice_mean"] = round(float(np.mean(slice_dices)), 4) if slice_dices else float("nan")
    return out


MIN_PAIRED = 5
"""Fewer pairs than this get no bootstrap interval: resampling 2-4 values says little."""


def paired_difference(first: list[float], second: list[float], seed: int = 0,
                      resamples: int = 10000) -> dict[str, float]:
    """Mean of paired differences (first - second) with a 95% percentile-bootstrap confidence interval (NaN for
    fewer than ``MIN_PAIRED`` pairs)."""
    diff = np.asarray(first, float) - np.asarray(second, float)
    if len(diff) < MIN_PAIRED:
        return {"mean": float(diff.mean()) if len(diff) else float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan"), "n": int(len(diff))}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "ci_low": float(low), "ci_high": float(high), "n": int(len(diff))}
