"""The build: notebook in, recorded model version out.

``build()`` runs the stages in order (inspect, execute, capture, serialize, record), reports
progress to a callback, and returns a ``BuildResult``. Bad input raises an ``InputError`` before
anything runs; a notebook that fails is *not* an exception: the result carries the failure, the
partly executed notebook is recorded with the failed build, and no version is created.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat

from handoff import __version__
from handoff.capture import Capture, read_capture
from handoff.check_config import CheckConfig, resolve_config
from handoff.checklist import ArtifactChecker, CheckContext, CheckReport, RerunResult, run_checklist
from handoff.errors import BuildFailure, ChecklistFailure, OptionError, RecordFailure, StoreError
from handoff.events import BuildEvent, EventCallback, ignore_event
from handoff.execution import execute, make_workdir
from handoff.fingerprint import combined_digest
from handoff.flavors import SavedModel
from handoff.inspection import NotebookSource, load_notebook, validate_params
from handoff.sandbox import GIB, Limits, Policy
from handoff.output_limits import OutputLimits
from handoff.package import build_package, package_name, render_report_html
from handoff.store import (CHECKS_PATH, FIDELITY_PATH, MODEL_ARTIFACT, NOTEBOOK_RUN_PATH, Recorded, Store,
                           check_model_name, default_home, model_name_from, open_store)
from handoff.workdirs import private_dir


@dataclass(frozen=True)
class BuildOptions:
    """How a build runs.

    Attributes:
        timeout: Whole-run limit in seconds (kernel start included); the kernel is killed on expiry.
        cell_timeout: Limit for any one cell, in seconds.
        model_var: Take the model from this notebook variable instead of auto-detecting it.
        start_timeout: Seconds to wait for the kernel to start.
        allow_network: Give the notebook the network (off by default; recorded with the version).
        env: Names of environment variables passed into the sandbox (values never recorded).
        memory_gib: Memory limit of the notebook's processes, in GiB.
        max_processes: Processes the notebook may run at once.
        max_disk_gib: Disk space the build's work dir may use, in GiB.
        max_cell_output_mb: Output one cell may keep in the executed notebook (MB); past it the
            head and tail are kept around a marker line, and the build warns.
        max_output_mb: The same for the whole notebook.
    """

    timeout: float = 3600.0
    cell_timeout: float = 600.0
    model_var: str | None = None
    start_timeout: float = 60.0
    allow_network: bool = False
    env: tuple[str, ...] = ()
    memory_gib: float = 4.0
    max_processes: int = 256
    max_disk_gib: float = 5.0
    max_cell_output_mb: float = 5.0
    max_output_mb: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", tuple(self.env))
        for name, unit in (("timeout", "seconds"), ("cell_timeout", "seconds"), ("start_timeout", "seconds"),
                           ("memory_gib", "GiB"), ("max_disk_gib", "GiB")):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise OptionError(f"{name} must be a positive number of {unit}, got {value!r}")
        self.policy()  # invalid limits or names fail now
        if self.model_var is not None and not self.model_var.isidentifier():
            raise OptionError(f"model_var must be a Python variable name, got {self.model_var!r}")
        _ = self.output_limits  # raises OptionError for a limit that is not a positive number

    @property
    def output_limits(self) -> OutputLimits:
        return OutputLimits.from_mb(self.max_cell_output_mb, self.max_output_mb)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def policy(self) -> Policy:
        """The sandbox this build runs in."""
        limits = Limits(memory=int(self.memory_gib * GIB), processes=self.max_processes,
                        disk=int(self.max_disk_gib * GIB))
        return Policy(allow_network=self.allow_network, env=self.env, limits=limits)


@dataclass(frozen=True)
class BuildResult:
    """The outcome of one build.

    Attributes:
        name: The model name.
        status: ``passed`` or ``failed``.
        version: The new version number; ``None`` when no model was saved. A build whose blocking
            checks failed still gets a version (to inspect and compare), marked failed.
        run_id: The MLflow run recording the build (also for failed builds), if it was recorded.
        params: The parameter values the notebook ran with (defaults plus the given ones).
        metrics: Captured metrics.
        metric_sources: Where each metric came from (the notebook's call, its MLflow run, a
            variable, or computed by handoff on named held-out rows).
        error: The failure as data (stage, cell, ename, detail, message), or ``None``.
        timings: Seconds per stage, and ``total``.
        warnings: Things to know that did not fail the build.
        model: How the model was found (variable, rule, candidates) and how it was saved.
        data_files: The data fingerprint.
        checks: The checklist report (``checks.passed`` is False when a blocking check failed).
        executed_notebook_uri: Where the executed (or partly executed) notebook is stored.
        notebook: The executed notebook itself (not serialized by ``to_dict``).
    """

    name: str
    status: str
    version: int | None
    run_id: str | None
    params: dict[str, Any]
    metrics: dict[str, float]
    error: dict[str, Any] | None
    timings: dict[str, float]
    warnings: tuple[str, ...] = ()
    model: dict[str, Any] = field(default_factory=dict)
    data_files: tuple[dict[str, Any], ...] = ()
    checks: CheckReport | None = None
    executed_notebook_uri: str | None = None
    metric_sources: dict[str, str] = field(default_factory=dict)
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, notebook=None, checks=None))
        data.pop("notebook")
        data["checks"] = self.checks.to_dict() if self.checks else None
        data["warnings"], data["data_files"] = list(self.warnings), list(self.data_files)
        return data


def build(notebook: str | Path | bytes | NotebookSource, params: Mapping[str, Any] | None = None,
          name: str | None = None, *, store: Store | str | Path | None = None,
          options: BuildOptions | None = None, checks: CheckConfig | Mapping[str, Any] | None = None,
          files: Mapping[str, bytes] | None = None, on_event: EventCallback | None = None,
          **option_overrides: Any) -> BuildResult:
    """Build ``notebook`` into the next version of model ``name``.

    Args:
        notebook: A path, raw ``.ipynb`` bytes, or an already loaded ``NotebookSource``.
        params: Values for the notebook's ``parameters`` cell; unknown names are refused.
        name: Model name (default: the notebook's file stem).
        store: A ``Store``, a directory, an MLflow tracking URI, or ``None`` for ``HANDOFF_HOME``.
        options: Timeouts and model selection; keyword overrides (``timeout=60``) also work.
        checks: Checklist settings (``thresholds``, ``gate``, ``tests``, ``skip``, ``reproduce``, ...),
            the highest-precedence source over ``handoff.toml`` and the notebook's metadata.
        files: Extra files (name to bytes) placed in the build's working directory, e.g. uploads.
        on_event: Called with a ``BuildEvent`` as each stage and cell starts.

    Raises:
        InputError: the notebook, a parameter, an option or the checklist settings are invalid
            (nothing ran, nothing was recorded).
        StoreError: the store cannot be opened.
    """
    emit = on_event or ignore_event
    started = time.monotonic()
    timings: dict[str, float] = {}

    def stage(name_: str, message: str) -> None:
        emit(BuildEvent(name_, message, elapsed=time.monotonic() - started))

    options = dataclasses.replace(options or BuildOptions(), **option_overrides)
    source = notebook if isinstance(notebook, NotebookSource) else load_notebook(notebook)
    model_name = check_model_name(name or model_name_from(source.name))
    given = validate_params(source, params or {})
    effective = {p.name: p.default for p in source.parameters or ()} | given
    config = checks if isinstance(checks, CheckConfig) else resolve_config(
        cli=checks, notebook_metadata=source.notebook.metadata,
        notebook_dir=source.path.resolve().parent if source.path else None)
    stage("inspect", f"{source.name}: {len(source.notebook.cells)} cells, "
                     f"{len(effective)} parameters; opening the store")
    store = store if isinstance(store, Store) else open_store(store)
    _ = store.client  # a bad store fails now, before a kernel starts
    timings["inspect"] = time.monotonic() - started

    workdir = make_workdir(source, files)
    staging = private_dir("stage")
    (staging / "logs").mkdir()
    # the sandboxed worker that loads what the notebook produced; it warms up while the notebook runs
    checker = ArtifactChecker(staging / "logs" / "checks.log", writable=(staging,), hidden=_hidden(store),
                              readable=(workdir, *(Path(t).resolve() for t in config.tests)))
    helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-package")
    try:
        mark = time.monotonic()
        run = execute(source, given, workdir, timeout=options.timeout, cell_timeout=options.cell_timeout,
                      model_var=options.model_var, on_event=emit, started=started,
                      start_timeout=options.start_timeout, policy=options.policy(), hidden=_hidden(store),
                      output_limits=options.output_limits)
        timings["execute"] = time.monotonic() - mark - run.capture_seconds
        timings["capture"] = run.capture_seconds
        warnings = [*source.warnings, *run.warnings]
        failure = run.failure
        capture: Capture | None = None
        saved: SavedModel | None = None
        if failure is None:
            try:
                stage("capture", "reading what the notebook left")
                capture = read_capture(run.capture_dir, run.cells)
                warnings.extend(capture.warnings)
                _keep_capture_files(run.capture_dir, staging)
                stage("serialize", f"saving {capture.model.get('type')} as an MLflow model")
                mark = time.monotonic()
                saved = checker.serialize(run.capture_dir, staging / MODEL_ARTIFACT)
                timings["serialize"] = time.monotonic() - mark
            except BuildFailure as exc:
                failure = exc
        metrics = capture.metrics if capture else {}
        data_files = capture.data_files if capture else []
        (staging / "notebook").mkdir()
        (staging / "notebook" / "source.ipynb").write_bytes(source.raw)
        # unsplit text: one JSON string per line made short-line output 2.5x bigger on disk
        nbformat.write(run.notebook, staging / "notebook" / "executed.ipynb", split_lines=False)
        # the package's HTML report renders while the checklist's process works
        report_html = helper.submit(render_report_html, staging / "notebook" / "executed.ipynb") if saved else None
        stage("check", "running the checklist")
        mark = time.monotonic()
        context = CheckContext(
            name=model_name, source_notebook=source.notebook, executed_notebook=run.notebook,
            error=failure.to_dict() if failure else None, capture=capture.to_dict() if capture else None,
            metrics=metrics, model_dir=saved.path if saved else None,
            champion=store.alias_version(model_name, "champion") if config.gate else None, config=config,
            manifest=_record(model_name, source, effective, run.kernel_name, options, capture, saved, None,
                             warnings, timings, failure),
            rerun=(lambda: _rerun(source, given, files, options, run.capture_dir, _hidden(store), checker))
            if saved else None,
            fidelity=staging / FIDELITY_PATH if (staging / FIDELITY_PATH).exists() else None,
        )
        report = run_checklist(context, checker)
        timings["check"] = time.monotonic() - mark
        if failure is None and not report.passed:
            failure = ChecklistFailure("check", "; ".join(f"{r.id} ({r.message})" for r in report.failures))
        report.write(staging / CHECKS_PATH)
        if (run.capture_dir / "kernel.log").exists():
            shutil.copy2(run.capture_dir / "kernel.log", staging / "logs" / "kernel.log")
        record = _record(model_name, source, effective, run.kernel_name, options, capture, saved, report,
                         warnings, timings, failure)
        stage("record", "recording the version" if saved else "recording the failed build")
        mark = time.monotonic()
        recorded: Recorded | None = None
        try:
            notebook_run = capture.notebook_run if capture else None
            recorded = store.record_build(
                name=model_name, staging=staging, record=record,
                params={**effective, **{f"notebook_run.{k}": v for k, v in (notebook_run or {}).get("params", {}).items()}},
                metrics=metrics, tags=_tags(record, failure, report), register=saved is not None,
                metric_history=(notebook_run or {}).get("metric_history"))
        except StoreError as exc:
            if failure is None:
                failure = RecordFailure("record", str(exc), ename=type(exc.__cause__ or exc).__name__)
            else:
                warnings.append(f"the build could not be recorded: {exc}")
        timings["record"] = time.monotonic() - mark
        if recorded is not None and recorded.version is not None:
            stage("package", "packing the deployable zip")
            mark = time.monotonic()
            try:
                assert report_html is not None
                _store_package(store, staging, record, recorded, report_html.result())
            except Exception as exc:  # export rebuilds the same bytes on demand; the build stands
                warnings.append(f"the package was not stored ({type(exc).__name__}: {exc}); export will rebuild it")
            timings["package"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        run_id = recorded.run_id if recorded else None
        version = recorded.version if recorded else None
        artifact_uri = recorded.artifact_uri if recorded else None
        return BuildResult(
            name=model_name, status="passed" if failure is None else "failed", version=version, run_id=run_id,
            params=effective, metrics=metrics, error=failure.to_dict() if failure else None,
            timings={k: round(v, 4) for k, v in timings.items()}, warnings=tuple(warnings),
            model={**(capture.model if capture else {}), **(saved.to_dict() if saved else {})},
            data_files=tuple(data_files), checks=report,
            executed_notebook_uri=f"{artifact_uri}/notebook/executed.ipynb" if artifact_uri else None,
            metric_sources=capture.metric_sources if capture else {}, notebook=run.notebook,
        )
    finally:
        checker.close()
        helper.shutdown(wait=True)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def _record(name: str, source: NotebookSource, params: dict[str, Any], kernel: str, options: BuildOptions,
            capture: Capture | None, saved: SavedModel | None, report: CheckReport | None, warnings: list[str],
            timings: dict[str, float], failure: BuildFailure | None) -> dict[str, Any]:
    """The build record (``handoff/record.json``): everything needed to reproduce and judge the build.

    Without a checklist report it is what the user's tests receive as the ``manifest`` fixture.
    """
    data_files = capture.data_files if capture else []
    return {
        "handoff_version": __version__, "name": name, "status": "passed" if failure is None else "failed",
        "notebook": {"name": source.name, "path": str(source.path) if source.path else None, "sha256": source.sha256},
        "parameters": [p.to_dict() for p in source.parameters or ()], "params": params,
        "metrics": capture.metrics if capture else {}, "capture": capture.to_dict() if capture else None,
        "serialization": saved.to_dict() if saved else None,
        "data": {"sha256": combined_digest(data_files), "files": data_files},
        "kernel": kernel, "options": options.to_dict(), "sandbox": options.policy().describe(),
        "checks": report.to_dict() if report else None,
        "warnings": list(warnings), "timings": dict(timings), "error": failure.to_dict() if failure else None,
    }


def _store_package(store: Store, artifacts: Path, record: dict[str, Any], recorded: Recorded,
                   report_html: str) -> None:
    assert recorded.version is not None and recorded.created is not None
    target = artifacts.parent / f"{artifacts.name}-package" / f"{package_name(record['name'], recorded.version)}.zip"
    try:
        sha256 = build_package(artifacts, record, recorded.version, recorded.created, target, report_html)
        store.log_package(recorded.run_id, target, sha256)
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)


def _keep_capture_files(capture_dir: Path, staging: Path) -> None:
    """Keep what the kernel left for later: the fidelity rows and the notebook's own MLflow run."""
    if (capture_dir / "fidelity.pkl").exists():
        (staging / FIDELITY_PATH).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(capture_dir / "fidelity.pkl", staging / FIDELITY_PATH)
    if (capture_dir / NOTEBOOK_RUN_PATH).is_dir():
        shutil.copytree(capture_dir / NOTEBOOK_RUN_PATH, staging / NOTEBOOK_RUN_PATH)


def _hidden(store: Store) -> tuple[Path, ...]:
    """What a build's sandbox must not see: the store, and handoff's home."""
    return (*store.local_paths(), default_home())


def _rerun(source: NotebookSource, given: Mapping[str, Any], files: Mapping[str, bytes] | None,
           options: BuildOptions, baseline_dir: Path, hidden: tuple[Path, ...], checker: ArtifactChecker) -> RerunResult:
    """Run the notebook a second time (``reproducible``); the worker predicts with both models on the
    first run's input example (the second run's capture is copied where the worker can read it)."""
    workdir = make_workdir(source, files)
    try:
        run = execute(source, given, workdir, timeout=options.timeout, cell_timeout=options.cell_timeout,
                      model_var=options.model_var, on_event=ignore_event, start_timeout=options.start_timeout,
                      policy=options.policy(), hidden=hidden, output_limits=options.output_limits)
        if run.failure is not None:
            return RerunResult(run.failure.message, {})
        capture = read_capture(run.capture_dir, run.cells)
        second_dir = shutil.copytree(run.capture_dir, baseline_dir / "rerun", ignore=shutil.ignore_patterns("kernel*"))
        predictions = checker.predict([baseline_dir, Path(second_dir)])
        if predictions is None:
            return RerunResult(None, capture.metrics)
        return RerunResult(None, capture.metrics, predictions[1], predictions[0])
    except RuntimeError as exc:  # the worker could not load or run the models
        return RerunResult(str(exc), {})
    except BuildFailure as exc:
        return RerunResult(exc.message, {})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tags(record: dict[str, Any], failure: BuildFailure | None, report: CheckReport) -> dict[str, str]:
    tags = {
        "handoff.checks": report.summary(),
        "handoff.version": record["handoff_version"],
        "handoff.notebook_sha256": record["notebook"]["sha256"],
        "handoff.data_sha256": record["data"]["sha256"],
        "handoff.kernel": record["kernel"],
        **{f"handoff.timing.{k}": f"{v:.3f}" for k, v in record["timings"].items()},
    }
    if record["capture"]:
        tags["handoff.model_var"] = str(record["capture"]["model"].get("variable"))
    if record["serialization"]:
        tags["handoff.serialization"] = record["serialization"]["serialization"]
    if failure is not None:
        tags["handoff.error"] = failure.message[:5000]
        tags["handoff.failed_stage"] = failure.stage
    return tags
