"""Parameter sweeps: many builds of one notebook in parallel, each a full build (its own version,
checks and package) tagged with the sweep's id and its point.

A data scientist tries a grid of parameters and hands over the best. Every point is an ordinary
build, so a point is judged, recorded and exported exactly like a hand-started one, and the
sweep's results are the store's versions (``handoff compare MODEL --sweep ID``).

Where the points run:

- **Local pool** (the default): every point is a job row (``handoff.jobs``, source of the Builds
  page, ``handoff builds`` and ``handoff cancel``), and ``workers`` sweep workers (one detached
  ``python -m handoff.worker --sweep ID HOME WORKERS`` that warms up, then forks the others) take
  the queued points one after another. The
  workers outlive the process that started them (the app's page), a cancel reaches a point
  through its row like any build's Cancel, and version numbers stay unique because the store
  records one version at a time.
- **Dask** (``cluster="local"`` for a ``LocalCluster``, or ``"tcp://host:8786"``): each point is
  one task that builds in the Dask worker; a cancel is a Dask ``Event`` the running builds poll.
  Workers on other machines cannot reach the embedded store: that needs a team server store.

A failed point (a cell error, a timeout, a failed check) is a failed point; it never stops the
others. Ctrl-C (or ``cancel``) stops scheduling, kills the running kernels (each build's
``Cancellation``) and marks unstarted points cancelled.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random as random_module
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from handoff.errors import HandoffError, OptionError, ParameterError
from handoff.jobs import (
    ACTIVE,
    CANCELLED,
    FAILED,
    PASSED,
    QUEUED,
    Job,
    JobTable,
    attempt,
    current_user,
    table_for,
)

if TYPE_CHECKING:
    from handoff.credentials import Credentials
    from handoff.inspection import NotebookParameter, NotebookSource
    from handoff.store import Store

#: A grid larger than this is refused (sample it with ``random``).
MAX_POINTS = 1000
CLUSTER_LOCAL = "local"
_NUMERIC = ("int", "float")


# -- the points -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its values in order; a range (``start:stop:count``) keeps its bounds,
    from which ``random`` draws."""

    name: str
    values: tuple[Any, ...]
    bounds: tuple[float, float] | None = None
    kind: str = "any"


def parse_axis(spec: NotebookParameter, text: str | Sequence[Any]) -> Axis:
    """``"50,100,200"`` or ``"0.1:1.0:4"`` (start, stop, count, both ends included) as values of the
    parameter's type; an already typed sequence (the Python API) is checked and kept.

    Raises:
        ParameterError: a value is not of the parameter's type, or a range is malformed.
    """
    from handoff.inspection import parse_value

    if not isinstance(text, str):
        values = tuple(parse_value(spec, v) if isinstance(v, str) else v for v in text)
        return Axis(spec.name, _distinct(values, spec.name), kind=spec.type)
    parts = text.split(":")
    if len(parts) == 3 and spec.type in (*_NUMERIC, "any") and all(_is_number(p) for p in parts):
        return _range_axis(spec, parts)
    return Axis(
        spec.name, _distinct(tuple(parse_value(spec, v.strip()) for v in _split(text)), spec.name), kind=spec.type
    )


def _range_axis(spec: NotebookParameter, parts: list[str]) -> Axis:
    start, stop = float(parts[0]), float(parts[1])
    try:
        count = int(parts[2])
    except ValueError:
        count = 0
    if count < 1:
        raise ParameterError(f"parameter {spec.name}: the range {':'.join(parts)} needs a whole number of points >= 1")
    steps = [start] if count == 1 else [start + (stop - start) * i / (count - 1) for i in range(count)]
    integral = spec.type == "int" or (spec.type == "any" and all(float(p).is_integer() for p in parts[:2]))
    values = tuple(round(v) for v in steps) if integral else tuple(round(v, 12) for v in steps)
    return Axis(spec.name, _distinct(values, spec.name), (start, stop), "int" if integral else "float")


