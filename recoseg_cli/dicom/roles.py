"""FLAIR, T1, T1ce and T2 recognised among a study's series from their own tags: descriptions and sequence names
first, then the contrast-agent tag and the timing (TR, TE, TI); a user's choice (series number or UID) wins."""

from __future__ import annotations

import re

from recoseg_cli.constants import FLUID_SENSITIVE, MODALITIES
from recoseg_cli.dicom.study import Series, Study
from recoseg_cli.errors import InputError

OTHER_KINDS = re.compile(r"dwi|dti|diffus|adc|trace|\bswi|perf|dsc|dce|asl|\btof|angio|mra|t2\*|spectro|\bfa\b")
"""Series of other kinds, never one of the four."""

CONTRAST_WORDS = re.compile(r"post|\+\s*c\b|\bgd\b|gado|contrast|\bce\b|t1c\b|t1ce|\+gd|\bkm\b|\bmdc\b")
PRE_CONTRAST = re.compile(r"\bpre\b|\bnative?\b|\bnon.?contrast|w/?o\b")


def _is_flair(series: Series) -> bool:
    if re.search(r"t1", series.text):  # T1-weighted FLAIR is a T1
        return False
    return "flair" in series.text or "tirm" in series.text or (
        (series.inversion_ms or 0) >= 1200 and (series.echo_ms or 0) >= 60)


def _is_t2(series: Series) -> bool:
    if re.search(r"t2", series.text):
        return True
    return (series.repetition_ms or 0) >= 2000 and (series.echo_ms or 0) >= 60 and not series.inversion_ms


def _is_t1(series: Series) -> bool:
    if re.search(r"t1|mprage|spgr|bravo|tfl|vibe|\bfspgr", series.text):
        return True
    short_tr, short_ti = (series.repetition_ms or 9999) < 1000, 0 < (series.inversion_ms or 0) < 1200
    return (series.echo_ms or 99) < 20 and (short_tr or short_ti)


def _has_contrast(series: Series) -> bool:
    if series.contrast_agent.strip():
        return True
    return bool(CONTRAST_WORDS.search(series.text)) and not PRE_CONTRAST.search(series.text)


def role_of(series: Series) -> str | None:
    """The series' role, or None when it is none of the four."""
    if series.skip_reason() or OTHER_KINDS.search(series.text):
        return None
    if _is_flair(series):
        return "flair"
    if _is_t1(series):
        return "t1ce" if _has_contrast(series) else "t1"
    if _is_t2(series):
        return "t2"
    return None


def _chosen(study: Study, selector: str, role: str) -> Series:
    matches = [s for s in study.series if selector in (s.uid, str(s.number))]
    if len(matches) != 1:
        raise InputError(f"{study.folder}: --{role} {selector}: {'no' if not matches else 'several'} series with "
                         f"this number or UID; the study holds {listing(study.series)}")
    return matches[0]


def listing(series: list[Series]) -> str:
    return ", ".join(s.label() for s in series)


def assign_roles(study: Study, choices: dict[str, str | None], required: tuple[str, ...] = ()) -> dict[str, Series]:
    """The series of each role the study holds: the user's choice (series number or UID), else the one series the
    rules find; a role with several series, a ``required`` role with none, or a study with neither FLAIR nor T2 is
    refused in one line listing the study's series."""
    roles = {}
    for role in MODALITIES:
        if choices.get(role):
            roles[role] = _chosen(study, str(choices[role]), role)
            continue
        found = [s for s in study.series if role_of(s) == role and s not in roles.values()]
        if len(found) > 1:
            raise InputError(f"{study.folder}: several {role.upper()} series ({listing(found)}) among "
                             f"{listing(study.series)}; choose with --{role} SERIES_NUMBER")
        if found:
            roles[role] = found[0]
    for role in required:
        if role not in roles:
            raise InputError(f"{study.folder}: no {role.upper()} series among {listing(study.series)}; the weights "
                             f"need {', '.join(r.upper() for r in required)} (choose with --{role} SERIES_NUMBER)")
    if not any(role in roles for role in FLUID_SENSITIVE):
        raise InputError(f"{study.folder}: no FLAIR or T2 series among {listing(study.series)}; whole tumour needs one "
                         "of them (choose with --flair or --t2 SERIES_NUMBER)")
    return roles
