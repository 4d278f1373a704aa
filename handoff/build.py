"""The build: notebook in, recorded model version out.

``build()`` is the list of stages (inspect, environment, execute, capture, serialize, check, record,
package);
each is one short function here that takes and returns typed values, timed by ``_Stages``. Bad
input raises an ``InputError`` before anything runs; a notebook that fails is *not* an exception:
the result carries the failure, the partly executed notebook is recorded with the failed build,
and no version is created. The stages' modules: docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nbformat

from handoff import __version__, checklist, environments, layout, sandbox, warm_servers
from handoff.capture import Capture, read_capture
from handoff.check_config import CheckConfig, resolve_config
from handoff.checklist import ArtifactChecker, CheckContext, RerunResult, run_checklist, start_early, write_report
from handoff.environments import EnvironmentFailure, EnvironmentSpec, ReadyEnvironment
from handoff.errors import (
    BuildCancelled,
    BuildFailure,
    CancelledFailure,
    ChecklistFailure,
    HandoffError,
    OptionError,
    RecordFailure,
    StoreError,
)
from handoff.events import BuildEvent, EventCallback, ignore_event
from handoff.execution import (
    Cancellation,
    ExecutionResult,
    KernelKey,
    ReadyKernel,
    execute,
    kernel_key,
    make_workdir,
    prepare_ready,
    start_ready_kernel,
    take_ready,
)
from handoff.flavors import SavedModel
from handoff.inspection import NotebookSource, load_notebook, validate_params
from handoff.output_limits import OutputLimits
from handoff.package import build_package, package_name, render_report_html
from handoff.package import warm_up as warm_up_report
from handoff.record import (
    FAILED_STATUS,
    PASSED_STATUS,
    BuildEnvironment,
    BuildError,
    BuildRecord,
    CheckReport,
    Inputs,
    Lineage,
    ModelInfo,
    NotebookRef,
    Outputs,
    ParameterSpec,
    SandboxInfo,
    SavedAs,
    parse,
)
from handoff.sandbox import GIB, Limits, Policy
from handoff.store import Store, VersionRecord, check_model_name, default_home, model_name_from, open_store
from handoff.warm_servers import ServerKey
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
        requirements: A ``requirements.txt`` or ``pyproject.toml`` to make the build environment from
            (instead of one beside the notebook or uploaded with it).
        with_packages: More requirements for the build environment (``--with PKG``).
        sweep: The parameter sweep this build is a point of (``handoff.sweeps``): tagged on its
            version, so ``handoff compare MODEL --sweep ID`` finds it; ``sweep_point`` its number.
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
    requirements: str | None = None
    with_packages: tuple[str, ...] = ()
    sweep: str | None = None
    sweep_point: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", tuple(self.env))
        object.__setattr__(self, "with_packages", tuple(self.with_packages))
        if self.requirements is not None:
            object.__setattr__(self, "requirements", str(self.requirements))
        for name, unit in (
            ("timeout", "seconds"),
            ("cell_timeout", "seconds"),
            ("start_timeout", "seconds"),
            ("memory_gib", "GiB"),
            ("max_disk_gib", "GiB"),
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise OptionError(f"{name} must be a positive number of {unit}, got {value!r}")
        self.policy()  # invalid limits or names fail now
        if self.sweep is not None and not (self.sweep.isalnum() and self.sweep.isascii()):
            raise OptionError(f"sweep must be a sweep id (letters and digits), got {self.sweep!r}")
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
        limits = Limits(
            memory=int(self.memory_gib * GIB), processes=self.max_processes, disk=int(self.max_disk_gib * GIB)
        )
        return Policy(allow_network=self.allow_network, env=self.env, limits=limits)


@dataclass(frozen=True)
class BuildResult:
    """The outcome of one build.

    Attributes:
        record: Everything recorded about the build (``handoff.record.BuildRecord``): inputs,
            model, metrics, checklist, data, environment, timings, error, warnings.
        version: The new version number; ``None`` when no model was saved. A build whose blocking
            checks failed still gets a version (to inspect and compare), marked failed.
        executed_notebook_uri: Where the executed (or partly executed) notebook is stored.
        notebook: The executed notebook itself (not serialized by ``to_dict``).
    """

    record: BuildRecord
    version: int | None = None
    executed_notebook_uri: str | None = None
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.record.ok

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def run_id(self) -> str | None:
        """The MLflow run recording the build (also for failed builds), if it was recorded."""
        return self.record.lineage.run_id

    @property
    def error(self) -> BuildError | None:
        return self.record.error

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.metrics

    @property
    def model(self) -> ModelInfo | None:
        return self.record.outputs.model

    @property
    def checks(self) -> CheckReport | None:
        return self.record.outputs.checks

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.record.warnings

    @property
    def timings(self) -> dict[str, float]:
        return self.record.timings

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form plus where the build was stored and, for scripts, the metrics as one
        ``name: value`` object (``handoff build --json | jq .metrics.accuracy``)."""
        return {
            **self.record.to_dict(),
            "version": self.version,
            "executed_notebook_uri": self.executed_notebook_uri,
            "metrics": self.record.metrics,
        }


