"""Find the modality files of one patient folder, or every patient folder of a cohort.

A file's role (flair, t1, t1ce, t2 or seg) is read from the last whole tokens of its name, case-insensitively:
tokens are separated by ``_``, ``-``, ``.`` or spaces, and processing suffixes such as ``_bet`` are skipped.
BIDS names (``sub-01[_ses-01]_..._FLAIR``, ``_T1w``, ``_ce-<label>_T1w``, ``_T2w``) and nnU-Net channel
numbers (``_0000`` to ``_0003``) are read too. What comes before the role is the case id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recoseg_cli.constants import MODALITIES
from recoseg_cli.errors import InputError

NIFTI = re.compile(r"\.nii(?:\.gz)?$", re.IGNORECASE)
TOKEN = re.compile(r"[^_\-.\s]+")

ALIASES: dict[str, tuple[str, ...]] = {
    "flair": ("flair", "fla", "t2f", "t2_flair", "t2flair"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1_gd", "t1post", "t1_post", "ce_t1", "t1_ce", "t1_contrast"),
    "t1": ("t1", "t1n", "t1w", "t1_pre", "t1pre", "t1native"),
    "t2": ("t2", "t2w"),
    "seg": ("seg", "segm", "segmentation", "label", "labels"),
}
"""Names of each role as token sequences (``t2_flair`` also matches ``T2-FLAIR``)."""

PROCESSING_SUFFIXES = frozenset({"bet", "brain", "skullstripped", "stripped", "ss", "reg", "registered", "coreg",
                                 "n4", "biascorr", "corrected", "restore", "preproc", "resampled", "norm"})
"""Tokens left by common tools after the role (``TCGA-DU-7294_fla_bet``), skipped when reading the role."""

NNUNET_CHANNELS = {"0000": "flair", "0001": "t1", "0002": "t1ce", "0003": "t2"}
"""nnU-Net channel numbers in the order of the Medical Segmentation Decathlon brain-tumour task."""

BIDS_SUFFIXES = {"flair": "flair", "t2w": "t2", "t1w": "t1", "dseg": "seg"}
"""BIDS suffixes; ``T1w`` with a ``ce-`` entity is T1ce."""

BRATS2023_ALIASES = frozenset({"t2f", "t1n", "t1c", "t2w"})
"""Role names of BraTS 2023 files, whose labels are 1/2/3 (BraTS2020 and others: 1/2/4)."""

_ALIASES_LONGEST_FIRST = sorted(((role, alias) for role, names in ALIASES.items() for alias in names),
                                key=lambda item: -item[1].count("_"))


@dataclass(frozen=True)
class FileRole:
    """What a file name says: its role, the case id before it, and the naming that matched."""

    role: str
    case: str
    naming: str
    """``bids``, ``nnunet``, or the alias that matched (``t1ce``, ``fla``, ...)."""


def read_role(name: str) -> FileRole | None:
    """The role of a NIfTI file from its name, or None when the name names no role."""
    extension = NIFTI.search(name)
    if not extension:
        return None
    stem = name[:extension.start()]
    if stem.lower().startswith("sub-"):
        return _bids_role(stem)
    spans = [(m.start(), m.group().lower()) for m in TOKEN.finditer(stem)]
    while spans and spans[-1][1] in PROCESSING_SUFFIXES:
        spans.pop()
    tokens = [token for _, token in spans]
    if len(tokens) > 1 and tokens[-1] in NNUNET_CHANNELS:
        return FileRole(NNUNET_CHANNELS[tokens[-1]], _case(stem, spans, 1), "nnunet")
    for role, alias in _ALIASES_LONGEST_FIRST:
        parts = alias.split("_")
        if tokens[-len(parts):] == parts:
            return FileRole(role, _case(stem, spans, len(parts)), alias)
    return None


def _case(stem: str, spans: list[tuple[int, str]], role_tokens: int) -> str:
    """The text of ``stem`` before its last ``role_tokens`` tokens, without trailing separators."""
    return stem[:spans[-role_tokens][0]].rstrip("_-. ") if len(spans) > role_tokens else ""


def _bids_role(stem: str) -> FileRole | None:
    parts = stem.split("_")
    role = BIDS_SUFFIXES.get(parts[-1].lower())
    entities = {p.split("-", 1)[0].lower() for p in parts[:-1] if "-" in p}
    if role == "t1" and "ce" in entities:
        role = "t1ce"
    case = "_".join(p for p in parts[:-1] if p.split("-", 1)[0].lower() in ("sub", "ses"))
    return FileRole(role, case, "bids") if role else None


def looked_for(modalities: list[str] | tuple[str, ...]) -> str:
    """The names accepted for ``modalities``, for error messages."""
    bids = {"flair": "*_FLAIR", "t1": "*_T1w", "t1ce": "*_ce-<label>_T1w", "t2": "*_T2w"}
    channel = {role: number for number, role in NNUNET_CHANNELS.items()}
    return "; ".join(f"{m}: names ending in {'/'.join(ALIASES[m])}, BIDS {bids[m]} or nnU-Net *_{channel[m]}"
                     for m in modalities)


@dataclass
class Patient:
    """The image files of one case, keyed by modality, plus an optional segmentation."""

    case_id: str
    images: dict[str, Path]
    seg: Path | None = None
    scheme: str = "explicit"
    """How the files were named: brats2020, brats2023, nnunet, bids, aliases (other names) or explicit."""
    folder: Path | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m not in self.images)

    def require(self, modalities: tuple[str, ...]) -> None:
        """Fail when any of ``modalities`` is absent, naming every missing one and the files found."""
        absent = [m for m in modalities if m not in self.images]
        if not absent:
            return
        if self.folder is None:
            options = " and ".join(f"--{m}" for m in absent)
            raise InputError(f"missing {', '.join(absent)}: {options} {'is' if len(absent) == 1 else 'are'} required "
                             "(or give a patient folder)")
        optional = [m for m in self.missing if m not in absent]
        also = f" ({', '.join(optional)} also absent, optional)" if optional else ""
        found = ", ".join(f"{m} {p.name}" for m, p in self.images.items())
        raise InputError(f"{self.folder}: missing {', '.join(absent)}{also}; found {found}; looked for "
                         f"{looked_for(absent)}")


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and NIFTI.search(p.name))


def _roles(files: list[Path]) -> dict[str, list[tuple[Path, FileRole]]]:
    roles: dict[str, list[tuple[Path, FileRole]]] = {}
    for path in files:
        found = read_role(path.name)
        if found:
            roles.setdefault(found.role, []).append((path, found))
    return roles


def is_patient_folder(folder: Path) -> bool:
    """True when the folder holds at least one file named as a modality."""
    return folder.is_dir() and any(role in MODALITIES for role in _roles(_nifti_files(folder)))


def looks_like_one_patient(folder: Path) -> bool:
    """A folder of NIfTI files without subfolders: read as one patient even when no name is recognised,
    so that the error names its files rather than saying no patient folder was found."""
    return folder.is_dir() and bool(_nifti_files(folder)) and not any(p.is_dir() for p in folder.iterdir())


def _naming_scheme(namings: list[str]) -> str:
    if "bids" in namings or "nnunet" in namings:
        return "bids" if "bids" in namings else "nnunet"
    if set(namings) <= BRATS2023_ALIASES:
        return "brats2023"
    return "brats2020" if set(namings) <= set(MODALITIES) else "aliases"


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
    roles = _roles(files)
    modalities = [m for m in MODALITIES if m in roles]
    if not modalities:
        shown = ", ".join(p.name for p in files[:4]) + (", ..." if len(files) > 4 else "")
        raise InputError(f"{folder}: no file is named as a modality ({shown}); looked for "
                         f"{looked_for(MODALITIES)}; or give the files with --flair/--t1/--t1ce/--t2")
    for role, found in roles.items():
        if len(found) > 1:
            names = ", ".join(path.name for path, _ in found)
            raise InputError(f"{folder}: {len(found)} files match {role}: {names}; keep one in the folder, "
                             "or give the files with --flair/--t1/--t1ce/--t2")
    images = {m: roles[m][0][0] for m in modalities}
    first = roles[modalities[0]][0][1]
    seg = roles["seg"][0][0] if "seg" in roles else None
    if seg is None and first.naming == "nnunet":
        seg = next((p for p in files if NIFTI.sub("", p.name) == first.case), None)
    scheme = _naming_scheme([roles[m][0][1].naming for m in modalities])
    cases = {roles[m][0][1].case for m in modalities}
    shared = cases.pop() if len(cases) == 1 else ""  # files that share no case prefix: scanner exports, series names
    return Patient(case_id=shared or folder.name, images=images, seg=seg, scheme=scheme, folder=folder)


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
    return Patient(case_id=case_id or _case_id_of_files(images), images=images, seg=seg)


def _case_id_of_files(images: dict[str, Path]) -> str:
    """The case id the file names share before their roles (``P1_flair.nii.gz`` -> ``P1``), else the name of the
    folder holding them, else the first file's name."""
    roles = [read_role(path.name) for path in images.values()]
    cases = {role.case for role in roles if role is not None and role.case}
    if len(cases) == 1:
        return cases.pop()
    folders = {path.resolve().parent for path in images.values()}
    first = next(iter(images.values()))
    return folders.pop().name if len(folders) == 1 and first.resolve().parent.name else NIFTI.sub("", first.name)


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
