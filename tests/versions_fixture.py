"""A store with many versions made cheaply: one real build, then more versions of its run recorded
through ``Store.record_build`` (as a build would) with other parameters, metrics, notebook names and
statuses. Built once per test process; each test works on its own copy (``copy_store``)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat

from handoff.record import Metric, NotebookRef
from handoff.store import Store
from helpers import TRAIN_IRIS, build, notebook

# (model, C, label, notebook, status, accuracy) of the versions after the real build (iris v1, C=1.0).
EXTRA: tuple[tuple[str, float, str, str, str, float], ...] = (
    ("iris", 0.5, "iris", "iris.ipynb", "passed", 0.91),
    ("iris", 2.0, "iris", "iris-tuned.ipynb", "failed", 0.42),
    ("iris", 1.0, "iris", "iris.ipynb", "passed", 0.97),
    ("iris", 4.0, "iris", "iris-tuned.ipynb", "passed", 0.95),
    ("other", 1.0, "first", "other.ipynb", "passed", 0.80),
    ("other", 1.0, "second", "other.ipynb", "passed", 0.85),
)

_TEMPLATE: dict[str, Path] = {}


def record_version(store: Store, run_id: str, scratch: Path, **change: Any) -> int:
    """Record another version from ``run_id``'s artifacts with the record changed as asked.

    ``change``: name, status, parameters (merged), metrics (replacing), notebook (its name).
    """
    record = store.read_record(run_id)
    staging = scratch / f"staging-{len(list(scratch.glob('staging-*')))}"
    shutil.copytree(store.local_artifacts(run_id), staging, ignore=shutil.ignore_patterns("package", "handoff"))
    inputs = replace(
        record.inputs,
        parameters={**record.inputs.parameters, **change.get("parameters", {})},
        notebook=NotebookRef(
            Path(change.get("notebook", record.inputs.notebook.name)).stem,
            record.inputs.notebook.sha256,
            f"/notebooks/{change['notebook']}" if "notebook" in change else record.inputs.notebook.path,
        ),
    )
    metrics = change.get("metrics")
    outputs = (
        record.outputs
        if metrics is None
        else replace(record.outputs, metrics=tuple(Metric(k, v) for k, v in metrics.items()))
    )
    recorded = store.record_build(
        staging=staging,
        register=True,
        record=replace(
            record,
            name=change.get("name", record.name),
            status=change.get("status", record.status),
            inputs=inputs,
            outputs=outputs,
        ),
    )
    shutil.rmtree(staging)
    assert recorded.version is not None
    return recorded.version


def versions_template(root: Path) -> Path:
    """The store of iris v1..v5 and other v1..v2 (see ``EXTRA``), made once per process."""
    if "home" in _TEMPLATE:
        return _TEMPLATE["home"]
    home = root / "versions-store"
    store = Store(home)
    path = root / "iris.ipynb"
    nbformat.write(notebook([("parameters", "C = 1.0\nlabel = 'iris'"), TRAIN_IRIS]), path)
    first = build(path, store, name="iris")
    assert first.ok and first.run_id is not None, first.error
    scratch = root / "scratch"
    scratch.mkdir()
    for model, c, label, nb, status, accuracy in EXTRA:
        record_version(
            store,
            first.run_id,
            scratch,
            name=model,
            status=status,
            parameters={"C": c, "label": label},
            metrics={"accuracy": accuracy, "f1": accuracy - 0.01},
            notebook=nb,
        )
    _TEMPLATE["home"] = home
    return home


def copy_store(template: Path, target: Path) -> Store:
    """A copy of the template store that a test may change (its artifacts stay where they were)."""
    shutil.copytree(template, target)
    return Store(target)