@dataclass(frozen=True)
class BuildPlan:
    """The inspect stage's verdict: a valid notebook, parameters, options and checklist, the store
    (opened while the notebook runs, ``_StoreOpening``), and the champion the gate compares with
    (as it was when the build started)."""

    source: NotebookSource
    name: str
    given: dict[str, Any]
    parameters: dict[str, Any]
    options: BuildOptions
    config: CheckConfig
    store: Store
    files: Mapping[str, bytes]
    champion: VersionRecord | None = None
    requirements: EnvironmentSpec = field(default_factory=lambda: EnvironmentSpec((), ()))
    environment: ReadyEnvironment | None = None
    cancel: Cancellation | None = None

    @property
    def hidden(self) -> tuple[Path, ...]:
        """What the build's sandbox must not see: the store, and handoff's home."""
        return (*self.store.local_paths(), default_home())

    def kernel_key(self) -> KernelKey:
        """What this build's kernel is started with (a kernel started ahead must match it)."""
        python = self.environment.python if self.environment else None
        return kernel_key(self.source, self.options.policy(), self.hidden, python)


class _StoreOpening:
    """Makes the store ready to record the build (an embedded store written directly: a look at its
    database; otherwise MLflow's client: importing MLflow, checking its database) and reads the
    gate's champion on a thread while the kernel starts and the notebook runs, then warms up the
    checks and the report. Nothing is written to the store before ``result`` is taken after the
    run; a store that cannot be opened kills the run's kernel at once (``abort``) and fails the
    build. A new store is the exception: its schema is written first (``Store.needs_setup``), so a
    build killed mid-run cannot leave it half made."""

    def __init__(self, plan: BuildPlan) -> None:
        if plan.store.needs_setup():  # a new store: its schema is made before the kernel, not beside it
            plan.store.connect()
        if plan.store.is_server:  # a wrong password or a viewer's build: refused before the kernel starts
            plan.store.require_role("builder", "build")
        self.abort = Cancellation()
        self.seconds = 0.0
        self._done: Future[VersionRecord | None] = Future()
        self._thread = threading.Thread(target=self._open, args=(plan,), name="handoff-open-store", daemon=True)
        self._thread.start()

    def _open(self, plan: BuildPlan) -> None:
        mark = time.monotonic()
        try:
            plan.store.prepare_writes()
            champion = plan.store.alias_version(plan.name, "champion") if plan.config.gate else None
        except BaseException as exc:
            self.seconds = time.monotonic() - mark
            self._done.set_exception(exc)
            self.abort.cancel("the store")  # the run is thrown away: do not let it go on
            return
        self.seconds = time.monotonic() - mark
        self._done.set_result(champion)
        with contextlib.suppress(Exception):  # only a head start: the check and package stages do it anyway
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread: behind the kernel
            checklist.warm_up()
            warm_up_report()

    def result(self) -> VersionRecord | None:
        """The champion (``None`` without the gate); raises the store's error."""
        return self._done.result()


@dataclass(frozen=True)
class _SandboxKey:
    """What a build's kernel and worker are started with; what is started ahead must match it."""

    kernel: KernelKey
    tests: tuple[Path, ...]


def _sandbox_key(plan: BuildPlan) -> _SandboxKey:
    return _SandboxKey(plan.kernel_key(), tuple(Path(t).resolve() for t in plan.config.tests))


