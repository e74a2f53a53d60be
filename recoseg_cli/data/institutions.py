"""Contributing institutions of BraTS cases, from their case ids."""

from __future__ import annotations

import re

INSTITUTIONS = (("BraTS 2013", re.compile(r"_2013_")), ("CBICA", re.compile(r"_CBICA_")),
                ("TCIA", re.compile(r"_TCIA\d*_")))
"""Contributing institutions recognised in BraTS 2018-style case ids (``Brats18_CBICA_ABM_1``)."""


def institution(case_id: str) -> str:
    """The institution named in a BraTS 2018-style case id, or "other"."""
    return next((name for name, pattern in INSTITUTIONS if pattern.search(case_id)), "other")
