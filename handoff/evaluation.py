"""Held-out evaluation: the metrics handoff computes itself, and the rows fidelity is checked on.

Used on both sides of the trust boundary with the same code: inside the kernel (find the held-out
rows the notebook left, score the chosen model on them, keep its predictions) and in the checklist's
fresh process (``model.fidelity`` scores the *saved* artifact on the same rows). Imports nothing
heavy at module level: scikit-learn's metrics are imported only when something is scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: ``(features, target)`` variable names taken as held-out data, in this order.
HELD_OUT_NAMES = (
    ("X_test", "y_test"),
    ("x_test", "y_test"),
    ("X_val", "y_val"),
    ("X_valid", "y_valid"),
    ("X_validation", "y_validation"),
    ("X_holdout", "y_holdout"),
    ("Xte", "yte"),
    ("X_te", "y_te"),
    ("test_X", "test_y"),
    ("val_X", "val_y"),
)
#: At most this many held-out rows are kept for the fidelity check.
FIDELITY_ROWS = 10_000
CLASSIFICATION, REGRESSION = "classification", "regression"


def candidate_pairs(namespace: dict[str, Any], split_pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Held-out ``(X, y)`` name pairs present in ``namespace``: conventional names, then the test
    halves of ``train_test_split`` assignments found in the notebook's code."""
    pairs = [*HELD_OUT_NAMES, *split_pairs]
    seen: list[tuple[str, str]] = []
    for pair in pairs:
        if pair not in seen and pair[0] in namespace and pair[1] in namespace:
            seen.append(pair)
    return seen


def rows(value: Any) -> int | None:
    """The number of rows of a 1-D or 2-D array-like, or ``None``."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and shape:
        return int(shape[0])
    return len(value) if isinstance(value, (list, tuple)) else None


def head(value: Any, n: int) -> Any:
    """The first ``n`` rows, keeping the container type (DataFrame, Series, array, list)."""
    return value.iloc[:n] if hasattr(value, "iloc") else value[:n]


def task_of(model: Any, y: Any, declared: str | None) -> str | None:
    """``classification`` or ``regression``: as scikit-learn classifies the model, else from the target."""
    if declared in (CLASSIFICATION, REGRESSION):
        return declared
    if declared is not None:
        return None  # clustering, outlier detection: no standard supervised metrics
    import numpy as np

    kind = np.asarray(y).dtype.kind
    if callable(getattr(model, "predict_proba", None)) or kind in "bOUS":
        return CLASSIFICATION
    return REGRESSION if kind in "fiu" else None


def standard_metrics(task: str, y_true: Any, y_pred: Any, proba: Any = None, classes: Any = None) -> dict[str, float]:
    """The standard metrics of ``task``; ROC AUC and log loss only when probabilities are given."""
    import numpy as np

    try:
        from sklearn import metrics
    except ImportError:  # a build environment without scikit-learn: no metrics of handoff's own
        return {}

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred.ravel()
    found: dict[str, float] = {}
    if task == CLASSIFICATION:
        found["accuracy"] = metrics.accuracy_score(y_true, y_pred)
        found["balanced_accuracy"] = metrics.balanced_accuracy_score(y_true, y_pred)
        found["f1_macro"] = metrics.f1_score(y_true, y_pred, average="macro")
        if proba is not None and classes is not None:
            proba = np.asarray(proba)
            try:
                if len(classes) == 2:
                    found["roc_auc"] = metrics.roc_auc_score(y_true, proba[:, 1])
                else:
                    found["roc_auc"] = metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
            except ValueError:  # a class missing from the held-out rows: AUC is undefined
                pass
            try:
                found["log_loss"] = metrics.log_loss(y_true, proba, labels=classes)
            except ValueError:
                pass
    elif task == REGRESSION:
        found["rmse"] = math.sqrt(metrics.mean_squared_error(y_true, y_pred))
        found["mae"] = metrics.mean_absolute_error(y_true, y_pred)
        found["r2"] = metrics.r2_score(y_true, y_pred)
    return {k: float(v) for k, v in found.items() if math.isfinite(float(v))}


def answer_metrics(task: str, y_true: Any, y_pred: Any, proba: Any = None, classes: Any = None) -> dict[str, float]:
    """``standard_metrics`` when the predictions are answers (one label or value per row); empty when
    they are something else (per-class scores of a network, a Booster's probabilities)."""
    import numpy as np

    predicted = np.asarray(y_pred)
    if predicted.ndim == 2 and predicted.shape[1] == 1:
        predicted = predicted.ravel()
    if predicted.ndim != 1:
        return {}
    if task == CLASSIFICATION and predicted.dtype.kind == "f" and not np.all(np.mod(predicted, 1) == 0):
        return {}  # probabilities, not labels
    try:
        return standard_metrics(task, y_true, predicted, proba, classes)
    except (ValueError, TypeError):  # labels of another kind than the target's
        return {}


def compare_predictions(expected: Any, actual: Any, rtol: float = 1e-6, atol: float = 1e-9) -> tuple[int, int, str]:
    """How many rows of ``actual`` differ from ``expected``: labels exactly, floats within tolerance.

    Returns (mismatched rows, rows, a short note of the largest difference for floats).
    """
    import numpy as np

    want, got = np.asarray(expected), np.asarray(actual)
    n = len(want)
    if len(got) != n:
        return n, n, f"{len(got)} predictions for {n} rows"
    want, got = want.reshape(n, -1), got.reshape(n, -1)
    if want.shape != got.shape:
        return n, n, f"output shape {got.shape[1:]} instead of {want.shape[1:]}"
    numeric = want.dtype.kind in "fciub" and got.dtype.kind in "fciub"
    if numeric and (want.dtype.kind in "fc" or got.dtype.kind in "fc"):
        a, b = want.astype(float), got.astype(float)
        close = np.isclose(b, a, rtol=rtol, atol=atol, equal_nan=True).all(axis=1)
        largest = float(np.nanmax(np.abs(a - b))) if n else 0.0
        return int((~close).sum()), n, f"largest difference {largest:.3g}"
    same = (got.astype(str) == want.astype(str)).all(axis=1)
    return int((~same).sum()), n, ""
