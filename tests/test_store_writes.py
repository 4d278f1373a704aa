"""Direct writes (handoff.sqlwrite): recording builds straight into an embedded store's SQLite file
leaves the same rows and artifacts as recording them through MLflow's client, refuses what MLflow
refuses, and leaves a schema it does not know to the client."""

from __future__ import annotations

import math
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from handoff import sqlwrite
from handoff.errors import StoreError
from handoff.record import Lineage, Metric, NotebookRun
from handoff.store import Store, _ClientWrites
from helpers import ROOT, TRAIN_IRIS, notebook
from versions_fixture import versions_template

TABLES = (
    "experiments",
    "runs",
    "tags",
    "params",
    "metrics",
    "latest_metrics",
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
)
SHA256 = re.compile("[0-9a-f]{64}")
#: Columns that hold a time: equal when both are set, or both unset.
TIMES = {"start_time", "end_time", "creation_time", "last_updated_time", "last_update_time", "timestamp"}


def _record_all(source: Store, target: Store, scratch: Path) -> None:
    """Every version of ``source`` recorded again into ``target`` (the first with a notebook run
    whose metrics have steps, one more as a failed build, one package stored), as a build records."""
    for n, version in enumerate(sorted(source.list_versions(), key=lambda v: (v.name, v.version))):
        run_id = version.run_id or ""
        record = source.read_record(run_id)
        if n == 0:
            history = {"accuracy": [[0, 0.5, 1000], [1, math.nan, 2000], [2, 0.9, 3000]]}
            notebook_run = NotebookRun("abc", params={"lr": "0.1"}, metric_history=history)
            record = replace(record, lineage=Lineage(notebook_run=notebook_run))
        staging = scratch / f"staging-{n}"
        shutil.copytree(source.local_artifacts(run_id), staging, ignore=shutil.ignore_patterns("package", "handoff"))
        recorded = target.record_build(staging=staging, record=record, register=True)
        if n == 1:
            zip_path = scratch / "package.zip"
            zip_path.write_bytes(b"a package")
            target.log_package(recorded.run_id, zip_path, "ab" * 32)
    staging = scratch / "failed"
    staging.mkdir()
    failed = replace(record, status="failed", outputs=replace(record.outputs, metrics=(Metric("inf", math.inf),)))
    target.record_build(staging=staging, record=failed, register=False)


