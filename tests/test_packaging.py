"""The bundled weights ship inside the package: found as package data, and carried by a built wheel."""

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import get_args

import pytest

from recoseg_cli import weights
from recoseg_cli.cli_options import Model
from recoseg_cli.errors import InputError

REPO = Path(__file__).resolve().parents[1]
PACKAGED = ("recoseg_fast.pt", "recoseg_ddpm.pt", "recoseg_accurate.pt", "recoseg_hires.pt", "SHA256SUMS",
            "MODEL_CARD.md")


def test_bundled_weights_are_package_data_with_their_checksum():
    folder = Path(str(files("recoseg_cli.bundled_weights")))
    assert weights.BUNDLED_DIR == folder
    path, checksum = weights.resolve_weights_path(None)
    assert path == folder / weights.BUNDLED_FILE
    assert checksum == weights.sha256_of(path)
    for model, name in weights.BUNDLED_MODELS.items():
        path, checksum = weights.resolve_weights_path(None, model)
        assert path == folder / name and checksum == weights.sha256_of(path)


def test_a_bundled_model_is_chosen_by_name_and_not_beside_other_weights(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "mine.pt"))
    assert weights.resolve_weights_path(None) == (tmp_path / "mine.pt", None)
    assert weights.resolve_weights_path(None, "fast")[0].name == "recoseg_fast.pt"
    with pytest.raises(InputError, match="--weights and --model both"):
        weights.resolve_weights_path(tmp_path / "mine.pt", "accurate")
    with pytest.raises(InputError, match="choose accurate, ddpm, fast, hires"):
        weights.resolve_weights_path(None, "best")


def test_the_cli_offers_every_bundled_model():
    assert get_args(Model) == tuple(weights.BUNDLED_MODELS)


@pytest.mark.slow
def test_built_wheel_carries_the_weights(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("recoseg_cli", "weights"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("recoseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"recoseg_cli/bundled_weights/{name}" for name in PACKAGED} <= names
    modules = {str(path.relative_to(REPO)) for path in (REPO / "recoseg_cli").rglob("*.py")}
    assert modules <= names, f"not in the wheel (add the subpackage to pyproject.toml): {sorted(modules - names)}"
