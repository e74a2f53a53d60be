"""``recoseg benchmark``: the paper's comparisons, label efficiency, missing T1ce and speed."""
