"""Reads of an embedded store straight from its SQLite file (``handoff.sqlstore``) give what MLflow's
client gives, on a store with several models, aliases and their history, archived, failed, legacy
(no ``handoff.listing`` tag) and tampered versions; they are never stale; servers still go through
the client."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.errors import StoreError, TamperedError, VersionNotFoundError
from handoff.store import LISTING_TAG, Store
from handoff.uris import file_uri
from helpers import free_port
from versions_fixture import versions_template

RECORD_ANOTHER = """
import sys, tempfile
from pathlib import Path
from handoff.record import BuildRecord, Inputs, Metric, NotebookRef, Outputs
from handoff.store import Store
staging = Path(tempfile.mkdtemp())
(staging / "model").mkdir()
(staging / "model" / "MLmodel").write_text("flavors: {}\\n")
record = BuildRecord("fresh", "passed", Inputs(NotebookRef("fresh", "0" * 64)), Outputs(metrics=(Metric("a", 1.0),)))
print(Store(sys.argv[1]).record_build(staging=staging, record=record, register=True).version)
"""


@pytest.fixture
def varied(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return varied_store(tmp_path, tmp_path_factory.getbasetemp())


def varied_store(tmp_path: Path, basetemp: Path) -> Path:
    """iris v1..v5 (v3 failed) and other v1..v2, then: champion moved twice and back, a staging
    alias, v4 archived, v2 without its listing tag (recorded before it existed), a package and two
    re-check reports stored for v1, and other v2's model file changed after recording. Returns its home."""
    store = _own_copy(versions_template(basetemp), tmp_path / "store")
    handoff.promote("iris", 1, store=store, by="ana", reason="first")
    handoff.promote("iris", 5, store=store, by="bo", allow_worse=True)
    handoff.rollback("iris", store=store, by="ana", reason="regression")
    handoff.promote("iris", 2, "staging", store=store)
    handoff.archive("iris", 4, store=store, by="chen")
    store.client.delete_model_version_tag("iris", "2", LISTING_TAG)
    handoff.export("iris", 1, tmp_path / "out", store=store)
    for n in (2, 1):  # two re-check reports (what ``handoff check`` keeps), listed oldest first
        report = tmp_path / f"recheck-{n}"
        report.mkdir()
        (report / "report.json").write_text(json.dumps({"recheck": n}))
        store.add_check_report(store.get_version("iris", 1).run_id or "", report)
    tampered = store.get_version("other", 2)
    model_file = next((store.local_artifacts(tampered.run_id or "") / "model").glob("model.*"))
    model_file.write_bytes(b"not the recorded model")
    return tmp_path / "store"


def _own_copy(template: Path, home: Path) -> Store:
    """A copy of the template store with its own artifacts (the runs point at the copy's), so that
    changing them here cannot reach other tests."""
    shutil.copytree(template, home)
    old, new = file_uri(template / "artifacts"), file_uri(home / "artifacts")
    with sqlite3.connect(home / "mlflow.db") as db:
        for table, column in (
            ("runs", "artifact_uri"),
            ("model_versions", "source"),
            ("experiments", "artifact_location"),
        ):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
    return Store(home)


def _both(home: Path) -> tuple[Store, Store]:
    """The store read directly, and through MLflow's client (as every read did before)."""
    return Store(home), Store(home, direct_reads=False)


def test_listings_and_versions_are_the_same_as_through_the_client(varied: Path) -> None:
    direct, client = _both(varied)
    assert direct.list_models() == client.list_models() == ["iris", "other"]
    for name in (None, "iris", "other"):
        for archived in (True, False):
            got, want = (s.list_versions(name, include_archived=archived) for s in (direct, client))
            assert got == want and [list(v.params) for v in got] == [list(v.params) for v in want]
    listed = {(v.name, v.version): v for v in direct.list_versions()}
    assert listed["iris", 1].aliases == ("champion",) and listed["iris", 2].aliases == ("staging",)
    assert listed["iris", 4].archived and listed["iris", 3].status == "failed"
    assert listed["iris", 2].params["C"] == "0.5" and listed["iris", 2].notebook == "iris.ipynb"  # from its run
    for number in (1, 2, 3, 4, 5):
        got, want = direct.get_version("iris", number), client.get_version("iris", number)
        assert got == want and json.dumps(got.to_dict()) == json.dumps(want.to_dict())
    assert direct.get_version("other", 1) == client.get_version("other", 1)
    assert direct._client is None  # nothing above opened MLflow


def test_aliases_history_runs_and_packages_are_the_same_as_through_the_client(varied: Path) -> None:
    direct, client = _both(varied)
    for alias in ("champion", "staging", "latest", "nope"):
        assert direct.alias_version("iris", alias) == client.alias_version("iris", alias)
    assert direct.alias_version("nope", "champion") is None
    for alias in (None, "champion", "staging"):
        got, want = direct.alias_history("iris", alias), client.alias_history("iris", alias)
        assert json.dumps(got) == json.dumps(want)  # the same entries, keys in the same order
    assert [e["kind"] for e in direct.alias_history("iris")] == ["promote", "promote", "rollback", "promote", "archive"]
    assert direct.alias_history("other") == []
    for version in direct.list_versions():
        run_id = version.run_id or ""
        got, want = direct._get_run(run_id), client.client.get_run(run_id)
        assert list(got.data.tags.items()) == list(want.data.tags.items())
        assert got.data.params == want.data.params and got.data.metrics == want.data.metrics
        assert got.info.artifact_uri == want.info.artifact_uri
        assert direct.local_artifacts(run_id) == client.local_artifacts(run_id)
        assert direct.package_sha256(run_id) == client.package_sha256(run_id)
        assert direct.check_reports(run_id) == client.check_reports(run_id)
    assert direct.package_sha256(direct.list_versions("iris")[0].run_id or "") is not None
    assert direct._client is None


