"""Check stage: run the checklist and produce a report (JSON and JUnit XML).

Build-scope checks run here, in the build's process; artifact-scope checks run in one fresh
interpreter (``handoff.checks.runner``) that is started while the notebook is still executing,
so loading MLflow and scikit-learn there costs the build almost nothing extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import nbformat

from handoff import checks, sandbox, warm_servers, worker_answers
from handoff.check_config import CheckConfig
from handoff.checks import FAILED, SKIPPED, WARNED, CheckResult
from handoff.errors import SerializationFailure
from handoff.flavors import SavedModel
from handoff.forkserver import ForkedProcess
from handoff.record import BuildError, BuildRecord, CheckReport
from handoff.workdirs import private_dir

if TYPE_CHECKING:
    from handoff.store import VersionRecord

ARTIFACT_TIMEOUT = 600.0
T = TypeVar("T")

__all__ = [
    "ArtifactChecker",
    "CheckContext",
    "CheckReport",
    "RerunResult",
    "junit_xml",
    "run_checklist",
    "write_report",
]


@dataclass(frozen=True)
class RerunResult:
    """What the ``reproducible`` check compares: a second run's metrics and predictions."""

    error: str | None
    metrics: dict[str, float]
    predictions: Any = None
    baseline_predictions: Any = None


@dataclass(frozen=True)
class CheckContext:
    """What build-scope checks see.

    Attributes:
        record: The build's record so far (no checklist yet): name, inputs, outputs, error.
        source_notebook: The notebook as given (hygiene looks at its stored outputs and counts).
        executed_notebook: The notebook as handoff ran it.
        model_dir: The saved MLflow model directory, if serialization succeeded.
        config: The effective checklist configuration.
        champion: The current ``champion`` version of this model, if the gate needs it.
        version: The version number, for a re-check of a stored version.
        rerun: Runs the notebook again (``reproducible``), when that is possible.
        fidelity: The rows and in-kernel predictions ``model.fidelity`` compares the artifact against.
        hidden: Paths a sandboxed check must not see (the store, handoff's home).
        early: The checks' early work (``start_early``), started when the run ended.
    """

    record: BuildRecord
    source_notebook: nbformat.NotebookNode
    executed_notebook: nbformat.NotebookNode
    model_dir: Path | None
    config: CheckConfig
    champion: VersionRecord | None = None
    version: int | None = None
    rerun: Callable[[], RerunResult] | None = None
    fidelity: Path | None = None
    hidden: tuple[Path, ...] = ()
    early: Mapping[str, Future[Any]] = field(default_factory=dict)

    def early_result(self, check_id: str, work: Callable[[nbformat.NotebookNode], T]) -> T:
        """``work`` on the executed notebook: the result started early, or computed now."""
        pending = self.early.get(check_id)
        return cast(T, pending.result()) if pending is not None else work(self.executed_notebook)

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.metrics

    @property
    def error(self) -> BuildError | None:
        return self.record.error

    @property
    def manifest(self) -> dict[str, Any]:
        """What the user's tests receive as the ``manifest`` fixture: the same object as
        ``handoff build --json`` prints (the record's JSON form, the version, metrics as ``name: value``)."""
        return {**self.record.to_dict(), "version": self.version, "metrics": self.record.metrics}


