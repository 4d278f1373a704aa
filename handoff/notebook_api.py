"""The calls a notebook makes to tell handoff what to keep: ``handoff.log_model`` and friends.

They are deliberately trivial and import nothing heavy: in plain Jupyter they only return their
argument, so a notebook using them runs unchanged outside handoff. Under a build, the capture
cell handoff appends reads what they recorded here (explicit calls win over auto-detection).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, TypeVar

T = TypeVar("T")

#: What the notebook logged explicitly, in this kernel. Read by ``handoff.kernel_capture``.
logged: dict[str, Any] = {"model": None, "model_set": False, "metrics": {}}


def log_model(model: T) -> T:
    """Mark ``model`` as the model to package. Returns it unchanged."""
    logged["model"] = model
    logged["model_set"] = True
    return model


def log_metric(name: str, value: T) -> T:
    """Record one metric (a finite real number). Returns ``value`` unchanged."""
    if not isinstance(name, str) or not name:
        raise TypeError("handoff.log_metric: the metric name must be a non-empty string")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"handoff.log_metric: {name!r} must be a finite number, got {value!r}")
    logged["metrics"][name] = float(value)
    return value


def log_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Record several metrics at once. Returns the dict unchanged."""
    for name, value in metrics.items():
        log_metric(name, value)
    return metrics
