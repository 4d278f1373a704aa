"""Execute stage: run the notebook with papermill in a fresh working directory.

Bare papermill misses several things a build must not: it reports ``sys.exit()`` as success,
fails on notebooks with no (or an uninstalled) kernelspec, has no whole-run time limit, and
leaves the kernel alive after a cell timeout. This module wraps it to close those gaps, adds
handoff's two capture cells, and maps every failure back to a cell of the *source* notebook.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Protocol

import nbformat
import papermill
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

from handoff import forkserver, kernel_mlflow, sandbox, warm_servers, worker_answers
from handoff.errors import (
    BuildFailure,
    BuildTimeoutFailure,
    CancelledFailure,
    CaptureFailure,
    CellExecutionFailure,
    EarlyExitFailure,
    KernelDiedFailure,
    KernelStartFailure,
    LimitExceededFailure,
    OptionError,
)
from handoff.events import BuildEvent, EventCallback
from handoff.forkserver import ForkedProcess
from handoff.inspection import NotebookSource
from handoff.missing_modules import explain, missing_module
from handoff.output_limits import ENGINE_NAME, OutputBudget, OutputLimits
from handoff.workdirs import private_dir

DEFAULT_KERNEL = "python3"
CAPTURE_DIR = ".handoff"
INJECTED_TAG = "handoff-injected"
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
#: Entries beside the notebook that are not linked into the build's directory (an MLflow store).
NOT_LINKED = (kernel_mlflow.DB_NAME, kernel_mlflow.ARTIFACTS_DIR, "mlartifacts")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ExecutionResult:
    """What running the notebook produced.

    Attributes:
        notebook: The executed notebook as the user should read it (handoff's cells removed);
            partly executed when the run failed.
        failure: Why the run failed, or ``None``.
        kernel_name: The kernel it ran on.
        capture_dir: Where the capture cell wrote the model and its report.
        seconds: Wall time of the run, kernel start included.
        capture_seconds: Time the capture cell took inside the kernel.
        warnings: Things the user should know (e.g. a kernel substitution).
        cells: Execution count to the cell's position in the source notebook.
        kernel_seconds: Time from the run's start until the kernel ran its first cell (about 0 on a
            kernel started ahead, ``ReadyKernel``).
        prestarted_seconds: How long the ready kernel this run took had needed to start, ahead of
            the build (``None``: the run started its own kernel).
    """

    notebook: nbformat.NotebookNode
    failure: BuildFailure | None
    kernel_name: str
    capture_dir: Path
    seconds: float
    capture_seconds: float = 0.0
    warnings: tuple[str, ...] = field(default=())
    cells: dict[int, int] = field(default_factory=dict)
    kernel_seconds: float = 0.0
    prestarted_seconds: float | None = None


class Cancellation:
    """A request to stop a build, set from another thread (a job's heartbeat) or a signal handler.

    What is running registers how to stop it (``on_cancel``): the execute stage kills the sandbox's
    process tree, so the run ends the way a timeout does (the partly executed notebook kept, a failed
    build recorded). Between stages the build checks ``requested``.
    """

    def __init__(self) -> None:
        self.by: str | None = None
        self._lock = threading.Lock()
        self._stoppers: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.by is not None

    def cancel(self, by: str) -> None:
        with self._lock:
            if self.by is not None:
                return
            self.by = by
            stoppers = list(self._stoppers)
        for stop in stoppers:
            stop()

    def on_cancel(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Call ``stop`` on cancel (at once if already cancelled); returns what unregisters it."""
        with self._lock:
            self._stoppers.append(stop)
            already = self.by is not None
        if already:
            stop()

        def forget() -> None:
            with self._lock:
                if stop in self._stoppers:
                    self._stoppers.remove(stop)

        return forget


def make_workdir(source: NotebookSource, files: Mapping[str, bytes] | None = None, into: Path | None = None) -> Path:
    """A fresh directory for one build, in which relative paths work as they do in Jupyter.

    The entries beside a notebook given by path are linked in (not copied: data can be big),
    except an MLflow store (``mlruns``, ``mlflow.db``): the notebook's own tracking goes to a fresh
    build-local one, never into the user's folder. ``files`` (e.g. uploaded data) are written in.
    ``into``: the empty work dir a ready kernel was started in (``ReadyKernel.workdir``).
    """
    for name in files or {}:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise OptionError(f"data file name {name!r} leaves the build directory")
    workdir = into if into is not None else private_dir("build")
    if source.path is not None:
        for entry in sorted(source.path.resolve().parent.iterdir()):
            if entry.name.startswith(".") or entry.name in (source.path.name, *NOT_LINKED):
                continue
            try:
                (workdir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
            except OSError:
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, workdir / entry.name)
    for name, data in (files or {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    return workdir


def choose_kernel(notebook: nbformat.NotebookNode, python: Path | None = None) -> tuple[str, str | None]:
    """The kernel to run on, and a warning when it is not the one the notebook names (``python``: the
    build environment's interpreter, which every kernel runs on when there is one)."""
    fallback = (
        f"the build environment's Python ({python})" if python else f"the default Python kernel ({DEFAULT_KERNEL})"
    )
    wanted = notebook.metadata.get("kernelspec", {}).get("name")
    if not wanted:
        return DEFAULT_KERNEL, f"the notebook names no kernel; ran on {fallback}"
    try:
        spec = KernelSpecManager().get_kernel_spec(wanted)
    except NoSuchKernel:
        return DEFAULT_KERNEL, f"the notebook's kernel {wanted!r} is not installed; ran on {fallback}"
    if (spec.language or "python").lower() != "python":
        return DEFAULT_KERNEL, f"the notebook's kernel {wanted!r} is a {spec.language} kernel; ran on {fallback}"
    return wanted, None


def execute(
    source: NotebookSource,
    params: Mapping[str, Any],
    workdir: Path,
    *,
    timeout: float,
    cell_timeout: float,
    model_var: str | None,
    on_event: EventCallback,
    started: float | None = None,
    start_timeout: float = 60,
    policy: sandbox.Policy | None = None,
    hidden: tuple[Path, ...] = (),
    output_limits: OutputLimits | None = None,
    python: Path | None = None,
    cancel: Cancellation | None = None,
    abort: Cancellation | None = None,
    kernel: ReadyKernel | None = None,
) -> ExecutionResult:
    """Run the notebook in ``workdir`` with ``params`` injected; never raises for notebook failures.

    The kernel runs in the sandbox (``policy``); ``hidden`` are paths it must not see (the store).
    Outputs are cut past ``output_limits`` as they arrive. ``python``: a build environment's
    interpreter the kernel runs on (default: the kernelspec's, i.e. handoff's own environment).
    ``cancel``: when it is requested, the sandbox is killed and the run fails as cancelled.
    ``abort``: the same kill for the build's own reasons (its store failed to open: the run's
    result is thrown away, so it is not reported as a cancel). ``kernel``: a kernel started ahead
    for exactly this run (``take_kernel``; ``workdir`` is its work dir), used instead of a new one.
    """
    policy = policy or sandbox.Policy()
    started = started if started is not None else time.monotonic()
    run_started = time.monotonic()
    deadline = run_started + timeout
    kernel_name, kernel_warning = choose_kernel(source.notebook, python)
    capture_dir = workdir / CAPTURE_DIR
    capture_dir.mkdir(exist_ok=True)
    if kernel is None:  # a kernel started ahead has them already
        _provide_answers(capture_dir, python)
    nb = _with_capture_cells(source.notebook, capture_dir, model_var)
    input_path, output_path = capture_dir / "input.ipynb", capture_dir / "executed.ipynb"
    nbformat.write(nb, input_path)
    total = sum(1 for c in source.notebook.cells if c.cell_type == "code")
    state: dict[str, Any] = {"current": None, "done": 0, "limit": None, "manager": None, "cancel": cancel}
    budget = OutputBudget(output_limits)

    def timeout_func(cell: nbformat.NotebookNode) -> float:
        remaining = deadline - time.monotonic()
        state["limit"] = ("cell", cell_timeout) if cell_timeout <= remaining else ("run", timeout)
        return max(0.5, min(cell_timeout, remaining))

    def on_cell_start(cell: nbformat.NotebookNode, cell_index: int) -> None:
        state.setdefault("kernel_ready", time.monotonic())
        state["current"] = cell
        position = _position(cell)
        if position is None or cell.cell_type != "code":
            return
        state["done"] += 1
        first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
        on_event(
            BuildEvent(
                "execute",
                first_line[:120],
                done=state["done"],
                total=total,
                cell=position,
                elapsed=time.monotonic() - started,
            )
        )

    on_event(
        BuildEvent("execute", f"starting kernel {kernel_name}", done=0, total=total, elapsed=time.monotonic() - started)
    )
    if kernel is not None:  # started ahead in this work dir: watched and cancellable from now on
        state["manager"] = kernel.watch
        state["forget_cancel"] = cancel.on_cancel(kernel.kill) if cancel is not None else None
        kernel_args: dict[str, Any] = {"km": kernel.manager}
    else:
        kernel_args = {
            "kernel_manager_class": _sandboxed_kernel_manager(
                capture_dir / "kernel.log",
                workdir,
                policy,
                state,
                readable=_readable(source),
                hidden=hidden,
                python=python,
                imports=_imports(source),
                start_timeout=start_timeout,
            )
        }
    forget_abort = abort.on_cancel(lambda: _kill_run(state)) if abort is not None else None
    error: BaseException | None = None
    try:
        papermill.execute_notebook(
            str(input_path),
            str(output_path),
            parameters=dict(params),
            kernel_name=kernel_name,
            # The kernel starts in workdir; papermill's own ``cwd=`` would chdir this whole
            # process, which is not thread-safe (the app runs builds in worker threads).
            language="python",
            progress_bar=False,
            resources={"metadata": {"path": str(workdir)}},
            start_timeout=start_timeout,
            request_save_on_cell_execute=True,
            timeout_func=timeout_func,
            on_cell_start=on_cell_start,
            shutdown_kernel="immediate",
            engine_name=ENGINE_NAME,
            output_budget=budget,
            **kernel_args,
        )
    except PapermillExecutionError:
        pass  # read from the cells' outputs below, like every other notebook error
    except Exception as exc:  # nbclient/jupyter_client raise many types; each becomes a BuildFailure
        error = exc
    finally:
        if forget_abort is not None:
            forget_abort()
        _end_sandbox(state)
    executed = nbformat.read(output_path, as_version=4) if output_path.exists() else copy.deepcopy(nb)
    failure = _classify(executed, error, state, capture_dir, kernel_name, policy.limits)
    support = sandbox.detect()
    warnings = [w for w in (kernel_warning, support.warning) if w]
    return ExecutionResult(
        notebook=_user_view(executed),
        failure=failure,
        kernel_name=kernel_name,
        capture_dir=capture_dir,
        seconds=time.monotonic() - run_started,
        warnings=(*warnings, *_cut_warnings(executed, budget)),
        capture_seconds=next(
            (
                float(c.metadata.get("papermill", {}).get("duration") or 0)
                for c in executed.cells
                if _role(c) == "capture"
            ),
            0.0,
        ),
        cells={
            c.execution_count: position
            for c in executed.cells
            if c.cell_type == "code" and c.get("execution_count") and (position := _position(c))
        },
        kernel_seconds=state.get("kernel_ready", time.monotonic()) - run_started,
        prestarted_seconds=kernel.seconds if kernel is not None else None,
    )


def _cut_warnings(nb: nbformat.NotebookNode, budget: OutputBudget) -> list[str]:
    # indices as the cells ran: before papermill put its error banner on top
    ran = [c for c in nb.cells if PAPERMILL_ERROR_TAG not in c.get("metadata", {}).get("tags", [])]
    cells = [_position(ran[cut.cell_index]) if cut.cell_index < len(ran) else None for cut in budget.cuts]
    return [
        f"cell {cell or '(handoff)'}: {cut.describe()}; the executed notebook keeps its first and last lines"
        for cell, cut in zip(cells, budget.cuts, strict=True)
    ]


def _readable(source: NotebookSource) -> tuple[Path, ...]:
    """The notebook's own folder: its files are linked into the work dir and read from there."""
    return (source.path.resolve().parent,) if source.path is not None else ()


def _imports(source: NotebookSource) -> tuple[str, ...]:
    """What a sweep's kernel server imports for this notebook before it forks its kernels."""
    from handoff.kernel_server import notebook_imports

    return notebook_imports(source.notebook, source.path.resolve().parent if source.path is not None else None)


class PromptKernelClient(AsyncKernelClient):
    """jupyter_client's client, ready as soon as the kernel answers: its ``wait_for_ready`` then
    waits out 0.2 s of silence on IOPub, on every build's critical path. Nothing needs that wait:
    nbclient and ``execute_interactive`` read only the messages their own requests caused."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:  # IOPub is connected once the request's own status comes through it
                    await self.iopub_channel.get_msg(timeout=0.2)
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


def _sandboxed_kernel_manager(
    log_path: Path,
    workdir: Path,
    policy: sandbox.Policy,
    state: dict[str, Any],
    *,
    readable: tuple[Path, ...],
    hidden: tuple[Path, ...],
    python: Path | None = None,
    imports: tuple[str, ...] = (),
    start_timeout: float = 60,
) -> type:
    """A kernel manager over IPC sockets that starts the kernel in the sandbox, with a watchdog on
    its limits, its stdout/stderr going to ``log_path`` (on ``python``, a build env's, if given).
    In a sweep, a kernel on handoff's own Python is forked from the sweep's kernel server, which
    has ``imports`` done (``handoff.kernel_server``)."""
    if python is not None:
        env_dir = python.parent.parent
        readable = (*readable, env_dir)
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class SandboxedKernelManager(AsyncKernelManager):
        # IPC sockets are named after the kernel's unique connection file; TCP ports are picked
        # at random and two kernels starting at once can race for the same one. IPC also works
        # across the sandbox's network namespace.
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:  # absolute and per build: the kernel runs in another cwd
            return str(log_path.parent / "kernel")

        @default("client_factory")
        def _client_factory_default(self) -> type:
            return PromptKernelClient

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["env"] = sandbox.environment(kw.get("env") or {}, workdir, policy)
            if python is not None:
                kernel_cmd = _on_python(kernel_cmd, python)
                kw["env"].pop("PYTHONPATH", None)
                kw["env"].update(VIRTUAL_ENV=str(env_dir), PATH=f"{env_dir / 'bin'}:{kw['env'].get('PATH', '')}")
            forked = None if python is not None else self._forked(kernel_cmd, kw["env"])
            if forked is not None:
                pid = forked.pid
            else:
                wrapped = sandbox.command(
                    kernel_cmd, workdir, policy, hidden=hidden, readable=(*readable, Path(self.connection_file))
                )
                with open(log_path, "ab") as handle:
                    kw.setdefault("stdout", handle)
                    kw.setdefault("stderr", handle)
                    await super()._async_launch_kernel(wrapped, **kw)
                # jupyter_client types `provisioner` as the optional base class and LocalProvisioner's
                # `process` as None; after a launch it is the LocalProvisioner holding the Popen.
                pid = self.provisioner.process.pid  # type: ignore[union-attr]
            state["manager"] = (pid, sandbox.Watchdog(pid, workdir, policy.limits))
            if state.get("aborted"):  # aborted while it started: it must not outlive the run
                sandbox.kill_tree(pid)
            cancel: Cancellation | None = state.get("cancel")
            if cancel is not None:  # killed like a timeout: nbclient then sees a dead kernel
                state["forget_cancel"] = cancel.on_cancel(lambda: sandbox.kill_tree(pid))

        def _forked(self, kernel_cmd: list[str], env: dict[str, str]) -> ForkedProcess | None:
            """The kernel forked by the sweep's kernel server, when there is one and the command is
            the default kernel on this Python (``None``: start it as usual)."""
            if "ipykernel_launcher" not in kernel_cmd[1:4] or "-f" not in kernel_cmd:  # [-Xfrozen_modules=off] -m
                return None
            found = shutil.which(kernel_cmd[0])
            if found is None or Path(found).resolve() != Path(sys.executable).resolve():
                return None
            server = warm_servers.server_for("kernel", (workdir,), readable, hidden, policy, imports)
            if server is None:
                return None
            arguments = kernel_cmd[kernel_cmd.index("-f") + 2 :]
            request = {
                "cwd": str(workdir),
                "env": {k: v for k, v in env.items() if k != "JPY_PARENT_PID"},
                "connection_file": str(log_path.parent / "connection.json"),
                "connection": json.loads(Path(self.connection_file).read_text()),
                "arguments": arguments,
            }
            with open(log_path, "ab") as handle:
                try:
                    process = forkserver.spawn(server, request, [handle.fileno()])
                    # a server whose imports hang (a notebook's import that waits for the network)
                    # must not hold the build: a fresh kernel runs into the same import, in a cell
                    pid = process.started(timeout=start_timeout)
                except OSError:  # the server is gone, or not ready in time: a fresh kernel
                    warm_servers.abandon(server)
                    return None
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = process, pid, pid  # type: ignore[union-attr]
            self._reconcile_connection_info(provisioner.connection_info)  # type: ignore[union-attr]
            return process

    return SandboxedKernelManager


def _on_python(kernel_cmd: list[str], python: Path) -> list[str]:
    """The kernel's command on the build environment's interpreter (whatever Python the spec names)."""
    if "-f" in kernel_cmd[:-1]:
        return [str(python), "-m", "ipykernel_launcher", "-f", kernel_cmd[kernel_cmd.index("-f") + 1]]
    return [str(python), *kernel_cmd[1:]]


def _kill_run(state: dict[str, Any]) -> None:
    """Kill the run's kernel now (or as soon as it is launched)."""
    state["aborted"] = True
    if state["manager"] is not None:
        sandbox.kill_tree(state["manager"][0])


def _end_sandbox(state: dict[str, Any]) -> None:
    """Stop the watchdog and kill whatever the notebook left running (a PID namespace ends with its
    first process; the fallback kills the process tree)."""
    if state.get("forget_cancel") is not None:
        state["forget_cancel"]()
    if state["manager"] is not None:
        pid, watchdog = state["manager"]
        watchdog.stop()
        sandbox.kill_tree(pid)


def _provide_answers(capture_dir: Path, python: Path | None) -> None:
    """The environment's kept answers for the kernel's capture (``handoff.worker_answers``: the
    installed distributions, not scanned again), when the kernel runs on handoff's own Python."""
    if python is None or Path(python).resolve() == Path(sys.executable).resolve():
        worker_answers.provide(capture_dir)


def _with_capture_cells(
    notebook: nbformat.NotebookNode, capture_dir: Path, model_var: str | None
) -> nbformat.NotebookNode:
    """A copy with each cell's source position noted and handoff's first and last cells added."""
    nb = copy.deepcopy(notebook)
    for position, cell in enumerate(nb.cells, start=1):
        cell.metadata["handoff_position"] = position
    prelude = nbformat.v4.new_code_cell("import handoff.kernel_capture as __handoff_capture\n__handoff_capture.start()")
    epilogue = nbformat.v4.new_code_cell(f"__handoff_capture.finish({str(capture_dir)!r}, model_var={model_var!r})")
    for cell, role in ((prelude, "prelude"), (epilogue, "capture")):
        cell.metadata["tags"] = [INJECTED_TAG]
        cell.metadata["handoff_role"] = role
    nb.cells = [prelude, *nb.cells, epilogue]
    return nb


def _position(cell: nbformat.NotebookNode) -> int | None:
    position: int | None = cell.get("metadata", {}).get("handoff_position")
    return position


def _role(cell: nbformat.NotebookNode) -> str | None:
    role: str | None = cell.get("metadata", {}).get("handoff_role")
    return role


def _user_view(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove handoff's cells, papermill's error banners and handoff's bookkeeping metadata."""
    view = copy.deepcopy(nb)
    view.cells = [
        c for c in view.cells if _role(c) is None and PAPERMILL_ERROR_TAG not in c.get("metadata", {}).get("tags", [])
    ]
    for cell in view.cells:
        cell.metadata.pop("handoff_position", None)
    return view


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def _classify(
    nb: nbformat.NotebookNode,
    error: BaseException | None,
    state: dict[str, Any],
    capture_dir: Path,
    kernel_name: str,
    limits: sandbox.Limits,
) -> BuildFailure | None:
    """Turn what happened into one BuildFailure that names the stage and the source cell."""
    current = state["current"]
    cell = _position(current) if current is not None else None
    exceeded = state["manager"][1].exceeded if state["manager"] is not None else None
    cancel: Cancellation | None = state.get("cancel")
    if cancel is not None and cancel.requested:
        return CancelledFailure(
            "execute", f"cancelled by {cancel.by}; the kernel was killed", cell=cell, ename="Cancelled"
        )
    if exceeded:
        return LimitExceededFailure("execute", f"{exceeded}; the sandbox was killed", cell=cell, ename="LimitExceeded")
    if isinstance(error, CellTimeoutError) or (isinstance(error, TimeoutError) and current is not None):
        scope, limit = state["limit"] or ("cell", 0)
        what = f"per-cell limit of {limit:g}s" if scope == "cell" else f"whole-run limit of {limit:g}s"
        return BuildTimeoutFailure("execute", f"exceeded the {what}; the kernel was killed", cell=cell, ename="Timeout")
    if isinstance(error, DeadKernelError):
        return KernelDiedFailure(
            "execute",
            "the kernel process exited while the cell ran (os._exit, a crash, or "
            f"out of its memory limit of {limits.memory / sandbox.GIB:g} GiB)",
            cell=cell,
            ename="DeadKernelError",
        )
    if error is not None and current is None:
        return KernelStartFailure(
            "execute", f"kernel {kernel_name!r}: {type(error).__name__}: {error}", ename=type(error).__name__
        )
    for c in nb.cells:
        for output in c.get("outputs", []):
            if output.get("output_type") == "error":
                limit = _limit_hit(output, limits) if _role(c) is None else None
                if limit:
                    return LimitExceededFailure("execute", limit, cell=_position(c), ename=output.get("ename"))
                return _cell_error(c, output, kernel_name)
    if error is not None:
        return KernelDiedFailure("execute", f"{type(error).__name__}: {error}", cell=cell, ename=type(error).__name__)
    if not (capture_dir / "capture.json").exists():
        return EarlyExitFailure(
            "execute", "the notebook stopped before its last cell finished", cell=cell, ename="EarlyExit"
        )
    return None


def _limit_hit(output: nbformat.NotebookNode, limits: sandbox.Limits) -> str | None:
    """The sandbox limit a cell's error comes from (the rlimits make these errors), if any."""
    ename, evalue = output.get("ename"), output.get("evalue", "")
    if ename == "MemoryError":
        return (
            f"MemoryError: the notebook hit the memory limit of {limits.memory / sandbox.GIB:g} GiB ({{option:memory}})"
        )
    if "File too large" in evalue:
        gib = limits.disk / sandbox.GIB
        return f"{ename}: {evalue}: a file reached the disk limit of {gib:g} GiB ({{option:max_disk}})"
    return None


def _cell_error(cell: nbformat.NotebookNode, output: nbformat.NotebookNode, kernel_name: str) -> BuildFailure:
    ename, evalue = output.get("ename", "Error"), _plain(output.get("evalue", ""))
    tb = _plain("\n".join(output.get("traceback", [])))
    role = _role(cell)
    if role == "prelude":
        return KernelStartFailure(
            "execute",
            f"kernel {kernel_name!r} cannot run handoff's setup cell "
            f"({ename}: {evalue}); install handoff in that kernel's environment",
            ename=ename,
            traceback=tb,
        )
    if role == "capture":
        return CaptureFailure("capture", f"{ename}: {evalue}", ename=ename, traceback=tb)
    if ename == "SystemExit":
        return EarlyExitFailure(
            "execute",
            f"sys.exit({evalue}) stopped the notebook; the cells after it did not run",
            cell=_position(cell),
            ename=ename,
            traceback=tb,
        )
    module = missing_module(ename, evalue)
    detail = explain(module) if module else f"{ename}: {evalue}"
    return CellExecutionFailure("execute", detail, cell=_position(cell), ename=ename, traceback=tb)


# -- a kernel started ahead of need (warm processes: the app, sweeps, scripts building in a loop) ------


@dataclass(frozen=True)
class KernelKey:
    """Everything a kernel is started with: a ready kernel serves only a build with an equal key."""

    kernel_name: str
    python: Path | None
    policy: sandbox.Policy
    readable: tuple[Path, ...]
    hidden: tuple[Path, ...]
    sandbox_kind: str
    env: tuple[tuple[str, str | None], ...]
    # what a sweep's kernel server imports ahead (a sweep's points share one notebook): not part of
    # the match, since outside a sweep a kernel started ahead serves any notebook
    imports: tuple[str, ...] = field(default=(), compare=False)


def kernel_key(
    source: NotebookSource, policy: sandbox.Policy, hidden: tuple[Path, ...], python: Path | None = None
) -> KernelKey:
    """The key of the kernel ``execute`` would start for this notebook (the passed-in environment
    variables' current values included: a changed value needs a new kernel)."""
    return KernelKey(
        kernel_name=choose_kernel(source.notebook, python)[0],
        python=python,
        policy=policy,
        readable=_readable(source),
        hidden=tuple(hidden),
        sandbox_kind=sandbox.detect().kind,
        env=tuple((name, os.environ.get(name)) for name in policy.env),
        imports=_imports(source),
    )


@dataclass(frozen=True)
class ReadyKernel:
    """A fresh kernel, started in its own empty work dir before a build asked for it; it has run
    nothing. A build takes it once (``take_kernel``): never shared, never reused."""

    key: KernelKey
    workdir: Path
    manager: Any  # the started SandboxedKernelManager
    watch: tuple[int, sandbox.Watchdog]
    seconds: float

    def kill(self) -> None:
        sandbox.kill_tree(self.watch[0])

    def discard(self) -> None:
        """Kill it and remove its work dir and connection file (it was never used, or not by this key)."""
        self.watch[1].stop()
        self.kill()
        try:
            self.manager.cleanup_connection_file()
        except OSError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_ready_kernel(key: KernelKey, start_timeout: float) -> ReadyKernel:
    """Start the kernel the way nbclient would (same manager class, arguments and cwd) and wait
    until it answers, so the build that takes it runs its first cell at once."""
    from nbclient.util import run_sync

    mark = time.monotonic()
    workdir = private_dir("build")
    try:
        (workdir / CAPTURE_DIR).mkdir()
        _provide_answers(workdir / CAPTURE_DIR, key.python)
        state: dict[str, Any] = {"manager": None, "cancel": None}
        manager_class = _sandboxed_kernel_manager(
            workdir / CAPTURE_DIR / "kernel.log",
            workdir,
            key.policy,
            state,
            readable=key.readable,
            hidden=key.hidden,
            python=key.python,
            imports=key.imports,
            start_timeout=start_timeout,
        )
        manager = manager_class(kernel_name=key.kernel_name)
        arguments = ["--HistoryManager.hist_file=:memory:"] if getattr(manager, "ipykernel", False) else []
        run_sync(manager.start_kernel)(extra_arguments=arguments, cwd=str(workdir))
    except BaseException:
        if state.get("manager") is not None:
            state["manager"][1].stop()
            sandbox.kill_tree(state["manager"][0])
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    client = manager.client()
    try:
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=start_timeout)
        # while it waits for its build: import the capture code, have the installed packages ready
        # (silent: no execution count, no history, no name bound in the notebook's namespace)
        run_sync(client.execute_interactive)(
            f"__import__('handoff.kernel_capture', fromlist=['prepare']).prepare({str(workdir / CAPTURE_DIR)!r})",
            silent=True,
            store_history=False,
            timeout=start_timeout,
            output_hook=lambda message: None,
        )
    except BaseException:
        ReadyKernel(key, workdir, manager, state["manager"], 0.0).discard()
        raise
    finally:
        client.stop_channels()
    return ReadyKernel(key, workdir, manager, state["manager"], time.monotonic() - mark)


class Discardable(Protocol):
    """Something started ahead that must be stopped if no build takes it."""

    def discard(self) -> None: ...


class _Standby:
    """At most one thing (a ``ReadyKernel``, or the build's kernel and worker) being started or ready,
    for the next build with the same key.

    They are started on one long-lived thread: bubblewrap dies with the thread that started it
    (``--die-with-parent``), so a short-lived thread would take its kernel with it. That thread
    ends at interpreter exit, and ``close`` (registered with ``atexit``) kills what is left.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._lock = threading.Lock()
        self._slot: tuple[Hashable, Future[Any]] | None = None
        self._starter: ThreadPoolExecutor | None = None

    def take(self, key: Hashable, timeout: float) -> Any:
        with self._lock:
            slot, self._slot = self._slot, None
        if slot is None:
            return None
        if slot[0] != key:  # started for another policy, kernel or Python: not this build's
            _discard_when_started(slot[1])
            return None
        try:
            return slot[1].result(timeout=timeout)
        except Exception:  # it could not start (or not in time): the build starts its own
            _discard_when_started(slot[1])
            return None

    def prepare(self, key: Hashable, start: Callable[[], Discardable]) -> None:
        with self._lock:
            if not self.enabled or (self._slot is not None and self._slot[0] == key):
                return
            old = self._slot
            if self._starter is None:
                self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-ahead")
            self._slot = (key, self._starter.submit(start))
        if old is not None:
            _discard_when_started(old[1])

    def close(self) -> None:
        with self._lock:
            slot, self._slot = self._slot, None
        if slot is not None:
            _discard_when_started(slot[1])
            try:  # still starting: wait, so that nothing is left running when this returns
                slot[1].result(timeout=120)
            except Exception:
                pass


def _discard_when_started(future: Future[Any]) -> None:
    def discard(done: Future[Any]) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result().discard()

    future.add_done_callback(discard)


_STANDBY = _Standby()
atexit.register(_STANDBY.close)


def keep_kernel_ready(enabled: bool = True, *, discard: bool = True) -> None:
    """In a process that builds again and again (the app, a sweep), keep one kernel started ahead
    for the next build: started after each build's run, with that build's kernel, Python, sandbox
    policy and hidden paths, and used only by a build with the same ones (any other discards it).
    Off by default (a one-off build, the CLI, would start a kernel for nothing); ``False`` discards
    the one that is ready, or with ``discard=False`` leaves it for the next build (a sweep's last)."""
    _STANDBY.enabled = enabled
    if not enabled and discard:
        _STANDBY.close()


def take_ready(key: Hashable, timeout: float) -> Any:
    """What was started ahead for ``key`` (waiting up to ``timeout`` if it is still starting), or
    ``None``; either way nothing stays ready: each thing started ahead serves one build."""
    return _STANDBY.take(key, timeout)


def prepare_ready(key: Hashable, start: Callable[[], Discardable]) -> None:
    """Run ``start`` in the background for the next build with ``key`` (a no-op unless
    ``keep_kernel_ready`` is on, or when one for ``key`` is there already)."""
    _STANDBY.prepare(key, start)
