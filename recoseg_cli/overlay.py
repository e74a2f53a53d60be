"""Figure-1-style picture: MRI with predicted sub-regions (and ground-truth contours), and the residual."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.metrics import dice
from recoseg_cli.regions import region_mask, subregion_masks

SUBREGION_COLOURS = (("edema", "#2ca02c"), ("necrotic", "#d62728"), ("enhancing", "#ffd700"))
RESIDUAL_RANGE = (0.0, 2.5)
"""Fixed colour scale of the residual in z-score units (brain standard deviations), comparable across patients."""


PICTURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
"""Overlay file formats, from the file name's extension."""

TRUTH_COLOURS = (("whole", "cyan"), ("core", "magenta"), ("enhancing", "white"))


def check_picture_name(path: Path) -> None:
    """Refuse an overlay name whose extension names no supported format."""
    if path.suffix.lower() not in PICTURE_FORMATS:
        raise InputError(f"{path}: overlay name must end in {', '.join(PICTURE_FORMATS)}")


def tumour_slice(masks: dict[str, np.ndarray], truth: np.ndarray | None, brain: np.ndarray) -> int:
    """Axial index with the most predicted enhancing tumour, else whole tumour, else ground truth, else the
    brain's middle."""
    for volume in (masks["enhancing"], masks["whole"], truth):
        if volume is not None and volume.any():
            return int(np.argmax(volume.sum(axis=(0, 1))))
    slices = np.flatnonzero(brain.any(axis=(0, 1)))
    return int(slices[len(slices) // 2])


def _display(plane: np.ndarray) -> np.ndarray:
    """Canonical (R, A) plane shown radiologically: anterior up, patient's right on the left of the screen."""
    return np.flipud(plane.T)[:, ::-1]


def _orientation_letters(axis) -> None:
    for text, x, y in (("R", 0.02, 0.5), ("L", 0.96, 0.5), ("A", 0.5, 0.96), ("P", 0.5, 0.02)):
        axis.text(x, y, text, color="white", transform=axis.transAxes, fontsize=10, ha="center", va="center")


def write_overlay(path: Path, image: np.ndarray, residual: np.ndarray | None, masks: dict[str, np.ndarray],
                  truth: np.ndarray | None, scheme: str, brain: np.ndarray, title: str, voxel_ml: float,
                  warnings: list[str] = (), uncertainty: np.ndarray | None = None, sequence: str = "t1ce") -> int:
    """Save the overlay (format from the extension) for the slice with most predicted enhancing tumour
    (canonical volumes) on ``image`` (the ``sequence``), with the warnings written on it and a third panel for the
    uncertainty map when given; returns the slice index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    z = tumour_slice(masks, truth if truth is None else truth > 0, brain)
    mri = _display(image[:, :, z])
    inside = mri[_display(brain[:, :, z])]
    vmin, vmax = (np.percentile(inside, [1, 99.5]) if inside.size else (mri.min(), mri.max()))
    panels = 2 if uncertainty is None else 3
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 5.6), dpi=110)
    mri_axis, residual_axis = axes[:2]
    mri_axis.imshow(mri, cmap="gray", vmin=vmin, vmax=vmax)
    handles = []
    subregions = subregion_masks({region: mask[:, :, z] for region, mask in masks.items()})
    for name, colour in SUBREGION_COLOURS:
        plane = _display(subregions[name])
        mri_axis.imshow(np.ma.masked_where(~plane, plane), cmap=ListedColormap([colour]), alpha=0.45, vmin=0, vmax=1)
        handles.append(Patch(color=colour, alpha=0.6, label=f"{name} (predicted)"))
    if truth is not None:
        for region, colour in TRUTH_COLOURS:
            plane = _display(region_mask(truth[:, :, z], region, scheme)).astype(float)
            if plane.any():
                mri_axis.contour(plane, levels=[0.5], colors=colour, linewidths=1.0)
            handles.append(Line2D([], [], color=colour, label=f"ground truth {region}"))
    mri_axis.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.32), ncol=2, fontsize=8,
                    frameon=False)
    mri_axis.set_title(f"{sequence.upper()} with predicted sub-regions", fontsize=10)
    plane = _display(residual[:, :, z]) if residual is not None else np.zeros_like(mri)
    shown = residual_axis.imshow(plane, cmap="magma", vmin=RESIDUAL_RANGE[0], vmax=RESIDUAL_RANGE[1])
    residual_axis.set_title("residual |T1ce - synthetic T1ce|" if residual is not None else
                            "no residual (it needs all four sequences)", fontsize=10)
    bar = figure.colorbar(shown, ax=residual_axis, fraction=0.046, pad=0.02)
    bar.set_label("z-score units (standard deviations of the brain's intensities)", fontsize=8)
    if uncertainty is not None:
        shown = axes[2].imshow(_display(uncertainty[:, :, z]), cmap="viridis", vmin=0.0, vmax=1.0)
        axes[2].set_title("uncertainty (mirrored-pass entropy)", fontsize=10)
        figure.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02).set_label("bits (0 = certain, 1 = a coin toss)",
                                                                                fontsize=8)
    for axis in axes:
        axis.axis("off")
        _orientation_letters(axis)
    summary = f"WT {masks['whole'].sum() * voxel_ml:.1f} mL, TC {masks['core'].sum() * voxel_ml:.1f} mL, " \
              f"ET {masks['enhancing'].sum() * voxel_ml:.1f} mL"
    if truth is not None:
        summary += "; Dice " + ", ".join(
            f"{abbr} {dice(masks[region], region_mask(truth, region, scheme)):.2f}"
            for region, abbr in (("whole", "WT"), ("core", "TC"), ("enhancing", "ET")))
    figure.suptitle(f"{title}, axial slice {z}\n{summary}", fontsize=11)
    figure.tight_layout()
    if warnings:
        figure.subplots_adjust(bottom=0.08 + 0.035 * len(warnings))
        figure.text(0.01, 0.01, "\n".join(f"warning: {w}" for w in warnings), color="#b00000", fontsize=7,
                    ha="left", va="bottom", wrap=True)
    fmt = PICTURE_FORMATS.get(Path(path).suffix.lower(), "png")
    write_atomically(Path(path), lambda tmp: figure.savefig(tmp, format=fmt, bbox_inches="tight"))
    plt.close(figure)
    return z