def junit_xml(report: CheckReport, suite_name: str = "handoff.checklist") -> str:
    """JUnit XML: failed blocking checks are failures, warnings are failures too (a CI page
    should show them) but tagged, skipped checks are skipped."""
    counts = report.counts
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(len(report.results)),
        failures=str(counts[FAILED] + counts[WARNED]),
        errors="0",
        skipped=str(counts[SKIPPED]),
        time=f"{report.seconds:.3f}",
        timestamp=report.created,
    )
    for result in report.results:
        case = ET.SubElement(
            suite, "testcase", classname=f"handoff.{result.severity}", name=result.id, time=f"{result.seconds:.3f}"
        )
        if result.status == FAILED:
            ET.SubElement(case, "failure", message=result.message, type="blocking").text = result.message
        elif result.status == WARNED:
            ET.SubElement(case, "failure", message=result.message, type="warning").text = result.message
        elif result.status == SKIPPED:
            ET.SubElement(case, "skipped", message=result.message)
        ET.SubElement(case, "system-out").text = result.message
    root = ET.Element(
        "testsuites",
        name="handoff",
        tests=suite.get("tests", "0"),
        failures=suite.get("failures", "0"),
        skipped=suite.get("skipped", "0"),
    )
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_report(report: CheckReport, directory: Path) -> None:
    """``report.json`` and ``junit.xml`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (directory / "junit.xml").write_text(junit_xml(report))


class ArtifactChecker:
    """A fresh, sandboxed interpreter, started early, that loads what the notebook produced.

    It serializes the captured model (``serialize``), predicts with captured models (``predict``,
    for ``reproducible``) and runs the artifact checks (``run``): every unpickling of the
    notebook's objects happens there, never in the build's own process. One JSON request per
    line on its stdin; each answer is a JSON file the request names, written atomically.
    """

    def __init__(
        self,
        log_path: Path | None = None,
        *,
        writable: tuple[Path, ...] = (),
        readable: tuple[Path, ...] = (),
        hidden: tuple[Path, ...] = (),
    ) -> None:
        self._dir = private_dir("check")
        self.log_path = log_path or self._dir / "checks.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- the worker's stdout for its whole life; closed in close()
        self._requests = 0
        for _ in range(2):  # a sweep's point: forked from the sweep's warm server (a new one if it died)
            server = warm_servers.server_for("checks", (self._dir, *writable), readable, hidden)
            if server is None:
                break
            try:
                forked, self._stdin = warm_servers.spawn(server, self._dir, self._log)
            except OSError:
                warm_servers.gone(server)
                continue
            self._process: subprocess.Popen[bytes] | ForkedProcess = forked
            return
        worker_answers.provide(self._dir)  # when known: not worked out again in the worker
        policy = sandbox.Policy()
        env = sandbox.environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, self._dir, policy)
        command = sandbox.command(
            [sys.executable, "-m", "handoff.checks.runner"],
            self._dir,
            policy,
            writable=writable,
            readable=readable,
            hidden=hidden,
        )
        self._process = subprocess.Popen(  # cwd is an empty dir: the notebook's folder is not importable
            command,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=self._log,
            cwd=self._dir,
            env=env,
            start_new_session=True,
        )
        if self._process.stdin is None:  # not with stdin=PIPE; a clear error all the same
            raise RuntimeError("the check process has no stdin")
        self._stdin = self._process.stdin

    def request(self, payload: dict[str, Any], timeout: float = ARTIFACT_TIMEOUT) -> Any:
        """Send one request and wait for its answer; raises ``RuntimeError`` saying why there is none."""
        return self._send(payload, timeout)()

    def _send(self, payload: dict[str, Any], timeout: float, last: bool = False) -> Callable[[], Any]:
        """Send one request now; the returned call waits for its answer (``timeout`` counts from now)."""
        self._requests += 1
        output = self._dir / f"answer-{self._requests}.json"
        deadline = time.monotonic() + timeout
        try:
            self._stdin.write((json.dumps({**payload, "output": str(output)}, default=str) + "\n").encode())
            self._stdin.flush()
            if last:
                self._stdin.close()
        except (BrokenPipeError, OSError) as exc:
            raise RuntimeError(f"the check process exited early ({exc})") from exc

        def answer() -> Any:
            while not output.exists():
                if self._process.poll() is not None and not output.exists():  # answered, then exited at EOF
                    tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                    raise RuntimeError(f"the check process failed (exit {self._process.returncode}): {tail[0][:300]}")
                if time.monotonic() > deadline:
                    self._kill()
                    raise RuntimeError(f"the check process did not answer within {timeout:g}s")
                time.sleep(0.01)
            return json.loads(output.read_text())

        return answer

    def serialize(self, capture_dir: Path, target: Path) -> SavedModel:
        """The captured model saved as an MLflow model directory at ``target`` (in the worker)."""
        try:
            answer = self.request({"serialize": {"capture_dir": str(capture_dir), "target": str(target)}})
        except RuntimeError as exc:
            raise SerializationFailure("serialize", str(exc), ename="WorkerFailure") from exc
        if answer.get("error"):
            error = answer["error"]
            raise SerializationFailure("serialize", error["detail"], ename=error.get("ename"))
        return SavedModel(
            path=target,
            flavor=answer["flavor"],
            serialization=answer["serialization"],
            reason=answer["reason"],
            requirements=tuple(answer["requirements"]),
        )

    def predict(self, capture_dirs: list[Path]) -> list[Any] | None:
        """Each captured model's predictions on the first one's input example (``None`` without one)."""
        answer: list[Any] | None = self.request({"predict": [str(d) for d in capture_dirs]})
        return answer

    def start_run(
        self,
        model_dir: Path,
        ids: list[str],
        config: CheckConfig,
        manifest: dict[str, Any],
        fidelity: Path | None = None,
        timeout: float = ARTIFACT_TIMEOUT,
    ) -> Callable[[], list[CheckResult]]:
        """Send the artifact checks ``ids`` now (the worker's last request); the returned call waits
        for their results. A worker that fails or does not answer fails every one of them."""
        request = {
            "model_dir": str(model_dir),
            "checks": ids,
            "config": config.to_dict(),
            "manifest": manifest,
            "fidelity": str(fidelity) if fidelity else None,
        }
        try:
            answer = self._send(request, timeout, last=True)
        except RuntimeError as exc:
            crashed = self._crashed(ids, str(exc))
            return lambda: crashed

        def results() -> list[CheckResult]:
            try:
                return [CheckResult.from_dict(r) for r in answer()]
            except RuntimeError as exc:
                return self._crashed(ids, str(exc))

        return results

    def _kill(self) -> None:
        if isinstance(self._process, ForkedProcess):
            self._process.kill()
        else:
            sandbox.kill_tree(self._process.pid)

    def _crashed(self, ids: list[str], message: str) -> list[CheckResult]:
        return [CheckResult.from_outcome(checks.get(i), checks.failed(message)) for i in ids]

    def discard(self) -> None:
        """Kill it unused (started ahead for a build that did not come)."""
        self._kill()
        self._process.wait()
        self.close()

    def close(self) -> None:
        """Stop the process (it may still be waiting, e.g. the build failed before the check stage)."""
        if self._process.poll() is None:
            try:
                self._stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._kill()
                self._process.wait()
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _start_artifact_checks(
    ctx: CheckContext, ids: list[str], checker: ArtifactChecker | None
) -> Callable[[], list[CheckResult]]:
    """Send the artifact checks ``ids`` to ``checker`` (a fresh worker when None, closed after) at
    once; the returned call waits for their results."""
    if ctx.model_dir is None:  # only called with a saved model
        return lambda: []
    if checker is not None:
        return checker.start_run(ctx.model_dir, ids, ctx.config, ctx.manifest, ctx.fidelity)
    readable = (ctx.model_dir, *([ctx.fidelity] if ctx.fidelity else []), *map(Path, ctx.config.tests))
    own = ArtifactChecker(readable=tuple(Path(p).resolve() for p in readable))
    try:
        waiting = own.start_run(ctx.model_dir, ids, ctx.config, ctx.manifest, ctx.fidelity)
    except BaseException:
        own.close()
        raise

    def results() -> list[CheckResult]:
        try:
            return waiting()
        finally:
            own.close()

    return results


def start_early(notebook: nbformat.NotebookNode, skip: tuple[str, ...] = ()) -> dict[str, Future[Any]]:
    """Start the checks' early work on the executed notebook (one thread, while the build captures
    and serializes): ``notebook.secrets`` scans it then, not in the check stage."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-early-checks")
    try:
        return {c.id: pool.submit(c.early, notebook) for c in checks.all_checks() if c.early and c.id not in skip}
    finally:
        pool.shutdown(wait=False)  # the futures run on; nothing else is queued


