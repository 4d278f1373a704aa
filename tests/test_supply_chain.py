"""The installed environment meets the security floors declared in pyproject.toml (one source)."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENTS = {Requirement(r).name.lower(): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
FLOORED = PYPROJECT["tool"]["handoff"]["advisory-floors"]


def _floor(name: str) -> Version:
    bounds = [Version(s.version) for s in REQUIREMENTS[name].specifier if s.operator == ">="]
    assert bounds, f"{name} has no '>=' floor in pyproject.toml"
    return max(bounds)


def test_the_advisory_floors_are_the_ones_the_issue_names() -> None:
    assert {name: str(_floor(name)) for name in FLOORED} == {
        "mlflow": "3.17",  # above the advisory's 3.15: team mode needs 3.17's role grants
        "streamlit": "1.54",
        "nbconvert": "7.17.1",
        "skops": "0.13",
    }


@pytest.mark.parametrize("name", FLOORED)
def test_installed_version_meets_the_floor(name: str) -> None:
    try:
        installed = Version(version(name))
    except PackageNotFoundError:
        pytest.fail(f"{name} is a dependency but is not installed")
    assert installed >= _floor(name), f"{name} {installed} is below the advisory floor {_floor(name)}; upgrade it"
