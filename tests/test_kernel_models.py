"""Which model is shipped, on real kernels: the outermost model wins, model files are candidates,
held-out metrics are computed, and ``model.fidelity`` catches a package holding the wrong object."""

from __future__ import annotations

from pathlib import Path

from handoff.record import Evaluation
from handoff.store import Store
from helpers import SAMPLES, build

SPLIT = (
    "from sklearn.datasets import load_breast_cancer\n"
    "from sklearn.model_selection import train_test_split\n"
    "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)\n"
)


def _check(result, check_id: str) -> dict:
    return next(r.to_dict() for r in result.checks.results if r.id == check_id)


def test_grid_search_over_a_pipeline_ships_the_refit_pipeline(store: Store) -> None:
    result = build(SAMPLES / "grid_search_pipeline.ipynb", store)
    assert result.ok, result.error
    model = result.model
    assert model.variable == "search" and model.packaged == "search.best_estimator_"
    assert model.type == "sklearn.pipeline.Pipeline"  # scaler included, not the bare LogisticRegression
    parts = {c.name: c.part_of for c in model.candidates}
    assert parts == {"search": None, "best": "search.best_estimator_", "clf": "search.best_estimator_.steps[1][1]"}
    assert {c.name: c.cell for c in model.candidates} == {"search": 4, "best": 6, "clf": 6}
    assert result.metrics["accuracy"] > 0.9
    assert result.record.metric_sources["accuracy"] == "computed by handoff on X_test/y_test (143 rows)"
    fidelity = _check(result, "model.fidelity")
    assert fidelity["status"] == "passed" and "143 rows of X_test/y_test" in fidelity["message"]


def test_forcing_the_inner_step_fails_fidelity_with_the_mismatch_rate(store: Store) -> None:
    result = build(SAMPLES / "grid_search_pipeline.ipynb", store, model_var="clf")
    assert result.status == "failed" and result.version is not None  # kept to inspect, never promotable
    assert any("part of 'search'" in w and "without the rest" in w for w in result.warnings)
    fidelity = _check(result, "model.fidelity")
    assert fidelity["status"] == "failed"
    assert "disagrees with the notebook's model" in fidelity["message"] and "% mismatch" in fidelity["message"]
    assert 0 < fidelity["details"]["mismatch_rate"] < 1
    assert result.metrics["accuracy"] < 0.5  # handoff scores what is shipped, honestly


