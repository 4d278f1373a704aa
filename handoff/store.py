"""Record stage and reads: the MLflow-backed store of builds and versions.

A build is an MLflow run (params, metrics, tags, artifacts) in the ``handoff`` experiment; a
version is a registered model version created only after every artifact of its run is written;
a failed build is a run marked failed with its partial notebook, and never a version. Nothing here
edits or deletes a recorded version. By default the store is embedded: an SQLite file and an
artifact folder under ``HANDOFF_HOME`` (``~/.handoff``), nothing to start; any MLflow tracking URI
(e.g. an ``mlflow server`` backed by PostgreSQL) works for a team. Writes go through MLflow's client;
an embedded store is read straight from its SQLite file (``handoff.sqlstore``: importing and opening
MLflow costs seconds, a few queries milliseconds), fresh on every call.

First use of an embedded store is serialized by a lock file beside the SQLite database (MLflow's
schema migration fails when two processes run it at once), and the store is owner-only: the home
and artifact folders 0700, the database and every artifact file 0600.

Versions are tamper-evident (``docs/integrity.md``): at record time the sha256 of every artifact
and the metrics go into ``handoff/digests.json``, whose own sha256 is a tag of the run and of the
model version; ``get_version`` (hence show, check, compare, export) refuses a version that no
longer matches with a ``TamperedError``. Listing reads tags only and verifies nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from handoff.credentials import Credentials, acting_as
from handoff.credentials import current as current_credentials
from handoff.errors import (
    LoginError,
    OptionError,
    PermissionDeniedError,
    StoreError,
    StoreUnreachableError,
    TamperedError,
    VersionNotFoundError,
)
from handoff.fingerprint import sha256_file
from handoff.layout import CHECK_REPORT, DIGESTS_PATH, MODEL_DIR, PACKAGE_DIR, RECHECKS_DIR, RECORD_PATH
from handoff.sqlwrite import MetricPoint, SqliteWriter
from handoff.uris import file_uri, local_path, sqlite_path, sqlite_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from handoff.record import BuildRecord
    from handoff.sqlstore import SqliteReader

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a run on a server: no "View run" lines

EXPERIMENT = "handoff"
AUDIT_EXPERIMENT = "handoff-audit"
DIGESTS_TAG = "handoff.digests_sha256"
ARCHIVED_TAG = "handoff.archived"  # on a model version: hidden from default lists, never deleted
NOTEBOOK_TAG = "handoff.notebook"
METRIC_ORDER_TAG = "handoff.metric_order"  # the metrics in the order reported (the version tag sorts them)
SWEEP_TAG = "handoff.sweep"  # the sweep a version was built in (handoff sweep); and its point:
SWEEP_POINT_TAG = "handoff.sweep_point"
LISTING_TAG = "handoff.listing"  # on a model version: what a listing shows of its run, so it needs no run
USER_TAG = "mlflow.user"  # MLflow's own: the run's author (MlflowClient.create_run does not set it)
PACKAGE_TAG = "handoff.package_sha256"
ROLES = ("viewer", "builder", "releaser")  # a team server's roles, weakest first (handoff.server, docs/roles.md)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def default_home() -> Path:
    """``$HANDOFF_HOME``, else ``~/.handoff``."""
    return Path(os.environ.get("HANDOFF_HOME") or Path.home() / ".handoff").expanduser()


def default_location() -> str | Path:
    """Where ``--store`` defaults to: ``$HANDOFF_STORE`` (e.g. a team's server), else ``default_home()``."""
    return os.environ.get("HANDOFF_STORE") or default_home()


def model_name_from(stem: str) -> str:
    """A valid registered-model name from a file stem: unsupported characters become ``-``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._") or "model"
    return name[:100]


def check_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name or ""):
        raise OptionError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 100 characters)"
        )
    return name


def _owner_only(path: Path) -> None:
    """chmod 0700 (folder) or 0600 (file); a path owned by someone else is left alone."""
    try:
        path.chmod(0o700 if path.is_dir() else 0o600)
    except OSError:
        pass


def _quoted(value: str) -> str:
    """``value`` as a string literal of MLflow's search filters (``name = 'x'``, ``tags.`k` = 'x'``).

    MLflow has no escapes: sqlparse finds the literal (where ``\\'`` and ``''`` do not end it) and
    MLflow strips the outer quotes and compares the rest verbatim, so ``'o\\'brien'`` looks for a
    backslash. The value is therefore wrapped in a quote it does not contain. A value holding both
    quotes, or ending in a backslash (it would swallow the closing quote), cannot be written.

    Raises:
        OptionError: the value cannot be expressed in a filter.
    """
    if not value.endswith("\\"):
        for quote in ("'", '"'):
            if quote not in value:
                return f"{quote}{value}{quote}"
    raise OptionError(
        f"{value!r} cannot be searched for in an MLflow store: it contains both kinds of quote or ends in a backslash"
    )


def _write_digests(
    staging: Path, status: str, metrics: Mapping[str, float], history: Mapping[str, list[list[float]]]
) -> str:
    """Write ``handoff/digests.json`` (every other artifact's sha256, the status, the metrics and the
    values of stepped metrics); return its sha256."""
    files = {p.relative_to(staging).as_posix(): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()}
    files.pop(DIGESTS_PATH, None)
    data = json.dumps(
        {
            "files": files,
            "status": status,
            "metrics": {k: float(v) for k, v in metrics.items()},
            "history": {k: sorted(float(v) for _, v, _ in steps) for k, steps in history.items()},
        },
        indent=2,
        sort_keys=True,
    ).encode()
    (staging / DIGESTS_PATH).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Recorded:
    """Where a build was recorded: its run, and its version when one was registered."""

    run_id: str
    version: int | None
    artifact_uri: str
    created: str | None


@dataclass(frozen=True)
class VersionRecord:
    """One recorded version of a model, as listed (cheap: no artifact is read).

    Attributes:
        name: The model name.
        version: The version number (1, 2, ...).
        status: ``passed`` or ``failed`` (a version whose checklist failed is kept but marked).
        created: ISO 8601 UTC creation time.
        run_id: The MLflow run of the build that produced it.
        metrics: Headline metrics, copied into the version's tags at creation.
        aliases: Registered-model aliases pointing at it (e.g. ``champion``).
        model_uri: Where its MLflow model directory lives.
        record: The full build record (``show``); ``None`` in listings.
        params: The parameters the notebook ran with, as MLflow keeps them (strings).
        notebook: The notebook's name as given to the build.
        duration: Seconds the build took up to recording (the sum of its stages' timings).
        author: Who built it (the MLflow run's user).
        archived: Hidden from default lists (``handoff archive``); still stored and readable.
        sweep: The parameter sweep it was built in (``handoff sweep``), ``sweep_point`` its point.
    """

    name: str
    version: int
    status: str
    created: str | None
    run_id: str | None
    metrics: dict[str, float]
    aliases: tuple[str, ...]
    model_uri: str
    record: BuildRecord | None = None
    params: dict[str, str] = field(default_factory=dict)
    notebook: str | None = None
    duration: float | None = None
    author: str | None = None
    archived: bool = False
    sweep: str | None = None
    sweep_point: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "created": self.created,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "aliases": list(self.aliases),
            "model_uri": self.model_uri,
            "params": self.params,
            "notebook": self.notebook,
            "duration": self.duration,
            "author": self.author,
            "archived": self.archived,
            "sweep": self.sweep,
            "sweep_point": self.sweep_point,
        }
        if self.record is not None:
            data["record"] = self.record.to_dict()
        return data

    @property
    def build(self) -> BuildRecord:
        """The build record of a version read with ``Store.get_version``."""
        if self.record is None:
            raise StoreError(f"{self.name} version {self.version} was listed, not read: it carries no record")
        return self.record


class Store:
    """Handle on one store. Cheap to create; connects on first use; safe to share across threads.

    An embedded store is read straight from its SQLite file (``handoff.sqlstore``), without
    importing MLflow; MLflow's client does every write, and every read of a server.
    ``direct_reads=False`` reads through the client too (what every read did before).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        direct_reads: bool = True,
        credentials: Credentials | None = None,
    ) -> None:
        """``credentials``: who a tracking server's calls are made as (default: ``HANDOFF_USER`` and
        ``HANDOFF_PASSWORD``, else MLflow's own variables); unused by an embedded store."""
        text = str(default_location() if location is None else location)
        self._db: Path | None = None  # the SQLite file of an embedded store
        self.credentials: Credentials | None = None  # a server's user (None: embedded, or MLflow's settings)
        self._role: str | None = None  # the user's role on a server with logins (``login``)
        self.artifact_root: str | None = None  # where new runs' artifacts go; None: the server decides
        db = sqlite_path(text)
        if db is not None:  # an SQLite file elsewhere: artifacts beside it, not in ./mlruns
            self.uri = text
            self._db = db.resolve()
            self.artifact_root = file_uri(self._db.parent / "artifacts")
        elif "://" in text:
            self.uri = text
            self.credentials = credentials or Credentials.from_env()
            # a stopped server answers "unreachable" in about a second, not after MLflow's minutes of retries
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        else:
            home = Path(text).expanduser().resolve()
            try:
                home.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:  # e.g. a file where the folder should be, or no permission
                why = "a file is in the way of its folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
                raise StoreError(f"cannot open the store at {home}: {why}") from exc
            _owner_only(home)
            self._db = home / "mlflow.db"
            self.uri = sqlite_uri(self._db)
            self.artifact_root = file_uri(home / "artifacts")
        self._client: MlflowClient | None = None
        self._direct = direct_reads
        self._experiment_id: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    @property
    def is_server(self) -> bool:
        """A tracking server (``http(s)://``) rather than a database this process opens itself."""
        return self.uri.startswith(("http://", "https://"))

    @property
    def user(self) -> str:
        """Who this store's writes are recorded as: a server's logged-in user, else the OS user."""
        return self.credentials.username if self.credentials is not None else _user()

    def login(self) -> str | None:
        """Check this store's user with its server and return the user's handoff role: ``admin``,
        ``releaser``, ``builder``, ``viewer`` or ``none``; ``None`` for a store without logins
        (embedded, or a server without MLflow's basic-auth app). Raises ``LoginError`` on a wrong password."""
        if not self.is_server:
            return None
        if self._role is None:
            me = self._auth_get("/api/2.0/mlflow/users/current")
            if me is None or not me.get("user"):
                return None
            user = me["user"]
            if user.get("is_admin"):
                self._role = "admin"
            else:
                roles = self._auth_get("/api/3.0/mlflow/users/roles/list", username=user["username"]) or {}
                names = {r.get("name") for r in roles.get("roles", [])}
                self._role = next((r for r in reversed(ROLES) if r in names), "none")
        return self._role

    def require_role(self, role: str, action: str, model: str | None = None) -> None:
        """Refuse ``action`` early, before any work, when the logged-in user's role is below ``role``
        (the server refuses it anyway; this says so in words, before a notebook runs)."""
        have = self.login()
        if have is None or have == "admin" or (have in ROLES and ROLES.index(have) >= ROLES.index(role)):
            return
        on = f" on model `{model}`" if model else ""
        raise PermissionDeniedError(f"{self.user!r} ({have}) needs {role} rights{on} to {action} on {self.uri}")

    def _auth_get(self, endpoint: str, **params: str) -> dict[str, Any] | None:
        """A GET of MLflow's auth API as this store's user; ``None`` where the server has no such API."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import UNAUTHENTICATED
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        with self.acting():
            response = http_request(get_default_host_creds(self.uri), endpoint, "GET", params=params)
            if response.status_code == 401:
                raise MlflowException("401", error_code=UNAUTHENTICATED)
        if response.status_code != 200:
            return None
        result: dict[str, Any] = response.json()
        return result

    @contextmanager
    def acting(self) -> Iterator[None]:
        """Calls to a server in this block are made as this store's user; its refusals become
        ``LoginError``/``PermissionDeniedError``/``StoreUnreachableError`` (no-op when embedded)."""
        if not self.is_server:
            yield
            return
        with acting_as(self.credentials), translate_server_error(self.uri):
            yield

    def local_paths(self) -> tuple[Path, ...]:
        """The folders this store keeps on this machine (hidden from every build's sandbox)."""
        paths = []
        if self._db is not None:
            paths.append(self._db.parent)
        artifacts = local_path(self.artifact_root) if self.artifact_root else None
        if artifacts is not None:
            paths.append(artifacts)
        return tuple(dict.fromkeys(paths))

    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                from mlflow import MlflowClient

                try:
                    with self._first_use_lock(), self.acting():
                        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                        self._experiment_id = self._ensure_experiment(client)
                        client.search_registered_models(max_results=1)  # the registry's tables exist too
                        self._restrict_embedded()
                    self._client = cast("MlflowClient", _ServerClient(client, self)) if self.is_server else client
                except (LoginError, PermissionDeniedError, StoreUnreachableError):
                    raise
                except Exception as exc:
                    first = (str(exc).strip().splitlines() or [""])[0]  # SQLAlchemy appends the SQL: one line
                    raise StoreError(f"cannot open the store at {self.uri}: {type(exc).__name__}: {first}") from exc
            return self._client

    @contextmanager
    def _first_use_lock(self) -> Iterator[None]:
        """Hold an exclusive lock beside an embedded store's database while it is opened.

        MLflow creates and migrates the schema on first use; two processes doing that at once fail
        ("table ... already exists"), so the first opening is serialized. Later openings find the
        schema in place and hold the lock for milliseconds.
        """
        if self._db is None:
            yield
            return
        self._db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._db.with_name(self._db.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _restrict_embedded(self) -> None:
        """Owner-only database and artifact folder for an embedded store (a no-op for a server)."""
        if self._db is None or self.artifact_root is None:
            return
        artifacts = local_path(self.artifact_root)
        if artifacts is None:
            return
        artifacts.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (artifacts, self._db):
            _owner_only(path)

    def _restrict_run(self, run_id: str) -> None:
        """Make a run's local artifacts owner-only (MLflow copies them with the process umask)."""
        local = self.local_artifacts(run_id)
        if local is None:
            return
        for path in (local.parent, local, *local.rglob("*")):  # <run>/artifacts/...
            _owner_only(path)

    def connect(self) -> None:
        """Open the store now (a bad location fails here, with a ``StoreError``)."""
        _ = self.client

    @property
    def experiment_id(self) -> str:
        _ = self.client
        if self._experiment_id is None:  # set together with the client
            raise StoreError(f"the store at {self.uri} has no {EXPERIMENT!r} experiment")
        return self._experiment_id

    def _ensure_experiment(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=self.artifact_root)
        except MlflowException:  # created concurrently by another process
            found = client.get_experiment_by_name(EXPERIMENT)
            if found is None:
                raise
            return found.experiment_id

    # -- writing -------------------------------------------------------------------------------

    def record_build(
        self,
        *,
        staging: Path,
        record: BuildRecord,
        register: bool,
        author: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Recorded:
        """Log one build as a run from the finished ``staging`` folder; register it if asked.

        The run holds the record (``handoff/record.json``), its parameters (and the notebook's own
        MLflow run's, prefixed ``notebook_run.``), metrics (a metric the notebook logged step by step
        keeps its steps) and tags. The run's artifacts are written first; the version is created
        last, so a version never points at a half-written run. If anything fails the run is marked
        failed and no version exists. ``author`` (default: ``self.user``) and ``tags``: for a build
        recorded again elsewhere (``handoff store copy``).
        """
        writes = self._writes()
        notebook_run = record.lineage.notebook_run
        metrics = record.metrics
        params = {
            **record.inputs.parameters,
            **{f"notebook_run.{k}": v for k, v in (notebook_run.params if notebook_run else {}).items()},
        }
        history = {k: v for k, v in (notebook_run.metric_history if notebook_run else {}).items() if k in metrics}
        run_id, artifact_uri = writes.create_run(
            f"{record.name}-build",
            {
                "handoff.model": record.name,
                "handoff.status": record.status,
                USER_TAG: author or self.user,
                **_tags(record),
                **(tags or {}),
            },
        )
        try:
            (staging / Path(RECORD_PATH).parent).mkdir(parents=True, exist_ok=True)
            (staging / RECORD_PATH).write_text(record.with_run(run_id).to_json())
            anchor = _write_digests(staging, record.status, metrics, history)
            now = int(datetime.now(tz=UTC).timestamp() * 1000)
            points = [MetricPoint(k, float(v), now, 0) for k, v in sorted(metrics.items()) if k not in history]
            points += [
                MetricPoint(k, float(v), int(ts), int(step))
                for k, steps in sorted(history.items())
                for step, v, ts in steps
            ]
            values = {k: (v if isinstance(v, str) else json.dumps(v))[:6000] for k, v in sorted(params.items())}
            writes.log(run_id, tags={DIGESTS_TAG: anchor}, params=values, metrics=points)
            writes.log_artifacts(run_id, staging)
            self._restrict_run(run_id)
            writes.terminate(run_id, "FINISHED" if register else "FAILED")
            if not register:
                return Recorded(run_id, None, artifact_uri, None)
            listing = listing_tag(record, values, author or self.user)
            version, created = writes.register(
                record.name,
                source=f"{artifact_uri}/{MODEL_DIR}",
                run_id=run_id,
                tags={
                    "handoff.status": record.status,
                    "handoff.metrics": json.dumps(dict(metrics), sort_keys=True)[:5000],
                    DIGESTS_TAG: anchor,
                    **({LISTING_TAG: listing} if listing else {}),  # too long: none (a listing reads the run)
                },
                model_tags={"handoff.model": "true"},
            )
            return Recorded(run_id, version, artifact_uri, _iso(created))
        except Exception as exc:
            try:
                writes.log(
                    run_id,
                    tags={
                        "handoff.status": "failed",
                        "handoff.error": f"record failed: {type(exc).__name__}: {exc}"[:5000],
                    },
                )
                writes.terminate(run_id, "FAILED")
            finally:
                raise StoreError(f"recording the build failed: {type(exc).__name__}: {exc}") from exc

    def _writes(self) -> SqliteWriter | _ClientWrites:
        """How a build is written: straight into an embedded store's database (``handoff.sqlwrite``,
        no MLflow import) when its schema is the one known there, else through MLflow's client."""
        if self._db is not None and self._direct:
            writer = SqliteWriter.open(self._db, EXPERIMENT)
            if writer is not None:
                return writer
        return _ClientWrites(self.client, self.experiment_id)

    def prepare_writes(self) -> None:
        """Make sure a build can be recorded (a bad location fails here, with a ``StoreError``): a
        store written directly needs nothing more; any other opens MLflow's client."""
        self._writes()

    def log_package(self, run_id: str, zip_path: Path, sha256: str) -> None:
        """Keep a version's package (and its digest, as a file and a run tag) with its run, so export is a copy."""
        writes = self._writes()
        writes.log_artifacts(run_id, zip_path, PACKAGE_DIR)
        digest = zip_path.with_name(zip_path.name + ".sha256")
        digest.write_text(f"{sha256}  {zip_path.name}\n")
        writes.log_artifacts(run_id, digest, PACKAGE_DIR)
        writes.log(run_id, tags={PACKAGE_TAG: sha256})
        self._restrict_run(run_id)

    def run_tags(self, run_id: str) -> dict[str, str]:
        """A run's tags (e.g. ``handoff.copied_from`` on a copied version's run)."""
        return dict(self._get_run(run_id).data.tags)

    def package_sha256(self, run_id: str) -> str | None:
        """The sha256 recorded when the version's package was stored (``None``: not stored yet)."""
        recorded: str | None = self._get_run(run_id).data.tags.get(PACKAGE_TAG)
        return recorded

    def needs_setup(self) -> bool:
        """Whether opening this store writes its schema: an embedded store whose database does not exist
        yet (or has a schema not read here). MLflow creates it in many statements, so a process killed
        meanwhile leaves a store that no longer opens: a build does this before anything runs."""
        if self._db is None:
            return False
        from handoff.sqlstore import SqliteReader

        with SqliteReader.open(self._db) as reader:
            return reader is None

    # -- reading -------------------------------------------------------------------------------

    @contextmanager
    def _sql(self) -> Iterator[SqliteReader | None]:
        """A direct reader of an embedded store's database for the ``with`` block (``handoff.sqlstore``:
        no MLflow import, fresh on every call); ``None``: read through the client (a server, or a
        database that does not exist yet or whose schema is not the one read there)."""
        if self._db is None or not self._direct:
            yield None
            return
        from handoff.sqlstore import SqliteReader

        try:
            with SqliteReader.open(self._db) as reader:
                yield reader
        except sqlite3.Error as exc:  # e.g. locked by a writer for longer than the timeout
            raise StoreError(f"cannot read the store at {self.uri}: {type(exc).__name__}: {exc}") from exc

    def _get_run(self, run_id: str) -> Any:
        """The run (``info``: id, artifact URI, user; ``data``: tags, params, latest metrics)."""
        with self._sql() as sql:
            if sql is not None:
                run = sql.run(run_id)
                if run is None:
                    raise StoreError(f"run {run_id} is not in the store at {self.uri}")
                return run
        return self.client.get_run(run_id)

    def _metric_history(self, run_id: str, key: str) -> list[float]:
        with self._sql() as sql:
            if sql is not None:
                return sql.metric_history(run_id, key)
        return [m.value for m in self.client.get_metric_history(run_id, key)]

    def _model_version(self, name: str, number: int) -> Any:
        """The registered model version (with its tags and aliases), or ``None``."""
        with self._sql() as sql:
            if sql is not None:
                return sql.version(name, number)
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(name, str(number))
        except MlflowException:
            return None

    def list_models(self) -> list[str]:
        """Names of the models handoff has versions of, sorted."""
        with self._sql() as sql:
            if sql is not None:
                return sorted(sql.model_names())
        return sorted(m.name for m in self.client.search_registered_models(max_results=1000))

    def list_versions(self, name: str | None = None, *, include_archived: bool = True) -> list[VersionRecord]:
        """Versions of one model (or of all), oldest first within each model, models by name.

        Cheap at thousands of versions: one search of the model versions (whose ``handoff.listing``
        tag holds the parameters, notebook, duration and author) and one of the registered models
        (their aliases, which version searches omit); versions recorded before that tag take those
        from one search of the build runs, joined here. No artifact is read, nothing is verified.
        ``include_archived=False`` leaves out archived versions (what the faces list by default).

        Raises:
            VersionNotFoundError: ``name`` is given and no such model exists.
        """
        found = self._model_versions(name)
        if name and not found:
            self._require_model(name)
        held = self._aliases(name)
        listed = {(mv.name, mv.version): _listing_fields(mv) for mv in found}
        runs = self._build_runs(name) if any(v is None for v in listed.values()) else {}  # recorded before the tag
        records = [
            self._to_record(
                mv,
                aliases=held.get((mv.name, int(mv.version)), ()),
                run=runs.get(mv.run_id),
                listed=listed[(mv.name, mv.version)],
            )
            for mv in found
        ]
        if not include_archived:
            records = [r for r in records if not r.archived]
        return sorted(records, key=lambda r: (r.name, r.version))

    def _model_versions(self, name: str | None) -> list[Any]:
        """Every version of one model (or of all), with its tags; in no particular order."""
        query = f"name = {_quoted(name)}" if name else ""  # a name no filter can hold fails alike
        with self._sql() as sql:
            if sql is not None:
                return sql.versions(name or None)
        return self._search_model_versions(query)

    def _search_model_versions(self, query: str) -> list[Any]:
        versions: list[Any] = []
        token = None
        while True:
            page = self.client.search_model_versions(query, max_results=10000, page_token=token)
            versions.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return versions

    def _aliases(self, name: str | None) -> dict[tuple[str, int], tuple[str, ...]]:
        """(model, version) -> the aliases pointing at it, from one read of the registered models."""
        with self._sql() as sql:
            if sql is not None:
                return sql.aliases(name or None)
        from mlflow.exceptions import MlflowException

        models: list[Any] = []
        try:
            if name:
                models = [self.client.get_registered_model(name)]
            else:
                token = None
                while True:
                    page = self.client.search_registered_models(max_results=1000, page_token=token)
                    models.extend(page)
                    token = getattr(page, "token", None)
                    if not token:
                        break
        except MlflowException:
            return {}
        held: dict[tuple[str, int], list[str]] = {}
        for model in models:
            for alias, number in (model.aliases or {}).items():
                held.setdefault((model.name, int(number)), []).append(alias)
        return {key: tuple(sorted(aliases)) for key, aliases in held.items()}

    def _build_runs(self, name: str | None) -> dict[str, Any]:
        """run id -> the build run (its params and tags come with it), from one search of the experiment."""
        query = f"tags.`handoff.model` = {_quoted(name)}" if name else ""
        with self._sql() as sql:
            if sql is not None:
                found = sql.search_runs(EXPERIMENT, {"handoff.model": name} if name else {})
                return {r.info.run_id: r for r in found}
        runs: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=query, max_results=50000, page_token=token
            )
            runs.update((r.info.run_id, r) for r in page)
            token = getattr(page, "token", None)
            if not token:
                return runs

    def require_model(self, name: str) -> None:
        """Raise ``VersionNotFoundError`` unless the store has a model of this name (reads no version)."""
        self._require_model(name)

    def _require_model(self, name: str) -> None:
        if name not in self.list_models():
            known = ", ".join(self.list_models()) or "none yet"
            raise VersionNotFoundError(f"no model named {name!r} in {self}; models: {known}")

    def _to_record(
        self,
        mv: Any,
        record: BuildRecord | None = None,
        *,
        aliases: tuple[str, ...] | None = None,
        run: Any = None,
        listed: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """A ``VersionRecord`` from an MLflow ``ModelVersion``: its listing fields from its
        ``handoff.listing`` tag (``listed``, when already parsed), else from its build run."""
        tags = dict(mv.tags or {})
        metrics: dict[str, float] = json.loads(tags.get("handoff.metrics", "{}"))
        if record is not None:  # the record keeps the order the notebook reported them in
            metrics = {k: metrics[k] for k in record.metrics if k in metrics} | metrics
        fields = dict(listed or _listing_fields(mv) or (_run_fields(run) if run is not None else {}))
        if fields:
            order = fields.pop("metric_order")
            metrics = {k: metrics[k] for k in order if k in metrics} | metrics
        return VersionRecord(
            name=mv.name,
            version=int(mv.version),
            status=tags.get("handoff.status", "passed"),
            created=_iso(mv.creation_timestamp),
            run_id=mv.run_id,
            metrics=metrics,
            aliases=aliases if aliases is not None else tuple(sorted(getattr(mv, "aliases", []) or [])),
            model_uri=mv.source,
            record=record,
            archived=tags.get(ARCHIVED_TAG) == "true",
            **fields,
        )

    def get_version(self, name: str, version: int | str, *, verify: bool = True) -> VersionRecord:
        """One version with its full build record, verified against its digests unless ``verify`` is False.

        Raises:
            VersionNotFoundError: no such model or version.
            TamperedError: an artifact, the record, the metrics or the status changed after recording.
        """
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise VersionNotFoundError(f"version must be a number, got {version!r}") from None
        mv = self._model_version(name, number)
        if mv is None:
            self._require_model(name)
            latest = max((int(v.version) for v in self._model_versions(name)), default=0)
            raise VersionNotFoundError(f"model {name!r} has no version {number} (latest is {latest})")
        problems = self.integrity_problems(mv) if verify else []
        if problems:
            raise TamperedError(name, number, problems)
        if mv.run_id is None:
            raise StoreError(f"{name} version {number} has no MLflow run: it was not built by handoff")
        record = self.read_record(mv.run_id)
        return self._to_record(mv, record=record, run=None if _listing_fields(mv) else self._get_run(mv.run_id))

    def integrity_problems(self, mv: Any) -> list[str]:
        """What of a model version (an MLflow ``ModelVersion``) differs from what was recorded.

        Empty when intact, or when it was recorded before handoff kept digests (no digests file and
        no tag). Compares: the digests file against the tags holding its sha256; every artifact
        listed in it (files added to the run beside them are reported too, for a local store); the
        stored package against its recorded sha256; the metrics MLflow returns (latest values and
        full history) and the version's metrics and status tags against the recorded ones.
        """
        run = self._get_run(mv.run_id)
        local = local_path(run.info.artifact_uri)
        with tempfile.TemporaryDirectory(prefix="handoff-verify-") as tmp:
            if local is None and self.is_server:  # one download of the whole run, then checked as a local one
                local = self._download(mv.run_id, run.info.artifact_uri, "", Path(tmp))
            return self._problems(mv, run, local)

    def _problems(self, mv: Any, run: Any, local: Path | None) -> list[str]:
        from handoff.package import package_name

        tags = dict(mv.tags or {})
        anchors = {a for a in (run.data.tags.get(DIGESTS_TAG), tags.get(DIGESTS_TAG)) if a}
        raw = self._artifact_bytes(mv.run_id, DIGESTS_PATH, local)
        if not anchors:
            return [] if raw is None else [f"the {DIGESTS_TAG} tags were removed"]
        if raw is None or anchors != {hashlib.sha256(raw).hexdigest()}:
            return [f"{DIGESTS_PATH} {'is missing' if raw is None else 'differs'}"]
        digests = json.loads(raw)
        problems = []
        for path, digest in sorted(digests["files"].items()):
            actual = self._artifact_sha256(mv.run_id, path, local)
            if actual != digest:
                problems.append(f"{path} {'is missing' if actual is None else 'differs'}")
        if local is not None:  # later additions are re-check reports and the package, nothing else
            present = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
            later = (f"{RECHECKS_DIR}/", f"{PACKAGE_DIR}/")
            problems += [
                f"{rel} was added"
                for rel in present
                if rel not in digests["files"] and rel != DIGESTS_PATH and not rel.startswith(later)
            ]
        package = run.data.tags.get(PACKAGE_TAG)
        zip_path = f"{PACKAGE_DIR}/{package_name(mv.name, int(mv.version))}.zip"
        if package and self._artifact_sha256(mv.run_id, zip_path, local) not in (package, None):
            problems.append(f"{zip_path} differs")  # a missing package is rebuilt, and checked, on export
        want = digests["metrics"]
        try:
            tagged = json.loads(tags.get("handoff.metrics", "{}"))
        except ValueError:  # cut at the tag's length limit: the recorded metrics still hold
            tagged = want
        stepped = digests.get("history", {})
        for key in sorted({*want, *run.data.metrics, *tagged}):
            history = self._metric_history(mv.run_id, key)
            latest = (run.data.metrics.get(key), tagged.get(key))
            if any(v != want.get(key) for v in latest) or (
                sorted(history) != stepped[key] if key in stepped else any(v != want.get(key) for v in history)
            ):
                problems.append(f"metric {key} differs")
        if tags.get("handoff.status") != digests["status"]:
            problems.append("status differs")
        return problems

    def _artifact_bytes(self, run_id: str, path: str, local: Path | None) -> bytes | None:
        try:
            return (local / path).read_bytes() if local is not None else self.read_artifact(run_id, path)
        except Exception:  # missing here, or a remote store's download error: the artifact is not there
            return None

    def _artifact_sha256(self, run_id: str, path: str, local: Path | None) -> str | None:
        if local is not None:
            return sha256_file(local / path) if (local / path).is_file() else None
        data = self._artifact_bytes(run_id, path, None)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def read_record(self, run_id: str) -> BuildRecord:
        """The build record (``handoff/record.json``) logged with a run, of any schema version.

        Raises:
            StoreError: it is missing or is not a build record.
        """
        from handoff.record import BuildRecord

        raw = self.read_artifact(run_id, RECORD_PATH)
        try:
            return BuildRecord.from_dict(json.loads(raw))
        except ValueError as exc:  # not JSON, or pydantic's ValidationError
            raise StoreError(f"the build record of run {run_id} cannot be read: {exc}") from exc

    def local_artifacts(self, run_id: str) -> Path | None:
        """The run's artifact folder when the store keeps it on this machine, else ``None``."""
        return local_path(self._get_run(run_id).info.artifact_uri)

    def download_artifacts(self, run_id: str, path: str, target: Path) -> Path:
        """A local copy of an artifact (file or folder) of a run; in place for a local store."""
        artifact_uri = self._get_run(run_id).info.artifact_uri
        local = local_path(artifact_uri)
        if local is not None:
            return local / path
        return self._download(run_id, artifact_uri, path, target)

    def _download(self, run_id: str, artifact_uri: str, path: str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        if not self.is_server:
            return Path(self.client.download_artifacts(run_id, path, str(target)))
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        from handoff.credentials import ContextExecutor

        repo = get_artifact_repository(artifact_uri, tracking_uri=self.uri)
        repo.thread_pool = ContextExecutor(max_workers=4)  # MLflow downloads on a pool: as this user too
        try:
            with self.acting():
                return Path(repo.download_artifacts(path, str(target)))
        finally:
            repo.thread_pool.shutdown()

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one artifact of a run (read in place for a local store)."""
        artifact_uri = self._get_run(run_id).info.artifact_uri
        local = local_path(artifact_uri)
        if local is not None:
            try:
                return (local / path).read_bytes()
            except OSError as exc:
                raise StoreError(f"artifact {path} of run {run_id} is missing: {exc}") from exc
        with tempfile.TemporaryDirectory(prefix="handoff-read-") as tmp:
            return self._download(run_id, artifact_uri, path, Path(tmp)).read_bytes()

    def alias_version(self, name: str, alias: str = "champion") -> VersionRecord | None:
        """The version an alias points at, or ``None`` (no such model or alias)."""
        with self._sql() as sql:
            if sql is not None:
                number = sql.alias_target(name, alias)
                mv = None if number is None else sql.version(name, number)
                return None if mv is None else self._to_record(mv)
        from mlflow.exceptions import MlflowException

        try:
            return self._to_record(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def add_check_report(self, run_id: str, directory: Path, stamp: str | None = None) -> str:
        """Keep a re-check's report beside the original (never replacing it); returns its artifact path.
        ``stamp``: the folder's name when the report is copied from another store (default: now)."""
        stamp = stamp or datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = f"{RECHECKS_DIR}/{stamp}"
        self.client.log_artifacts(run_id, str(directory), path)
        self._restrict_run(run_id)
        return path

    def check_reports(self, run_id: str) -> list[dict[str, Any]]:
        """The build's checklist report first, then every re-check's, oldest first."""
        reports = []
        try:
            reports.append(json.loads(self.read_artifact(run_id, CHECK_REPORT)))
        except StoreError:
            pass
        local = self.local_artifacts(run_id)
        if local is None:
            paths = [e.path for e in self.client.list_artifacts(run_id, RECHECKS_DIR)]
        else:  # as MLflow lists a local folder, without opening MLflow
            folder = local / RECHECKS_DIR
            paths = [f"{RECHECKS_DIR}/{p.name}" for p in folder.iterdir()] if folder.is_dir() else []
        for path in sorted(paths):
            reports.append(json.loads(self.read_artifact(run_id, f"{path}/report.json")))
        return reports

    # -- aliases and their audit history ----------------------------------------------------

    def move_alias(
        self, name: str, alias: str, version: int, *, kind: str, previous: int | None, by: str, reason: str | None
    ) -> dict[str, Any]:
        """Point ``alias`` at ``version`` and append the move to the audit history.

        MLflow keeps no history of alias moves, so each move is also an MLflow run in the
        ``handoff-audit`` experiment: append-only, and readable from any tracking backend.
        """
        from mlflow.exceptions import MlflowException

        def move() -> None:
            try:
                self.client.set_registered_model_alias(name, alias, str(version))
            except MlflowException as exc:  # MLflow's own rules for alias names: bad input, not a broken store
                if exc.error_code != "INVALID_PARAMETER_VALUE":
                    raise
                raise OptionError(exc.message) from None

        now = datetime.now(tz=UTC)
        entry = {
            "model": name,
            "alias": alias,
            "kind": kind,
            "from_version": previous,
            "to_version": version,
            "by": by,
            "reason": reason or "",
            "time": now.isoformat(timespec="seconds"),
        }
        return self._audited(entry, f"{name}:{alias}->{version}", now, move)

    def set_archived(self, name: str, version: int, archived: bool, *, by: str, reason: str | None) -> dict[str, Any]:
        """Archive (tag ``handoff.archived``) or unarchive a version and append that to the audit history.

        Only the tag changes: the version, its run and artifacts stay as recorded (the tamper check
        ignores this tag), so an archived version is still read, exported and verified as before.
        """

        def change() -> None:
            if archived:
                self.client.set_model_version_tag(name, str(version), ARCHIVED_TAG, "true")
            else:
                self.client.delete_model_version_tag(name, str(version), ARCHIVED_TAG)

        now = datetime.now(tz=UTC)
        entry: dict[str, Any] = {
            "model": name,
            "alias": "",  # not an alias move: alias_stack and per-alias histories pass it by
            "kind": "archive" if archived else "unarchive",
            "from_version": None,
            "to_version": version,
            "by": by,
            "reason": reason or "",
            "time": now.isoformat(timespec="seconds"),
        }
        return self._audited(entry, f"{name}:{entry['kind']}:{version}", now, change)

    def copy_history_entry(self, entry: Mapping[str, Any]) -> None:
        """Append an audit entry as another store recorded it (``handoff store copy``): who and when
        are kept; nothing else changes."""
        self._audited(dict(entry), f"{entry['model']}:copied", datetime.fromisoformat(entry["time"]), lambda: None)

    def _audited(
        self, entry: dict[str, Any], run_name: str, now: datetime, change: Callable[[], None]
    ) -> dict[str, Any]:
        """Make ``change`` with its audit-history entry, a run of the ``handoff-audit`` experiment.

        The entry's run is created first, untagged: a server refuses it to a user who may not write
        the history (a builder: ``docs/roles.md``), so such a user changes nothing. Its tags, which
        make it part of the history, follow the change; a failed change leaves a failed, untagged run.
        """
        from mlflow.entities import RunTag

        try:
            run = self.client.create_run(
                self._audit_experiment(), run_name=run_name, start_time=int(now.timestamp() * 1000)
            )
        except PermissionDeniedError:
            raise PermissionDeniedError(
                f"{self.user!r} needs releaser rights on model `{entry['model']}` to {entry['kind']} on {self.uri}"
            ) from None
        run_id = run.info.run_id
        try:
            change()
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        tags = [RunTag(f"handoff.audit.{k}", "" if v is None else str(v)) for k, v in entry.items()]
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, "FINISHED")
        return entry

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every recorded alias move of a model, oldest first."""
        query = f"tags.`handoff.audit.model` = {_quoted(name)}"
        if alias:
            query += f" and tags.`handoff.audit.alias` = {_quoted(alias)}"
        runs: list[Any]
        with self._sql() as sql:
            if sql is not None:
                wanted = {"handoff.audit.model": name, **({"handoff.audit.alias": alias} if alias else {})}
                runs = sql.search_runs(AUDIT_EXPERIMENT, wanted)[:5000]
        if sql is None:
            runs = self.client.search_runs(
                [self._audit_experiment()],
                filter_string=query,
                max_results=5000,
                order_by=["attributes.start_time ASC"],
            )
        entries = []
        for run in runs:
            tags = run.data.tags
            entry: dict[str, Any] = {
                k.removeprefix("handoff.audit."): v for k, v in tags.items() if k.startswith("handoff.audit.")
            }
            for key in ("from_version", "to_version"):
                entry[key] = int(entry[key]) if entry.get(key) else None
            entries.append(entry)
        return entries

    def _audit_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(AUDIT_EXPERIMENT, artifact_location=self.artifact_root)
        except MlflowException:
            found = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
            if found is None:
                raise
            return found.experiment_id

    def list_builds(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every build run (passed and failed), newest first, as plain dicts."""
        query = f"tags.`handoff.model` = {_quoted(name)}" if name else ""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=query, max_results=1000, order_by=["attributes.start_time DESC"]
        )
        return [
            {
                "run_id": r.info.run_id,
                "name": r.data.tags.get("handoff.model"),
                "status": r.data.tags.get("handoff.status"),
                "error": r.data.tags.get("handoff.error"),
                "started": _iso(r.info.start_time),
            }
            for r in runs
        ]


def _tags(record: BuildRecord) -> dict[str, str]:
    """The run's tags: what listing and searching in MLflow's own UI need without reading artifacts."""
    model, checks, error = record.outputs.model, record.outputs.checks, record.error
    notebook = record.inputs.notebook
    tags = {
        "handoff.version": record.handoff_version,
        "handoff.notebook_sha256": record.inputs.notebook.sha256,
        "handoff.data_sha256": record.outputs.data.sha256,
        "handoff.kernel": record.inputs.kernel,
        NOTEBOOK_TAG: Path(notebook.path).name if notebook.path else notebook.name,
        METRIC_ORDER_TAG: json.dumps(list(record.metrics))[:5000],
        **{f"handoff.timing.{k}": f"{v:.3f}" for k, v in record.timings.items()},
    }
    if checks is not None:
        tags["handoff.checks"] = checks.summary
    if model is not None:
        tags["handoff.model_var"] = str(model.variable)
        if model.saved is not None:
            tags["handoff.serialization"] = model.saved.format
    if error is not None:
        tags["handoff.error"] = error.message[:5000]
        tags["handoff.failed_stage"] = error.stage
    sweep = _sweep_of(record.inputs.options)
    if sweep:
        tags[SWEEP_TAG] = sweep["sweep"]
        if sweep["sweep_point"] is not None:
            tags[SWEEP_POINT_TAG] = str(sweep["sweep_point"])
    return tags


SORT_KEYS = ("created", "model", "version", "status", "duration", "author", "notebook")


def matches(version: VersionRecord, text: str) -> bool:
    """Whether ``text`` (case-insensitive) is in the version's model, notebook, author or a parameter
    (its name, value, or ``name=value``): what a search box over versions looks in."""
    needle = text.strip().lower()
    if not needle:
        return True
    haystack = [version.name, version.notebook or "", version.author or ""]
    haystack += [f"{k}={v}" for k, v in version.params.items()]
    return any(needle in h.lower() for h in haystack)


@dataclass(frozen=True)
class MetricRange:
    """Versions whose ``metric`` lies between ``low`` and ``high`` (both inclusive, either open when
    ``None``): how one finds "accuracy at least 0.9" among thousands of versions. A version that did
    not report the metric is outside every range.

    Attributes:
        metric: The metric's name, as the notebook reported it.
        low: The smallest value kept, or ``None`` for no lower bound.
        high: The largest value kept, or ``None`` for no upper bound.
    """

    metric: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise OptionError(f"the range of {self.metric} is empty: min {self.low:g} is above max {self.high:g}")

    def holds(self, version: VersionRecord) -> bool:
        value = version.metrics.get(self.metric)
        if value is None or value != value:  # not reported, or NaN
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def filter_versions(
    versions: list[VersionRecord],
    *,
    status: str | None = None,
    alias: str | None = None,
    search: str | None = None,
    metric_range: MetricRange | None = None,
    sweep: str | None = None,
) -> list[VersionRecord]:
    """The versions with this status, holding this alias, matching this search, with a metric in
    this range and built in this sweep (each optional)."""
    return [
        v
        for v in versions
        if (status is None or v.status == status)
        and (sweep is None or v.sweep == sweep)
        and (alias is None or alias in v.aliases)
        and (search is None or matches(v, search))
        and (metric_range is None or metric_range.holds(v))
    ]


def sort_versions(
    versions: list[VersionRecord], key: str = "created", *, descending: bool = False
) -> list[VersionRecord]:
    """The versions ordered by one of ``SORT_KEYS`` (ties by model and version); unknown values last.

    Raises:
        OptionError: ``key`` is not one of ``SORT_KEYS``.
    """
    if key not in SORT_KEYS:
        raise OptionError(f"cannot sort versions by {key!r}; choose one of: {', '.join(SORT_KEYS)}")
    field_name = "name" if key == "model" else key
    known = [v for v in versions if getattr(v, field_name) is not None]
    unknown = [v for v in versions if getattr(v, field_name) is None]
    known.sort(key=lambda v: (getattr(v, field_name), v.name, v.version), reverse=descending)
    return known + sorted(unknown, key=lambda v: (v.name, v.version))


def _duration(timings: Mapping[str, float]) -> float | None:
    """The build's seconds up to recording: its stages' timings added up (``total`` is not known yet)."""
    from handoff.record import PART_TIMINGS

    stages = [float(v) for k, v in timings.items() if k not in PART_TIMINGS]
    return round(sum(stages), 3) if stages else None


def listing_tag(record: BuildRecord, params: Mapping[str, str], author: str) -> str:
    """The ``handoff.listing`` tag of a new version: what a listing shows of its run (parameters,
    notebook, duration, author, metric order), so listing thousands of versions reads no run.
    Parameters that do not fit MLflow's 5,000 characters are left out (listing then reads the run)."""
    notebook = record.inputs.notebook
    fields: dict[str, Any] = {
        "notebook": Path(notebook.path).name if notebook.path else notebook.name,
        "duration": _duration(record.timings),
        "author": author,
        "metric_order": list(record.metrics),
        "params": {k: v for k, v in params.items() if not k.startswith("notebook_run.")},
    }
    sweep = _sweep_of(record.inputs.options)
    if sweep:
        fields |= sweep
    text = json.dumps(fields, sort_keys=True)
    return text if len(text) <= 5000 else ""


def _listing_fields(mv: Any) -> dict[str, Any] | None:
    """The listing fields from a version's ``handoff.listing`` tag; ``None`` when it has none (or a cut one)."""
    raw = (mv.tags or {}).get(LISTING_TAG)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    author = data.get("author")
    return {
        "metric_order": [str(k) for k in data.get("metric_order", [])],
        "params": {str(k): str(v) for k, v in data.get("params", {}).items()},
        "notebook": data.get("notebook"),
        "duration": data.get("duration"),
        "author": author if author and author != "unknown" else None,
        "sweep": data.get("sweep"),
        "sweep_point": data.get("sweep_point"),
    }


def _sweep_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"sweep": ID, "sweep_point": N}`` for a sweep's point (its build options), else empty."""
    return {"sweep": options["sweep"], "sweep_point": options.get("sweep_point")} if options.get("sweep") else {}


def _run_fields(run: Any) -> dict[str, Any]:
    """What a listing shows of a version's build run: its parameters, notebook, duration and author."""
    from handoff.record import PART_TIMINGS

    tags: dict[str, str] = run.data.tags
    timings = []
    for key, value in tags.items():
        if key.startswith("handoff.timing.") and key.removeprefix("handoff.timing.") not in PART_TIMINGS:
            try:
                timings.append(float(value))
            except ValueError:
                pass
    author = tags.get(USER_TAG) or run.info.user_id
    try:
        order = [str(k) for k in json.loads(tags.get(METRIC_ORDER_TAG, "[]"))]
    except ValueError:  # cut at the tag's length limit
        order = []
    return {
        "metric_order": order,
        "params": {k: v for k, v in run.data.params.items() if not k.startswith("notebook_run.")},
        "notebook": tags.get(NOTEBOOK_TAG),
        "duration": round(sum(timings), 3) if timings else None,
        "author": author if author and author != "unknown" else None,
        "sweep": tags.get(SWEEP_TAG),
        "sweep_point": int(tags[SWEEP_POINT_TAG]) if tags.get(SWEEP_POINT_TAG, "").isdigit() else None,
    }


def _user() -> str:
    """The OS user building (recorded as the run's ``mlflow.user``, as MLflow's fluent API does)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def store_revision(store: Store) -> tuple[int, ...] | None:
    """A value that changes whenever an embedded store's database is written, so that what was read
    from it can be cached under it and never shown once the store has moved on (a version recorded
    by another process is in the next read); ``None`` for a server's store, which cannot tell as cheaply
    (read it every time).

    It is SQLite's file change counter (bytes 24-27 of the header, bumped by every committed write in
    rollback-journal mode, MLflow's) with the database's and its write-ahead log's size, mtime and
    inode (WAL mode leaves the counter alone; a file replaced by a copy has another inode). Costs two
    ``stat`` calls and a 28-byte read.
    """
    db = sqlite_path(store.uri)
    if db is None:
        return None
    key: list[int] = []
    for path in (db, db.with_name(db.name + "-wal")):
        try:
            info = path.stat()
        except OSError:  # not made yet (a new store), or no log (rollback-journal mode)
            key += [-1, -1, -1]
            continue
        key += [info.st_mtime_ns, info.st_size, info.st_ino]
    try:
        with db.open("rb") as file:
            header = file.read(28)
    except OSError:
        header = b""
    key.append(int.from_bytes(header[24:28], "big") if len(header) == 28 else -1)
    return tuple(key)


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """A ``Store`` for a directory, an MLflow tracking URI, or (``None``) ``HANDOFF_HOME``."""
    return Store(location)


_UNREACHABLE = ("Max retries exceeded", "Connection refused", "NewConnectionError", "ConnectionError", "timed out")


@contextmanager
def translate_server_error(uri: str) -> Iterator[None]:
    """A tracking server's refusals as handoff errors that say who, what and where, in one sentence."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        who = current_credentials()
        message = str(exc.message)
        if exc.error_code == "UNAUTHENTICATED":
            if who is None:
                raise LoginError(f"the store at {uri} needs a login: set HANDOFF_USER and HANDOFF_PASSWORD") from None
            raise LoginError(
                f"the store at {uri} refused the login of {who.username!r}: wrong user name or password"
            ) from None
        if exc.error_code == "PERMISSION_DENIED":
            user = repr(who.username) if who else "this user"
            raise PermissionDeniedError(f"{user} has no permission for this on the store at {uri}") from None
        if "failed with exception" in message and any(s in message for s in _UNREACHABLE):
            raise StoreUnreachableError(f"store unreachable: nothing answers at {uri}") from None
        raise


class _ServerClient:
    """MLflow's client for a tracking server, every call made as the store's user (``Store.acting``)."""

    def __init__(self, client: MlflowClient, store: Store) -> None:
        self._client, self._store = client, store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._store.acting():
                return attr(*args, **kwargs)

        return call


class _ClientWrites:
    """A build's writes through MLflow's client (a server store, or a schema ``SqliteWriter`` does
    not know): the same calls as ``handoff.sqlwrite.SqliteWriter``."""

    def __init__(self, client: MlflowClient, experiment_id: str) -> None:
        self.client, self.experiment_id = client, experiment_id

    def create_run(self, run_name: str, tags: Mapping[str, str]) -> tuple[str, str]:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        return run.info.run_id, run.info.artifact_uri

    def log(
        self,
        run_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        tagged = [RunTag(k, v) for k, v in (tags or {}).items()]
        values = [Param(k, v) for k, v in (params or {}).items()]
        points = [Metric(p.key, p.value, p.timestamp, p.step) for p in metrics]
        for start in range(0, max(len(tagged), len(values), len(points), 1), 100):  # MLflow's per-batch limits
            self.client.log_batch(
                run_id,
                metrics=points[start : start + 100],
                params=values[start : start + 100],
                tags=tagged[start : start + 100],
            )

    def log_artifacts(self, run_id: str, source: Path, path: str | None = None) -> None:
        if source.is_file():
            self.client.log_artifact(run_id, str(source), path)
        else:
            self.client.log_artifacts(run_id, str(source), path)

    def terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def register(
        self, name: str, *, source: str, run_id: str, tags: Mapping[str, str], model_tags: Mapping[str, str]
    ) -> tuple[int, int]:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name, tags=dict(model_tags))
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                raise
        version = self.client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags))
        return int(version.version), int(version.creation_timestamp)