def _distinct(values: tuple[Any, ...], name: str) -> tuple[Any, ...]:
    if not values:
        raise ParameterError(f"parameter {name}: no values to sweep")
    kept: list[Any] = []
    for value in values:
        if value not in kept:
            kept.append(value)
    return tuple(kept)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _split(text: str) -> list[str]:
    """Split on the commas outside brackets and quotes (``[1, 2],[3]`` is two list values)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def plan_points(
    source: NotebookSource,
    grid: Mapping[str, str | Sequence[Any]],
    *,
    random: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The sweep's points: every combination of the axes (in the order given), or ``random`` points
    drawn from them (uniformly from a range's bounds, from a list's values), ``seed`` fixing the draw.

    Raises:
        ParameterError: an unknown parameter, a value of the wrong type, or no values at all.
        OptionError: more than ``MAX_POINTS`` points, or a ``random`` count below 1.
    """
    from handoff.inspection import validate_params

    if not grid:
        raise ParameterError("a sweep needs at least one parameter with values (-p NAME V1,V2,...)")
    if source.parameters is None or set(grid) - source.parameter_map.keys():
        validate_params(source, dict.fromkeys(grid))  # the one message for no parameters cell or an unknown name
    axes = [parse_axis(source.parameter_map[name], values) for name, values in grid.items()]
    if random is None:
        total = math.prod(len(a.values) for a in axes)
        if total > MAX_POINTS:
            raise OptionError(f"the grid has {total} points (more than {MAX_POINTS}); sample it with --random N")
        points = [
            dict(zip((a.name for a in axes), combo, strict=True))
            for combo in itertools.product(*(a.values for a in axes))
        ]
    else:
        if random < 1 or random > MAX_POINTS:
            raise OptionError(f"--random must be between 1 and {MAX_POINTS}, got {random}")
        draw = random_module.Random(seed)
        points = [{a.name: _draw(a, draw) for a in axes} for _ in range(random)]
    for point in points:
        validate_params(source, point)
    return points


