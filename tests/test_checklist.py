"""The checklist inside real builds: statuses, gating, user tests, re-checks, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.store import Store
from helpers import build, local_path

SCORED = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "accuracy = float(score)\nrmse = float(err)"
)


def _status(result, check_id: str) -> str:
    return next(r.status for r in result.checks.results if r.id == check_id)


def test_a_clean_build_passes_every_blocking_check(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    assert result.ok and result.checks.passed
    statuses = {r.id: r.status for r in result.checks.results}
    for check_id in ("notebook.executed", "model.found", "model.loads", "model.predicts", "env.pinned"):
        assert statuses[check_id] == "passed", result.checks.to_dict()
    record = store.get_version(result.name, result.version)
    assert record.build.outputs.checks.summary == result.checks.summary
    junit = store.read_artifact(result.run_id, "checks/junit.xml").decode()
    assert 'name="model.loads"' in junit
    assert json.loads(store.read_artifact(result.run_id, "checks/report.json"))["passed"] is True


def test_missed_threshold_fails_the_build_but_keeps_a_failed_version(
    write_notebook, store: Store, capsys: pytest.CaptureFixture
) -> None:
    path = write_notebook([("parameters", "score = 0.8999\nerr = 1.0"), SCORED], name="scored.ipynb")
    home = str(local_path(store.artifact_root).parent)
    code = main(["build", str(path), "--store", home, "--threshold", "accuracy>=0.9", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["status"] == "failed" and out["version"] == 1
    assert out["error"]["stage"] == "check" and "accuracy = 0.8999 misses accuracy >= 0.9" in out["error"]["message"]
    assert [c["status"] for c in out["outputs"]["checks"]["results"] if c["id"] == "metrics.thresholds"] == ["failed"]
    assert store.get_version("scored", 1).status == "failed"
    assert store.get_version("scored", 1).build.outputs.checks.config["thresholds"] == ["accuracy >= 0.9"]


def test_gate_against_the_champion_beaten_and_not_beaten(write_notebook, store: Store) -> None:
    path = write_notebook([("parameters", "score = 0.90\nerr = 10.0"), SCORED], name="scored.ipynb")
    first = build(path, store)
    store.client.set_registered_model_alias("scored", "champion", str(first.version))
    better = build(path, store, params={"score": 0.95, "err": 9.0}, checks={"gate": True})
    assert better.ok and _status(better, "metrics.no_regression") == "passed"
    worse = build(path, store, params={"score": 0.95, "err": 11.0}, checks={"gate": True})
    assert not worse.ok and _status(worse, "metrics.no_regression") == "failed"
    message = next(r.message for r in worse.checks.results if r.id == "metrics.no_regression")
    assert "rmse 11 vs champion 10 (lower is better" in message
    assert [v.status for v in store.list_versions("scored")] == ["passed", "passed", "failed"]


def test_user_tests_run_against_the_artifact(tmp_path: Path, iris_notebook: Path, store: Store) -> None:
    good = tmp_path / "test_good.py"
    good.write_text(
        "def test_predicts(model, input_example):\n    assert len(model.predict(input_example)) == 5\n\n"
        "def test_manifest(manifest):\n    assert manifest['inputs']['parameters']['C'] == 1.0\n"
    )
    bad = tmp_path / "test_bad.py"
    bad.write_text("def test_too_good(manifest):\n    assert manifest['metrics']['accuracy'] > 2\n")
    ok = build(iris_notebook, store, checks={"tests": [str(good)]})
    result = next(r for r in ok.checks.results if r.id == "user.tests")
    assert result.status == "passed" and result.message == "user tests: 2 passed, 0 failed", result.to_dict()
    failing = build(iris_notebook, store, checks={"tests": [str(good), str(bad)]})
    result = next(r for r in failing.checks.results if r.id == "user.tests")
    assert result.status == "failed" and "1 failed" in result.message and "test_too_good" in result.message
    assert not failing.ok and failing.version == 2


def test_non_deterministic_model_is_a_warning_not_a_failure(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            """
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_diabetes

class Noisy(BaseEstimator, RegressorMixin):
    def fit(self, X, y):
        self.mean_ = float(np.mean(y))
        return self
    def predict(self, X):
        return self.mean_ + np.random.normal(size=len(X))

X, y = load_diabetes(return_X_y=True)
model = Noisy().fit(X, y)
"""
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert _status(result, "model.deterministic") == "warning"
    assert _status(result, "model.loads") == "passed"  # a notebook class, carried by cloudpickle


def test_failed_build_keeps_a_report_with_what_could_be_checked(write_notebook, store: Store) -> None:
    result = build(write_notebook(["x = 1", "raise RuntimeError('boom')"]), store)
    assert result.version is None
    statuses = {r.id: r.status for r in result.checks.results}
    # one root cause, one failure: what needs the model is skipped, not failed again
    assert statuses["notebook.executed"] == "failed" and statuses["model.found"] == "skipped"
    assert statuses["model.loads"] == "skipped"
    stored = json.loads(store.read_artifact(result.run_id, "checks/report.json"))
    assert stored["passed"] is False


def test_recheck_is_recorded_beside_the_original(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    report = handoff.check_version("iris", 1, store=store, checks={"thresholds": ["accuracy>=0.999"]})
    assert not report.passed and report.failures[0].id == "metrics.thresholds"
    reports = store.check_reports(result.run_id)
    assert len(reports) == 2 and reports[0]["passed"] is True and reports[1]["passed"] is False
    assert store.get_version("iris", 1).status == "passed"  # the version itself never changes


def test_reproducible_check_on_request(write_notebook, store: Store) -> None:
    stable = write_notebook([SCORED.replace("float(score)", "0.9").replace("float(err)", "1.0")], name="stable.ipynb")
    result = build(stable, store, checks={"reproduce": True})
    assert _status(result, "reproducible") == "passed", result.checks.to_dict()
    shaky = write_notebook(
        ["import random\n" + SCORED.replace("float(score)", "random.random()").replace("float(err)", "1.0")],
        name="shaky.ipynb",
    )
    result = build(shaky, store, checks={"reproduce": True})
    assert _status(result, "reproducible") == "failed" and "accuracy" in next(
        r.message for r in result.checks.results if r.id == "reproducible"
    )


def test_settings_from_toml_and_notebook_metadata_reach_the_build(tmp_path: Path, write_notebook, store: Store) -> None:
    path = write_notebook([("parameters", "score = 0.5\nerr = 1.0"), SCORED], name="cfg.ipynb")
    (tmp_path / "handoff.toml").write_text('[checks]\nthresholds = ["accuracy >= 0.4"]\n')
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata["handoff"] = {"checks": {"thresholds": ["accuracy >= 0.6"], "skip": ["model.latency"]}}
    nbformat.write(nb, path)
    result = build(path, store)
    assert result.ok, result.checks.to_dict()  # the toml's 0.4 beats the notebook's 0.6
    config = store.get_version("cfg", 1).build.outputs.checks.config
    assert config["thresholds"] == ["accuracy >= 0.4"] and config["skip"] == ["model.latency"]
    assert _status(result, "model.latency") == "skipped"
