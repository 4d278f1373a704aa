"""Capture stage (parent side): read what the kernel-side capture cell reported.

The kernel writes ``capture.json`` (model choice, metrics, environment, data fingerprint) and the
pickled model beside it; this module turns the report into a typed value or a ``CaptureFailure``.
The kernel knows execution counts, not notebook positions: ``count`` fields and ``⟨count:N⟩``
references in its messages become the cell's position in the notebook here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handoff.errors import CaptureFailure
from handoff.fingerprint import combined_digest
from handoff.record import DataFingerprint, Environment, Evaluation, InputExample, Metric, ModelInfo, NotebookRun, parse


@dataclass(frozen=True)
class Capture:
    """What the notebook left behind, as found by the capture cell, in the record's types.

    Attributes:
        model: How the model was found (``saved`` is still ``None``: serialization comes next).
        metrics: Every metric with its source.
        metrics_source: The main source: ``log_metric``, ``mlflow``, ``namespace``, ``computed`` or ``none``.
        input_example: Where the example rows came from, or ``None``.
        environment: Python version and pinned packages (imported, loaded, model_packages, installed).
        data: The data fingerprint of every file read.
        evaluation: The held-out rows handoff scored the model on, or ``None``.
        notebook_run: The notebook's own MLflow run, if it tracked one.
        warnings: Capture-time warnings.
    """

    model: ModelInfo
    metrics: tuple[Metric, ...]
    metrics_source: str
    input_example: InputExample | None
    environment: Environment
    data: DataFingerprint
    evaluation: Evaluation | None = None
    notebook_run: NotebookRun | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def metric_values(self) -> dict[str, float]:
        return {m.name: m.value for m in self.metrics}


_COUNT_REF = re.compile(r"⟨count:(\d+)⟩")


def _with_cells(value: Any, cells: Mapping[int, int]) -> Any:
    """The report with execution counts turned into notebook cell positions."""
    if isinstance(value, str):
        return _COUNT_REF.sub(lambda m: f"cell {cells[int(m[1])]}" if int(m[1]) in cells else "a cell", value)
    if isinstance(value, list):
        return [_with_cells(v, cells) for v in value]
    if isinstance(value, dict):
        return {
            ("cell" if k == "count" else k): (
                cells.get(v) if k == "count" and isinstance(v, int) else _with_cells(v, cells)
            )
            for k, v in value.items()
        }
    return value


def read_capture(capture_dir: Path, cells: Mapping[int, int] | None = None) -> Capture:
    """Read the capture report; a missing report or a reported error is a ``CaptureFailure``.

    ``cells`` maps execution counts to notebook cell positions (``ExecutionResult.cells``).
    """
    path = capture_dir / "capture.json"
    if not path.exists():
        raise CaptureFailure("capture", "handoff's capture cell wrote no report")
    report = _with_cells(json.loads(path.read_text()), cells or {})
    if not report.get("ok"):
        error = report.get("error") or {}
        raise CaptureFailure(
            "capture", error.get("detail", "unknown error"), ename=error.get("ename"), traceback=error.get("traceback")
        )
    found = report["model"]
    files = report.get("data_files", [])
    sources = report.get("metric_sources", {})
    model = {
        **{k: found.get(k) for k in ("type", "task", "source", "variable", "packaged", "cell", "candidates")},
        "chosen_by": found.get("rule", ""),
    }
    return parse(
        Capture,
        {
            "model": {k: v for k, v in model.items() if v is not None},
            "metrics": [
                {"name": k, "value": v, **({"source": sources[k]} if k in sources else {})}
                for k, v in report.get("metrics", {}).items()
            ],
            "metrics_source": report.get("metrics_source", "none"),
            "input_example": report.get("input_example"),
            "environment": report.get("environment", {}),
            "data": {"sha256": combined_digest(files), "files": files},
            "evaluation": report.get("evaluation"),
            "notebook_run": report.get("notebook_run"),
            "warnings": report.get("warnings", []),
        },
    )
