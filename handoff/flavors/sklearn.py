"""scikit-learn (and scikit-learn-compatible) models, saved with MLflow's sklearn flavor.

skops when every type in the model is on an audited list of scikit-learn / NumPy / SciPy types
(loading it then executes no arbitrary code); otherwise cloudpickle, which also carries classes
defined inside the notebook by value so the model loads where the notebook never ran.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import register

#: Module prefixes whose types handoff trusts skops to load. Audited: data containers and
#: estimators from these libraries only; nothing that can call arbitrary functions.
TRUSTED_TYPE_PREFIXES = (
    "sklearn.",
    "numpy.",
    "scipy.sparse.",
    "builtins.",
    "collections.OrderedDict",
    "collections.defaultdict",
)


def untrusted_types(model: Any) -> tuple[list[str] | None, str]:
    """The types skops would have to be told to trust to load ``model``, or ``None`` with the reason
    skops cannot serialize it."""
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(data=skops.io.dumps(model))), ""
    except Exception as exc:  # skops refuses many objects (lambdas, some C types): use cloudpickle
        return None, f"skops cannot serialize it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"


def trusted_types_for(model: Any) -> tuple[list[str] | None, str]:
    """The skops trusted-type list for ``model``, or ``None`` with the reason skops cannot be used."""
    untrusted, why = untrusted_types(model)
    if untrusted is None:
        return None, why
    outside = sorted(t for t in untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES))
    if outside:
        return None, f"types outside the audited skops trust list: {', '.join(outside[:5])}"
    return sorted(untrusted), "every type is on the audited scikit-learn/NumPy/SciPy trust list"


class SklearnFlavor:
    name = "sklearn"
    priority = 50

    def matches(self, model: Any) -> bool:
        return callable(getattr(model, "fit", None)) and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.sklearn

        trusted, reason = trusted_types_for(model)
        serialization = "skops" if trusted is not None else "cloudpickle"
        requirements = pin(["mlflow", "scikit-learn", "numpy", "pandas", serialization])
        with warnings.catch_warnings():  # MLflow's schema hints are for its own users, not ours
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(
                model,
                str(path),
                serialization_format=serialization,
                skops_trusted_types=trusted,
                input_example=input_example,
                pip_requirements=requirements,
            )
        return serialization, reason, requirements


register(SklearnFlavor())
