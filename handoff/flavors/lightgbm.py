"""LightGBM models (a native ``Booster`` or the scikit-learn API: ``LGBMClassifier``, ``LGBMRegressor``),
saved with MLflow's lightgbm flavor.

A ``Booster`` is written in LightGBM's own text format. A scikit-learn-API model is written with
skops, trusting scikit-learn's audited types plus LightGBM's estimator and Booster classes (a
Booster is rebuilt from its model text); when skops cannot take it, cloudpickle.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import class_paths, from_library, register

#: LightGBM types handoff lets skops load, besides the scikit-learn flavor's audited list.
TRUSTED_LIGHTGBM_PREFIXES = ("lightgbm.sklearn.", "lightgbm.basic.Booster")


class LightGBMFlavor:
    name = "lightgbm"
    priority = 10

    def matches(self, model: Any) -> bool:
        return from_library(model, "lightgbm") and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.lightgbm

        from handoff.flavors.sklearn import TRUSTED_TYPE_PREFIXES, SkopsAudit, audit, dumped_once

        audited = SkopsAudit(None)
        if "lightgbm.basic.Booster" in class_paths(model):
            serialization, reason, trusted = "lightgbm-text", "LightGBM's own text model format", None
            names = ["mlflow", "lightgbm", "numpy", "pandas"]
        else:
            audited = audit(model)
            found = audited.untrusted
            outside = sorted(
                t for t in found or () if not t.startswith((*TRUSTED_TYPE_PREFIXES, *TRUSTED_LIGHTGBM_PREFIXES))
            )
            if found is not None and not outside:
                serialization, trusted = "skops", sorted(found)
                reason = "every type is on the audited scikit-learn/NumPy/SciPy list or a LightGBM estimator or Booster"
            else:
                serialization, trusted = "cloudpickle", None
                reason = (
                    audited.why
                    if found is None
                    else f"types outside the audited skops trust list: {', '.join(outside[:5])}"
                )
            names = ["mlflow", "lightgbm", "scikit-learn", "numpy", "pandas", serialization]
        requirements = pin(names)
        with warnings.catch_warnings(), dumped_once(model, audited):
            warnings.simplefilter("ignore")
            mlflow.lightgbm.save_model(
                model,
                str(path),
                serialization_format=serialization if serialization in ("skops", "cloudpickle") else None,
                skops_trusted_types=trusted,
                input_example=input_example,
                pip_requirements=requirements,
            )
        return serialization, reason, requirements


register(LightGBMFlavor())
