"""Serialize stage: save the captured model as an MLflow model directory.

The kernel pickled the object with cloudpickle (classes defined in the notebook travel by
value); here it is loaded back, handed to the first model flavor that accepts it, and written
with requirements pinned from the kernel's own environment, so MLflow never has to infer them
in a subprocess. Loading it runs code the notebook produced, so this module's ``serialize`` runs
only in the sandboxed worker (``handoff.checks.runner``), never in the CLI's or the app's process;
the build gets back a directory and a ``SavedModel`` as JSON.
"""

from __future__ import annotations

import importlib.metadata
import pickle
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from handoff import flavors
from handoff.capture import Capture
from handoff.errors import SerializationFailure
from handoff.flavors import SavedModel
from handoff.record import Environment


def pinned_requirements(names: list[str], environment: Environment) -> list[str]:
    """``name==version`` for ``names`` plus the model's own packages, versions from the kernel."""
    versions = {canonicalize_name(k): v for k, v in environment.installed.items()}
    wanted = {canonicalize_name(n) for n in [*names, *environment.model_packages]}
    pins = []
    for name in sorted(wanted):
        version = versions.get(name)
        if version is None:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        pins.append(f"{name}=={version}")
    return pins


def load_captured(capture_dir: Path) -> tuple[Any, Any]:
    """The model object and input example (or ``None``) the kernel pickled."""
    import cloudpickle

    with open(capture_dir / "model.pkl", "rb") as handle:
        model = cloudpickle.load(handle)
    example_path = capture_dir / "input_example.pkl"
    example = None
    if example_path.exists():
        with open(example_path, "rb") as handle:
            example = pickle.load(handle)
    return model, example


def serialize(capture_dir: Path, capture: Capture, target: Path) -> SavedModel:
    """Write the MLflow model directory at ``target`` (which must not exist yet). Worker-side only."""
    try:
        model, example = load_captured(capture_dir)
    except Exception as exc:
        raise SerializationFailure(
            "serialize",
            f"the captured model cannot be loaded back: {type(exc).__name__}: {exc}",
            ename=type(exc).__name__,
        ) from exc
    flavor = flavors.flavor_for(model)
    if flavor is None:
        raise SerializationFailure(
            "serialize",
            f"no model flavor handles {capture.model.type}; available flavors: {', '.join(flavors.available())}",
        )
    try:
        serialization, reason, requirements = flavor.save(
            model, target, input_example=example, pin=lambda names: pinned_requirements(names, capture.environment)
        )
    except Exception as exc:
        raise SerializationFailure(
            "serialize", f"{flavor.name} flavor: {type(exc).__name__}: {exc}", ename=type(exc).__name__
        ) from exc
    return SavedModel(
        path=target, flavor=flavor.name, serialization=serialization, reason=reason, requirements=tuple(requirements)
    )
