"""CatBoost models (``CatBoostClassifier``, ``CatBoostRegressor``, ``CatBoost``), saved with MLflow's
catboost flavor in CatBoost's own binary format (``cbm``): loading it runs no pickled code."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import from_library, register


class CatBoostFlavor:
    name = "catboost"
    priority = 10

    def matches(self, model: Any) -> bool:
        return from_library(model, "catboost") and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.catboost

        requirements = pin(["mlflow", "catboost", "numpy", "pandas"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.catboost.save_model(model, str(path), input_example=input_example, pip_requirements=requirements)
        return "catboost-cbm", "CatBoost's own model format (cbm): loading it runs no pickled code", requirements


register(CatBoostFlavor())
