"""Figure of one case's uncertainty map with the predicted and true tumour outlines (no image intensities).

    python examples/uncertainty/make_figure.py MASK.nii.gz MASK_uncertainty.nii.gz SEG.nii.gz OUT.png TITLE
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402


def canonical(path: str) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)


def main(mask_path: str, uncertainty_path: str, seg_path: str, out: str, title: str) -> None:
    mask, uncertainty, seg = canonical(mask_path) > 0, canonical(uncertainty_path), canonical(seg_path) > 0
    z = int(np.argmax(uncertainty.sum(axis=(0, 1))))
    show = lambda plane: np.flipud(plane.T)[:, ::-1]  # noqa: E731  radiological view, anterior up
    figure, axis = plt.subplots(figsize=(5.6, 5.2), dpi=110)
    shown = axis.imshow(show(uncertainty[:, :, z]), cmap="viridis", vmin=0, vmax=1)
    axis.contour(show(mask[:, :, z]).astype(float), levels=[0.5], colors="white", linewidths=1.0)
    axis.contour(show(seg[:, :, z]).astype(float), levels=[0.5], colors="red", linewidths=1.0, linestyles="--")
    figure.colorbar(shown, ax=axis, fraction=0.046).set_label("uncertainty, bits (mirrored-pass entropy)")
    axis.set_title(f"{title}, axial slice {z}\nwhite: predicted whole tumour, red dashed: ground truth", fontsize=9)
    axis.axis("off")
    figure.savefig(out, bbox_inches="tight")


if __name__ == "__main__":
    main(*sys.argv[1:6])
