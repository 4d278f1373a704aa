"""The build record: one typed value that every part of handoff reads.

A build produces one ``BuildRecord`` (inputs, outputs, lineage, timings, error, warnings), stored
as ``handoff/record.json`` beside the version's artifacts. The CLI, the app, the comparison, the
package's manifest and model card, and the checks all read it through these frozen dataclasses;
only ``to_dict``/``from_dict`` here know the JSON keys. ``from_dict`` validates (pydantic, on the
plain dataclasses) and upgrades older schemas, so a store written by an earlier release still
loads. ``record_schema()`` is the JSON Schema of the stored form (``docs/record.schema.json``).

Schema history: 1 (handoff 0.1.0): one flat dict; 2: inputs/outputs/lineage, metrics with their
source, the model's choice and its serialization in one place. See README "Changelog".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import TypeAdapter, computed_field

from handoff.checks import FAILED, PASSED, SKIPPED, WARNED, CheckResult

SCHEMA_VERSION = 2
T = TypeVar("T")
PASSED_STATUS, FAILED_STATUS = "passed", "failed"


@dataclass(frozen=True)
class NotebookRef:
    """The notebook as given: its label, where it was read from, and the digest of its bytes."""

    name: str
    sha256: str
    path: str | None = None


@dataclass(frozen=True)
class ParameterSpec:
    """One variable of the notebook's ``parameters`` cell, as declared there."""

    name: str
    type: str
    default: Any = None
    default_source: str = ""
    help: str = ""


@dataclass(frozen=True)
class SandboxInfo:
    """The sandbox the notebook ran in (``bubblewrap`` or ``partial``), its network and limits."""

    kind: str
    network: str
    env_passed: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildEnvironment:
    """The virtualenv the kernel ran in, made with uv from the notebook's requirements.

    Attributes:
        requirements: The requirements as given (files, ``--with``, ``pip install`` cells).
        sources: Where they came from (``requirements.txt beside the notebook``, ``--with six``).
        key: The cache key of the env (Python, handoff's source, the resolved pins).
        pins: The resolved requirements it was made from.
        created: ``True`` when this build made it, ``False`` when it was reused from the cache.
        seconds: Time spent resolving and, when created, installing.
    """

    requirements: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    key: str = ""
    pins: tuple[str, ...] = ()
    created: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Inputs:
    """What the build was given.

    Attributes:
        notebook: The notebook's name, path and sha256.
        parameters: The values it ran with (declared defaults plus the given ones).
        parameter_specs: The declared parameters.
        options: The build options (time limits, model variable, sandbox limits).
        sandbox: The sandbox as it was on this machine.
        kernel: The Jupyter kernel it ran on.
        build_environment: The virtualenv made from the notebook's requirements it ran in;
            ``None``: it ran in handoff's own environment.
    """

    notebook: NotebookRef
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_specs: tuple[ParameterSpec, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    sandbox: SandboxInfo | None = None
    kernel: str = ""
    build_environment: BuildEnvironment | None = None


@dataclass(frozen=True)
class Candidate:
    """A fitted model the build considered: a variable, a file or an MLflow-logged model."""

    name: str
    kind: str
    type: str
    cell: int | None = None
    part_of: str | None = None
    note: str = ""


@dataclass(frozen=True)
class SavedAs:
    """How the model was saved: the MLflow flavor, the on-disk format and why, the pinned requirements."""

    flavor: str
    format: str
    reason: str
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """The shipped model: what it is, what chose it, what else was considered, how it was saved.

    Attributes:
        type: Its class (``sklearn.pipeline.Pipeline``).
        task: ``classification``, ``regression`` or ``None`` when unknown.
        source: What found it: ``log_model``, ``model_var``, ``mlflow``, ``file`` or ``auto``.
        variable: The notebook variable holding it, when there is one.
        packaged: What was shipped, when not the variable itself (``search.best_estimator_``).
        chosen_by: The rule that chose it, in words.
        cell: The notebook cell (1-based position) that fitted or wrote it.
        candidates: Every fitted model considered.
        saved: The serialization; ``None`` when saving failed.
    """

    type: str
    chosen_by: str
    source: str = "auto"
    task: str | None = None
    variable: str | None = None
    packaged: str | None = None
    cell: int | None = None
    candidates: tuple[Candidate, ...] = ()
    saved: SavedAs | None = None

    @property
    def shipped(self) -> str:
        """The name people know the shipped object by."""
        return self.packaged or self.variable or self.type


@dataclass(frozen=True)
class Metric:
    """A metric value and where it came from (the notebook's call, its MLflow run, a variable, handoff)."""

    name: str
    value: float
    source: str = "the notebook"


@dataclass(frozen=True)
class DataFile:
    """One file the notebook read: path (relative, or ``<site-packages>/...``), size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DataFingerprint:
    """Every file the notebook read, and one digest over them all."""

    sha256: str = ""
    files: tuple[DataFile, ...] = ()


@dataclass(frozen=True)
class Environment:
    """The kernel's Python and packages: imported by the notebook, loaded, needed by the model, installed."""

    python: str | None = None
    platform: str | None = None
    imported: dict[str, str] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=dict)
    model_packages: dict[str, str] = field(default_factory=dict)
    installed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """The held-out rows handoff scored the model on (or the input example when there were none)."""

    source: str
    rows: int | None = None
    task: str | None = None
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputExample:
    """The rows kept as the model's input example, and the variable they came from."""

    variable: str
    rows: int | None = None
    type: str = ""


