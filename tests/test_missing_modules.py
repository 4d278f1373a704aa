"""A notebook importing what is not installed fails with the package to add and how."""

from __future__ import annotations

import pytest

from handoff.cli import main
from handoff.messages import render
from handoff.missing_modules import explain, missing_module, package_for
from handoff.store import Store
from helpers import build, local_path


@pytest.mark.parametrize(
    "module, package",
    [
        ("sklearn", "scikit-learn"),
        ("sklearn.ensemble", "scikit-learn"),
        ("cv2", "opencv-python"),
        ("PIL.Image", "pillow"),
        ("yaml", "pyyaml"),
        ("bs4", "beautifulsoup4"),
        ("google.protobuf.message", "protobuf"),
        ("seaborn", "seaborn"),
        ("xgboost.sklearn", "xgboost"),
    ],
)
def test_the_pypi_package_of_an_import_name(module: str, package: str) -> None:
    assert package_for(module) == package


def test_which_errors_name_a_missing_module() -> None:
    assert missing_module("ModuleNotFoundError", "No module named 'cv2'") == "cv2"
    assert missing_module("ModuleNotFoundError", "No module named 'PIL.Image'") == "PIL.Image"
    pandas = "Missing optional dependency 'openpyxl'.  Use pip or conda to install openpyxl."
    assert missing_module("ImportError", pandas) == "openpyxl"
    assert missing_module("ImportError", "cannot import name 'foo' from 'bar'") is None  # a version problem
    assert missing_module("ValueError", "No module named 'x'") is None
    assert render(explain("seaborn"), "cli") == (
        "the notebook imports `seaborn`, which is not installed in the build environment: add `seaborn` to "
        "requirements.txt beside the notebook, or rebuild with --with seaborn"
    )


def test_a_missing_import_fails_the_build_with_the_fix(write_notebook, store: Store, capsys) -> None:
    path = write_notebook(["import numpy as np", "import cv2\nimage = cv2.imread('x.png')", "done = True"])
    result = build(path, store)
    assert result.status == "failed" and result.version is None
    assert result.error.stage == "execute" and result.error.cell == 2 and result.error.ename == "ModuleNotFoundError"
    assert render(result.error.message, "cli") == (
        "a cell raised an error in execute stage, cell 2: the notebook imports `cv2`, which is not installed in "
        "the build environment (it comes from the PyPI package `opencv-python`): add `opencv-python` to "
        "requirements.txt beside the notebook, or rebuild with --with opencv-python"
    )
    assert main(["build", str(path), "--store", str(local_path(store.artifact_root).parent)]) == 1
    err = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error as the last line
    assert err[-1] == f"handoff: error: {render(result.error.message, 'cli')}" and not any(
        "Traceback" in line for line in err
    )
