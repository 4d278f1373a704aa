"""A build's writes to an embedded store straight into its SQLite file, without importing MLflow.

Recording a build through MLflow's client meant importing it (about 1.6 s of CPU) in every build
process, beside the running notebook. The writes a build makes are few: a run with its tags,
params and metrics, its artifacts copied into the run's folder, the run's end, and a registered
model version with its tags. ``SqliteWriter`` writes the same rows MLflow's SQLAlchemy store writes
for those calls (``create_run``, ``log_batch``, ``set_terminated``, ``create_registered_model``,
``create_model_version``; ``tests/test_store_writes.py`` compares the two, table by table), with
the same limits on names and values, each call one transaction (``BEGIN IMMEDIATE``: the version
number is taken and inserted under SQLite's write lock, as MLflow's own retry loop ensures).

Only for the schema it was written against: ``SqliteWriter.open`` returns ``None`` for another
MLflow schema revision, a store that has no ``handoff`` experiment yet, a named MLflow workspace or
a database that does not exist: MLflow's client then writes, creating or migrating the schema.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from handoff.errors import StoreError
from handoff.uris import local_path

#: MLflow's schema revisions (``alembic_version``) the rows below were checked against.
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
#: MLflow's limits (``mlflow.utils.validation``): longer keys or values are refused, not cut.
MAX_KEY, MAX_PARAM, MAX_TAG, MAX_VERSION_TAG = 250, 6000, 8000, 100000
_KEY = re.compile(r"^[/\w.\- :]*$")
_MAX_FLOAT = 1.7976931348623157e308  # what MLflow stores for an infinite metric


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(kind: str, key: str) -> None:
    if not key or len(key) > MAX_KEY or not _KEY.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise StoreError(
            f"invalid {kind} name {key[:80]!r} (MLflow's rules: at most {MAX_KEY} of A-z 0-9 _ - . / : and spaces)"
        )


def _check_value(kind: str, key: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise StoreError(f"the {kind} {key!r} is {len(value)} characters long; MLflow allows {limit}")


class SqliteWriter:
    """One embedded store's database, written as MLflow's SQLAlchemy store writes it (see above)."""

    def __init__(self, db: Path, experiment_id: int, artifact_location: str, artifact_root: Path) -> None:
        self.db, self.experiment_id, self.artifact_location = db, experiment_id, artifact_location
        self.artifact_root = artifact_root  # where artifact_location is on this machine

    @classmethod
    def open(cls, db: Path, experiment: str) -> SqliteWriter | None:
        """A writer for ``db`` whose active experiment ``experiment`` holds the runs; ``None`` when
        MLflow's client must write instead (see the module docstring)."""
        if os.environ.get("MLFLOW_WORKSPACE") or not db.is_file():
            return None
        try:
            with closing(sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=30)) as sql:
                revision = sql.execute("SELECT version_num FROM alembic_version").fetchone()
                found = sql.execute(
                    "SELECT experiment_id, artifact_location FROM experiments "
                    "WHERE name = ? AND workspace = 'default' AND lifecycle_stage = 'active'",
                    (experiment,),
                ).fetchone()
        except sqlite3.Error:  # not a database, an unknown schema: the client says why
            return None
        root = local_path(found[1]) if found is not None and found[1] else None
        if revision is None or revision[0] not in KNOWN_SCHEMAS or found is None or root is None:
            return None
        return cls(db, int(found[0]), str(found[1]), root)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.db, timeout=30, isolation_level=None)) as sql:
                sql.execute("PRAGMA foreign_keys = ON")
                sql.execute("BEGIN IMMEDIATE")
                try:
                    yield sql
                except BaseException:
                    sql.execute("ROLLBACK")
                    raise
                sql.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the store at {self.db.parent}: {type(exc).__name__}: {exc}") from exc

    # -- tracking ----------------------------------------------------------------------------------

    def create_run(self, run_name: str, tags: Mapping[str, str]) -> tuple[str, str]:
        """A new RUNNING run with ``tags`` (and ``mlflow.runName``); its id and artifact URI."""
        run_id = uuid.uuid4().hex
        artifact_uri = f"{self.artifact_location.rstrip('/')}/{run_id}/artifacts"
        tags = {**tags, RUN_NAME_TAG: tags.get(RUN_NAME_TAG, run_name)}
        self._check_tags(tags)
        with self._transaction() as sql:
            sql.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, NULL, '', 'active', ?, ?)",
                (run_id, run_name, tags.get(USER_TAG, "unknown"), now_ms(), artifact_uri, self.experiment_id),
            )
            sql.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", [(k, v, run_id) for k, v in tags.items()]
            )
        return run_id, artifact_uri

    def log(
        self,
        run_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        """Tags (set or replaced), params (new) and metric points of a run, with its latest metrics."""
        tags, params = dict(tags or {}), dict(params or {})
        self._check_tags(tags)
        for key, value in params.items():
            _check_key("param", key)
            _check_value("param value", key, value, MAX_PARAM)
        rows: list[tuple[str, float, int, int, int]] = []
        for point in metrics:
            _check_key("metric", point.key)
            is_nan = math.isnan(point.value)
            number = 0.0 if is_nan else max(-_MAX_FLOAT, min(_MAX_FLOAT, point.value))
            rows.append((point.key, number, point.timestamp, point.step, int(is_nan)))
        latest: dict[str, tuple[str, float, int, int, int]] = {}
        for row in rows:  # MLflow's rule: the latest is the greatest (step, timestamp, value)
            held = latest.get(row[0])
            if held is None or (row[3], row[2], row[1]) > (held[3], held[2], held[1]):
                latest[row[0]] = row
        with self._transaction() as sql:
            sql.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                [(k, v, run_id) for k, v in tags.items()],
            )
            sql.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in params.items()],
            )
            sql.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*row, run_id) for row in rows],
            )
            sql.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                [(*row, run_id) for row in latest.values()],
            )

    def terminate(self, run_id: str, status: str) -> None:
        with self._transaction() as sql:
            sql.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, now_ms(), run_id))

    def log_artifacts(self, run_id: str, source: Path, path: str | None = None) -> None:
        """Copy ``source`` (a folder, or one file) into the run's artifact folder (under ``path``), as
        MLflow's local artifact repository does (contents, not permissions)."""
        target = self.artifact_root / run_id / "artifacts"
        target = target / path if path else target
        target.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            shutil.copyfile(source, target / source.name)
            return
        for folder, _, files in os.walk(source):
            here = target / Path(folder).relative_to(source)
            here.mkdir(exist_ok=True)
            for name in files:
                shutil.copyfile(Path(folder) / name, here / name)

    @staticmethod
    def _check_tags(tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            _check_key("tag", key)
            _check_value("tag value", key, value, MAX_TAG)

    # -- the registry ------------------------------------------------------------------------------

    def register(
        self, name: str, *, source: str, run_id: str, tags: Mapping[str, str], model_tags: Mapping[str, str]
    ) -> tuple[int, int]:
        """The next version of ``name`` (the registered model made first if new, with ``model_tags``);
        its number and creation time (ms)."""
        for key, value in tags.items():
            _check_key("model version tag", key)
            _check_value("model version tag value", key, value, MAX_VERSION_TAG)
        created = now_ms()
        with self._transaction() as sql:
            if sql.execute(
                "SELECT 1 FROM registered_models WHERE name = ? AND workspace = 'default'", (name,)
            ).fetchone():
                sql.execute(
                    "UPDATE registered_models SET last_updated_time = ? WHERE name = ? AND workspace = 'default'",
                    (created, name),
                )
            else:
                sql.execute(
                    "INSERT INTO registered_models (name, creation_time, last_updated_time, description, workspace) "
                    "VALUES (?, ?, ?, NULL, 'default')",
                    (name, created, created),
                )
                sql.executemany(
                    "INSERT INTO registered_model_tags (key, value, name, workspace) VALUES (?, ?, ?, 'default')",
                    [(k, v, name) for k, v in model_tags.items()],
                )
            (highest,) = sql.execute(
                "SELECT MAX(version) FROM model_versions WHERE name = ? AND workspace = 'default'", (name,)
            ).fetchone()
            version = (highest or 0) + 1
            sql.execute(
                "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, "
                "current_stage, source, run_id, status, status_message, run_link, storage_location, workspace) "
                "VALUES (?, ?, ?, ?, NULL, NULL, 'None', ?, ?, 'READY', NULL, NULL, ?, 'default')",
                (name, version, created, created, source, run_id, source),
            )
            sql.executemany(
                "INSERT INTO model_version_tags (key, value, name, version, workspace) VALUES (?, ?, ?, ?, 'default')",
                [(k, v, name, version) for k, v in tags.items()],
            )
        return version, created
