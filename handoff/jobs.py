"""Builds as durable jobs: one row per build in a small SQLite table beside the store.

Every build (app, CLI, API) has a row any process can read: queued, running (stage, cell, elapsed),
passed, failed (stage, cell, error), cancelled or interrupted, with its executed notebook kept in
the job's directory. Submitted builds run in detached worker processes (``python -m handoff.worker
JOB_DIR``), so they outlive the page, the tab and the app that started them; at most
``HANDOFF_MAX_BUILDS`` (default 2) run at once, the others wait on one of N ``fcntl`` lock files
(no scheduler daemon). A ``running`` row whose worker is gone is marked ``interrupted`` with the
reason the next time anyone reads the table, never silently forgotten.

Stdlib only (``sqlite3``, WAL, short transactions): listing jobs must not load MLflow or papermill.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from handoff.errors import HandoffError, InputError, OptionError, StoreError

if TYPE_CHECKING:
    from handoff.build import BuildResult
    from handoff.credentials import Credentials
    from handoff.events import BuildEvent, EventCallback
    from handoff.execution import Cancellation
    from handoff.inspection import NotebookSource
    from handoff.store import Store
    from handoff.warm_servers import ServerKey

QUEUED, RUNNING, PASSED, FAILED, CANCELLED, INTERRUPTED = (
    "queued",
    "running",
    "passed",
    "failed",
    "cancelled",
    "interrupted",
)
STATES = (QUEUED, RUNNING, PASSED, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
SOURCES = ("app", "cli", "api")
DB_NAME = "jobs.db"
JOBS_DIR = "jobs"
SCHEMA_VERSION = 2  # 2: the ``sweep`` column
#: Seconds between a live build's heartbeats, and after which a silent one counts as gone.
HEARTBEAT_SECONDS = 1.0
STALE_SECONDS = 60.0
#: A queued row whose worker never wrote its pid within this many seconds is gone too.
START_GRACE_SECONDS = 30.0

_COLUMNS = (
    "id",
    "model",
    "label",
    "notebook",
    "source",
    "user",
    "state",
    "stage",
    "cell",
    "cells_done",
    "cells_total",
    "message",
    "created",
    "started",
    "finished",
    "heartbeat",
    "pid",
    "request",
    "run_id",
    "version",
    "error_stage",
    "error_cell",
    "error",
    "executed_notebook",
    "cancel_requested_by",
    "sweep",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, label TEXT NOT NULL, notebook TEXT NOT NULL,
    source TEXT NOT NULL, user TEXT NOT NULL, state TEXT NOT NULL, stage TEXT, cell INTEGER,
    cells_done INTEGER, cells_total INTEGER, message TEXT, created REAL NOT NULL, started REAL,
    finished REAL, heartbeat REAL, pid INTEGER, request TEXT NOT NULL, run_id TEXT, version INTEGER,
    error_stage TEXT, error_cell INTEGER, error TEXT, executed_notebook TEXT, cancel_requested_by TEXT,
    sweep TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs (sweep);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class JobNotFoundError(InputError):
    """No job has this id (exit 2: bad input)."""


@dataclass(frozen=True)
class Job:
    """One build as its row says.

    Attributes:
        id: Opaque job id (``?job=ID`` on the Build page, ``handoff cancel ID``).
        model: The model name the build records into.
        label: What is being built, for lists (model and notebook).
        notebook: The notebook's name.
        source: Who submitted it: ``app``, ``cli`` or ``api``.
        user: Who submitted it (the OS user unless given).
        state: One of ``STATES``.
        stage: The stage running now (or where it ended).
        cell: The source notebook's cell running now (or where it ended), 1-based.
        cells_done: Code cells started so far; ``cells_total`` of them in all.
        message: The last progress line, or the one-sentence reason it ended.
        created: ``time.time()`` at submission; ``started``/``finished`` when it ran/ended.
        heartbeat: The worker's last sign of life.
        pid: The process running it (a worker, or the CLI).
        request: The build's inputs as JSON (params, options, checks, store, file names).
        run_id: The MLflow run recording the build (also for failed builds), when recorded.
        version: The registered version, when one was made.
        error_stage: Where it failed; ``error_cell`` the cell; ``error`` the one-line message.
        executed_notebook: The (partly) executed notebook kept for this job.
        cancel_requested_by: Who asked to cancel it.
        sweep: The parameter sweep it is a point of (``handoff.sweeps``), if any.
        job_dir: The job's directory (inputs, executed notebook, worker log).
    """

    id: str
    model: str
    label: str
    notebook: str
    source: str
    user: str
    state: str
    created: float
    request: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    cell: int | None = None
    cells_done: int | None = None
    cells_total: int | None = None
    message: str | None = None
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    pid: int | None = None
    run_id: str | None = None
    version: int | None = None
    error_stage: str | None = None
    error_cell: int | None = None
    error: str | None = None
    executed_notebook: str | None = None
    cancel_requested_by: str | None = None
    sweep: str | None = None
    job_dir: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def elapsed(self) -> float:
        """Seconds it has run (so far), 0 while queued."""
        if self.started is None:
            return 0.0
        return max(0.0, (self.finished or time.time()) - self.started)

    @property
    def progress(self) -> str:
        """One line of where it is: "Starting the kernel…" until a cell runs, then the cell."""
        if self.state == QUEUED:
            return self.message or "waiting for a free build slot"
        if self.state != RUNNING:
            return self.message or self.state
        if self.stage == "execute":
            if not self.cells_done:
                return "Starting the kernel…"
            return f"Running cell {self.cell} ({self.cells_done} of {self.cells_total} code cells)"
        return f"{self.stage or 'inspect'}: {self.message or ''}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*_COLUMNS, "job_dir")} | {"elapsed": round(self.elapsed, 1)}


_CREDENTIAL_VARS = ("HANDOFF_USER", "HANDOFF_PASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def current_user() -> str:
    """The OS user (a server store's builds name its logged-in user instead: ``submit``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def max_builds() -> int:
    """``HANDOFF_MAX_BUILDS`` (default 2): builds that run at once on this machine."""
    raw = os.environ.get("HANDOFF_MAX_BUILDS", "2")
    try:
        value = int(raw)
    except ValueError:
        raise OptionError(f"HANDOFF_MAX_BUILDS must be a whole number, got {raw!r}") from None
    if value < 1:
        raise OptionError(f"HANDOFF_MAX_BUILDS must be at least 1, got {value}")
    return value


def jobs_home(store: Store | str | os.PathLike[str] | None = None) -> Path:
    """Where the job table lives: beside ``mlflow.db`` for a local store, ``HANDOFF_HOME`` for a server."""
    from handoff.store import Store, default_home

    opened = store if isinstance(store, Store) else Store(store)
    paths = opened.local_paths()
    return paths[0] if paths else default_home()


class JobTable:
    """The job table in ``home`` (``jobs.db``) and the jobs' directories (``jobs/<id>/``).

    Every call opens a short connection: safe across threads and processes (WAL, busy timeout).
    """

    _ready: ClassVar[set[Path]] = set()

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home).expanduser().resolve()
        self.path = self.home / DB_NAME
        self.dir = self.home / JOBS_DIR

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.path not in JobTable._ready:
                self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self.unusable(exc) from exc
        try:
            con.execute("PRAGMA busy_timeout = 30000")
            if self.path not in JobTable._ready:
                _switch_to_wal(con)
                version = con.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise OptionError(
                        f"the job table {self.path} is from a newer handoff (schema {version}); upgrade handoff"
                    )
                if version == 1:  # a table from before sweeps: add their column
                    with contextlib.suppress(sqlite3.OperationalError):  # another process just did
                        con.execute("ALTER TABLE jobs ADD COLUMN sweep TEXT")
                con.executescript(_SCHEMA)
                JobTable._ready.add(self.path)
            yield con
        finally:
            con.close()

    def unusable(self, exc: BaseException) -> StoreError:
        """The store's folder cannot hold the job table: the store cannot be used."""
        why = "a file is in the way of its folder" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc
        return StoreError(f"cannot open the store at {self.home}: cannot keep build jobs there ({why})")

    # -- rows -------------------------------------------------------------------------------------

    def insert(self, job: Job) -> None:
        row = job.to_dict()
        row["request"] = json.dumps(job.request, sort_keys=True)
        with self._db() as con:
            con.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [row[c] for c in _COLUMNS],
            )

    def update(self, job_id: str, *, only_if: tuple[str, ...] = (), **values: Any) -> bool:
        """Set columns of one row (only while its state is in ``only_if``, when given); True if it changed."""
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job columns {sorted(unknown)}")
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?"
        args = [*values.values(), job_id]
        if only_if:
            sql += f" AND state IN ({', '.join('?' * len(only_if))})"
            args += list(only_if)
        with self._db() as con:
            return con.execute(sql, args).rowcount > 0

    def _row(self, row: sqlite3.Row | tuple[Any, ...]) -> Job:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["request"] = json.loads(values["request"] or "{}")
        return Job(**values, job_dir=str(self.dir / values["id"]))

    def get(self, job_id: str, *, reconcile: bool = True) -> Job:
        """The job (its worker's liveness checked first); ``JobNotFoundError`` for an unknown id."""
        if reconcile:
            self.reconcile(job_id)
        with self._db() as con:
            row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no build job {job_id!r} in {self.path}")
        return self._row(row)

    def select(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        sweep: str | None = None,
    ) -> list[Job]:
        """Jobs newest first, optionally of one state, model and/or sweep (dead workers reconciled first)."""
        if state is not None and state not in STATES:
            raise OptionError(f"unknown job state {state!r}; one of {', '.join(STATES)}")
        self.reconcile()
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if sweep is not None:
            where.append("sweep = ?")
            args.append(sweep)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db() as con:
            return [self._row(r) for r in con.execute(sql, args).fetchall()]

    def models(self) -> list[str]:
        with self._db() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT model FROM jobs ORDER BY model")]

    def active_count(self, model: str | None = None) -> int:
        """Queued or running jobs (of ``model``), after reconciling dead workers."""
        self.reconcile()
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ('{QUEUED}', '{RUNNING}')"
        with self._db() as con:
            row = con.execute(sql + " AND model = ?" if model else sql, (model,) if model else ()).fetchone()
        return int(row[0])

    def count_older_queued(self, job: Job) -> int:
        """Queued builds ahead of ``job`` for a build slot (a sweep's points wait for its own workers)."""
        with self._db() as con:
            row = con.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = ? AND created < ? AND sweep IS NULL", (QUEUED, job.created)
            ).fetchone()
        return int(row[0])

    def claim(self, sweep: str, pid: int) -> tuple[str | None, int]:
        """Take the sweep's next queued point for the worker ``pid`` (now ``running``; ``None``: none
        left), and how many stay queued after it."""
        now = time.time()
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT id FROM jobs WHERE sweep = ? AND state = ? ORDER BY created, rowid LIMIT 1", (sweep, QUEUED)
            ).fetchone()
            if row:
                con.execute(
                    "UPDATE jobs SET state = ?, pid = ?, started = ?, heartbeat = ?, message = NULL WHERE id = ?",
                    (RUNNING, pid, now, now, row[0]),
                )
            left = con.execute("SELECT count(*) FROM jobs WHERE sweep = ? AND state = ?", (sweep, QUEUED)).fetchone()[0]
            con.execute("COMMIT")
        return (str(row[0]) if row else None), int(left)

    # -- liveness ---------------------------------------------------------------------------------

    def reconcile(self, job_id: str | None = None) -> int:
        """Mark active jobs whose process is gone ``interrupted``, with the reason; returns how many."""
        now = time.time()
        sql = f"SELECT id, state, pid, heartbeat, created FROM jobs WHERE state IN ('{QUEUED}', '{RUNNING}')"
        with self._db() as con:
            rows = con.execute(sql + (" AND id = ?" if job_id else ""), (job_id,) if job_id else ()).fetchall()
        marked = 0
        for jid, state, pid, heartbeat, created in rows:
            reason = _gone(state, pid, heartbeat, created, now)
            if reason and self.update(
                jid, only_if=ACTIVE, state=INTERRUPTED, message=reason, finished=now, error=reason
            ):
                marked += 1
        return marked


