"""Capture stage (parent side): read what the kernel-side capture cell reported.

The kernel writes ``capture.json`` (model choice, metrics, environment, data fingerprint) and the
pickled model beside it; this module turns the report into a typed value or a ``CaptureFailure``.
The kernel knows execution counts, not notebook positions: ``count`` fields and ``⟨count:N⟩``
references in its messages become the cell's position in the notebook here.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from handoff.errors import CaptureFailure


@dataclass(frozen=True)
class Capture:
    """What the notebook left behind, as found by the capture cell.

    Attributes:
        model: How the model was found: ``source`` (log_model / model_var / mlflow / file / auto),
            ``variable``, ``type``, ``rule`` (the rule that picked it), ``packaged`` (what was
            shipped, e.g. ``search.best_estimator_``), ``cell`` and ``candidates`` (every fitted
            model considered: variable, file or MLflow model, its type, cell and ``part_of``).
        metrics: Metric name to value.
        metrics_source: The main source: ``log_metric``, ``mlflow``, ``namespace``, ``computed`` or ``none``.
        metric_sources: Metric name to where it came from, for people.
        evaluation: The held-out rows handoff scored the model on (``source``, ``rows``, ``task``),
            or the input example when there were none; ``None`` when it had neither.
        notebook_run: The notebook's own MLflow run (params, metrics, history, tags), if it tracked one.
        input_example: The variable the example rows came from, or ``None``.
        environment: Python version and pinned packages (imported, loaded, model_packages, installed).
        data_files: The data fingerprint: ``{"path", "size", "sha256"}`` per file read.
        warnings: Capture-time warnings.
    """

    model: dict[str, Any]
    metrics: dict[str, float]
    metrics_source: str
    input_example: dict[str, Any] | None
    environment: dict[str, Any]
    data_files: list[dict[str, Any]]
    warnings: tuple[str, ...] = field(default=())
    metric_sources: dict[str, str] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    notebook_run: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_COUNT_REF = re.compile(r"⟨count:(\d+)⟩")


def _with_cells(value: Any, cells: Mapping[int, int]) -> Any:
    """The report with execution counts turned into notebook cell positions."""
    if isinstance(value, str):
        return _COUNT_REF.sub(lambda m: f"cell {cells[int(m[1])]}" if int(m[1]) in cells else "a cell", value)
    if isinstance(value, list):
        return [_with_cells(v, cells) for v in value]
    if isinstance(value, dict):
        return {("cell" if k == "count" else k): (cells.get(v) if k == "count" and isinstance(v, int) else
                                                  _with_cells(v, cells)) for k, v in value.items()}
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
        raise CaptureFailure("capture", error.get("detail", "unknown error"), ename=error.get("ename"),
                             traceback=error.get("traceback"))
    return Capture(
        model=report["model"], metrics=report.get("metrics", {}), metrics_source=report.get("metrics_source", "none"),
        input_example=report.get("input_example"), environment=report.get("environment", {}),
        data_files=report.get("data_files", []), warnings=tuple(report.get("warnings", [])),
        metric_sources=report.get("metric_sources", {}), evaluation=report.get("evaluation"),
        notebook_run=report.get("notebook_run"),
    )


def candidate_rows(model: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every model the build considered, for a table: the chosen one first, parts marked."""
    chosen = model.get("variable") or model.get("packaged", "").removeprefix("file ")
    rows = [{"candidate": c["name"], "from": c["kind"], "type": c["type"].rsplit(".", 1)[-1],
             "cell": str(c.get("cell") or ""), "chosen": "yes" if c["name"] == chosen else "",
             "note": f"part of {c['part_of']}" if c.get("part_of") else c.get("note", "")}
            for c in model.get("candidates", [])]
    return sorted(rows, key=lambda r: r["chosen"] != "yes")


def metrics_by_source(metrics: Mapping[str, float], sources: Mapping[str, str]) -> dict[str, list[str]]:
    """Metric names grouped by where they came from (``name=value`` strings, in metric order)."""
    grouped: dict[str, list[str]] = {}
    for name, value in metrics.items():
        grouped.setdefault(sources.get(name, "the notebook"), []).append(f"{name}={value:.4g}")
    return grouped
