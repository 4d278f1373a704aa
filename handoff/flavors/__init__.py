"""Model flavors: how a captured model object becomes an MLflow model directory.

A registry, as papermill has for engines: each module in this package defines one ``Flavor`` and
registers it, so supporting another library (XGBoost, LightGBM, ...) is adding one file. The
flavors are tried by ``priority`` (lowest first; then by name): a library's own flavor (10) before
scikit-learn's (50), which takes any object with ``fit`` and ``predict``, and the generic pyfunc
fallback (90) last. A flavor recognises its objects by their classes' module names, so the core
never imports an optional library (XGBoost, PyTorch, ...): only a flavor's ``save`` does, and only
for an object of that library, which is therefore installed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from handoff.errors import OptionError


@dataclass(frozen=True)
class SavedModel:
    """An MLflow model directory written by a flavor.

    Attributes:
        path: The directory (``MLmodel``, model file, requirements, input example).
        flavor: The registry name of the flavor that wrote it.
        serialization: The on-disk format, e.g. ``skops`` or ``cloudpickle``.
        reason: Why that format was chosen, in one sentence (recorded in the manifest).
        requirements: The pinned pip requirements written beside the model.
    """

    path: Path
    flavor: str
    serialization: str
    reason: str
    requirements: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "serialization": self.serialization,
            "reason": self.reason,
            "requirements": list(self.requirements),
        }


class Flavor(Protocol):
    """What a flavor module provides."""

    name: str
    priority: int

    def matches(self, model: Any) -> bool:
        """True when this flavor can save ``model``."""

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        """Write the MLflow model directory at ``path``.

        ``pin`` turns the distribution names the flavor needs at load time into pinned
        requirements (it adds those of the model's own types). Returns the serialization
        format, the reason for it, and the requirements written.
        """


_REGISTRY: dict[str, Flavor] = {}


def register(flavor: Flavor) -> Flavor:
    """Add a flavor to the registry (called at import time by each flavor module)."""
    _REGISTRY[flavor.name] = flavor
    return flavor


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def available() -> list[str]:
    """Names of the registered flavors."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Flavor:
    """The flavor called ``name``; an unknown name fails listing what is available."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise OptionError(f"unknown model flavor {name!r}; available: {', '.join(available())}") from None


def flavor_for(model: Any) -> Flavor | None:
    """The first flavor (by priority) that accepts ``model``, or ``None``."""
    _load_all()
    ordered = sorted(_REGISTRY.values(), key=lambda f: (f.priority, f.name))
    return next((f for f in ordered if f.matches(model)), None)


def class_paths(model: Any) -> list[str]:
    """``module.QualName`` of the object's class and of every base class, without importing anything."""
    return [f"{k.__module__}.{k.__qualname__}" for k in type(model).__mro__]


def from_library(model: Any, package: str) -> bool:
    """True when the object's class, or a base class, is defined in the top-level ``package``."""
    return any(k.__module__.split(".")[0] == package for k in type(model).__mro__)