def _switch_to_wal(con: sqlite3.Connection, seconds: float = 30) -> None:
    """Put the table in WAL mode, waiting for other processes as the busy timeout would: SQLite
    answers a switch that meets another writer with "database is locked" at once (builds that
    start together on a new home met it)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited worker its parent has not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")
    except OSError:
        return True


def _gone(state: str, pid: int | None, heartbeat: float | None, created: float, now: float) -> str | None:
    if pid is None:
        if now - created > START_GRACE_SECONDS:
            return "interrupted: its worker process never started"
        return None
    if not _alive(pid):
        return (
            f"interrupted: its worker process (pid {pid}) is gone without finishing "
            "(the app or machine restarted, or the process was killed)"
        )
    if heartbeat is not None and now - heartbeat > STALE_SECONDS:
        return f"interrupted: its worker process (pid {pid}) stopped reporting {now - heartbeat:.0f} s ago"
    return None


# -- submitting -----------------------------------------------------------------------------------


def table_for(store: Store | str | os.PathLike[str] | None = None) -> JobTable:
    return JobTable(jobs_home(store))


def _store_location(store: Store | str | os.PathLike[str] | None) -> str:
    """The store as a string a worker process opens the same way (``None``: this process's HANDOFF_HOME)."""
    from handoff.store import Store, default_location

    if isinstance(store, Store):
        return store.uri
    text = str(default_location() if store is None else store)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _prepare(
    notebook: str | os.PathLike[str] | bytes | NotebookSource,
    params: Mapping[str, Any] | None,
    name: str | None,
    *,
    store: Store | str | os.PathLike[str] | None,
    checks: Mapping[str, Any] | None,
    files: Mapping[str, bytes] | None,
    test_files: Mapping[str, bytes] | None,
    source: str,
    user: str | None,
    state: str,
    options: Mapping[str, Any],
) -> tuple[JobTable, Job]:
    """Validate the inputs (bad input fails now, not in a worker), write the job's directory and row."""
    from handoff.build import BuildOptions
    from handoff.inspection import NotebookSource, load_notebook, validate_params
    from handoff.store import check_model_name, model_name_from

    if source not in SOURCES:
        raise OptionError(f"unknown job source {source!r}; one of {', '.join(SOURCES)}")
    loaded = (
        notebook
        if isinstance(notebook, NotebookSource)
        else load_notebook(notebook if isinstance(notebook, (str, bytes)) else Path(notebook))
    )
    model = check_model_name(name or model_name_from(loaded.name))
    validate_params(loaded, params or {})
    build_options = BuildOptions(**options)
    table = table_for(store)
    job_id = uuid.uuid4().hex[:12]
    job_dir = table.dir / job_id
    try:
        (job_dir / "files").mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise table.unusable(exc) from exc
    try:
        settings = _write_inputs(job_dir, loaded, files, test_files, checks)
    except BaseException:  # nothing half-written stays behind
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    request = {
        "notebook_name": loaded.name,
        "notebook_path": str(loaded.path.resolve()) if loaded.path else None,
        "notebook_sha256": loaded.sha256,
        "params": dict(params or {}),
        "name": model,
        "store": _store_location(store),
        "checks": settings,
        "options": {k: v for k, v in build_options.to_dict().items() if k in options},
        "files": sorted(files or {}),
    }
    (job_dir / "request.json").write_text(json.dumps(request, indent=2, sort_keys=True, default=str))
    job = Job(
        id=job_id,
        model=model,
        label=f"{model} (from {loaded.name}.ipynb)",
        notebook=f"{loaded.name}.ipynb",
        source=source,
        user=user or current_user(),
        state=state,
        created=time.time(),
        request=json.loads(json.dumps(request, default=str)),
        message="waiting for a free build slot" if state == QUEUED else None,
        sweep=build_options.sweep,
    )
    table.insert(job)
    return table, job


def _write_inputs(
    job_dir: Path,
    loaded: NotebookSource,
    files: Mapping[str, bytes] | None,
    test_files: Mapping[str, bytes] | None,
    checks: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The notebook, data files and pytest files into the job's directory; returns the checklist
    settings (with the pytest files' paths), validated now so that bad settings make no job."""
    from handoff.check_config import resolve_config

    (job_dir / "notebook.ipynb").write_bytes(loaded.raw)
    for file_name, data in (files or {}).items():
        target = job_dir / "files" / file_name
        if not target.resolve().is_relative_to((job_dir / "files").resolve()):
            raise OptionError(f"data file name {file_name!r} leaves the build directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    settings = dict(checks or {})
    # pytest files given as bytes (the app's uploads) are written into the job, never into its JSON
    test_files = {**(settings.pop("test_files", None) or {}), **(test_files or {})}
    if test_files:
        (job_dir / "tests").mkdir()
        for file_name, data in test_files.items():
            (job_dir / "tests" / Path(file_name).name).write_bytes(data)
        settings["tests"] = [*settings.get("tests", []), *(str(job_dir / "tests" / Path(n).name) for n in test_files)]
    resolve_config(
        cli=settings,
        notebook_metadata=loaded.notebook.metadata,
        notebook_dir=loaded.path.resolve().parent if loaded.path else None,
    )
    return settings


def submit(
    notebook: str | os.PathLike[str] | bytes | NotebookSource,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    checks: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    test_files: Mapping[str, bytes] | None = None,
    source: str = "api",
    user: str | None = None,
    **options: Any,
) -> Job:
    """Queue a build and start its worker process; returns the job at once (``queued``).

    The worker is detached (its own session): it goes on if this process exits. ``options`` are
    ``BuildOptions`` fields; ``test_files`` are pytest files (name to bytes) for ``user.tests``.

    Raises:
        InputError: the notebook, a parameter, an option or a file name is invalid (no job made).
    """
    from handoff.store import Store

    credentials = store.credentials if isinstance(store, Store) else None  # a server's logged-in user
    table, job = _prepare(
        notebook,
        params,
        name,
        store=store,
        checks=checks,
        files=files,
        test_files=test_files,
        source=source,
        user=user or (credentials.username if credentials else None),
        state=QUEUED,
        options=options,
    )
    _spawn(table, job, credentials)
    return table.get(job.id, reconcile=False)


def _spawn(table: JobTable, job: Job, credentials: Credentials | None = None) -> None:
    """Start the job's worker; with ``credentials`` (a server store's user, e.g. an app session's
    login) it acts as that user: they go in its own environment only, never in the job row, never in
    this process's environment, and the notebook's sandbox does not inherit them (an allow-list)."""
    job_dir = Path(job.job_dir or table.dir / job.id)
    process = start_worker([str(job_dir)], job_dir / "worker.log", credentials)
    table.update(job.id, only_if=(QUEUED,), pid=process.pid)


def start_worker(args: list[str], log_path: Path, credentials: Credentials | None = None) -> subprocess.Popen[bytes]:
    """``python -m handoff.worker ARGS``, detached, its output in ``log_path`` (see ``_spawn``)."""
    env = None
    if credentials is not None:
        env = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_VARS}
        env |= {"HANDOFF_USER": credentials.username, "HANDOFF_PASSWORD": credentials.password}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "handoff.worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # not in our process group: a Ctrl-C or an app restart leaves it running
            close_fds=True,
        )
    # reap it when it ends (while we live), so a finished worker is not left a zombie
    threading.Thread(target=process.wait, name=f"handoff-reap-{process.pid}", daemon=True).start()
    return process


def resubmit(job: Job | str, *, store: Store | str | os.PathLike[str] | None = None, **changes: Any) -> Job:
    """Build again with a changed request (a new job): ``params``, ``name``, ``checks`` replace the old
    ones; any other keyword is a ``BuildOptions`` field (``with_packages``, ``model_var``, ...)."""
    old = get_job(job, store) if isinstance(job, str) else job
    table = table_for(store if store is not None else old.request.get("store"))
    job_dir = Path(old.job_dir or table.dir / old.id)
    request = old.request
    path = request.get("notebook_path")
    notebook: str | bytes = (
        path if path and _same_file(path, request.get("notebook_sha256")) else (job_dir / "notebook.ipynb").read_bytes()
    )
    files = {n: (job_dir / "files" / n).read_bytes() for n in request.get("files", [])}
    options = {k: v for k, v in request.get("options", {}).items() if k not in ("sweep", "sweep_point")}
    top = {k: changes.pop(k) for k in ("params", "name", "checks", "files") if k in changes}
    options.update(changes)
    for key in ("env", "with_packages"):
        if key in options:
            options[key] = tuple(options[key])
    if isinstance(notebook, bytes):
        from handoff.inspection import load_notebook

        notebook_arg: Any = load_notebook(notebook, name=request.get("notebook_name") or "notebook")
    else:
        notebook_arg = notebook
    return submit(
        notebook_arg,
        top.get("params", request.get("params")),
        top.get("name", request.get("name")),
        store=request.get("store"),
        checks=top.get("checks", request.get("checks")),
        files=top.get("files", files),
        source=old.source if old.source != "cli" else "api",
        user=old.user,
        **options,
    )


def _same_file(path: str, sha256: str | None) -> bool:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def cancel(job_id: str, *, by: str | None = None, store: Store | str | os.PathLike[str] | None = None) -> Job:
    """Cancel a job: a queued one never runs; a running one's kernel and all its children are killed and
    the build ends the way a timeout does. Records who asked. Ended jobs are left as they are."""
    table = table_for(store)
    job = table.get(job_id)
    who = by or current_user()
    if not job.active:
        return job
    now = time.time()
    if table.update(
        job_id,
        only_if=(QUEUED,),
        state=CANCELLED,
        cancel_requested_by=who,
        finished=now,
        message=f"cancelled by {who} before it started",
    ):
        return table.get(job_id, reconcile=False)
    table.update(job_id, only_if=(RUNNING,), cancel_requested_by=who)
    # the worker's heartbeat sees the request within a second; a worker that no longer beats is told
    # by signal (a CLI build's own process is never signalled: it polls the same column)
    if job.pid and job.source != "cli" and job.heartbeat and now - job.heartbeat > 5 * HEARTBEAT_SECONDS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(job.pid, signal.SIGTERM)
    return table.get(job_id)


def wait(
    job_id: str, *, store: Store | str | os.PathLike[str] | None = None, timeout: float = 600, poll: float = 0.5
) -> Job:
    """Block until the job has ended (or ``timeout`` seconds passed); returns its last state."""
    table = table_for(store)
    deadline = time.monotonic() + timeout
    job = table.get(job_id)
    while job.active and time.monotonic() < deadline:
        time.sleep(poll)
        job = table.get(job_id)
    return job


# -- running --------------------------------------------------------------------------------------


class _Slot:
    """One of N lock files; holding it is being allowed to run (released when the process ends)."""

    def __init__(self, table: JobTable) -> None:
        self.table = table
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        slots = self.table.home / "build-slots"
        slots.mkdir(exist_ok=True, mode=0o700)
        for index in range(max_builds()):
            fd = os.open(slots / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd = fd
            return True
        return False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Heartbeat:
    """A thread that writes the heartbeat and turns a cancel request in the row into ``cancel``."""

    def __init__(self, table: JobTable, job_id: str, cancel: Cancellation | None) -> None:
        self.table, self.job_id, self.cancel = table, job_id, cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"handoff-heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                self.table.update(self.job_id, heartbeat=time.time())
                job = self.table.get(self.job_id, reconcile=False)
                if job.cancel_requested_by and self.cancel is not None and not self.cancel.requested:
                    self.cancel.cancel(job.cancel_requested_by)
            except sqlite3.Error:
                pass  # a busy table: the next beat will do
            if self._stop.wait(HEARTBEAT_SECONDS):
                return


def _wait_for_slot(table: JobTable, job: Job, slot: _Slot) -> bool:
    """Wait (as ``queued``) for a slot, oldest queued jobs first; False if the job was cancelled meanwhile."""
    while True:
        current = table.get(job.id, reconcile=False)
        if current.state != QUEUED:
            return False
        table.update(job.id, heartbeat=time.time())
        if table.count_older_queued(current) < max_builds() and slot.try_acquire():
            return table.update(job.id, only_if=(QUEUED,), state=RUNNING, started=time.time(), message=None)
        time.sleep(0.5)


def _on_event(table: JobTable, job_id: str, forward: EventCallback | None) -> EventCallback:
    def record(event: BuildEvent) -> None:
        values: dict[str, Any] = {"stage": event.stage, "message": event.message[:500]}
        if event.stage == "execute":
            values.update(cell=event.cell, cells_done=event.done, cells_total=event.total)
        try:
            table.update(job_id, **values)
        except sqlite3.Error:
            pass  # progress is best effort; the end state is written for sure
        if forward is not None:
            forward(event)

    return record


def run_job(
    table: JobTable,
    job_id: str,
    *,
    on_event: EventCallback | None = None,
    cancel: Cancellation | None = None,
    reraise: bool = False,
    claimed: bool = False,
) -> BuildResult | None:
    """Run a ``queued`` job in this process (a worker, or the CLI): wait for a slot, build, write the end
    state. Returns the build's result (``None`` if it never ran or raised); ``reraise``: an input or
    store error is raised again after the row is written (the CLI's exit codes). ``claimed``: a sweep
    worker already took it (``JobTable.claim``): it runs at once, on the sweep's own worker."""
    from handoff.build import build
    from handoff.execution import Cancellation

    cancel = cancel or Cancellation()
    job = table.get(job_id, reconcile=False)
    slot = _Slot(table)
    if not claimed:
        table.update(job_id, pid=os.getpid(), heartbeat=time.time())
        if not _wait_for_slot(table, job, slot):
            return None
    job_dir = Path(job.job_dir or table.dir / job_id)
    try:
        with _Heartbeat(table, job_id, cancel):
            notebook, inputs = _build_inputs(job, job_dir)
            try:
                result, end, raised = attempt(
                    lambda: build(notebook, **inputs, on_event=_on_event(table, job_id, on_event), cancel=cancel),
                    cancel,
                )
            except KeyboardInterrupt:
                who = cancel.by or current_user()
                end = {
                    "state": CANCELLED,
                    "message": f"cancelled by {who} (Ctrl-C); nothing was recorded",
                    "cancel_requested_by": who,
                }
                table.update(job_id, finished=time.time(), **end)
                raise
            if result is not None:
                end = _kept(result, job_dir) | end
            elif raised is not None and raised.notebook is not None:
                end = _kept_notebook(raised.notebook, job_dir) | end
    finally:
        slot.release()
    table.update(job_id, finished=time.time(), **end)
    if reraise and raised is not None:
        raise raised
    return result


def _build_inputs(job: Job, job_dir: Path) -> tuple[NotebookSource, dict[str, Any]]:
    """The notebook and the other arguments of ``handoff.build`` the job's request holds."""
    from handoff.inspection import load_notebook

    request = job.request
    path = request.get("notebook_path")
    notebook = (
        load_notebook(path)
        if path and _same_file(path, request.get("notebook_sha256"))
        else load_notebook((job_dir / "notebook.ipynb").read_bytes(), name=request.get("notebook_name") or "notebook")
    )
    options = dict(request.get("options", {}))
    for key in ("env", "with_packages"):
        if key in options:
            options[key] = tuple(options[key])
    return notebook, {
        "params": request.get("params") or {},
        "name": request.get("name"),
        "store": request.get("store"),
        "checks": request.get("checks") or {},
        "files": {n: (job_dir / "files" / n).read_bytes() for n in request.get("files", [])},
        **options,
    }


def warm_server_keys(table: JobTable, job_id: str, root: Path) -> list[ServerKey]:
    """The warm servers a sweep in ``root`` starts for the job's build (``build.warm_server_keys``)."""
    from handoff.build import warm_server_keys as of_build

    job = table.get(job_id, reconcile=False)
    notebook, inputs = _build_inputs(job, Path(job.job_dir or table.dir / job_id))
    return of_build(root, notebook, **inputs)


def attempt(
    run: Callable[[], BuildResult], cancel: Cancellation
) -> tuple[BuildResult | None, dict[str, Any], HandoffError | None]:
    """Run a build and say how it ended, as a job's row keeps it: (its result, the end state, the
    input or store error it raised). Never raises but for ``KeyboardInterrupt``: a bug ends the job
    visibly too. A job's worker and a sweep's point on a Dask worker (``handoff.sweeps``) share it."""
    from handoff.errors import BuildCancelled

    try:
        result = run()
    except BuildCancelled as exc:
        return None, {"state": CANCELLED, "message": exc.raw, "error": exc.raw}, None
    except HandoffError as exc:
        stage = getattr(exc, "stage", "inspect")  # raw: each face renders the hints it names
        return None, {"state": FAILED, "message": exc.raw, "error": exc.raw, "error_stage": stage}, exc
    except Exception as exc:  # a bug must still end the job visibly
        text = f"internal error: {type(exc).__name__}: {exc}"
        return None, {"state": FAILED, "message": text, "error": text}, None
    return result, end_state(result, cancel), None


def _kept(result: BuildResult, job_dir: Path) -> dict[str, Any]:
    """The build's record and executed notebook kept in the job's directory (its row's columns)."""
    (job_dir / "record.json").write_text(json.dumps(result.record.to_dict(), default=str))
    return _kept_notebook(result.notebook, job_dir) if result.notebook is not None else {}


def _kept_notebook(notebook: Any, job_dir: Path) -> dict[str, Any]:
    """The executed notebook (whole, or as far as the run got) in the job's directory."""
    import nbformat

    path = job_dir / "executed.ipynb"
    nbformat.write(notebook, path, split_lines=False)
    return {"executed_notebook": str(path)}


def end_state(result: BuildResult, cancel: Cancellation) -> dict[str, Any]:
    """State, message, version and error of a build that ran (passed, failed or cancelled), as a
    job's row (and a sweep's point run elsewhere, ``handoff.sweeps``) keeps them."""
    end: dict[str, Any] = {"run_id": result.run_id, "version": result.version}
    error = result.error
    if error is not None:
        end.update(error_stage=error.stage, error_cell=error.cell, error=error.message)
    if cancel.requested and error is not None and error.type == "CancelledFailure":
        where = f" at cell {error.cell}" if error.cell else ""
        return end | {"state": CANCELLED, "message": f"cancelled by {cancel.by}{where}"}
    if cancel.requested and not result.ok:  # e.g. stopped in the reproducibility rerun of the checks
        return end | {
            "state": CANCELLED,
            "message": f"cancelled by {cancel.by} in the {error.stage if error else 'check'} stage",
        }
    # a cancel that came once the model was saved: the build could no longer stop, and it passed
    late = f" (the cancel by {cancel.by} came too late to stop it)" if cancel.requested else ""
    if result.ok:
        return end | {"state": PASSED, "message": f"{result.name} version {result.version} passed{late}"}
    return end | {"state": FAILED, "message": error.message if error else "failed"}


def run_here(
    notebook: str | os.PathLike[str] | bytes | NotebookSource,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    checks: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    source: str = "cli",
    user: str | None = None,
    on_event: EventCallback | None = None,
    on_job: Callable[[Job], None] | None = None,
    **options: Any,
) -> tuple[Job, BuildResult | None]:
    """Build in this process with a job row (the CLI's ``handoff build``): listed and cancellable like
    any other; Ctrl-C marks it cancelled (and re-raises ``KeyboardInterrupt``)."""
    table, job = _prepare(
        notebook,
        params,
        name,
        store=store,
        checks=checks,
        files=files,
        test_files=None,
        source=source,
        user=user,
        state=QUEUED,
        options=options,
    )
    if on_job is not None:
        on_job(job)
    result = run_job(table, job.id, on_event=on_event, reraise=True)
    return table.get(job.id, reconcile=False), result


def result_of(job: Job, store: Store | str | os.PathLike[str] | None = None) -> BuildResult | None:
    """The build's result reconstructed after the fact: its record from the store (by ``run_id``), else
    from the job's directory, with the executed notebook kept for the job; ``None`` if nothing ran."""
    import nbformat

    from handoff.build import BuildResult
    from handoff.record import BuildRecord
    from handoff.store import Store, open_store

    record = None
    if job.run_id:
        with contextlib.suppress(Exception):  # a store that cannot be read: fall back to the job's copy
            opened = store if isinstance(store, Store) else open_store(store or job.request.get("store"))
            record = opened.read_record(job.run_id)
    kept = Path(job.job_dir) / "record.json" if job.job_dir else None
    if record is None and kept is not None and kept.exists():
        record = BuildRecord.from_dict(json.loads(kept.read_text()))
    if record is None:
        return None
    notebook = None
    if job.executed_notebook and Path(job.executed_notebook).exists():
        notebook = nbformat.read(job.executed_notebook, as_version=4)
    return BuildResult(record, job.version, notebook=notebook)


# -- the public API's thin wrappers ---------------------------------------------------------------


def list_jobs(
    store: Store | str | os.PathLike[str] | None = None,
    *,
    state: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    sweep: str | None = None,
) -> list[Job]:
    """Every build job of the store, newest first (``state``/``model``/``sweep`` filter)."""
    return table_for(store).select(state=state, model=model, limit=limit, sweep=sweep)


def get_job(job_id: str, store: Store | str | os.PathLike[str] | None = None) -> Job:
    """One job by id; ``JobNotFoundError`` (exit 2) when there is none."""
    return table_for(store).get(job_id)