def _draw(axis: Axis, draw: random_module.Random) -> Any:
    if axis.bounds is None:
        return draw.choice(axis.values)
    low, high = sorted(axis.bounds)
    if axis.kind == "int":
        return draw.randint(math.ceil(low), math.floor(high))
    return round(draw.uniform(low, high), 6)


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep and how its build ended.

    Attributes:
        index: Its number in the sweep (1-based, grid order).
        params: The swept parameters' values.
        state: ``queued``, ``running``, ``passed``, ``failed``, ``cancelled`` or ``interrupted``.
        version: The version it recorded (also for a failed checklist), when one was made.
        metrics: The metrics it reported.
        message: One line of where it is or how it ended.
        error_stage: Where it failed (``execute``, ``check``, ...); ``error_cell`` the cell.
        job_id: Its build job (local pool), ``None`` on Dask.
        seconds: How long it ran.
    """

    index: int
    params: dict[str, Any]
    state: str = QUEUED
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str | None = None
    error_stage: str | None = None
    error_cell: int | None = None
    job_id: str | None = None
    seconds: float | None = None

    @property
    def ended(self) -> bool:
        return self.state not in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": None if self.seconds is None else round(self.seconds, 2)}


@dataclass(frozen=True)
class SweepResult:
    """A sweep: its points (as they are now, or as they ended) and its best passed version.

    Attributes:
        id: The sweep id, tagged on every version it recorded.
        model: The model every point records into.
        points: Every point, in grid order.
        where: ``local pool (N workers)`` or the Dask cluster it ran on.
        cancelled_by: Who cancelled it (Ctrl-C, ``cancel``), if anyone.
        promoted: The version ``promote_best`` moved the champion to, if it did.
        promotion: Why ``promote_best`` promoted nothing, when it did not.
        seconds: Wall time from start to the last point's end.
    """

    id: str
    model: str
    points: tuple[SweepPoint, ...]
    where: str = ""
    cancelled_by: str | None = None
    promoted: int | None = None
    promotion: str | None = None
    seconds: float | None = None

    @property
    def done(self) -> int:
        return sum(p.ended for p in self.points)

    @property
    def ended(self) -> bool:
        return self.done == len(self.points)

    @property
    def metric(self) -> tuple[str, bool] | None:
        """The primary metric (name, greater is better): the first one the points reported."""
        from handoff.comparison import primary_metric

        return next((primary_metric(p.metrics) for p in self.points if p.metrics), None)

    def ranked(self) -> list[SweepPoint]:
        """Best first: passed points by the primary metric, then failed, then the rest, each in grid order."""
        metric = self.metric
        order = {PASSED: 0, FAILED: 1}

        def key(point: SweepPoint) -> tuple[int, int, float, int]:
            value = point.metrics.get(metric[0]) if metric else None
            missing = value is None or not math.isfinite(value)
            score = 0.0 if value is None or missing else (-value if metric and metric[1] else value)
            return order.get(point.state, 2), int(missing), score, point.index

        return sorted(self.points, key=key)

    @property
    def best(self) -> SweepPoint | None:
        """The best passed point with a version, by the primary metric."""
        return next((p for p in self.ranked() if p.state == PASSED and p.version is not None), None)

    @property
    def ok(self) -> bool:
        """Every point passed."""
        return all(p.state == PASSED for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        metric = self.metric
        best = self.best
        return {
            "id": self.id,
            "model": self.model,
            "where": self.where,
            "metric": None if metric is None else {"name": metric[0], "greater_is_better": metric[1]},
            "points": [p.to_dict() for p in self.ranked()],
            "best": None if best is None else best.to_dict(),
            "counts": {s: sum(p.state == s for p in self.points) for s in sorted({p.state for p in self.points})},
            "cancelled_by": self.cancelled_by,
            "promoted": self.promoted,
            "promotion": self.promotion,
            "seconds": None if self.seconds is None else round(self.seconds, 2),
        }


PointCallback = Callable[[SweepPoint, SweepResult], None]


# -- the local pool -------------------------------------------------------------------------------


@dataclass
class SweepHandle:
    """A started local sweep: its id, its job table, and (in the process that started them) its workers."""

    id: str
    model: str
    table: JobTable
    worker: subprocess.Popen[bytes]  # the first worker; the others are its forks
    workers: int
    started: float = field(default_factory=time.monotonic)

    def status(self) -> SweepResult:
        return sweep_status(self.id, table=self.table)

    def wait_for_workers(self, timeout: float = 60) -> None:
        with contextlib.suppress(Exception):
            self.worker.wait(timeout)


def start_sweep(
    notebook: str | os.PathLike[str] | bytes | NotebookSource,
    grid: Mapping[str, str | Sequence[Any]],
    name: str | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    random: int | None = None,
    seed: int | None = None,
    checks: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    source: str = "api",
    user: str | None = None,
    **options: Any,
) -> SweepHandle:
    """Queue every point as a build job and start ``workers`` (default: the cores) sweep workers;
    returns at once. The workers are detached: the sweep goes on if this process ends.

    Raises:
        InputError: the notebook, a parameter's values, an option or a file is invalid (nothing queued).
    """
    from handoff.jobs import _prepare, start_worker
    from handoff.store import Store

    loaded = _load(notebook)
    points = plan_points(loaded, grid, random=random, seed=seed)
    count = _workers(workers, len(points))
    sweep_id = uuid.uuid4().hex[:10]
    credentials = store.credentials if isinstance(store, Store) else None
    table = table_for(store)
    jobs: list[Job] = []
    try:
        for index, params in enumerate(points, start=1):
            _, job = _prepare(
                loaded,
                params,
                name,
                store=store,
                checks=checks,
                files=files,
                test_files=None,
                source=source,
                user=user or (credentials.username if credentials else None),
                state=QUEUED,
                options={**options, "sweep": sweep_id, "sweep_point": index},
            )
            jobs.append(job)
    except BaseException:  # a point that cannot be queued: none of the sweep runs
        for job in jobs:
            table.update(job.id, state=CANCELLED, finished=time.time(), message="the sweep could not be queued")
        raise
    log = table.dir / f"sweep-{sweep_id}.log"
    worker = start_worker(["--sweep", sweep_id, str(table.home), str(count)], log, credentials)
    # a queued point is "alive" while the sweep's first worker is (its forks end with it)
    for job in jobs:
        table.update(job.id, only_if=(QUEUED,), pid=worker.pid, message="waiting for a sweep worker")
    return SweepHandle(sweep_id, jobs[0].model, table, worker, count)


def _load(notebook: str | os.PathLike[str] | bytes | NotebookSource) -> NotebookSource:
    from handoff.inspection import NotebookSource, load_notebook

    if isinstance(notebook, NotebookSource):
        return notebook
    return load_notebook(notebook if isinstance(notebook, (str, bytes)) else Path(notebook))


def _workers(workers: int | None, points: int) -> int:
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise OptionError(f"--workers must be at least 1, got {count}")
    return min(count, points)


def sweep_status(
    sweep_id: str, *, store: Store | str | os.PathLike[str] | None = None, table: JobTable | None = None
) -> SweepResult:
    """A local sweep as its job rows say now (``JobNotFoundError`` for an unknown id)."""
    from handoff.jobs import JobNotFoundError

    table = table or table_for(store)
    jobs = table.select(sweep=sweep_id)
    if not jobs:
        raise JobNotFoundError(f"no sweep {sweep_id!r} in {table.path}")
    points = tuple(sorted((_point_of(job) for job in jobs), key=lambda p: p.index))
    cancelled_by = next((j.cancel_requested_by for j in jobs if j.cancel_requested_by), None)
    started = min(j.created for j in jobs)
    finished = max((j.finished or 0) for j in jobs)
    ended = all(not j.active for j in jobs)
    return SweepResult(
        sweep_id,
        jobs[0].model,
        points,
        where="local pool",
        cancelled_by=cancelled_by,
        seconds=(finished if ended else time.time()) - started,
    )


def _point_of(job: Job) -> SweepPoint:
    import json

    from handoff.record import BuildRecord

    metrics: dict[str, float] = {}
    kept = Path(job.job_dir) / "record.json" if job.job_dir else None
    if not job.active and kept is not None and kept.exists():
        with contextlib.suppress(OSError, ValueError):  # pydantic's ValidationError is a ValueError
            metrics = BuildRecord.from_dict(json.loads(kept.read_text())).metrics
    return SweepPoint(
        index=int(job.request.get("options", {}).get("sweep_point") or 0),
        params=dict(job.request.get("params") or {}),
        state=job.state,
        version=job.version,
        metrics=metrics,
        message=job.error or job.message if job.state == FAILED else job.progress,
        error_stage=job.error_stage,
        error_cell=job.error_cell,
        job_id=job.id,
        seconds=job.elapsed or None,
    )


def cancel_sweep(
    sweep_id: str, *, by: str | None = None, store: Store | str | os.PathLike[str] | None = None
) -> SweepResult:
    """Cancel a local sweep: its queued points never run, its running ones are killed (kernel and all)."""
    table = table_for(store)
    sweep_status(sweep_id, table=table)  # an unknown sweep: JobNotFoundError
    _cancel_points(table, sweep_id, by or current_user())
    return sweep_status(sweep_id, table=table)


def _watch(handle: SweepHandle, on_point: PointCallback | None, poll: float, who: str) -> SweepResult:
    """Wait for a local sweep's points, reporting each as it ends; Ctrl-C cancels the sweep."""
    seen: set[int] = set()
    cancelled_by = None
    while True:
        try:
            result = handle.status()
            for point in result.points:
                if point.ended and point.index not in seen:
                    seen.add(point.index)
                    if on_point is not None:
                        on_point(point, result)
            if result.ended:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):  # wakes at once when the workers are done
                handle.worker.wait(poll)
        except KeyboardInterrupt:
            cancelled_by = f"{who} (Ctrl-C)"
            _cancel_points(handle.table, handle.id, cancelled_by)
    handle.wait_for_workers()
    return replace(result, cancelled_by=cancelled_by or result.cancelled_by, seconds=time.monotonic() - handle.started)