def _dump(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a build writes, with run ids, times and the store's own path made alike."""
    with sqlite3.connect(home / "mlflow.db") as sql:
        runs = {r[0]: f"run{i}" for i, r in enumerate(sql.execute("SELECT run_uuid FROM runs ORDER BY start_time"))}
        dumped = {}
        for table in TABLES:
            columns = [c[1] for c in sql.execute(f"PRAGMA table_info({table})")]
            rows = []
            for row in sql.execute(f"SELECT * FROM {table}"):
                cells = []
                for column, cell in zip(columns, row, strict=True):
                    if column in TIMES and table in ("metrics", "latest_metrics"):
                        cell = cell if cell < 10**12 else "now"  # a notebook's own steps keep their times
                    elif column in TIMES:
                        cell = cell is not None
                    elif isinstance(cell, str):
                        cell = cell.replace(str(home), "HOME")
                        for run_id, label in runs.items():
                            cell = cell.replace(run_id, label)
                        cell = SHA256.sub("SHA", cell)  # digests of files that name their run
                    cells.append(cell)
                rows.append(tuple(cells))
            dumped[table] = sorted(rows, key=repr)
    return dumped


def _files(home: Path) -> dict[str, bytes]:
    runs: dict[str, str] = {}
    with sqlite3.connect(home / "mlflow.db") as sql:
        for i, (run_id,) in enumerate(sql.execute("SELECT run_uuid FROM runs ORDER BY start_time")):
            runs[run_id] = f"run{i}"
    found = {}
    for path in sorted((home / "artifacts").rglob("*")):
        if path.is_file():
            relative = str(path.relative_to(home / "artifacts"))
            data = path.read_bytes()
            for run_id, label in runs.items():
                relative, data = relative.replace(run_id, label), data.replace(run_id.encode(), label.encode())
            found[relative] = re.sub(rb"[0-9a-f]{64}", b"SHA", data) if path.name == "digests.json" else data
    return found


def test_direct_writes_leave_what_mlflows_client_leaves(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = Store(versions_template(tmp_path_factory.getbasetemp()))
    direct, client = Store(tmp_path / "direct"), Store(tmp_path / "client", direct_reads=False)
    for target in (direct, client):
        target.connect()  # a store MLflow made: schema, experiment
    assert isinstance(direct._writes(), sqlwrite.SqliteWriter) and isinstance(client._writes(), _ClientWrites)
    for target in (direct, client):
        scratch = tmp_path / f"scratch-{target is direct}"
        scratch.mkdir()
        _record_all(source, target, scratch)
    written, reference = _dump(tmp_path / "direct"), _dump(tmp_path / "client")
    assert len(reference["model_versions"]) == 7 and len(reference["metrics"]) > 10
    for table in TABLES:
        assert written[table] == reference[table], table
    assert _files(tmp_path / "direct") == _files(tmp_path / "client")
    versions = [(v.name, v.version, v.status, v.metrics) for v in direct.list_versions()]
    assert versions == [(v.name, v.version, v.status, v.metrics) for v in client.list_versions()]
    assert direct.get_version("iris", 2).version == 2  # verified: the digests check out (else TamperedError)


def test_what_mlflow_refuses_is_refused_and_the_run_is_marked_failed(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.connect()
    writer = store._writes()
    assert isinstance(writer, sqlwrite.SqliteWriter)
    with pytest.raises(StoreError, match="invalid param name"):
        writer.log("x", params={"bad/../name": "1"})
    with pytest.raises(StoreError, match="MLflow allows 8000"):
        writer.log("x", tags={"long": "x" * 8001})
    record = _a_record(tmp_path)
    record = replace(record, inputs=replace(record.inputs, parameters={"bad name!": 1}))
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(StoreError, match="recording the build failed: StoreError: invalid param name"):
        store.record_build(staging=staging, record=record, register=True)
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as sql:
        status = sql.execute("SELECT status FROM runs").fetchall()
        error = sql.execute("SELECT value FROM tags WHERE key = 'handoff.error'").fetchone()[0]
        assert status == [("FAILED",)] and "invalid param name" in error
        assert sql.execute("SELECT COUNT(*) FROM model_versions").fetchone() == (0,)


def _a_record(tmp_path: Path) -> Any:
    from handoff.record import BuildRecord, Inputs, NotebookRef, Outputs

    return BuildRecord("fresh", "passed", Inputs(NotebookRef("fresh", "0" * 64)), Outputs(metrics=(Metric("a", 1.0),)))


def test_a_schema_not_known_here_or_a_new_store_is_written_by_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store")
    assert sqlwrite.SqliteWriter.open(tmp_path / "store" / "mlflow.db", "handoff") is None  # no database yet
    store.connect()
    assert sqlwrite.SqliteWriter.open(tmp_path / "store" / "mlflow.db", "no-such-experiment") is None
    monkeypatch.setattr(sqlwrite, "KNOWN_SCHEMAS", frozenset({"0000"}))
    assert isinstance(store._writes(), _ClientWrites)
    staging = tmp_path / "staging"
    staging.mkdir()
    assert store.record_build(staging=staging, record=_a_record(tmp_path), register=True).version == 1


def test_a_build_recorded_directly_never_imports_mlflow_in_the_building_process(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    import nbformat

    nbformat.write(notebook([TRAIN_IRIS]), path)
    store = Store(tmp_path / "store")
    store.connect()
    script = (
        "import sys, handoff\n"
        f"result = handoff.build({str(path)!r}, store={str(tmp_path / 'store')!r})\n"
        "print(result.ok, result.version, 'mlflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT, check=True
    ).stdout.split()
    assert out == ["True", "1", "False"]
    assert store.get_version("nb", 1).status == "passed"  # verified: its digests check out


def test_a_version_whose_listing_does_not_fit_has_no_listing_tag_and_lists_from_its_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.connect()
    record = _a_record(tmp_path)
    record = replace(record, inputs=replace(record.inputs, parameters={"big": "x" * 5500}))
    staging = tmp_path / "staging"
    staging.mkdir()
    assert store.record_build(staging=staging, record=record, register=True).version == 1
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as sql:
        keys = {k for (k,) in sql.execute("SELECT key FROM model_version_tags")}
    assert "handoff.listing" not in keys and "handoff.metrics" in keys
    assert store.list_versions("fresh")[0].params == {"big": "x" * 5500}
