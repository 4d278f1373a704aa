"""statsmodels fitted results objects (``sm.OLS(y, X).fit()``, ``smf.logit(...).fit()``, ...), saved with
MLflow's statsmodels flavor. statsmodels' own ``save`` is a pickle, so this format is marked as one:
loading it runs code. The training data is dropped from the saved results (``remove_data``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import class_paths, register

_RESULTS = ("statsmodels.base.wrapper.ResultsWrapper", "statsmodels.base.model.Results")


class StatsmodelsFlavor:
    name = "statsmodels"
    priority = 10

    def matches(self, model: Any) -> bool:
        return any(p in _RESULTS for p in class_paths(model)) and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.statsmodels

        requirements = pin(["mlflow", "statsmodels", "numpy", "pandas", "scipy"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.statsmodels.save_model(
                model, str(path), remove_data=True, input_example=input_example, pip_requirements=requirements
            )
        return "pickle", "statsmodels saves its results objects only as a pickle (training data removed)", requirements


register(StatsmodelsFlavor())
