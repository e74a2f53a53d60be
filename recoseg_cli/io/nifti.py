"""Load NIfTI volumes in canonical (RAS) orientation and write them back in the file's own."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import write_atomically

AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Geometry:
    """Everything needed to write an array back exactly where the source file's voxels were."""

    shape: tuple[int, ...]
    affine: np.ndarray
    header: nib.Nifti1Header
    orientation: np.ndarray
    """nibabel orientation of the file's axes relative to RAS."""

    @property
    def zooms(self) -> tuple[float, ...]:
        return tuple(float(z) for z in self.header.get_zooms()[:3])

    @property
    def canonical_zooms(self) -> tuple[float, float, float]:
        """Voxel size along the canonical R, A and S axes."""
        zooms = self.zooms
        order = self.orientation[:, 0].astype(int)
        out = [0.0, 0.0, 0.0]
        for file_axis, ras_axis in enumerate(order):
            out[ras_axis] = zooms[file_axis]
        return out[0], out[1], out[2]

    def matches(self, other: Geometry) -> bool:
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=AFFINE_TOLERANCE_MM)


def read_image(path: Path) -> nib.Nifti1Image:
    """A NIfTI image (header, data unread); unreadable or foreign files raise InputError naming the file."""
    try:
        image = nib.load(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:  # nibabel raises many types for foreign files
        raise InputError(f"{path}: not a readable NIfTI image ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: not a NIfTI image ({type(image).__name__})")
    return image


def volume_shape(image: nib.Nifti1Image, path: Path) -> tuple[int, int, int]:
    """The image's 3D shape (a trailing 4th axis of length 1 dropped); InputError for any other shape."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {tuple(image.shape)}")
    return shape


def load_volume(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a 3D NIfTI file as canonical-orientation float32 and its geometry record."""
    path = Path(path)
    image = read_image(path)
    shape = volume_shape(image, path)
    try:
        data = np.asanyarray(image.dataobj, dtype=np.float32).reshape(shape)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"{path}: truncated or corrupt image data ({exc})") from None
    if not np.isfinite(data).all():
        count = int((~np.isfinite(data)).sum())
        raise InputError(f"{path}: {count} voxels are NaN or infinite")
    orientation = nib.orientations.io_orientation(image.affine)
    geometry = Geometry(shape=shape, affine=image.affine.copy(), header=image.header.copy(), orientation=orientation)
    canonical = nib.orientations.apply_orientation(data, orientation)
    return np.ascontiguousarray(canonical, dtype=np.float32), geometry


def to_file_orientation(canonical: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Reorient a canonical (RAS) array back to the axis order and flips of the source file."""
    ras_to_file = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")), geometry.orientation
    )
    return np.ascontiguousarray(nib.orientations.apply_orientation(canonical, ras_to_file))


def save_volume(canonical: np.ndarray, geometry: Geometry, path: str | Path, dtype: type = np.uint8) -> Path:
    """Write a canonical array to ``path`` in the source's orientation, shape, affine and codes, atomically."""
    return write_image(to_image(canonical, geometry, dtype), path)


def write_image(image: nib.Nifti1Image, path: str | Path) -> Path:
    """Write a NIfTI image atomically (nibabel picks .nii or .nii.gz from the name)."""
    path = Path(path)
    write_atomically(path, lambda tmp: nib.save(image, str(tmp)))
    return path


def to_image(canonical: np.ndarray, geometry: Geometry, dtype: type = np.uint8) -> nib.Nifti1Image:
    """A canonical array as a NIfTI image in the source's orientation, shape, affine, zooms and codes."""
    data = to_file_orientation(canonical, geometry).astype(dtype)
    if data.shape != geometry.shape:
        raise ValueError(f"array shape {data.shape} does not match geometry {geometry.shape}")
    source = geometry.header
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(dtype)
    header.set_zooms(source.get_zooms()[:3])
    header.set_xyzt_units(*source.get_xyzt_units())
    image = nib.Nifti1Image(data, geometry.affine, header=header)
    qform, qform_code = source.get_qform(coded=True)
    sform, sform_code = source.get_sform(coded=True)
    image.set_qform(qform if qform is not None else geometry.affine, int(qform_code or 0))
    image.set_sform(sform if sform is not None else geometry.affine, int(sform_code or 0))
    image.header.set_slope_inter(1.0, 0.0)
    return image
