"""A model fitted on the output of transformers fitted apart ships with them as one Pipeline (real
builds: the package loads in a fresh process and answers raw rows as the notebook's own chain does);
a transformer the model was not fitted after is left out."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import handoff
from handoff.kernel_preprocessing import compose
from handoff.store import Store
from helpers import SAMPLES, build, predict_in_fresh_process

pytestmark = pytest.mark.kernel

SPLIT = (
    "from sklearn.datasets import load_breast_cancer\n"
    "from sklearn.model_selection import train_test_split\n"
    "from sklearn.preprocessing import StandardScaler\n"
    "import handoff\n"
    "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)\n"
)


def _served(result: handoff.BuildResult, store: Store, tmp_path: Path) -> tuple[list, object]:
    """The exported package's answers on its input example, from a fresh process, and that example's rows."""
    exported = handoff.export(result.name, result.version, tmp_path / "out", store=store)
    with zipfile.ZipFile(exported.path) as archive:
        archive.extractall(tmp_path / "pkg")
    (model_dir,) = (tmp_path / "pkg").glob("*/model")
    from mlflow.models import Model

    return predict_in_fresh_process(model_dir), Model.load(model_dir).load_input_example(model_dir)


def _check(result: handoff.BuildResult, check_id: str) -> str:
    return next(r.status for r in result.checks.results if r.id == check_id)


def test_a_classifier_fitted_on_a_scaler_fitted_apart_ships_with_the_scaler(store: Store, tmp_path: Path) -> None:
    result = build(SAMPLES / "scaler_fitted_apart.ipynb", store)
    assert result.ok, result.error
    model = result.model
    assert (model.packaged, model.type) == ("scaler → clf", "sklearn.pipeline.Pipeline")
    assert "clf was fitted in cell 7 on X_train_scaled, rows of scaler.transform(X_train)" in model.chosen_by
    # scored on the raw held-out rows, as the pipeline takes them (clf alone scores 0.37 on them)
    assert result.metrics["accuracy"] > 0.95
    assert result.record.metric_sources["accuracy"] == "computed by handoff on X_test/y_test (143 rows)"
    assert _check(result, "model.fidelity") == "passed"
    answers, example = _served(result, store, tmp_path)
    assert list(example.columns)[:2] == ["mean radius", "mean texture"]  # raw, named columns
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    notebooks_chain = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(X_train, y_train)
    assert answers == notebooks_chain.predict(example).tolist()


def test_transforms_written_back_into_x_train_are_found_from_the_raw_x(store: Store, tmp_path: Path) -> None:
    result = build(SAMPLES / "preprocessing_reassigned.ipynb", store)
    assert result.ok, result.error
    assert result.model.packaged == "scaler → pca → model"
    assert "rows of pca.transform(scaler.transform(X))" in result.model.chosen_by
    # X_test holds transformed rows now: scored by the bare model (the pipeline would transform them twice),
    # so handoff's macro F1 is the notebook's own; fidelity runs on the raw input example
    sources = result.record.metric_sources
    assert sources["f1"] == "a notebook variable"
    assert sources["f1_macro"] == "computed by handoff on X_test/y_test (54 rows)"
    assert result.metrics["f1_macro"] == pytest.approx(result.metrics["f1"])
    fidelity = next(r for r in result.checks.results if r.id == "model.fidelity")
    assert fidelity.status == "passed" and "rows of the input example" in fidelity.message
    answers, example = _served(result, store, tmp_path)
    assert example.shape[1] == 13  # the wine data's raw columns
    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    chain = make_pipeline(StandardScaler(), PCA(n_components=5, random_state=0), LogisticRegression(max_iter=1000))
    assert answers == chain.fit(X_train, y_train).predict(example).tolist()


def test_a_logged_model_fitted_on_an_inline_transform_ships_with_it(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT + "scaler = StandardScaler().fit(X_train)",
            "from sklearn.svm import SVC\nsvm = SVC().fit(scaler.transform(X_train), y_train)\nhandoff.log_model(svm)",
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert result.model.packaged == "scaler → svm" and result.model.source == "log_model"
    assert "svm was fitted in cell 2 on scaler.transform(X_train)" in result.model.chosen_by
    assert result.metrics["accuracy"] > 0.95


def test_a_scaler_fitted_for_a_plot_is_not_glued_to_a_model_fitted_on_raw_rows(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            SPLIT + "scaler = StandardScaler().fit(X)\nX_scaled = scaler.transform(X)  # for a 2-D projection",
            "from sklearn.ensemble import RandomForestClassifier\n"
            "model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)",
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    assert (result.model.packaged, result.model.type) == ("model", "sklearn.ensemble._forest.RandomForestClassifier")
    assert "fitted apart" not in result.model.chosen_by


# --- compose() in this process: the evidence rules without a kernel ------------------------------


def _namespace_and_cells(source: str) -> tuple[dict, list[tuple[int, ast.AST]]]:
    namespace: dict = {}
    exec(SPLIT.replace("import handoff\n", "") + source, namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("__")}, [(1, ast.parse(SPLIT + source))]


def test_an_identity_transform_and_a_model_fitted_inside_a_function_are_no_evidence() -> None:
    namespace, cells = _namespace_and_cells(
        "from sklearn.preprocessing import FunctionTransformer\nfrom sklearn.linear_model import LogisticRegression\n"
        "same = FunctionTransformer().fit(X_train)\nX_same = same.transform(X_train)\n"
        "clf = LogisticRegression(max_iter=5000).fit(X_same, y_train)\n"
        "scaler = StandardScaler().fit(X_train)\n"
        "def train(rows):\n    return LogisticRegression(max_iter=5000).fit(rows, y_train)\n"
        "inner = train(scaler.transform(X_train))\n"
    )
    assert compose(namespace["clf"], "clf", namespace, cells) is None  # FunctionTransformer() changes nothing
    assert compose(namespace["inner"], "inner", namespace, cells) is None  # no fit call on `inner` to read


def test_the_variables_holding_transformed_rows_are_named() -> None:
    namespace, cells = _namespace_and_cells(
        "from sklearn.linear_model import LogisticRegression\n"
        "scaler = StandardScaler().fit(X_train)\n"
        "X_train_s, X_test_s = scaler.transform(X_train), scaler.transform(X_test)\n"
        "clf = LogisticRegression(max_iter=5000).fit(X_train_s, y_train)\n"
    )
    composed = compose(namespace["clf"], "clf", namespace, cells)
    assert composed is not None and composed.steps == ["scaler"]
    assert composed.transformed == {"X_train_s", "X_test_s"}
    reference = namespace["clf"].predict(namespace["X_test_s"])
    assert np.array_equal(composed.model.predict(namespace["X_test"]), reference)
