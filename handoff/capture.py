"""Capture stage (parent side): read what the kernel-side capture cell reported.

The kernel writes ``capture.json`` (model choice, metrics, environment, data fingerprint) and the
pickled model beside it; this module turns the report into a typed value or a ``CaptureFailure``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handoff.errors import CaptureFailure


@dataclass(frozen=True)
class Capture:
    """What the notebook left behind, as found by the capture cell.

    Attributes:
        model: How the model was found: ``source`` (log_model / model_var / auto), ``variable``,
            ``type``, ``rule`` (the rule that picked it) and ``candidates`` (every fitted model seen).
        metrics: Metric name to value.
        metrics_source: ``log_metric``, ``namespace`` or ``none``.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_capture(capture_dir: Path) -> Capture:
    """Read the capture report; a missing report or a reported error is a ``CaptureFailure``."""
    path = capture_dir / "capture.json"
    if not path.exists():
        raise CaptureFailure("capture", "handoff's capture cell wrote no report")
    report = json.loads(path.read_text())
    if not report.get("ok"):
        error = report.get("error") or {}
        raise CaptureFailure("capture", error.get("detail", "unknown error"), ename=error.get("ename"),
                             traceback=error.get("traceback"))
    return Capture(
        model=report["model"], metrics=report.get("metrics", {}), metrics_source=report.get("metrics_source", "none"),
        input_example=report.get("input_example"), environment=report.get("environment", {}),
        data_files=report.get("data_files", []), warnings=tuple(report.get("warnings", [])),
    )
