"""The generic fallback: any other object with ``predict``, cloudpickled inside an
``mlflow.pyfunc.PythonModel`` whose ``predict`` calls it.

Tried last (after every library's flavor and scikit-learn's). The version says so (flavor
``pyfunc``, format ``cloudpickle (generic pyfunc fallback)``), the checklist warns
(``model.portable``) and the package README says it: arbitrary pickle, loading runs code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import register

#: The format recorded for the fallback (``SavedAs.format``); checks and the README look for it.
FALLBACK_FORMAT = "cloudpickle (generic pyfunc fallback)"
FALLBACK_NOTE = "arbitrary pickle: loading runs code"


def _wrapper_class() -> type:
    from mlflow.pyfunc.model import PythonModel

    class PredictWrapper(PythonModel):
        """Unpickles the object from the artifact and answers with its ``predict``."""

        def load_context(self, context: Any) -> None:
            import cloudpickle

            with open(context.artifacts["model"], "rb") as handle:
                self.model = cloudpickle.load(handle)

        def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
            return self.model.predict(model_input)

    return PredictWrapper


class PyfuncFallback:
    name = "pyfunc"
    priority = 90

    def matches(self, model: Any) -> bool:
        try:
            return callable(getattr(model, "predict", None)) and not isinstance(model, type)
        except Exception:
            return False

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import tempfile

        import cloudpickle
        import mlflow.pyfunc

        requirements = pin(["mlflow", "cloudpickle", "numpy", "pandas"])
        with tempfile.TemporaryDirectory() as scratch:
            pickled = Path(scratch) / "model.cloudpickle"
            with open(pickled, "wb") as handle:
                cloudpickle.dump(model, handle)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlflow.pyfunc.save_model(
                    str(path),
                    python_model=_wrapper_class()(),
                    artifacts={"model": str(pickled)},
                    input_example=input_example,
                    pip_requirements=requirements,
                )
        return (
            FALLBACK_FORMAT,
            f"no library flavor knows {type(model).__module__}.{type(model).__qualname__}: {FALLBACK_NOTE}",
            requirements,
        )


register(PyfuncFallback())