@dataclass(frozen=True)
class NotebookRun:
    """The notebook's own MLflow run, imported with the build (its artifacts under ``notebook_run/``)."""

    run_id: str
    run_name: str | None = None
    status: str | None = None
    runs_seen: int = 1
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_history: dict[str, list[list[float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    artifacts: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class CheckReport:
    """The checklist of one build (or one re-check of a stored version).

    Attributes:
        results: One result per registered check, in report order.
        config: The effective configuration it ran with.
        created: ISO 8601 UTC time the report was made.
        seconds: Wall time of the whole checklist.
    """

    results: tuple[CheckResult, ...]
    config: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True when no blocking check failed."""
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAILED]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.results) for status in (PASSED, FAILED, WARNED, SKIPPED)}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        return ", ".join(f"{n} {status}" for status, n in self.counts.items() if n)

    def to_dict(self) -> dict[str, Any]:
        return _dump(CheckReport, self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckReport:
        return parse(CheckReport, data)


@dataclass(frozen=True)
class Outputs:
    """What the build produced.

    Attributes:
        model: The shipped model, or ``None`` when none was captured.
        metrics: Every metric with its source, in the order found.
        metrics_source: The main source: ``log_metric``, ``mlflow``, ``namespace``, ``computed`` or ``none``.
        checks: The checklist report, or ``None`` before the checklist ran.
        data: The data fingerprint.
        environment: The kernel's environment, when capture ran.
        evaluation: The rows handoff scored the model on.
        input_example: Where the input example came from.
    """

    model: ModelInfo | None = None
    metrics: tuple[Metric, ...] = ()
    metrics_source: str = "none"
    checks: CheckReport | None = None
    data: DataFingerprint = field(default_factory=DataFingerprint)
    environment: Environment | None = None
    evaluation: Evaluation | None = None
    input_example: InputExample | None = None


@dataclass(frozen=True)
class Lineage:
    """Where the version comes from beyond its inputs.

    Attributes:
        run_id: The MLflow run that records the build (set when it is recorded).
        notebook_run: The notebook's own MLflow run, when it tracked one.
        champion: The champion version the checklist compared against, when gated.
    """

    run_id: str | None = None
    notebook_run: NotebookRun | None = None
    champion: int | None = None


@dataclass(frozen=True)
class BuildError:
    """A failed stage as data: the one-sentence ``message`` says what failed and where (stage, cell)."""

    type: str
    stage: str
    message: str
    detail: str = ""
    cell: int | None = None
    ename: str | None = None
    traceback: str | None = None


#: Timings that measure a part of a stage, or work done beside or ahead of the stages (the kernel's
#: start, the store's opening while the notebook ran, a kernel started before the build): not added
#: up into a build's duration.
PART_TIMINGS = ("total", "kernel_start", "kernel_prestarted", "store_open")


@dataclass(frozen=True)
class BuildRecord:
    """Everything recorded about one build: enough to reproduce it and to judge it.

    Attributes:
        name: The model name.
        status: ``passed`` or ``failed``.
        inputs: Notebook, parameters, options, sandbox, kernel.
        outputs: Model, metrics, checklist, data fingerprint, environment.
        lineage: The recording run and the notebook's own MLflow run.
        timings: Seconds per stage (and the parts in ``PART_TIMINGS``).
        error: The failure, or ``None``.
        warnings: Things to know that did not fail the build.
        handoff_version: The handoff release that built it.
        schema_version: The version of this record's layout.
    """

    name: str
    status: str
    inputs: Inputs
    outputs: Outputs = field(default_factory=Outputs)
    lineage: Lineage = field(default_factory=Lineage)
    timings: dict[str, float] = field(default_factory=dict)
    error: BuildError | None = None
    warnings: tuple[str, ...] = ()
    handoff_version: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == PASSED_STATUS

    @property
    def metrics(self) -> dict[str, float]:
        """Metric name to value."""
        return {m.name: m.value for m in self.outputs.metrics}

    @property
    def metric_sources(self) -> dict[str, str]:
        return {m.name: m.source for m in self.outputs.metrics}

    def with_run(self, run_id: str) -> BuildRecord:
        return replace(self, lineage=replace(self.lineage, run_id=run_id))

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON form (``handoff/record.json``)."""
        return _dump(BuildRecord, self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildRecord:
        """A record from its stored form, of this schema or an earlier one."""
        version = data.get("schema_version", 1)
        upgraded = _from_v1(data) if version == 1 else dict(data)
        return parse(BuildRecord, upgraded)


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(kind: type) -> TypeAdapter[Any]:
    """pydantic's validator and serializer for a dataclass (built once: it costs milliseconds)."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def parse(kind: type[T], data: Any) -> T:
    """``data`` (plain JSON values) as a ``kind``, validated; raises pydantic's ``ValidationError``."""
    value: T = _adapter(kind).validate_python(data)
    return value


def _dump(kind: type, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = _adapter(kind).dump_python(value, mode="json", fallback=repr)
    return data


def record_schema() -> dict[str, Any]:
    """The JSON Schema of a stored record (``docs/record.schema.json``)."""
    schema = _adapter(BuildRecord).json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": f"handoff build record, schema {SCHEMA_VERSION}",
    }


def _from_v1(old: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 record (handoff 0.1.0: one flat dict) in the layout of schema 2."""
    capture = old.get("capture") or {}
    found = capture.get("model") or {}
    saved = old.get("serialization")
    sources = capture.get("metric_sources") or {}
    model = None
    if found:
        model = {
            **{k: found.get(k) for k in ("type", "task", "source", "variable", "packaged", "cell")},
            "chosen_by": found.get("rule") or "",
            "candidates": found.get("candidates") or [],
            "saved": {
                "flavor": saved["flavor"],
                "format": saved["serialization"],
                "reason": saved["reason"],
                "requirements": saved.get("requirements", []),
            }
            if saved
            else None,
        }
        model["source"] = model["source"] or "auto"
    error = old.get("error")
    return {
        "schema_version": SCHEMA_VERSION,
        "handoff_version": old.get("handoff_version", ""),
        "name": old["name"],
        "status": old.get("status", FAILED_STATUS),
        "inputs": {
            "notebook": old.get("notebook") or {"name": "", "sha256": ""},
            "parameters": old.get("params") or {},
            "parameter_specs": old.get("parameters") or [],
            "options": old.get("options") or {},
            "sandbox": old.get("sandbox"),
            "kernel": old.get("kernel", ""),
        },
        "outputs": {
            "model": model,
            "metrics": [
                {"name": k, "value": v, **({"source": sources[k]} if k in sources else {})}
                for k, v in (old.get("metrics") or {}).items()
            ],
            "metrics_source": capture.get("metrics_source", "none"),
            "checks": old.get("checks"),
            "data": old.get("data") or {},
            "environment": capture.get("environment"),
            "evaluation": capture.get("evaluation"),
            "input_example": capture.get("input_example"),
        },
        "lineage": {"run_id": old.get("run_id"), "notebook_run": capture.get("notebook_run")},
        "timings": old.get("timings") or {},
        "warnings": old.get("warnings") or [],
        "error": {**error, "type": error.get("type", "BuildFailure"), "detail": error.get("detail") or ""}
        if error
        else None,
    }
