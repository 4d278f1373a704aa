"""PyTorch networks (any ``torch.nn.Module``), saved with MLflow's pytorch flavor.

The whole module is saved with ``torch.save`` and cloudpickle, so a network class defined in the
notebook travels by value; that is a pickle, marked as one (loading it runs code). The input
example (rows of the training input as a NumPy array of the network's weight dtype) decides the
signature: a tensor of that dtype and width. The pyfunc calls the network in eval mode, without
gradients, and returns its raw output (logits or scores for a classifier).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff.flavors import class_paths, register


class PyTorchFlavor:
    name = "pytorch"
    priority = 10

    def matches(self, model: Any) -> bool:
        return "torch.nn.modules.module.Module" in class_paths(model)

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.pytorch

        from handoff.kernel_models import model_input

        example = model_input(model, input_example) if input_example is not None else None
        requirements = pin(["mlflow", "torch", "numpy", "pandas", "cloudpickle"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pytorch.save_model(
                model.eval(),
                str(path),
                serialization_format="pickle",
                input_example=example,
                pip_requirements=requirements,
            )
        return (
            "cloudpickle",
            "the whole network is saved with torch.save and cloudpickle (its class travels by value)",
            requirements,
        )


register(PyTorchFlavor())
