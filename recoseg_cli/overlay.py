"""Review picture: MRI with predicted sub-regions (and ground-truth contours), the residual, the uncertainty over
the anatomy, and every separate lesion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recoseg_cli.components import DISTANT_MM, components_by_size, lesion_components
from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.metrics import dice
from recoseg_cli.regions import region_mask, subregion_masks

SUBREGION_COLOURS = (("edema", "#2ca02c"), ("necrotic", "#d62728"), ("enhancing", "#ffd700"))
RESIDUAL_RANGE = (0.0, 2.5)
"""Fixed colour scale of the residual in z-score units (brain standard deviations), comparable across patients."""


PICTURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
"""Overlay file formats, from the file name's extension."""

TRUTH_COLOURS = (("whole", "cyan"), ("core", "magenta"), ("enhancing", "#1f77ff"))


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


MAX_LESION_PANELS = 6
"""Separate lesions shown one panel each, largest first; the report lists the rest."""


def lesion_views(masks: dict[str, np.ndarray], zooms: tuple[float, float, float]) -> list[tuple[int, np.ndarray, dict]]:
    """For each whole-tumour component, largest first: the axial index of its largest cross-section, its voxels
    and its ``components.lesion_components`` entry."""
    labelled, labels, _ = components_by_size(masks["whole"])
    if len(labels) < 2:
        return []
    views = []
    for entry, label in zip(lesion_components(masks, masks["whole"].astype(np.float32), zooms), labels):
        voxels = labelled == label
        views.append((int(np.argmax(voxels.sum(axis=(0, 1)))), voxels, entry))
    return views


