"""JSON files written atomically, with NaN and infinities as null so strict parsers read them."""

from __future__ import annotations

import json
import math
from pathlib import Path

from recoseg_cli.io.outputs import write_atomically


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON; non-finite floats become null."""
    text = json.dumps(_finite_or_none(data), indent=2, allow_nan=False)
    write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
