"""XGBoost models (a native ``Booster`` or the scikit-learn API: ``XGBClassifier``, ``XGBRegressor``, ...),
saved with MLflow's xgboost flavor in XGBoost's own UBJSON format: loading it runs no pickled code.

The pyfunc of a ``Booster`` predicts on a ``DMatrix`` of the input (probabilities for a classifying
objective); that of a scikit-learn-API model calls its ``predict`` (labels).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import from_library, register


class XGBoostFlavor:
    name = "xgboost"
    priority = 10

    def matches(self, model: Any) -> bool:
        return from_library(model, "xgboost") and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.xgboost

        requirements = pin(["mlflow", "xgboost", "numpy", "pandas"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.xgboost.save_model(
                model, str(path), model_format="ubj", input_example=input_example, pip_requirements=requirements
            )
        return "xgboost-ubj", "XGBoost's own model format (UBJSON): loading it runs no pickled code", requirements


register(XGBoostFlavor())
