"""Quality-control picture of a prepared exam: the brain mask's outline on the reference sequence (T1ce, or the
first of FLAIR, T2, T1 the exam holds), and each other sequence's edges over it, in three planes through the
brain's centre."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from skimage import feature

from recoseg_cli.constants import MODALITIES
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.prepare.exam import POOR_REGISTRATION
from recoseg_cli.prepare.faults import MATCH_FLOOR
from recoseg_cli.overlay import PICTURE_FORMATS

PLANES = ("axial", "coronal", "sagittal")


def _planes(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal planes of a (z, y, x) array in ITK's LPS grid, shown head up / anterior up."""
    z, y, x = centre
    return [np.flipud(volume[z]), np.flipud(volume[:, y]), np.flipud(volume[:, :, x])]


def _column_note(report: dict, name: str) -> str:
    """What a column's title says under its name: the brain's volume, or a sequence's registration figures."""
    if name not in report["registration_metric"]:
        return f"{report['brain_ml'] / 1000:.2f} L"
    note = f"MI {report['registration_metric'][name]:.2f} (poor above {POOR_REGISTRATION})"
    match = report.get("anatomy_match", {}).get(name)
    return note + (f"\nanatomy match {match['as is']:.2f}, mirrored {match['mirrored']:.2f}\n(fault: both below "
                   f"{MATCH_FLOOR}, or mirrored higher)" if match is not None else "")


def write_qc(path: Path, figure) -> None:
    """Save a ``qc_figure`` (format from the extension) and close it."""
    import matplotlib.pyplot as plt

    fmt = PICTURE_FORMATS.get(Path(path).suffix.lower(), "png")
    write_atomically(Path(path), lambda tmp: figure.savefig(tmp, format=fmt))
    plt.close(figure)


def qc_figure(exam):
    """The picture of a ``PreparedExam``: a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = exam.reference
    others = [m for m in MODALITIES if m != ref and (exam.folder / f"{exam.case_id}_{m}.nii.gz").is_file()]
    read = {name: sitk.GetArrayFromImage(sitk.ReadImage(str(exam.folder / f"{exam.case_id}_{name}.nii.gz")))
            for name in (ref, "brainmask", *others)}
    brain = read["brainmask"] > 0
    centre = tuple(int(np.mean(axis)) for axis in np.nonzero(brain))
    reference_planes = _planes(read[ref], centre)
    head = sitk.GetArrayFromImage(exam.unmasked_reference) if exam.unmasked_reference is not None else read[ref]
    low, high = np.percentile(read[ref][brain], [1, 99.5])
    columns = [("brainmask", f"brain mask on {ref.upper()}")] + [(name, f"{name.upper()} edges on {ref.upper()}")
                                                                 for name in others]
    figure, axes = plt.subplots(3, len(columns), figsize=(3.25 * len(columns) + 0.5, 10), dpi=90, squeeze=False)
    for col, (name, title) in enumerate(columns):
        backgrounds = _planes(head, centre) if name == "brainmask" else reference_planes  # the mask over the skull
        for row, (plane, background) in enumerate(zip(_planes(read[name], centre), backgrounds)):
            axis = axes[row, col]
            axis.imshow(background, cmap="gray", vmin=low, vmax=high, aspect="equal")
            if name == "brainmask":
                axis.contour(plane > 0, levels=[0.5], colors="lime", linewidths=0.8)
            else:
                scale = np.percentile(plane[plane > 0], 99) if (plane > 0).any() else 1.0
                edges = feature.canny(plane / max(scale, 1e-6), sigma=2.0)
                axis.imshow(np.ma.masked_where(~edges, edges), cmap="autumn", alpha=0.9, interpolation="none")
            axis.set_axis_off()
            if col == 0:
                axis.text(-0.04, 0.5, PLANES[row], rotation=90, transform=axis.transAxes, ha="right", va="center",
                          fontsize=9)
            if row == 0:
                axis.set_title(f"{title}\n{_column_note(exam.report, name)}", fontsize=9)
    warnings = exam.report["warnings"] + exam.report.get("faults", [])
    figure.suptitle(f"{exam.case_id}: prepared exam\n(1 mm, registered to {ref.upper()}; "
                    f"{exam.report['brain_extraction']})"
                    + ("\n" + "\n".join(f"warning: {w}" for w in warnings) if warnings else ""), fontsize=10)
    figure.tight_layout()
    return figure