def warm_up() -> None:
    """Pay the build-side checks' first-use costs ahead (the build calls this on a thread while the
    notebook runs): ``notebook.secrets`` imports detect-secrets and sets up its plugins on its first
    scan, a few hundred ms on a busy machine that the check stage would otherwise wait for."""
    from handoff.checks.notebook_secrets import scan

    scan(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("warm_up = 1")]))


def skipped_because(error: BuildError | None) -> str:
    """Why a check that needs a later stage did not run: where the build failed (its one failure)."""
    if error is None:
        return "skipped: an earlier stage failed"
    if error.stage == "execute" and error.cell is not None:
        return f"skipped: build failed at cell {error.cell}"
    return f"skipped: build failed in stage {error.stage}"


def run_checklist(
    ctx: CheckContext, checker: ArtifactChecker | None = None, then: Callable[[], object] | None = None
) -> CheckReport:
    """Run every registered check against ``ctx``; artifact checks go to ``checker`` (started if None).
    ``then`` is called once the worker has its request: other work of this process started earlier
    would hold the request back (threads share one interpreter lock), and the worker's answer is
    what the build waits for.

    The worker runs the artifact checks while the build-scope checks run here (``notebook.secrets``
    scans the whole executed notebook), unless a build check needs the worker itself (``reproducible``
    predicts there): then one after the other, as the worker takes one request at a time."""
    started = time.perf_counter()
    results: dict[str, CheckResult] = {}
    artifact_ids: list[str] = []
    here: list[checks.Check] = []
    failed_stage = ctx.error.stage if ctx.error else None
    for check in checks.all_checks():
        if check.id in ctx.config.skip:
            results[check.id] = CheckResult.from_outcome(check, checks.skipped("skipped by configuration"))
        elif ctx.error and check.reports == failed_stage:  # the root cause: the one failure the report shows
            results[check.id] = CheckResult.from_outcome(check, checks.failed(ctx.error.message, cell=ctx.error.cell))
        elif check.blocked_by(failed_stage) or (check.scope == "artifact" and ctx.model_dir is None and ctx.error):
            results[check.id] = CheckResult.from_outcome(check, checks.skipped(skipped_because(ctx.error)))
        elif check.scope == "artifact":
            if ctx.model_dir is None:
                results[check.id] = CheckResult.from_outcome(check, checks.skipped("not run: no saved model"))
            else:
                artifact_ids.append(check.id)
        else:
            here.append(check)
    reruns = ctx.rerun is not None and ctx.config.reproduce and any(c.id == "reproducible" for c in here)
    concurrent = not reruns
    in_worker = _start_artifact_checks(ctx, artifact_ids, checker) if artifact_ids and concurrent else None
    if then is not None:
        then()
    for check in here:
        mark = time.perf_counter()
        try:
            outcome = check.run(ctx)
        except Exception as exc:  # a crashing check is a failed check, not a crashed build
            outcome = checks.failed(f"the check itself raised {type(exc).__name__}: {exc}")
        results[check.id] = CheckResult.from_outcome(check, outcome, time.perf_counter() - mark)
    if in_worker is None and artifact_ids:  # after ``reproducible``, which predicts in the same worker
        in_worker = _start_artifact_checks(ctx, artifact_ids, checker)
    if in_worker is not None:
        results.update((r.id, r) for r in in_worker())
    ordered = tuple(results[c.id] for c in checks.all_checks())
    return CheckReport(
        ordered,
        ctx.config.to_dict(),
        datetime.now(tz=UTC).isoformat(timespec="seconds"),
        round(time.perf_counter() - started, 4),
    )
