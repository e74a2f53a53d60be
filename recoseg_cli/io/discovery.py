"""Find the modality files of one patient folder, or every patient folder of a cohort."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recoseg_cli.constants import MODALITIES
from recoseg_cli.errors import InputError

NIFTI = r"\.nii(?:\.gz)?"

NAMING_SCHEMES: dict[str, dict[str, str]] = {
    "brats2020": {"flair": "_flair", "t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "seg": "_seg"},
    "brats2023": {"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "seg": "-seg"},
    "nnunet": {"flair": "_0000", "t1": "_0001", "t1ce": "_0002", "t2": "_0003"},
}
"""Whole filename suffixes (before .nii/.nii.gz) per scheme. nnU-Net channel order follows the
Medical Segmentation Decathlon brain-tumour task: 0000 FLAIR, 0001 T1, 0002 T1ce (T1gd), 0003 T2."""

EXTRA_SEG_PATTERN = re.compile(rf"^(?P<case>.+)_segm?{NIFTI}$", re.IGNORECASE)
"""Segmentations named like ``W39_1998.09.19_Segm.nii`` (BraTS2020 case 355)."""


@dataclass
class Patient:
    """The image files of one case, keyed by modality, plus an optional segmentation."""

    case_id: str
    images: dict[str, Path]
    seg: Path | None = None
    scheme: str = "explicit"
    folder: Path | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m not in self.images)

    def require(self, modalities: tuple[str, ...]) -> None:
        """Fail with the names looked for when any of ``modalities`` is absent."""
        absent = [m for m in modalities if m not in self.images]
        if absent:
            where = self.folder or "the given paths"
            looked = _looked_for(absent)
            raise InputError(f"{where}: missing {', '.join(absent)} (looked for {looked})")


def _looked_for(modalities: list[str]) -> str:
    names = []
    for modality in modalities:
        names.append("/".join(f"*{NAMING_SCHEMES[s][modality]}.nii[.gz]" for s in NAMING_SCHEMES))
    return "; ".join(names)


def _match(scheme: str, name: str) -> tuple[str, str] | None:
    """Return (case, role) when ``name`` ends in one of the scheme's whole suffixes."""
    for role, suffix in NAMING_SCHEMES[scheme].items():
        found = re.fullmatch(rf"(?P<case>.+){re.escape(suffix)}{NIFTI}", name, re.IGNORECASE)
        if found:
            return found.group("case"), role
    return None


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and re.search(rf"{NIFTI}$", p.name, re.IGNORECASE))


def _scheme_matches(files: list[Path]) -> dict[str, dict[str, list[Path]]]:
    found: dict[str, dict[str, list[Path]]] = {}
    for scheme in NAMING_SCHEMES:
        roles: dict[str, list[Path]] = {}
        for path in files:
            hit = _match(scheme, path.name)
            if hit:
                roles.setdefault(hit[1], []).append(path)
        if any(role in MODALITIES for role in roles):
            found[scheme] = roles
    return found


def is_patient_folder(folder: Path) -> bool:
    """True when the folder holds at least one modality file of a known naming scheme."""
    return folder.is_dir() and bool(_scheme_matches(_nifti_files(folder)))


def discover_patient(folder: str | Path) -> Patient:
    """Find the modality files and optional segmentation in one patient folder."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a patient folder, got a file")
    files = _nifti_files(folder)
    if not files:
        raise InputError(f"{folder}: no NIfTI files (.nii or .nii.gz) found")
    matches = _scheme_matches(files)
    if not matches:
        raise InputError(f"{folder}: no file matches a known naming scheme (looked for {_looked_for(list(MODALITIES))})")
    scheme = max(matches, key=lambda s: sum(role in MODALITIES for role in matches[s]))
    roles = matches[scheme]
    for role, paths in roles.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise InputError(f"{folder}: {len(paths)} files match {role}: {names}")
    images = {m: roles[m][0] for m in MODALITIES if m in roles}
    seg = roles["seg"][0] if "seg" in roles else _extra_seg(files, set(images.values()))
    if seg is None and scheme == "nnunet":
        case = _match(scheme, next(iter(images.values())).name)[0]
        label_file = [p for p in files if re.fullmatch(rf"{re.escape(case)}{NIFTI}", p.name)]
        seg = label_file[0] if label_file else None
    case_id = _match(scheme, next(iter(images.values())).name)[0]
    return Patient(case_id=case_id, images=images, seg=seg, scheme=scheme, folder=folder)


def _extra_seg(files: list[Path], taken: set[Path]) -> Path | None:
    candidates = [p for p in files if p not in taken and EXTRA_SEG_PATTERN.match(p.name)]
    if len(candidates) > 1:
        raise InputError(f"{candidates[0].parent}: several segmentation files: {', '.join(p.name for p in candidates)}")
    return candidates[0] if candidates else None


def patient_from_paths(paths: dict[str, str | Path | None], case_id: str | None = None) -> Patient:
    """Build a patient from explicit per-modality paths (``seg`` optional)."""
    images = {m: Path(p) for m, p in paths.items() if p is not None and m in MODALITIES}
    if not images:
        raise InputError("no modality paths given")
    for path in images.values():
        if not path.is_file():
            raise InputError(f"{path}: file not found")
    seg = Path(paths["seg"]) if paths.get("seg") else None
    if seg is not None and not seg.is_file():
        raise InputError(f"{seg}: file not found")
    first = images.get("flair", next(iter(images.values())))
    name = case_id or re.sub(rf"{NIFTI}$", "", first.name, flags=re.IGNORECASE)
    return Patient(case_id=name, images=images, seg=seg)


def find_patient_folders(root: str | Path, max_depth: int = 3) -> list[Path]:
    """Every patient folder up to ``max_depth`` levels below ``root`` (``root`` itself included), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    folders: list[Path] = []
    frontier = [root]
    for _ in range(max_depth + 1):
        next_frontier = []
        for folder in frontier:
            if is_patient_folder(folder):
                folders.append(folder)
            else:
                next_frontier.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
        frontier = next_frontier
    if not folders:
        raise InputError(f"{root}: no patient folders found within {max_depth} levels")
    return sorted(folders, key=lambda p: (p.name, str(p.relative_to(root))))


def discover_cohort(root: str | Path, max_depth: int = 3) -> list[Patient]:
    """Discover every patient of a cohort folder; any broken patient folder raises."""
    return [discover_patient(f) for f in find_patient_folders(root, max_depth)]