def _cancel_points(table: JobTable, sweep_id: str, by: str) -> None:
    from handoff.jobs import cancel as cancel_job

    for job in sorted(table.select(sweep=sweep_id), key=lambda j: j.state != QUEUED):  # queued first: none starts
        if job.active:
            cancel_job(job.id, by=by, store=table.home)


def sweep_versions(model: str, sweep_id: str, *, store: Store | str | os.PathLike[str] | None = None) -> list[int]:
    """The versions of ``model`` a sweep built, in version order (``compare MODEL --sweep ID``).

    Raises:
        VersionNotFoundError: the model has no version from that sweep.
    """
    from handoff.errors import VersionNotFoundError
    from handoff.store import Store, open_store

    opened = store if isinstance(store, Store) else open_store(store)
    found = [v.version for v in opened.list_versions(model) if v.sweep == sweep_id]
    if not found:
        raise VersionNotFoundError(f"model {model!r} has no versions from sweep {sweep_id!r}")
    return found


# -- Dask -----------------------------------------------------------------------------------------


def _dask_point(payload: dict[str, Any]) -> dict[str, Any]:
    """One point on a Dask worker: a build in this worker process, cancelled when the sweep's Dask
    ``Event`` is set (polled), as its end state; a point taken after the cancel never starts."""
    from distributed import Event

    from handoff.build import build
    from handoff.credentials import Credentials
    from handoff.execution import Cancellation
    from handoff.sandbox import share_cores
    from handoff.store import Store

    started = time.monotonic()
    stop_event = Event(payload["event"])
    if stop_event.is_set():
        return {"state": CANCELLED, "message": "cancelled before it started"}
    share_cores(_processes_here(payload["threads"]))
    _warm_for(payload["sweep"], payload.get("checkers"))
    cancel_build = Cancellation()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.5):
            with contextlib.suppress(Exception):
                if stop_event.is_set():
                    cancel_build.cancel(payload.get("user") or "the sweep")
                    return

    threading.Thread(target=watch, daemon=True, name="handoff-sweep-cancel").start()
    login = payload.get("credentials")
    store = Store(payload["store"], credentials=Credentials(*login) if login else None)
    try:
        result, end, _ = attempt(
            lambda: build(
                _notebook_of(payload),
                payload["params"],
                payload["name"],
                store=store,
                checks=payload["checks"],
                files=payload["files"],
                cancel=cancel_build,
                **payload["options"],
            ),
            cancel_build,
        )
    finally:
        finished.set()
    metrics = result.metrics if result is not None else {}
    return end | {"metrics": dict(metrics), "seconds": time.monotonic() - started}


