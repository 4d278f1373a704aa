"""``file://`` URIs: one helper, and a store whose path needs percent-encoding works end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.record import BuildRecord, Inputs, Metric, NotebookRef, Outputs
from handoff.store import Store
from handoff.uris import file_uri, local_path, sqlite_path, sqlite_uri

AWKWARD = "my store 100%25 #1?"  # a space, a literal "%25" (must not decode to "%"), '#', '?'


def test_file_uri_and_local_path_round_trip(tmp_path: Path) -> None:
    path = tmp_path / AWKWARD / "artifacts"
    uri = file_uri(path)
    assert uri.startswith("file:///") and " " not in uri and "%2525" in uri and "%23" in uri
    assert local_path(uri) == path


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("file:///srv/a%20b/x", Path("/srv/a b/x")),
        ("file:/srv/a%25b", Path("/srv/a%b")),  # MLflow also writes the one-slash form
        ("file://localhost/srv/x", Path("/srv/x")),
        ("FILE:///srv/x", Path("/srv/x")),
    ],
)
def test_local_path_decodes_file_uris(uri: str, expected: Path) -> None:
    assert local_path(uri) == expected


def test_sqlite_uri_and_sqlite_path_round_trip(tmp_path: Path) -> None:
    path = tmp_path / AWKWARD / "mlflow.db"
    assert sqlite_path(sqlite_uri(path)) == path
    assert sqlite_path("sqlite:////srv/x.db?mode=ro") == Path("/srv/x.db")
    assert sqlite_path("postgresql://db/x") is None and sqlite_path("/srv/x.db") is None


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key",
        "http://mlflow:5000/x",
        "file://otherhost/srv/x",
        "/plain/path",
        "mlflow-artifacts:/1/abc",
        "runs:/abc/model",
    ],
)
def test_local_path_is_none_for_anything_not_on_this_machine(uri: str) -> None:
    assert local_path(uri) is None


def test_a_store_under_a_path_with_a_space_and_percent_reads_its_versions_in_place(tmp_path: Path) -> None:
    home = tmp_path / AWKWARD
    store = Store(home)
    staging = tmp_path / "staging"
    (staging / "model").mkdir(parents=True)
    (staging / "model" / "MLmodel").write_text("flavors: {}\n")
    record = BuildRecord("m", "passed", Inputs(NotebookRef("m", "0" * 64)), Outputs(metrics=(Metric("a", 1.0),)))
    recorded = store.record_build(staging=staging, record=record, register=True)
    assert store.artifact_root == file_uri(home / "artifacts")
    assert (home / "mlflow.db").is_file()  # SQLAlchemy decodes the URI: the database is where it belongs
    assert home / "artifacts" in store.local_paths()
    local = store.local_artifacts(recorded.run_id)
    assert local is not None and local.is_relative_to(home / "artifacts")
    assert (local / "model" / "MLmodel").read_text() == "flavors: {}\n"
    version = store.get_version("m", 1)  # verifies every digest, reading the files in place
    assert local_path(version.model_uri) == local / "model"
    assert not list(tmp_path.glob("my store 100% *"))  # nothing under a wrongly decoded path