def test_a_select_k_best_pipeline_beats_its_step_named_clf(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT
            + (
                "from sklearn.feature_selection import SelectKBest\nfrom sklearn.pipeline import Pipeline\n"
                "from sklearn.svm import LinearSVC\n"
                "pipe = Pipeline([('select', SelectKBest(k=3)), ('clf', LinearSVC())]).fit(X_train, y_train)"
            ),
            "clf = pipe.named_steps['clf']\nprint(clf.coef_)",
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert result.model.variable == "pipe" and result.model.type == "sklearn.pipeline.Pipeline"
    assert _check(result, "model.fidelity")["status"] == "passed"


def test_ensemble_members_and_wrapped_estimators_are_parts(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT
            + (
                "from sklearn.calibration import CalibratedClassifierCV\n"
                "from sklearn.ensemble import VotingClassifier\n"
                "from sklearn.linear_model import LogisticRegression\n"
                "from sklearn.tree import DecisionTreeClassifier\n"
                "vote = VotingClassifier([('lr', LogisticRegression(max_iter=5000)), "
                "('tree', DecisionTreeClassifier())], voting='soft')\n"
                "calibrated = CalibratedClassifierCV(vote, cv=3).fit(X_train, y_train)\n"
                "member = calibrated.calibrated_classifiers_[0].estimator.estimators_[0]\n"
                "model = member  # a preferred name on an inner part must not win"
            )
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert result.model.variable == "calibrated"
    assert {c.name: bool(c.part_of) for c in result.model.candidates} == {
        "calibrated": False,
        "member": True,
        "model": True,
    }


def test_a_model_trained_in_a_function_and_saved_with_joblib(store: Store) -> None:
    result = build(SAMPLES / "train_in_function.ipynb", store)
    assert result.ok, result.error
    model = result.model
    assert model.source == "file" and model.packaged == "file model.joblib"
    assert model.variable is None and model.type.endswith("GradientBoostingClassifier")
    assert "model.joblib (pickle) written in cell 4" in model.chosen_by
    assert result.record.metric_sources["accuracy"].startswith("computed by handoff on X_test/y_test")
    assert _check(result, "model.fidelity")["status"] == "passed"
    assert not (SAMPLES / "model.joblib").exists(), "the build wrote into the user's folder"


def test_skops_files_are_candidates_too(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT
            + (
                "import skops.io\nfrom sklearn.linear_model import LogisticRegression\n"
                "def fit():\n"
                "    skops.io.dump(LogisticRegression(max_iter=5000).fit(X_train, y_train), 'out/clf.bin')\n"
                "import os\nos.makedirs('out')\nfit()"
            )
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert result.model.packaged == "file out/clf.bin" and "(skops)" in result.model.chosen_by


def test_a_model_trained_in_a_function_and_dropped_says_so(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            ("md", "# title"),
            SPLIT,
            (
                "from sklearn.linear_model import LogisticRegression\n"
                "def train(X, y):\n    model = LogisticRegression(max_iter=5000)\n    model.fit(X, y)\n"
                "    return model.score(X, y)\ntrain(X_train, y_train)"
            ),
        ]
    )
    result = build(path, store)
    assert result.status == "failed" and result.error.stage == "capture"
    message = result.error.message
    assert "no fitted model found" in message
    assert "fitted inside function `train()` in cell 3 was never returned or saved" in message


def test_bad_model_files_are_skipped_with_a_warning_and_never_loaded_here(
    tmp_path: Path, write_notebook, store: Store
) -> None:
    marker = tmp_path / "loaded-by"
    path = write_notebook(
        [
            SPLIT
            + (
                "import pickle\nfrom sklearn.linear_model import LogisticRegression\n"
                "model = LogisticRegression(max_iter=5000).fit(X_train, y_train)\n"
                "pickle.dump({'weights': [1, 2]}, open('not_a_model.pkl', 'wb'))\n"
                "open('broken.joblib', 'wb').write(b'\\x80\\x04garbage that is no pickle')\n"
                "class Payload:\n"
                "    def __reduce__(self):\n"
                f"        return (exec, (\"import os; open({str(marker)!r}, 'a').write(str(os.getpid()))\",))\n"
                "pickle.dump(Payload(), open('payload.sav', 'wb'))\n"
                "with open('huge.pkl', 'wb') as f:\n    f.write(b'\\x80\\x04'); f.truncate(2 * 1024**3)"
            )
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert result.model.variable == "model"
    text = "\n".join(result.warnings)
    assert "file not_a_model.pkl skipped: it holds a builtins.dict, not a model" in text
    assert "model file broken.joblib skipped: it does not load" in text
    assert "model file huge.pkl skipped: 2048 MiB is over the 1024 MiB limit" in text
    # the payload ran where the notebook's own code runs (its sandboxed kernel, where the notebook's
    # folder is read-only), never in this process
    assert not marker.exists()
    assert "model file payload.sav skipped: it does not load (OSError: [Errno 30] Read-only file system" in text


def test_metrics_computed_from_train_test_split_names(store: Store) -> None:
    result = build(SAMPLES / "classification_report.ipynb", store)
    assert result.ok, result.error
    assert set(result.metrics) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert set(result.record.metric_sources.values()) == {"computed by handoff on Xtest/ytest (450 rows)"}
    outputs = store.get_version(result.name, result.version).build.outputs
    assert outputs.metrics_source == "computed"
    assert outputs.evaluation == Evaluation("Xtest/ytest", 450, "classification", tuple(sorted(result.metrics)))


def test_reported_metrics_keep_their_names_and_precedence(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT
            + (
                "from sklearn.linear_model import LogisticRegression\n"
                "model = LogisticRegression(max_iter=5000).fit(X_train, y_train)\naccuracy = 0.123"
            )
        ]
    )
    result = build(path, store)
    assert result.metrics["accuracy"] == 0.123 and result.record.metric_sources["accuracy"] == "a notebook variable"
    assert result.record.metric_sources["f1_macro"].startswith("computed by handoff")


def test_fidelity_on_the_input_example_without_held_out_rows(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    assert result.ok, result.error
    fidelity = _check(result, "model.fidelity")
    assert fidelity["status"] == "passed" and "rows of the input example" in fidelity["message"]