def warm_server_keys(
    root: Path,
    notebook: str | Path | bytes | NotebookSource,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    store: Store | str | Path | None = None,
    checks: CheckConfig | Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    **options: Any,
) -> list[ServerKey]:
    """The warm servers a sweep in the folder ``root`` starts before its first point runs
    (``handoff.warm_servers.start_early``) for builds with these inputs: the check server (its
    workers read the test files and must not see the store) and, for a kernel on handoff's own
    Python, the kernel server (the kernel's sandbox, and the notebook's imports)."""
    key = _sandbox_key(_inspect(notebook, params, name, store, BuildOptions(**options), checks, files))
    kernel = key.kernel
    keys = [warm_servers.key_for(root, "checks", key.tests, kernel.hidden)]
    if kernel.python is None:
        keys.append(warm_servers.key_for(root, "kernel", kernel.readable, kernel.hidden, kernel.policy, kernel.imports))
    return keys


def _start_checker(key: _SandboxKey, workdir: Path) -> tuple[Path, ArtifactChecker]:
    """The staging folder and the sandboxed worker that reads the notebook's work dir and writes there."""
    staging = private_dir("stage")
    try:
        (staging / layout.LOGS_DIR).mkdir()
        checker = ArtifactChecker(
            staging / layout.CHECKS_LOG,
            writable=(staging,),
            hidden=key.kernel.hidden,
            readable=(workdir, *key.tests),
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, checker


@dataclass(frozen=True)
class _ReadySandbox:
    """A kernel, its empty work dir, a staging folder and a warmed-up worker, started for the next
    build (``handoff.execution.keep_kernel_ready``); one build takes them, or they are discarded."""

    kernel: ReadyKernel
    staging: Path
    checker: ArtifactChecker

    def discard(self) -> None:
        self.checker.discard()
        self.kernel.discard()
        shutil.rmtree(self.staging, ignore_errors=True)


def _start_ready(key: _SandboxKey, start_timeout: float) -> _ReadySandbox:
    kernel = start_ready_kernel(key.kernel, start_timeout)
    try:
        return _ReadySandbox(kernel, *_start_checker(key, kernel.workdir))
    except BaseException:
        kernel.discard()
        raise


class _Workspace:
    """A build's scratch space: the notebook's work dir, the staging folder that becomes the run's
    artifacts, the sandboxed worker that loads what the notebook produced (it warms up while the
    notebook runs), and a thread that renders the package's HTML report. All removed on exit.
    In a warm process the kernel and the worker were started ahead, for this build alone."""

    def __init__(self, plan: BuildPlan) -> None:
        self.key = _sandbox_key(plan)
        ready: _ReadySandbox | None = take_ready(self.key, plan.options.start_timeout)
        self.kernel = ready.kernel if ready else None
        try:
            self.workdir = make_workdir(plan.source, plan.files, into=self.kernel.workdir if self.kernel else None)
            self.staging, self.checker = (
                (ready.staging, ready.checker) if ready else _start_checker(self.key, self.workdir)
            )
        except BaseException:
            if ready is not None:
                ready.discard()
            raise
        self.helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-package")
        self.report_html: Future[str] | None = None

    def prepare_next(self, start_timeout: float) -> None:
        """Start the kernel and worker of the next build like this one (a warm process only)."""
        prepare_ready(self.key, lambda: _start_ready(self.key, start_timeout))

    def __enter__(self) -> _Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kernel is not None:  # the run killed it; this also covers a build that never ran it
            self.kernel.discard()
        self.checker.close()
        self.helper.shutdown(wait=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)


T = TypeVar("T")


class _Stages:
    """Runs each stage: announces it, times it (``timings``)."""

    def __init__(self, emit: EventCallback, started: float) -> None:
        self.emit, self.started = emit, started
        self.timings: dict[str, float] = {}

    def announce(self, stage: str, message: str) -> None:
        self.emit(BuildEvent(stage, message, elapsed=time.monotonic() - self.started))

    def time(self, stage: str, work: Callable[..., T], *args: Any) -> T:
        mark = time.monotonic()
        try:
            return work(*args)
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.monotonic() - mark

    def run(self, stage: str, message: str, work: Callable[..., T], *args: Any) -> T:
        self.announce(stage, message)
        return self.time(stage, work, *args)


def build(
    notebook: str | Path | bytes | NotebookSource,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    store: Store | str | Path | None = None,
    options: BuildOptions | None = None,
    checks: CheckConfig | Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    on_event: EventCallback | None = None,
    cancel: Cancellation | None = None,
    **option_overrides: Any,
) -> BuildResult:
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
        cancel: Stops the build when requested (a job's Cancel): the kernel and its children are
            killed and the build ends as a failed, recorded build, like a timeout.

    Raises:
        InputError: the notebook, a parameter, an option or the checklist settings are invalid
            (nothing ran, nothing was recorded).
        StoreError: the store cannot be opened.
        BuildCancelled: cancelled before the notebook started running (nothing recorded).
    """
    stages = _Stages(on_event or ignore_event, time.monotonic())
    plan = stages.time(
        "inspect",
        _inspect,
        notebook,
        params,
        name,
        store,  # bad input: an error, not a stage
        dataclasses.replace(options or BuildOptions(), **option_overrides),
        checks,
        files,
    )
    plan = dataclasses.replace(plan, cancel=cancel)
    opening = _StoreOpening(plan)
    _not_cancelled(plan)
    stages.announce(
        "inspect",
        f"{plan.source.name}: {len(plan.source.notebook.cells)} cells, "
        f"{len(plan.parameters)} parameters; store {plan.store.uri}",
    )
    if plan.requirements:
        forget = cancel.on_cancel(_stop_uv) if cancel is not None else None
        try:
            plan = stages.run("environment", "preparing the build environment", _environment, plan, stages)
        except EnvironmentFailure as exc:  # nothing ran: nothing is recorded
            _not_cancelled(plan)  # uv was stopped by a cancel: cancelled, not failed
            opening.result()  # a store that cannot be opened is the error to report
            return _not_built(plan, exc, stages)
        finally:
            if forget is not None:
                forget()
    _not_cancelled(plan)
    with _Workspace(plan) as ws:
        run = stages.run(
            "execute", f"starting a kernel for {plan.source.name}", _execute, plan, ws, stages, opening.abort
        )
        early = start_early(run.notebook, plan.config.skip)  # beside capture and serialize
        try:
            plan = dataclasses.replace(plan, champion=opening.result())
        except HandoffError as exc:  # the store failed as the notebook ran: nothing recorded, the run kept
            exc.notebook = run.notebook
            raise
        stages.timings["execute"] -= run.capture_seconds  # the capture cell ran in the kernel: its own stage
        stages.timings["capture"] = run.capture_seconds
        # parts of the stages above, overlapped with them: not added to the total
        stages.timings["kernel_start"] = run.kernel_seconds
        if run.prestarted_seconds is not None:  # started ahead, before this build: papermill's own run pays it
            stages.timings["kernel_prestarted"] = run.prestarted_seconds
        stages.timings["store_open"] = opening.seconds
        failure, capture, saved = run.failure, None, None
        try:
            if failure is None:
                _cancelled_after_run(plan)
                capture = stages.run("capture", "reading what the notebook left", _capture, ws, run)
                _cancelled_after_run(plan)
                saved = stages.run("serialize", f"saving {capture.model.type} as an MLflow model", _serialize, ws, run)
                _cancelled_after_run(plan)
        except BuildFailure as exc:
            failure = exc
        _keep_notebooks(plan, ws, run)
        record = _make_record(plan, run, capture, saved, failure)
        report = stages.run("check", "running the checklist", _check, plan, ws, run, record, saved, early)
        recorded = stages.run(
            "record",
            "recording the version" if saved else "recording the failed build",
            _record,
            plan,
            ws,
            _with_checklist(record, report, failure, stages.timings),
        )
        package_warnings = (
            stages.run("package", "packing the deployable zip", _package, plan, ws, recorded)
            if recorded.version is not None
            else ()
        )
        ws.prepare_next(plan.options.start_timeout)  # the next build's, once this one no longer needs the CPU
    stages.timings["total"] = time.monotonic() - stages.started
    record = dataclasses.replace(
        recorded.record,
        timings={k: round(v, 4) for k, v in stages.timings.items()},
        warnings=(*recorded.record.warnings, *recorded.warnings, *package_warnings),
    )
    return BuildResult(
        record,
        recorded.version,
        notebook=run.notebook,
        executed_notebook_uri=f"{recorded.artifact_uri}/{layout.EXECUTED_NOTEBOOK}" if recorded.artifact_uri else None,
    )


def _stop_uv() -> None:
    """A cancel during the environment stage: stop this process's uv runs (resolving, installing)."""
    uv = environments.uv_binary()
    for pid in sandbox.descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if command == uv:
            sandbox.kill_tree(pid)


def _not_cancelled(plan: BuildPlan) -> None:
    """Before the notebook runs, a cancel stops the build with nothing recorded."""
    if plan.cancel is not None and plan.cancel.by is not None:
        raise BuildCancelled(f"cancelled by {plan.cancel.by} before the notebook ran; nothing was recorded")


def _cancelled_after_run(plan: BuildPlan) -> None:
    """After the notebook ran, a cancel fails the build (recorded as failed, like a timeout)."""
    if plan.cancel is not None and plan.cancel.by is not None:
        raise CancelledFailure("capture", f"cancelled by {plan.cancel.by} after the notebook ran")


def _inspect(
    notebook: str | Path | bytes | NotebookSource,
    params: Mapping[str, Any] | None,
    name: str | None,
    store: Store | str | Path | None,
    options: BuildOptions,
    checks: CheckConfig | Mapping[str, Any] | None,
    files: Mapping[str, bytes] | None,
) -> BuildPlan:
    """Validate everything before anything runs. The store is only located here (a bad location
    fails now); it is opened while the notebook runs (``_StoreOpening``)."""
    source = notebook if isinstance(notebook, NotebookSource) else load_notebook(notebook)
    model_name = check_model_name(name or model_name_from(source.name))
    given = validate_params(source, params or {})
    config = (
        checks
        if isinstance(checks, CheckConfig)
        else resolve_config(
            cli=checks,
            notebook_metadata=source.notebook.metadata,
            notebook_dir=source.path.resolve().parent if source.path else None,
        )
    )
    requirements, pip_warnings = environments.find_spec(
        source.notebook,
        source.path.resolve().parent if source.path else None,
        files or {},
        options.requirements,
        options.with_packages,
    )
    if pip_warnings:  # the pip install lines become comments: their packages go to the build env
        source = dataclasses.replace(
            source,
            notebook=environments.without_pip_installs(source.notebook),
            warnings=(*source.warnings, *pip_warnings),
        )
    opened = store if isinstance(store, Store) else open_store(store)
    return BuildPlan(
        source,
        model_name,
        given,
        {p.name: p.default for p in source.parameters or ()} | given,
        options,
        config,
        opened,
        files or {},
        requirements=requirements,
    )


def _environment(plan: BuildPlan, stages: _Stages) -> BuildPlan:
    """The virtualenv made from the notebook's requirements (from the cache when it was made before)."""
    ready = environments.prepare(plan.requirements, lambda message: stages.announce("environment", message))
    return dataclasses.replace(plan, environment=ready)


def _build_environment(plan: BuildPlan) -> BuildEnvironment | None:
    env = plan.environment
    if env is None:
        return None
    spec = plan.requirements
    return BuildEnvironment(spec.requirements, spec.sources, env.key, env.pins, env.created, round(env.seconds, 4))


def _not_built(plan: BuildPlan, failure: BuildFailure, stages: _Stages) -> BuildResult:
    """A build that stopped before anything ran (its environment could not be made): not recorded."""
    stages.timings["total"] = time.monotonic() - stages.started
    record = BuildRecord(
        name=plan.name,
        status=FAILED_STATUS,
        handoff_version=__version__,
        inputs=_inputs(plan, ""),
        error=_error(failure),
        warnings=plan.source.warnings,
        timings={k: round(v, 4) for k, v in stages.timings.items()},
    )
    return BuildResult(record)


def _inputs(plan: BuildPlan, kernel: str) -> Inputs:
    return Inputs(
        notebook=NotebookRef(plan.source.name, plan.source.sha256, str(plan.source.path) if plan.source.path else None),
        parameters=plan.parameters,
        options=plan.options.to_dict(),
        sandbox=parse(SandboxInfo, plan.options.policy().describe()),
        parameter_specs=tuple(parse(ParameterSpec, p.to_dict()) for p in plan.source.parameters or ()),
        kernel=kernel,
        build_environment=_build_environment(plan),
    )


def _execute(plan: BuildPlan, ws: _Workspace, stages: _Stages, abort: Cancellation) -> ExecutionResult:
    """Run the notebook in the sandbox (never raises for the notebook's failures: they are in the result)."""
    return _run_notebook(plan, ws.workdir, stages.emit, stages.started, abort=abort, kernel=ws.kernel)


def _run_notebook(
    plan: BuildPlan,
    workdir: Path,
    on_event: EventCallback,
    started: float | None,
    *,
    abort: Cancellation | None = None,
    kernel: ReadyKernel | None = None,
) -> ExecutionResult:
    """The notebook run with the plan's parameters, limits, sandbox and build environment."""
    options = plan.options
    return execute(
        plan.source,
        plan.given,
        workdir,
        timeout=options.timeout,
        cell_timeout=options.cell_timeout,
        model_var=options.model_var,
        on_event=on_event,
        started=started,
        start_timeout=options.start_timeout,
        policy=options.policy(),
        hidden=plan.hidden,
        output_limits=options.output_limits,
        python=plan.environment.python if plan.environment else None,
        cancel=plan.cancel,
        abort=abort,
        kernel=kernel,
    )


def _capture(ws: _Workspace, run: ExecutionResult) -> Capture:
    """Read the capture cell's report; keep the fidelity rows and the notebook's own MLflow run."""
    capture = read_capture(run.capture_dir, run.cells)
    if (run.capture_dir / "fidelity.pkl").exists():
        (ws.staging / layout.FIDELITY_PATH).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.capture_dir / "fidelity.pkl", ws.staging / layout.FIDELITY_PATH)
    if (run.capture_dir / layout.NOTEBOOK_RUN_DIR).is_dir():
        shutil.copytree(run.capture_dir / layout.NOTEBOOK_RUN_DIR, ws.staging / layout.NOTEBOOK_RUN_DIR)
    return capture


def _serialize(ws: _Workspace, run: ExecutionResult) -> SavedModel:
    """Save the captured model as an MLflow model directory (in the sandboxed worker)."""
    return ws.checker.serialize(run.capture_dir, ws.staging / layout.MODEL_DIR)


def _keep_notebooks(plan: BuildPlan, ws: _Workspace, run: ExecutionResult) -> None:
    """The source and executed notebooks into staging."""
    (ws.staging / layout.SOURCE_NOTEBOOK).parent.mkdir(parents=True, exist_ok=True)
    (ws.staging / layout.SOURCE_NOTEBOOK).write_bytes(plan.source.raw)
    # unsplit text: one JSON string per line made short-line output 2.5x bigger on disk
    nbformat.write(run.notebook, ws.staging / layout.EXECUTED_NOTEBOOK, split_lines=False)
    if (run.capture_dir / "kernel.log").exists():
        shutil.copy2(run.capture_dir / "kernel.log", ws.staging / layout.KERNEL_LOG)


def _start_report(ws: _Workspace) -> None:
    """The package's HTML report starts rendering (beside the checks; the package stage takes it)."""
    ws.report_html = ws.helper.submit(render_report_html, ws.staging / layout.EXECUTED_NOTEBOOK)


def _make_record(
    plan: BuildPlan,
    run: ExecutionResult,
    capture: Capture | None,
    saved: SavedModel | None,
    failure: BuildFailure | None,
) -> BuildRecord:
    """The build's record before the checklist: what the checks see."""
    model = capture.model if capture else None
    if model is not None and saved is not None:
        model = dataclasses.replace(
            model, saved=SavedAs(saved.flavor, saved.serialization, saved.reason, saved.requirements)
        )
    return BuildRecord(
        name=plan.name,
        status=FAILED_STATUS if failure else PASSED_STATUS,
        handoff_version=__version__,
        inputs=_inputs(plan, run.kernel_name),
        outputs=Outputs(model=model)
        if capture is None
        else Outputs(
            model=model,
            metrics=capture.metrics,
            metrics_source=capture.metrics_source,
            data=capture.data,
            environment=capture.environment,
            evaluation=capture.evaluation,
            input_example=capture.input_example,
        ),
        lineage=Lineage(
            notebook_run=capture.notebook_run if capture else None,
            champion=plan.champion.version if plan.champion else None,
        ),
        error=_error(failure),
        warnings=(*plan.source.warnings, *run.warnings, *(capture.warnings if capture else ())),
    )


def _error(failure: BuildFailure | None) -> BuildError | None:
    return parse(BuildError, failure.to_dict()) if failure else None


def _check(
    plan: BuildPlan,
    ws: _Workspace,
    run: ExecutionResult,
    record: BuildRecord,
    saved: SavedModel | None,
    early: Mapping[str, Future[Any]],
) -> CheckReport:
    """Run the checklist: build checks here, artifact checks in the worker; write its reports to staging."""
    fidelity = ws.staging / layout.FIDELITY_PATH
    context = CheckContext(
        record=record,
        source_notebook=plan.source.notebook,
        executed_notebook=run.notebook,
        model_dir=saved.path if saved else None,
        config=plan.config,
        champion=plan.champion,
        rerun=(lambda: _rerun(plan, ws, run.capture_dir)) if saved else None,
        fidelity=fidelity if fidelity.exists() else None,
        hidden=plan.hidden,
        early=early,
    )
    report = run_checklist(context, ws.checker, then=(lambda: _start_report(ws)) if saved else None)
    write_report(report, ws.staging / layout.CHECKS_DIR)
    return report


def _with_checklist(
    record: BuildRecord, report: CheckReport, failure: BuildFailure | None, timings: Mapping[str, float]
) -> BuildRecord:
    """The record as stored: with its checklist and the timings so far; a failed blocking check fails a
    build that had not failed yet."""
    if failure is None and not report.passed:
        failure = ChecklistFailure("check", "; ".join(f"{r.id} ({r.message})" for r in report.failures))
    return dataclasses.replace(
        record,
        outputs=dataclasses.replace(record.outputs, checks=report),
        status=FAILED_STATUS if failure else PASSED_STATUS,
        error=_error(failure),
        timings={k: round(v, 4) for k, v in timings.items()},
    )


@dataclass(frozen=True)
class _Recorded:
    """What the record stage left: the record as stored (with its run), the version, and why not."""

    record: BuildRecord
    version: int | None = None
    artifact_uri: str | None = None
    created: str | None = None
    warnings: tuple[str, ...] = ()


def _record(plan: BuildPlan, ws: _Workspace, record: BuildRecord) -> _Recorded:
    """Log the run and register the version (only for a saved model). A store that refuses the
    record fails a build that had not failed yet; a failed build still failed, with a warning."""
    register = (ws.staging / layout.MODEL_DIR / "MLmodel").exists()
    try:
        stored = plan.store.record_build(staging=ws.staging, record=record, register=register)
    except StoreError as exc:
        if record.error is not None:
            return _Recorded(record, warnings=(f"the build could not be recorded: {exc}",))
        failure = RecordFailure("record", str(exc), ename=type(exc.__cause__ or exc).__name__)
        return _Recorded(dataclasses.replace(record, status=FAILED_STATUS, error=_error(failure)))
    return _Recorded(record.with_run(stored.run_id), stored.version, stored.artifact_uri, stored.created)


def _package(plan: BuildPlan, ws: _Workspace, recorded: _Recorded) -> tuple[str, ...]:
    """Keep the version's package with its run, so export is a copy. A failure here is a warning:
    export rebuilds the same bytes on demand, and the build stands."""
    record, run_id = recorded.record, recorded.record.lineage.run_id
    if recorded.version is None or recorded.created is None or run_id is None:
        return ()
    target = ws.staging.parent / f"{ws.staging.name}-package" / f"{package_name(record.name, recorded.version)}.zip"
    try:
        html = ws.report_html.result() if ws.report_html else None
        plan.store.log_package(
            run_id, target, build_package(ws.staging, record, recorded.version, recorded.created, target, html)
        )
        return ()
    except Exception as exc:
        return (f"the package was not stored ({type(exc).__name__}: {exc}); export will rebuild it",)
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)


def _rerun(plan: BuildPlan, ws: _Workspace, baseline_dir: Path) -> RerunResult:
    """Run the notebook a second time (``reproducible``); the worker predicts with both models on the
    first run's input example (the second run's capture is copied where the worker can read it)."""
    workdir = make_workdir(plan.source, plan.files)
    try:
        run = _run_notebook(plan, workdir, ignore_event, None)
        if run.failure is not None:
            return RerunResult(run.failure.message, {})
        capture = read_capture(run.capture_dir, run.cells)
        second_dir = shutil.copytree(run.capture_dir, baseline_dir / "rerun", ignore=shutil.ignore_patterns("kernel*"))
        predictions = ws.checker.predict([baseline_dir, Path(second_dir)])
        if predictions is None:
            return RerunResult(None, capture.metric_values)
        return RerunResult(None, capture.metric_values, predictions[1], predictions[0])
    except RuntimeError as exc:  # the worker could not load or run the models
        return RerunResult(str(exc), {})
    except BuildFailure as exc:
        return RerunResult(exc.message, {})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
