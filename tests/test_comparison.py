"""Compare: parameters, metric directions, checklist, data and code differences between versions."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import handoff
from handoff.comparison import cell_diff
from handoff.errors import OptionError
from handoff.store import Store
from helpers import build, notebook

TRAIN = (
    "import pandas as pd\nfrom sklearn.tree import DecisionTreeRegressor\n"
    "df = pd.read_csv('data.csv')\nX = df[['a', 'b']]\n"
    "model = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(X, df['y'])\n"
    "accuracy = float(acc)\nrmse = float(err)"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    nbformat.write(
        notebook([("parameters", "depth = 2\nacc = 0.8\nerr = 5.0"), TRAIN, "print('done')"]), folder / "m.ipynb"
    )
    return folder


def test_params_metrics_and_directions(project: Path, store: Store) -> None:
    build(project / "m.ipynb", store)
    build(project / "m.ipynb", store, params={"depth": 3, "acc": 0.9, "err": 6.0})
    result = handoff.compare("m", [1, 2], store=store)
    assert result.labels == ["v1", "v2"] and result.baseline == "v1"
    params = {r["param"]: r for r in result.parameters}
    assert params["depth"]["values"] == {"v1": 2, "v2": 3} and params["depth"]["differs"]
    metrics = {r["metric"]: r for r in result.metrics}
    assert metrics["accuracy"]["deltas"]["v2"]["better"] is True  # up is better
    assert metrics["accuracy"]["deltas"]["v2"]["absolute"] == pytest.approx(0.1)
    assert metrics["rmse"]["deltas"]["v2"]["better"] is False  # rmse went up: worse
    assert metrics["rmse"]["deltas"]["v2"]["relative"] == pytest.approx(0.2)
    assert result.code == [{"version": "v2", "against": "v1", "cells": []}]
    assert result.data["warning"] is None
    assert [t["version"] for t in result.trend] == [1, 2]
    flipped = handoff.compare("m", [1, 2], baseline=2, store=store)
    assert {r["metric"]: r for r in flipped.metrics}["rmse"]["deltas"]["v1"]["better"] is True


def test_compare_calls_better_what_the_gate_calls_better(project: Path, store: Store) -> None:
    """A direction set in the checklist settings (accuracy here: lower is better) holds for compare too."""
    settings = {"greater_is_better": {"accuracy": False, "acc": False}, "gate": True}
    assert build(project / "m.ipynb", store, checks=settings).ok
    handoff.promote("m", 1, store=store)
    second = build(project / "m.ipynb", store, params={"acc": 0.7}, checks=settings)
    assert second.ok  # the gate: accuracy 0.8 -> 0.7 is no regression when lower is better
    accuracy = next(r for r in handoff.compare("m", [1, 2], store=store).metrics if r["metric"] == "accuracy")
    assert accuracy["greater_is_better"] is False and accuracy["deltas"]["v2"]["better"] is True


def test_edited_cell_changed_data_and_failed_version(project: Path, store: Store) -> None:
    build(project / "m.ipynb", store)
    nb = nbformat.read(project / "m.ipynb", as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("max_depth=depth", "max_depth=depth + 1")
    nbformat.write(nb, project / "m.ipynb")
    with open(project / "data.csv", "a") as handle:
        handle.write("99,1,7\n")
    build(project / "m.ipynb", store, checks={"thresholds": ["accuracy>=0.95"]})
    result = handoff.compare("m", [1, 2], store=store)
    cells = result.code[0]["cells"]
    assert [(c["change"], c["old_cell"], c["new_cell"]) for c in cells] == [("changed", 2, 2)]
    assert "-model = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(X, df['y'])" in cells[0]["diff"]
    assert "+model = DecisionTreeRegressor(max_depth=depth + 1, random_state=0).fit(X, df['y'])" in cells[0]["diff"]
    assert result.data["changed_files"] == ["data.csv"]
    assert result.data["warning"] == "training data changed between versions: data.csv"
    assert result.status == {"v1": "passed", "v2": "failed"}
    thresholds = next(r for r in result.checklist if r["check"] == "metrics.thresholds")
    assert thresholds["statuses"] == {"v1": "skipped", "v2": "failed"} and thresholds["changed"]


def test_cell_diff_finds_added_removed_and_changed_cells() -> None:
    old = notebook([("md", "# A"), "x = 1", "y = 2", "z = 3"])
    new = notebook([("md", "# A"), "x = 1", "y = 20", "w = 4"])
    new.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ignored")]
    changes = cell_diff(old, new)
    assert [(c["change"], c["old_cell"], c["new_cell"]) for c in changes] == [("changed", 3, 3), ("changed", 4, 4)]
    grown = notebook([("md", "# A"), "x = 1", "new = True", "y = 2", "z = 3"])
    assert [(c["change"], c["new_cell"]) for c in cell_diff(old, grown)] == [("added", 3)]
    assert [(c["change"], c["old_cell"]) for c in cell_diff(grown, old)] == [("removed", 3)]


def test_compare_needs_two_versions(store: Store) -> None:
    with pytest.raises(OptionError, match="at least two"):
        handoff.compare("m", [1, 1], store=store)
    with pytest.raises(OptionError, match="bad version"):
        handoff.compare("m", ["x", "2"], store=store)


def test_compare_across_models(project: Path, store: Store) -> None:
    build(project / "m.ipynb", store)
    build(project / "m.ipynb", store, name="other", params={"acc": 0.7})
    result = handoff.compare("m", ["1", "other:1"], store=store)
    assert result.labels == ["m:v1", "other:v1"] and result.baseline == "m:v1"
    accuracy = next(r for r in result.metrics if r["metric"] == "accuracy")
    assert accuracy["values"] == {"m:v1": 0.8, "other:v1": 0.7} and accuracy["deltas"]["other:v1"]["better"] is False
