"""Held-out evaluation helpers: the metrics handoff computes and the fidelity comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from handoff import evaluation


def test_pairs_by_name_then_from_train_test_split() -> None:
    namespace = {"X_test": 1, "y_test": 2, "Xtest": 3, "ytest": 4, "X_val": 5}
    assert evaluation.candidate_pairs(namespace, [("Xtest", "ytest"), ("nope", "ytest")]) == [
        ("X_test", "y_test"),
        ("Xtest", "ytest"),
    ]


def test_classification_metrics_with_and_without_probabilities() -> None:
    y = np.array([0, 1, 1, 0])
    pred = np.array([0, 1, 0, 0])
    plain = evaluation.standard_metrics("classification", y, pred)
    assert plain == {"accuracy": 0.75, "balanced_accuracy": 0.75, "f1_macro": pytest.approx(0.7333333)}
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    full = evaluation.standard_metrics("classification", y, pred, proba, [0, 1])
    assert full["roc_auc"] == 1.0 and full["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))


def test_regression_metrics() -> None:
    found = evaluation.standard_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert found["mae"] == pytest.approx(2 / 3) and found["rmse"] == pytest.approx((4 / 3) ** 0.5)
    assert found["r2"] == pytest.approx(-1.0)


def test_task_from_model_or_target() -> None:
    class Proba:
        def predict_proba(self, X): ...

    assert evaluation.task_of(object(), [1.5, 2.5], None) == "regression"
    assert evaluation.task_of(Proba(), [0, 1], None) == "classification"
    assert evaluation.task_of(object(), ["a", "b"], None) == "classification"
    assert evaluation.task_of(object(), [1.5], "clustering") is None


def test_compare_predictions_labels_exactly_and_floats_within_tolerance() -> None:
    assert evaluation.compare_predictions(np.array([0, 1, 2]), [0, 1, 2]) == (0, 3, "")
    assert evaluation.compare_predictions(np.array(["a", "b"]), pd.Series(["a", "c"]))[:2] == (1, 2)
    assert evaluation.compare_predictions(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]))[0] == 0
    wrong, rows, note = evaluation.compare_predictions(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    assert (wrong, rows) == (1, 2) and "0.5" in note
    assert evaluation.compare_predictions(np.array([1, 2, 3]), np.array([1, 2]))[:2] == (3, 3)
    assert evaluation.compare_predictions(np.ones((3, 2)), np.ones(3))[0] == 3


def test_head_keeps_the_container_type() -> None:
    frame = pd.DataFrame({"a": range(5)})
    assert isinstance(evaluation.head(frame, 2), pd.DataFrame) and len(evaluation.head(frame, 2)) == 2
    assert evaluation.rows(frame) == 5 and evaluation.rows([1, 2]) == 2 and evaluation.rows(3) is None