def write_overlay(path: Path, image: np.ndarray, residual: np.ndarray | None, masks: dict[str, np.ndarray],
                  truth: np.ndarray | None, scheme: str, brain: np.ndarray, title: str,
                  zooms: tuple[float, float, float], warnings: list[str] = (), uncertainty: np.ndarray | None = None,
                  sequence: str = "t1ce") -> int:
    """Save the overlay (format from the extension): the slice with most predicted enhancing tumour (canonical
    volumes) on ``image`` (the ``sequence``) with the residual and, when given, the uncertainty map over the
    anatomy; below it, when the mask has several separate lesions, each lesion's largest slice with its volume
    and distance from the largest; the warnings written at the bottom. Returns the main slice's index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    z = tumour_slice(masks, truth if truth is None else truth > 0, brain)
    inside = image[brain]
    vmin, vmax = (np.percentile(inside, [1, 99.5]) if inside.size else (image.min(), image.max()))
    lesions = lesion_views(masks, zooms)
    shown = lesions[:MAX_LESION_PANELS]
    panels = 2 if uncertainty is None else 3
    columns = max(panels, len(shown))
    figure, axes = plt.subplots(2 if shown else 1, columns, figsize=(5.0 * columns, 5.4 * (2 if shown else 1)),
                                dpi=100, squeeze=False)
    mri_axis, residual_axis = axes[0, 0], axes[0, 1]

    def anatomy(axis, index: int) -> None:
        axis.imshow(_display(image[:, :, index]), cmap="gray", vmin=vmin, vmax=vmax)

    def subregions(axis, index: int) -> None:
        planes = subregion_masks({region: mask[:, :, index] for region, mask in masks.items()})
        for name, colour in SUBREGION_COLOURS:
            plane = _display(planes[name])
            axis.imshow(np.ma.masked_where(~plane, plane), cmap=ListedColormap([colour]), alpha=0.45, vmin=0, vmax=1)

    anatomy(mri_axis, z)
    subregions(mri_axis, z)
    handles = [Patch(color=colour, alpha=0.6, label=f"{name} (predicted)") for name, colour in SUBREGION_COLOURS]
    if truth is not None:
        for region, colour in TRUTH_COLOURS:
            plane = _display(region_mask(truth[:, :, z], region, scheme)).astype(float)
            if plane.any():
                mri_axis.contour(plane, levels=[0.5], colors=colour, linewidths=1.0)
            handles.append(Line2D([], [], color=colour, label=f"ground truth {region}"))
    if columns > panels:  # a spare axis in the top row holds the legend
        axes[0, panels].legend(handles=handles, loc="center left", fontsize=9, frameon=False)
    else:
        mri_axis.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.32), ncol=2, fontsize=8,
                        frameon=False)
    mri_axis.set_title(f"{sequence.upper()} with predicted sub-regions, axial slice {z}", fontsize=10)
    plane = _display(residual[:, :, z]) if residual is not None else np.zeros(_display(image[:, :, z]).shape)
    drawn = residual_axis.imshow(plane, cmap="magma", vmin=RESIDUAL_RANGE[0], vmax=RESIDUAL_RANGE[1])
    residual_axis.set_title("residual |T1ce - synthetic T1ce|" if residual is not None else
                            "no residual (it needs all four sequences)", fontsize=10)
    bar = figure.colorbar(drawn, ax=residual_axis, fraction=0.046, pad=0.02)
    bar.set_label("z-score units (standard deviations of the brain's intensities)", fontsize=8)
    if uncertainty is not None:
        anatomy(axes[0, 2], z)
        plane = _display(uncertainty[:, :, z])
        drawn = axes[0, 2].imshow(np.ma.masked_where(plane < 0.05, plane), cmap="viridis", vmin=0.0, vmax=1.0,
                                  alpha=0.85)
        axes[0, 2].set_title("uncertainty over the anatomy (mirrored-pass entropy)", fontsize=10)
        figure.colorbar(drawn, ax=axes[0, 2], fraction=0.046, pad=0.02).set_label(
            "bits (0 = certain, 1 = a coin toss)", fontsize=8)
    for k, (index, voxels, entry) in enumerate(shown):
        axis = axes[1, k]
        anatomy(axis, index)
        subregions(axis, index)
        axis.contour(_display(voxels[:, :, index]).astype(float), levels=[0.5], colors="white", linewidths=0.8)
        distant = k > 0 and entry["distance_mm"] > DISTANT_MM
        where = "largest" if k == 0 else f"{entry['distance_mm']:.0f} mm from the largest"
        axis.set_title(f"lesion {k + 1}: {entry['ml']:.1f} mL (TC {entry['core_ml']:.1f}, ET "
                       f"{entry['enhancing_ml']:.1f}), {where}\naxial slice {index}", fontsize=9,
                       color="#b00000" if distant else "black")
    if len(lesions) > len(shown):
        axes[1, -1].text(1.0, -0.06, f"+{len(lesions) - len(shown)} smaller lesions (report: components)",
                         transform=axes[1, -1].transAxes, ha="right", va="top", fontsize=8)
    for axis in axes.flat:
        axis.axis("off")
        if axis.images:
            _orientation_letters(axis)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    summary = ", ".join(f"{abbr} {masks[region].sum() * voxel_ml:.1f} mL"
                        for region, abbr in (("whole", "WT"), ("core", "TC"), ("enhancing", "ET")))
    if lesions:
        summary += f" in {len(lesions)} separate lesions"
    if truth is not None:
        summary += "; Dice " + ", ".join(
            f"{abbr} {dice(masks[region], region_mask(truth, region, scheme)):.2f}"
            for region, abbr in (("whole", "WT"), ("core", "TC"), ("enhancing", "ET")))
    figure.suptitle(f"{title}\n{summary}", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.96 if shown else 0.93))
    if shown:  # room for the lesions' titles (and the legend under the first picture when it sits there)
        figure.subplots_adjust(hspace=0.3 if columns > panels else 0.45)
    if warnings:
        figure.subplots_adjust(bottom=0.08 + 0.035 * len(warnings) / (2 if shown else 1))
        figure.text(0.01, 0.01, "\n".join(f"warning: {w}" for w in warnings), color="#b00000", fontsize=7,
                    ha="left", va="bottom", wrap=True)
    fmt = PICTURE_FORMATS.get(Path(path).suffix.lower(), "png")
    write_atomically(Path(path), lambda tmp: figure.savefig(tmp, format=fmt, bbox_inches="tight"))
    plt.close(figure)
    return z
