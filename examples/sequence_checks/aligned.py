"""Anatomy matches of exams whose sequences already share one grid (BraTS-ready: nothing is registered).

    python aligned.py CASES OUT.json [--bin 1 2]

For each case of CASES (BraTS-ready folders), the anatomy match (``prepare.faults.structure_matches``) of FLAIR,
T1 and T2 with the T1ce, as they are and mirrored left-right in the grid, for the clean exam, with the next case's
FLAIR in place of its own, and with its T2 mirrored; at 1 mm and with the volumes binned by block means (2 mm),
with each computation's seconds; OUT.md summarizes them (``summary``).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import load_volume
from recoseg_cli.prepare.faults import structure_matches

ROLES = ("flair", "t1", "t2")


def load(case: Path) -> dict[str, np.ndarray]:
    """The four images in RAS orientation (axis 0: left-right)."""
    return {m: load_volume(case / f"{case.name}_{m}.nii.gz")[0] for m in ("flair", "t1", "t1ce", "t2")}


def binned(volume: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return volume
    shape = [s - s % factor for s in volume.shape]
    trimmed = volume[:shape[0], :shape[1], :shape[2]]
    return trimmed.reshape(shape[0] // factor, factor, shape[1] // factor, factor,
                           shape[2] // factor, factor).mean(axis=(1, 3, 5))


def matches(images: dict[str, np.ndarray], factor: int) -> tuple[dict, float]:
    start = time.perf_counter()
    brain = binned((images["t1ce"] != 0).astype(np.float32), factor) > 0.5
    small = {m: binned(v, factor) for m, v in images.items()}
    others = {role: small[role] for role in ROLES} | {f"{role} mirrored": small[role][::-1] for role in ROLES}
    found = structure_matches(small["t1ce"], others, brain)
    seconds = time.perf_counter() - start
    return {role: {"as is": round(found[role], 4), "mirrored": round(found[f"{role} mirrored"], 4)}
            for role in ROLES}, round(seconds, 3)


def summary(rows: list[dict]) -> str:
    """Markdown: per grid, version and sequence, the anatomy match as is, its mirror's gain, and its share of the
    median of the other two sequences' matches (lowest, median, highest over the cases)."""
    lines = ["| grid | exam | sequence | match as is: min / median / max | mirrored minus as is: min / max | "
             "share of the others' median: min / max | seconds, median |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for factor in sorted({r["bin"] for r in rows}):
        for version in ("clean", "foreign flair", "mirrored t2"):
            chosen = [r for r in rows if r["bin"] == factor and r["version"] == version]
            seconds = np.median([r["seconds"] for r in chosen])
            for role in ROLES:
                plain = np.array([r["matches"][role]["as is"] for r in chosen])
                gain = np.array([r["matches"][role]["mirrored"] for r in chosen]) - plain
                share = plain / np.array([np.median([r["matches"][o]["as is"] for o in ROLES if o != role])
                                          for r in chosen])
                lines.append(f"| {factor} mm | {version} | {role} | {plain.min():.3f} / {np.median(plain):.3f} / "
                             f"{plain.max():.3f} | {gain.min():+.3f} / {gain.max():+.3f} | {share.min():.2f} / "
                             f"{share.max():.2f} | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--bin", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cases = sorted(p for p in args.cases.iterdir() if p.is_dir())
    rows = []
    for index, case in enumerate(cases):
        images = load(case)
        foreign = load(cases[(index + 1) % len(cases)])["flair"]
        versions = {"clean": images, "foreign flair": images | {"flair": foreign},
                    "mirrored t2": images | {"t2": images["t2"][::-1]}}
        for version, exam in versions.items():
            for factor in args.bin:
                found, seconds = matches(exam, factor)
                rows.append({"case_id": case.name, "version": version, "bin": factor, "matches": found,
                             "seconds": seconds})
        print(case.name, {r["version"] + str(r["bin"]): r["matches"] for r in rows[-6:]}, flush=True)
    write_json(args.out, {"cases": rows})
    args.out.with_suffix(".md").write_text(summary(rows))


if __name__ == "__main__":
    main()
