"""Reads of an embedded store straight from its SQLite file, without importing MLflow.

Importing MLflow's client stack and opening a store with it costs seconds (its SQLAlchemy store,
its dataset registry, pandas), which every ``handoff list`` or ``show`` paid before answering. An
embedded store is one SQLite file in MLflow's schema, so its reads are a few SQL queries with the
standard ``sqlite3`` module, read-only (``mode=ro``): nothing here writes, creates or migrates.

Every call opens its own connection and reads the file as it is now: nothing is cached, so a
version another process just recorded is in the next read. ``SqliteReader.open`` returns ``None``
when the file does not exist yet or lacks a table or column read here (a schema this code does not
know): the caller then goes through MLflow's client, which creates or migrates the schema, rather
than guessing. Results are light objects shaped like MLflow's own entities (``ModelVersion``,
``Run``), as far as ``handoff.store`` reads them, so one code path turns either into records.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: MLflow's schema as read here: a database lacking any of these is left to MLflow's client.
REQUIRED: dict[str, frozenset[str]] = {
    "experiments": frozenset({"experiment_id", "name", "lifecycle_stage"}),
    "runs": frozenset({"run_uuid", "experiment_id", "lifecycle_stage", "artifact_uri", "user_id", "start_time"}),
    "tags": frozenset({"key", "value", "run_uuid"}),
    "params": frozenset({"key", "value", "run_uuid"}),
    "latest_metrics": frozenset({"key", "value", "is_nan", "run_uuid"}),
    "metrics": frozenset({"key", "value", "is_nan", "run_uuid"}),
    "registered_models": frozenset({"name"}),
    "registered_model_aliases": frozenset({"alias", "version", "name"}),
    "model_versions": frozenset({"name", "version", "creation_time", "source", "run_id", "current_stage"}),
    "model_version_tags": frozenset({"key", "value", "name", "version"}),
}
#: Tables MLflow 3 scopes by workspace; only the default one is read (a named workspace: the client).
_WORKSPACED = ("experiments", "registered_models", "registered_model_aliases", "model_versions", "model_version_tags")
_DELETED_STAGE = "Deleted_Internal"  # MLflow's mark of a deleted model version
#: (database file, inode, SQLite's schema_version) -> whether it has what is read here, and workspaces.
#: The schema, not data: any change to it bumps schema_version, so a checked schema is checked again.
_SCHEMAS: dict[tuple[str, int, int], tuple[bool, bool]] = {}


@dataclass(frozen=True)
class StoredVersion:
    """A registered model version, with what ``ModelVersion`` gives ``handoff.store``."""

    name: str
    version: int
    creation_timestamp: int | None
    run_id: str | None
    source: str
    tags: dict[str, str]
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    artifact_uri: str
    user_id: str | None
    start_time: int | None


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class StoredRun:
    """An MLflow run as ``Run`` shows it: ``info`` and ``data`` (tags, params, latest metrics)."""

    info: RunInfo
    data: RunData


def _schema(connection: sqlite3.Connection, db: Path) -> tuple[bool, bool]:
    """Whether the database has every table and column read here, and whether it has workspaces."""
    key = (str(db), db.stat().st_ino, connection.execute("PRAGMA schema_version").fetchone()[0])
    if key not in _SCHEMAS:
        have: dict[str, set[str]] = {}
        for table, column in connection.execute(
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p WHERE m.type = 'table'"
        ):
            have.setdefault(table, set()).add(column)
        known = all(need <= have.get(table, set()) for table, need in REQUIRED.items())
        _SCHEMAS[key] = (known, known and all("workspace" in have[t] for t in _WORKSPACED))
    return _SCHEMAS[key]


def _value(value: float, is_nan: Any) -> float:
    return math.nan if is_nan else float(value)


class SqliteReader:
    """Read-only queries on one connection to an embedded store's database (see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection, workspaced: bool) -> None:
        self._db = connection
        self._ws = " AND {t}.workspace = 'default'" if workspaced else ""

    @classmethod
    @contextmanager
    def open(cls, db: Path) -> Iterator[SqliteReader | None]:
        """A reader on ``db`` for the ``with`` block; ``None`` when the client must read instead
        (no such file yet, a schema without what is read here, a named MLflow workspace)."""
        if os.environ.get("MLFLOW_WORKSPACE") or not db.is_file():
            yield None
            return
        try:
            connection = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error:
            yield None
            return
        with closing(connection):
            try:
                known, workspaced = _schema(connection, db)
            except (sqlite3.Error, OSError):  # not a database, or gone: the client says why
                known, workspaced = False, False
            yield cls(connection, workspaced) if known else None

    def _where(self, table: str) -> str:
        return self._ws.format(t=table)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self._db.execute(sql, tuple(args)).fetchall()

    # -- the registry ------------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Registered model names (any order)."""
        return [r[0] for r in self._rows(f"SELECT name FROM registered_models AS rm WHERE 1=1{self._where('rm')}")]

    def versions(self, name: str | None = None) -> list[StoredVersion]:
        """Every live version (of one model, or of all) with its tags; aliases are not filled in.

        The tags are read on their own, not joined (a deleted version's are passed by): for all
        models, one scan of the table, which is faster than its workspace index at 10,000 versions."""
        where, tag_where, args = "mv.current_stage IS NOT ?", "1=1", [_DELETED_STAGE]
        if name is not None:
            where, tag_where = where + " AND mv.name = ?", "t.name = ?"
            args.append(name)
        tags: dict[tuple[str, int], dict[str, str]] = {}
        scan = "+" if name is None else ""  # a unary plus keeps SQLite off the index
        for key, value, model, number in self._rows(
            f"SELECT t.key, t.value, t.name, t.version FROM model_version_tags AS t WHERE {tag_where}"
            + self._where("t").replace(" t.", f" {scan}t."),
            args[1:],
        ):
            tags.setdefault((model, int(number)), {})[key] = value
        return [
            StoredVersion(model, int(number), created, run_id, source, tags.get((model, int(number)), {}))
            for model, number, created, run_id, source in self._rows(
                f"SELECT mv.name, mv.version, mv.creation_time, mv.run_id, mv.source FROM model_versions AS mv "
                f"WHERE {where}{self._where('mv')}",
                args,
            )
        ]

    def version(self, name: str, number: int) -> StoredVersion | None:
        """One live version with its tags and aliases; ``None`` when there is none."""
        found = self._rows(
            "SELECT mv.creation_time, mv.run_id, mv.source FROM model_versions AS mv "
            f"WHERE mv.name = ? AND mv.version = ? AND mv.current_stage IS NOT ?{self._where('mv')}",
            (name, number, _DELETED_STAGE),
        )
        if not found:
            return None
        created, run_id, source = found[0]
        tags = dict(
            self._rows(
                f"SELECT t.key, t.value FROM model_version_tags AS t WHERE t.name = ? AND t.version = ?"
                f"{self._where('t')}",
                (name, number),
            )
        )
        aliases = [alias for (model, number_, alias) in self._aliases(name) if number_ == number]
        return StoredVersion(name, number, created, run_id, source, tags, aliases)

    def _aliases(self, name: str | None) -> list[tuple[str, int, str]]:
        where = "1=1" if name is None else "a.name = ?"
        return [
            (model, int(number), alias)
            for model, number, alias in self._rows(
                f"SELECT a.name, a.version, a.alias FROM registered_model_aliases AS a WHERE {where}{self._where('a')}",
                () if name is None else (name,),
            )
        ]

    def aliases(self, name: str | None = None) -> dict[tuple[str, int], tuple[str, ...]]:
        """(model, version) -> the aliases pointing at it, sorted."""
        held: dict[tuple[str, int], list[str]] = {}
        for model, number, alias in self._aliases(name):
            held.setdefault((model, number), []).append(alias)
        return {key: tuple(sorted(aliases)) for key, aliases in held.items()}

    def alias_target(self, name: str, alias: str) -> int | None:
        """The version number an alias points at (MLflow's ``latest``: the highest live version)."""
        if alias.lower() == "latest":
            numbers = [v.version for v in self.versions(name)]
            return max(numbers) if numbers else None
        found = self._rows(
            f"SELECT a.version FROM registered_model_aliases AS a WHERE a.name = ? AND a.alias = ?{self._where('a')}",
            (name, alias),
        )
        return int(found[0][0]) if found else None

    # -- runs ----------------------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str | None:
        found = self._rows(f"SELECT e.experiment_id FROM experiments AS e WHERE e.name = ?{self._where('e')}", (name,))
        return str(found[0][0]) if found else None

    def run(self, run_id: str) -> StoredRun | None:
        """One run (of any experiment or lifecycle stage, as ``MlflowClient.get_run``), or ``None``."""
        runs = self._runs("r.run_uuid = ?", (run_id,))
        return runs[0] if runs else None

    def search_runs(self, experiment: str, tags: dict[str, str]) -> list[StoredRun]:
        """The active runs of an experiment whose tags have these values, oldest first (ties by run
        id), as ``MlflowClient.search_runs`` orders them by ``attributes.start_time ASC``."""
        experiment_id = self.experiment_id(experiment)
        if experiment_id is None:
            return []
        where = "r.experiment_id = ? AND r.lifecycle_stage = 'active'"
        args: list[Any] = [int(experiment_id)]
        for key, value in tags.items():
            where += " AND EXISTS (SELECT 1 FROM tags AS f WHERE f.run_uuid = r.run_uuid AND f.key = ? AND f.value = ?)"
            args += [key, value]
        return self._runs(where, args)

    def _runs(self, where: str, args: Sequence[Any]) -> list[StoredRun]:
        found = self._rows(
            f"SELECT r.run_uuid, r.artifact_uri, r.user_id, r.start_time FROM runs AS r WHERE {where} "
            "ORDER BY r.start_time, r.run_uuid",
            args,
        )
        if not found:
            return []
        chosen = f"SELECT r.run_uuid FROM runs AS r WHERE {where}"
        data: dict[str, RunData] = {r[0]: RunData({}, {}, {}) for r in found}
        for run_id, key, value in self._rows(
            f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({chosen}) ORDER BY rowid", args
        ):
            data[run_id].tags[key] = value
        for run_id, key, value in self._rows(
            f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({chosen}) ORDER BY rowid", args
        ):
            data[run_id].params[key] = value
        for run_id, key, value, is_nan in self._rows(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({chosen}) ORDER BY rowid",
            args,
        ):
            data[run_id].metrics[key] = _value(value, is_nan)
        return [StoredRun(RunInfo(run_id, uri, user, start), data[run_id]) for run_id, uri, user, start in found]

    def metric_history(self, run_id: str, key: str) -> list[float]:
        """Every value logged for one metric of a run (``MlflowClient.get_metric_history``'s values)."""
        return [
            _value(value, is_nan)
            for value, is_nan in self._rows(
                # `+key`: look the run up by its index, not every run's rows of this metric name
                "SELECT value, is_nan FROM metrics WHERE run_uuid = ? AND +key = ? ORDER BY timestamp, step",
                (run_id, key),
            )
        ]