def test_tampered_and_missing_versions_fail_alike(varied: Path) -> None:
    direct, client = _both(varied)
    errors = []
    for store in (direct, client):
        with pytest.raises(TamperedError) as caught:
            store.get_version("other", 2)
        errors.append((str(caught.value), caught.value.problems))
    assert errors[0] == errors[1] and list(errors[0][1]) == [f"model/{_model_file(direct, 'other', 2)} differs"]
    for name, number in (("iris", 9), ("nope", 1), ("iris", "x")):
        messages = []
        for store in (direct, client):
            with pytest.raises(VersionNotFoundError) as missing:
                store.get_version(name, number)
            messages.append(str(missing.value))
        assert messages[0] == messages[1]
    assert handoff.verify_store(store=direct) == handoff.verify_store(store=client)
    with sqlite3.connect(varied / "mlflow.db") as db:  # a metric changed in the database itself
        db.execute("UPDATE latest_metrics SET value = 0.5 WHERE key = 'accuracy' AND run_uuid = ?", (_run(direct),))
    problems = []
    for store in (direct, client):
        with pytest.raises(TamperedError) as caught:
            store.get_version("iris", 5)
        problems.append(caught.value.problems)
    assert list(problems[0]) == list(problems[1]) == ["metric accuracy differs"]


def _model_file(store: Store, name: str, number: int) -> str:
    run_id = store.list_versions(name)[number - 1].run_id or ""
    return next((store.local_artifacts(run_id) / "model").glob("model.*")).name


def _run(store: Store) -> str:
    return store.list_versions("iris")[4].run_id or ""


def test_a_version_recorded_by_another_process_is_in_the_next_read(
    varied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(varied)
    assert "fresh" not in store.list_models()
    assert main(["list", "--json", "--store", str(varied)]) == 0
    assert "fresh" not in {v["name"] for v in json.loads(capsys.readouterr().out)}
    done = subprocess.run(
        [sys.executable, "-c", RECORD_ANOTHER, str(varied)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [v.version for v in store.list_versions("fresh")] == [1]  # the same Store object: nothing kept
    assert store.get_version("fresh", 1).build.name == "fresh"
    assert ("fresh", 1) in {(v.name, v.version) for v in store.list_versions()}
    assert main(["list", "--json", "--store", str(varied)]) == 0  # and to the CLI's next command
    assert ("fresh", 1) in {(v["name"], v["version"]) for v in json.loads(capsys.readouterr().out)}
    assert main(["show", "fresh", "1", "--store", str(varied)]) == 0
    assert capsys.readouterr().out.startswith("fresh version 1  [passed]")


def test_a_new_store_is_created_by_the_client(tmp_path: Path) -> None:
    store = Store(tmp_path / "new")
    assert store.list_versions() == [] and store.list_models() == []
    assert (tmp_path / "new" / "mlflow.db").is_file()  # no database yet: MLflow made one
    assert store._client is not None
    again = Store(tmp_path / "new")
    assert again.list_versions() == [] and again._client is None  # now there is one to read


def test_a_database_without_the_schema_read_directly_goes_to_the_client(tmp_path: Path) -> None:
    home = tmp_path / "odd"
    home.mkdir()
    with sqlite3.connect(home / "mlflow.db") as db:
        db.execute("CREATE TABLE unrelated (x INTEGER)")
    store = Store(home)
    assert store.list_versions() == [] and store._client is not None  # MLflow made its schema
    (home / "mlflow.db").write_bytes(b"not a database at all" * 100)
    errors = []
    for reading in _both(home):
        with pytest.raises(StoreError) as caught:
            reading.list_versions()
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_a_server_store_still_goes_through_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = Store(uri)
    assert store.local_paths() == ()
    for read in (store.list_versions, store.list_models, lambda: store.get_version("iris", 1)):
        with pytest.raises(StoreError, match=rf"^store unreachable: nothing answers at {uri}$"):
            read()


def test_reads_leave_the_database_untouched(varied: Path) -> None:
    database = varied / "mlflow.db"
    before = (database.read_bytes(), database.stat().st_mtime_ns)
    store = Store(varied)
    store.list_versions()
    store.get_version("iris", 1)
    store.alias_history("iris")
    handoff.export("iris", 1, varied.parent / "again", store=store)
    assert (database.read_bytes(), database.stat().st_mtime_ns) == before


def test_a_new_store_needs_setup_until_its_schema_is_made(tmp_path: Path) -> None:
    """A build writes a new store's schema before its kernel starts (``Store.needs_setup``): a build
    killed while MLflow was making it left a store that no longer opened ("table ... already exists")."""
    new = Store(tmp_path / "new")
    assert new.needs_setup()
    new.connect()
    assert not Store(tmp_path / "new").needs_setup()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "mlflow.db").write_bytes(b"not a database")
    assert Store(tmp_path / "junk").needs_setup()
