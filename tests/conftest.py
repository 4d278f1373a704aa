"""Shared fixtures: real kernels, a real MLflow store in a temp dir, notebooks written on the fly."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import nbformat
import pytest

from handoff.store import Store
from helpers import TRAIN_IRIS, Cell, build, notebook
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


# The model's metrics are its parameters, so every version's numbers are known in advance; the first
# metric logged is the primary one.
ACCURACY = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\nimport handoff\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "handoff.log_metrics({'accuracy': score, 'f1': second})"
)
RMSE = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeRegressor\nimport handoff\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeRegressor(random_state=0).fit(X, y)\n"
    "handoff.log_metrics({'rmse': error, 'r2': 0.5})"
)


@pytest.fixture(scope="session")
def promotion_template(tmp_path_factory: pytest.TempPathFactory, _store_template: Path) -> Path:
    """The store of the promotion tests (``xdist_group("promotion_template")``, built once) with
    acc v1 (accuracy 0.9, f1 0.5), v2 (0.95, 0.4), v3 (0.885, 0.9), v4 (0.5: failed its threshold);
    reg v1 (rmse 2.0), v2 (1.5), v3 (2.5, built with rmse declared greater-is-better)."""
    tmp = tmp_path_factory.mktemp("promotion")
    home = tmp / "store"
    shutil.copytree(_store_template, home)
    store = Store(home)
    acc, reg = tmp / "acc.ipynb", tmp / "reg.ipynb"
    nbformat.write(notebook([("parameters", "score = 0.9\nsecond = 0.5"), ACCURACY]), acc)
    nbformat.write(notebook([("parameters", "error = 2.0"), RMSE]), reg)
    for score, second in ((0.9, 0.5), (0.95, 0.4), (0.885, 0.9)):
        assert build(acc, store, name="acc", params={"score": score, "second": second}).ok
    failed = build(acc, store, name="acc", params={"score": 0.5}, checks={"thresholds": ["accuracy>=0.7"]})
    assert failed.status == "failed" and failed.version == 4
    assert build(reg, store, name="reg", params={"error": 2.0}).ok
    assert build(reg, store, name="reg", params={"error": 1.5}).ok
    assert build(reg, store, name="reg", params={"error": 2.5}, checks={"greater_is_better": {"rmse": True}}).ok
    return home


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
