"""Figure-1-style picture: MRI with the tumour highlighted, residual, predicted mask, ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recoseg_cli.io.nifti import write_atomically


def tumour_slice(mask: np.ndarray, truth: np.ndarray | None, brain: np.ndarray) -> int:
    """Axial index with the most tumour (prediction, else ground truth), else the brain's middle."""
    for volume in (mask, truth):
        if volume is not None and volume.any():
            return int(np.argmax(volume.sum(axis=(0, 1))))
    slices = np.flatnonzero(brain.any(axis=(0, 1)))
    return int(slices[len(slices) // 2])


def _display(plane: np.ndarray) -> np.ndarray:
    """Canonical (R, A) plane shown radiologically: anterior up, patient's right on the left of the screen."""
    return np.flipud(plane.T)[:, ::-1]


def write_overlay(path: Path, image: np.ndarray, residual: np.ndarray | None, mask: np.ndarray,
                  truth: np.ndarray | None, brain: np.ndarray, title: str) -> int:
    """Save the overlay PNG for the mid-tumour slice of canonical volumes; returns the slice index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = tumour_slice(mask, truth, brain)
    panels = [("MRI (T1ce) with predicted tumour", "mri"), ("residual |T1ce - synthetic|", "residual"),
              ("predicted tumour", "mask")]
    if truth is not None:
        panels.append(("ground truth", "truth"))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), dpi=100)
    mri = _display(image[:, :, z])
    inside = mri[_display(brain[:, :, z])]
    vmin, vmax = (np.percentile(inside, [1, 99.5]) if inside.size else (mri.min(), mri.max()))
    for axis, (label, kind) in zip(axes, panels):
        axis.axis("off")
        axis.set_title(label, fontsize=9)
        if kind == "mri":
            axis.imshow(mri, cmap="gray", vmin=vmin, vmax=vmax)
            axis.imshow(np.ma.masked_where(~_display(mask[:, :, z]).astype(bool), _display(mask[:, :, z])),
                        cmap="autumn", alpha=0.45)
            axis.text(0.02, 0.5, "R", color="white", transform=axis.transAxes, fontsize=9, va="center")
        elif kind == "residual":
            plane = _display(residual[:, :, z]) if residual is not None else np.zeros_like(mri)
            axis.imshow(plane, cmap="magma", vmin=0, vmax=max(float(np.percentile(plane, 99.9)), 1e-6))
        else:
            volume = mask if kind == "mask" else truth
            axis.imshow(_display(volume[:, :, z] > 0), cmap="gray", vmin=0, vmax=1)
    figure.suptitle(f"{title} — axial slice {z}", fontsize=10)
    figure.tight_layout()
    write_atomically(Path(path), lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    return z