def _notebook_of(payload: Mapping[str, Any]) -> NotebookSource:
    """The sweep's notebook on a Dask worker: read from its file when the worker sees the same file
    (the same machine, or a shared file system), so the data beside it is there as in a local
    build; else from the bytes the sweep sent (data then comes only as the sweep's files)."""
    from handoff.inspection import load_notebook

    path = payload.get("notebook_path")
    if path is not None:
        with contextlib.suppress(OSError, HandoffError):
            if Path(path).read_bytes() == payload["notebook"]:
                return load_notebook(Path(path))
    return load_notebook(payload["notebook"], name=payload["notebook_name"])


def _threads_by_host(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """How many tasks a Dask cluster's workers (its scheduler's list) run at once on each host."""
    threads: dict[str, int] = {}
    for address, worker in workers.items():
        host = urlparse(address).hostname or address
        threads[host] = threads.get(host, 0) + int(worker.get("nthreads", 1))
    return threads


def _processes_here(threads: Mapping[str, int]) -> int:
    """How many points the cluster runs at once on this Dask worker's host (1 when not known)."""
    from distributed import get_worker

    return threads.get(urlparse(get_worker().address).hostname or "", 1)


_warm: tuple[str, contextlib.ExitStack] | None = None  # the sweep this Dask worker process is warm for


def _warm_for(sweep_id: str, checkers: str | None) -> None:
    """On a Dask worker that runs one task at a time, the sweep's points run warm as on a local
    sweep worker (``handoff.worker``): the next point's kernel started ahead, check workers forked
    from one server: the sweep's process's (``checkers``, its folder) when this worker can reach
    it (it runs on the same machine, as the same user), else one of its own. A point of another
    sweep ends the warm state of the last one first; with more than one thread, two sweeps could
    meet in one process, so every point builds cold there."""
    global _warm
    from distributed import get_worker

    from handoff.execution import keep_kernel_ready
    from handoff.warm_servers import join_sweep, serve_sweep

    if get_worker().state.nthreads != 1 or (_warm is not None and _warm[0] == sweep_id):
        return
    _end_warm()
    stack = contextlib.ExitStack()
    if checkers is not None and os.access(checkers, os.R_OK | os.W_OK | os.X_OK):
        stack.enter_context(join_sweep(Path(checkers)))
    else:
        stack.enter_context(serve_sweep())
    keep_kernel_ready()
    stack.callback(keep_kernel_ready, False)
    _warm = (sweep_id, stack)


def _end_warm(sweep_id: str | None = None) -> None:
    """Stop the warm state of ``sweep_id`` (any sweep's when None) in this Dask worker process."""
    global _warm
    if _warm is not None and sweep_id in (None, _warm[0]):
        stack, _warm = _warm[1], None
        stack.close()


def _client(cluster: str, workers: int) -> tuple[Any, Any, str]:
    """A Dask client (and the ``LocalCluster`` it owns, to close) and where it runs, for display."""
    try:
        from distributed import Client
    except ImportError:
        raise OptionError("--cluster needs Dask: pip install 'handoff[dask]'") from None
    if cluster == CLUSTER_LOCAL:
        local = _local_cluster(workers)
        return Client(local), local, f"Dask LocalCluster ({workers} workers)"
    if not cluster.startswith(("tcp://", "tls://")):
        raise OptionError(f"--cluster must be 'local' or a Dask scheduler address (tcp://HOST:8786), got {cluster!r}")
    try:
        return Client(cluster, timeout=10), None, f"Dask cluster {cluster}"
    except OSError as exc:
        raise OptionError(f"no Dask scheduler answers at {cluster}: {exc}") from None


def _local_cluster(workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` single-thread worker processes forked from one process that
    imported Dask and warmed up a build once (multiprocessing's forkserver, ``handoff.dask_preload``),
    where Dask's default start (spawn) has each worker pay both itself: about 1.4 CPU-seconds a
    worker, on the cores the sweep's first points need. The forkserver is this process's own (it
    lives as long as it does)."""
    import multiprocessing

    import dask
    from distributed import LocalCluster
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # Dask's own preload list, set once; ours replaces it before the server starts
        multiprocessing.get_context("forkserver").set_forkserver_preload(["handoff.dask_preload"])
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        )


def remote_hosts(worker_addresses: Iterable[str]) -> list[str]:
    """The hosts among Dask worker addresses that are not this machine (they cannot open its files)."""
    here = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(OSError):
        here |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    with contextlib.suppress(Exception):
        import psutil

        here |= {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    hosts = {urlparse(address).hostname or address for address in worker_addresses}
    return sorted(h for h in hosts if h not in here)


def _run_on_dask(
    loaded: NotebookSource,
    points: list[dict[str, Any]],
    name: str | None,
    *,
    cluster: str,
    workers: int,
    store: Store,
    checks: Mapping[str, Any] | None,
    files: Mapping[str, bytes] | None,
    options: Mapping[str, Any],
    user: str,
    on_point: PointCallback | None,
    credentials: Credentials | None,
) -> SweepResult:
    from distributed import Event, as_completed

    from handoff.build import BuildOptions
    from handoff.store import check_model_name, model_name_from

    model = check_model_name(name or model_name_from(loaded.name))
    BuildOptions(**options)  # bad options fail here, not on every worker
    started = time.monotonic()
    sweep_id = uuid.uuid4().hex[:10]
    # the warm servers warm up while the cluster starts
    with _serve_sweep(loaded, points[0], model, store, checks, files, options) as root:
        client, local, where = _client(cluster, workers)
        try:
            cluster_workers = client.scheduler_info().get("workers", {})
            if not store.is_server:
                far = remote_hosts(cluster_workers)
                if far:
                    raise OptionError(
                        f"the Dask cluster at {cluster} has workers on other machines ({', '.join(far)}), which "
                        f"cannot reach the embedded store at {store.uri}: use a team server store (--store "
                        "http://HOST:5000, see 'Team mode' in the README)"
                    )
            event_name = f"handoff-sweep-{sweep_id}-cancel"
            stop = Event(event_name, client=client)
            base = {
                "notebook": loaded.raw,
                "notebook_name": loaded.name,
                "notebook_path": str(loaded.path.resolve()) if loaded.path else None,
                "name": model,
                "store": store.uri,
                "checks": dict(checks or {}),
                "files": dict(files or {}),
                "event": event_name,
                "sweep": sweep_id,
                "checkers": str(root),
                "threads": _threads_by_host(cluster_workers),
                "user": user,
                "credentials": (credentials.username, credentials.password) if credentials else None,
            }
            futures = {
                client.submit(
                    _dask_point,
                    base | {"params": params, "options": {**options, "sweep": sweep_id, "sweep_point": index}},
                    key=f"handoff-sweep-{sweep_id}-{index}",
                    pure=False,
                ): index
                for index, params in enumerate(points, start=1)
            }
            current = {i: SweepPoint(i, p) for i, p in enumerate(points, start=1)}
            cancelled_by = None

            def result() -> SweepResult:
                return SweepResult(
                    sweep_id, model, tuple(current.values()), where, cancelled_by, seconds=time.monotonic() - started
                )

            pending = as_completed(futures)
            while True:
                try:
                    for future in pending:
                        index = futures[future]
                        current[index] = _dask_outcome(current[index], future)
                        if on_point is not None:
                            on_point(current[index], result())
                    break
                except KeyboardInterrupt:
                    cancelled_by = f"{user} (Ctrl-C)"
                    stop.set()  # the running builds see it within a second; the rest never start
            return result()
        finally:
            with contextlib.suppress(Exception):  # the workers' warm kernels and check servers, stopped
                client.run(_end_warm, sweep_id)
            client.close()
            if local is not None:
                local.close()


@contextlib.contextmanager
def _serve_sweep(
    loaded: NotebookSource,
    params: dict[str, Any],
    model: str,
    store: Store,
    checks: Mapping[str, Any] | None,
    files: Mapping[str, bytes] | None,
    options: Mapping[str, Any],
) -> Iterator[Path]:
    """This process serves the sweep's warm servers to the Dask workers on this machine (see
    ``_warm_for``), started now: they warm up once, while the cluster's workers do."""
    from handoff.build import warm_server_keys
    from handoff.warm_servers import serve_sweep, start_early

    with serve_sweep() as root:
        with contextlib.suppress(Exception):  # a point that cannot be planned fails in its own build
            start_early(
                root, warm_server_keys(root, loaded, params, model, store=store, checks=checks, files=files, **options)
            )
        yield root


def _dask_outcome(point: SweepPoint, future: Any) -> SweepPoint:
    try:
        end = future.result()
    except Exception as exc:  # the task itself died (a worker lost, ...)
        return replace(point, state=FAILED, message=f"the Dask task failed: {type(exc).__name__}: {exc}")
    return replace(
        point,
        state=end["state"],
        version=end.get("version"),
        metrics=end.get("metrics") or {},
        message=end.get("error") or end.get("message") if end["state"] == FAILED else end.get("message"),
        error_stage=end.get("error_stage"),
        error_cell=end.get("error_cell"),
        seconds=end.get("seconds"),
    )


# -- the API --------------------------------------------------------------------------------------


def sweep(
    notebook: str | os.PathLike[str] | bytes | NotebookSource,
    grid: Mapping[str, str | Sequence[Any]],
    name: str | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    random: int | None = None,
    seed: int | None = None,
    promote_best: bool = False,
    checks: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    on_point: PointCallback | None = None,
    source: str = "api",
    poll: float = 0.5,
    **options: Any,
) -> SweepResult:
    """Build ``notebook`` once per point of ``grid`` (parameter name to values: a list, or text such as
    ``"50,100,200"`` or ``"0.1:1.0:4"``), ``workers`` at a time, and wait for every point.

    ``cluster``: ``None`` (a local pool of sweep workers), ``"local"`` (a Dask ``LocalCluster`` of
    ``workers``) or a Dask scheduler address. ``on_point`` is called as each point ends. Ctrl-C
    cancels the sweep and returns what it has (``cancelled_by`` set). ``promote_best`` promotes the
    best passed version through the normal gate (refusals are reported in ``promotion``).
    ``options`` are ``BuildOptions`` fields, the same for every point.

    Raises:
        InputError: bad notebook, values, options; an embedded store with a Dask cluster on other machines.
    """
    from handoff.store import Store, open_store

    opened = store if isinstance(store, Store) else open_store(store)
    loaded = _load(notebook)
    user = opened.user if opened.is_server else current_user()
    if cluster is None:
        handle = start_sweep(
            loaded,
            grid,
            name,
            store=opened,
            workers=workers,
            random=random,
            seed=seed,
            checks=checks,
            files=files,
            source=source,
            **options,
        )
        result = _watch(handle, on_point, poll, user)
        result = replace(result, where=f"local pool ({handle.workers} workers)")
    else:
        points = plan_points(loaded, grid, random=random, seed=seed)
        result = _run_on_dask(
            loaded,
            points,
            name,
            cluster=cluster,
            workers=_workers(workers, len(points)),
            store=opened,
            checks=checks,
            files=files,
            options=options,
            user=user,
            on_point=on_point,
            credentials=opened.credentials,
        )
    if promote_best and result.cancelled_by is None:
        result = _promote_best(result, opened)
    return result


def _promote_best(result: SweepResult, store: Store) -> SweepResult:
    """The best passed point promoted to champion through the normal gate (worse than the champion,
    or failed: refused, and the reason kept)."""
    from handoff.lifecycle import promote

    best = result.best
    if best is None or best.version is None:
        return replace(result, promotion="no point passed: nothing to promote")
    metric = result.metric
    reason = f"best of sweep {result.id}" + (f" ({metric[0]}={best.metrics.get(metric[0])})" if metric else "")
    try:
        promote(result.model, best.version, store=store, reason=reason)
    except HandoffError as exc:
        return replace(result, promotion=f"version {best.version} not promoted: {exc}")
    return replace(result, promoted=best.version)
