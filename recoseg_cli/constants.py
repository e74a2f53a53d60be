"""Names shared by every module: modalities, channel order and label schemes."""

MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
"""Canonical channel order of every array the package builds."""

CONDITION_MODALITIES: tuple[str, ...] = ("flair", "t1", "t2")
"""Inputs of the T1ce synthesis model, in channel order."""

TARGET_MODALITY = "t1ce"

FLUID_SENSITIVE: tuple[str, ...] = ("flair", "t2")
"""At least one of these is needed to see the whole tumour (edema)."""

MIN_SLICES = 10
"""Fewer slices than this along any axis make no volume to segment (or to register)."""

LABEL_SCHEMES: dict[str, frozenset[int]] = {
    "brats2020": frozenset({0, 1, 2, 4}),
    "brats2023": frozenset({0, 1, 2, 3}),
}
"""Allowed label values per scheme. Whole tumour is every non-zero label in both."""

SUBREGION_LABELS: dict[str, dict[str, int]] = {
    "brats2020": {"necrotic": 1, "edema": 2, "enhancing": 4},
    "brats2023": {"necrotic": 1, "edema": 2, "enhancing": 3},
}
"""Label value of each tumour sub-region (NCR/NET, edema, enhancing tumour) per scheme."""

CONDITION_INDEX: list[int] = [MODALITIES.index(m) for m in CONDITION_MODALITIES]
TARGET_INDEX: int = MODALITIES.index(TARGET_MODALITY)
