"""Shared fixtures: real kernels, a real MLflow store in a temp dir, notebooks written on the fly."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import nbformat
import pytest

from handoff.store import Store
from helpers import TRAIN_IRIS, Cell, notebook
from team import Postgres, TeamServer, postgres, team_server


@pytest.fixture
def write_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook into the test's temp dir and return its path."""

    def write(
        cells: Sequence[Cell], name: str = "nb.ipynb", kernel: str | None = "python3", directory: Path | None = None
    ) -> Path:
        path = (directory or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook(cells, kernel), path)
        return path

    return write


@pytest.fixture(scope="session")
def _store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised store (MLflow's schema migrations run once per worker, not per test)."""
    home = tmp_path_factory.mktemp("store-template")
    Store(home).list_models()
    return home


@pytest.fixture
def store(tmp_path: Path, _store_template: Path) -> Store:
    """A fresh, empty, real MLflow store (SQLite + artifact dir) for one test."""
    home = tmp_path / "store"
    shutil.copytree(_store_template, home)
    return Store(home)


@pytest.fixture
def iris_notebook(write_notebook: Callable[..., Path]) -> Path:
    """A small, valid training notebook with a parameters cell."""
    return write_notebook([("parameters", "C = 1.0\nlabel = 'iris'"), TRAIN_IRIS], name="iris.ipynb")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Postgres]:
    """One real PostgreSQL cluster on 127.0.0.1 (tests using it are in xdist group "team")."""
    with postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def team(pg_cluster: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    """One `handoff server` (MLflow with basic auth) on that cluster, with the users of ``team.USERS``."""
    with team_server(pg_cluster, "team", tmp_path_factory.mktemp("team")) as server:
        yield server
