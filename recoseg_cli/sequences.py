"""Which sequences an exam holds, and what the missing ones cost."""

from __future__ import annotations

from recoseg_cli.constants import MODALITIES
from recoseg_cli.regions import REGION_ABBREVIATIONS, REGIONS


def subset_name(present: tuple[str, ...]) -> str:
    """A set of sequences as one key, in ``MODALITIES`` order: "flair+t1ce"."""
    return "+".join(m for m in MODALITIES if m in present)


def expected_dice(subset_dice: dict, present: tuple[str, ...]) -> dict[str, float] | None:
    """The cross-validated mean Dice per region a weights file records for this set of sequences, if any."""
    return subset_dice.get(subset_name(present))


def missing_sequence_warnings(present: tuple[str, ...], used: tuple[str, ...], synthesized_t1ce: bool,
                              subset_dice: dict) -> list[str]:
    """One warning naming the missing sequences, those the weights do not read, what stood in for the missing ones
    and the set's expected Dice."""
    missing = [m for m in MODALITIES if m not in present]
    if not missing:
        return []
    unread = [m.upper() for m in present if m not in used]
    what = [f"{', '.join(unread)} not read by these weights" if unread else None,
            "the synthetic T1ce in place of the T1ce" if synthesized_t1ce else None,
            "no residual (it needs all four sequences)",
            None if "t1ce" in present else "tumour core and enhancing tumour are estimates without a T1ce"]
    expected = expected_dice(subset_dice, present)
    scores = ("; cross-validated Dice for this set: "
              + ", ".join(f"{REGION_ABBREVIATIONS[r]} {expected[r]:.2f}" for r in REGIONS if r in expected)
              if expected else "")
    return [f"missing {', '.join(m.upper() for m in missing)}: segmented from {', '.join(m.upper() for m in used)}; "
            + "; ".join(w for w in what if w) + scores]
