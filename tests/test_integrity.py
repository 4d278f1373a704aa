"""Store integrity: first use under concurrency, owner-only files, tamper-evident versions."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.errors import TamperedError
from handoff.fingerprint import sha256_file
from handoff.layout import DIGESTS_PATH
from handoff.record import BuildRecord, Inputs, Metric, NotebookRef, Outputs
from handoff.store import DIGESTS_TAG, PACKAGE_TAG, Store
from helpers import build, local_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_six_cli_builds_into_a_store_that_does_not_exist_yet_all_record_and_files_are_owner_only(
    iris_notebook: Path, tmp_path: Path
) -> None:
    home = tmp_path / "brand" / "new"  # does not exist yet: every process races to create the schema
    cli = [sys.executable, "-m", "handoff.cli", "build", str(iris_notebook), "--store", str(home), "--json"]
    procs = [
        subprocess.Popen(
            [*cli, "-p", "C", str(c)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HANDOFF_HOME": "/nonexistent"},
        )
        for c in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    ]
    outputs = [p.communicate(timeout=800) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-2000:] for _, err in outputs]
    built = [json.loads(out) for out, _ in outputs]
    assert sorted(b["version"] for b in built) == [1, 2, 3, 4, 5, 6] and {b["status"] for b in built} == {"passed"}
    store = Store(home)
    assert [v.version for v in store.list_versions("iris")] == [1, 2, 3, 4, 5, 6]
    assert store.get_version("iris", 6).build.status == "passed"
    assert _mode(home) == 0o700 and _mode(home / "mlflow.db") == 0o600 and _mode(home / "artifacts") == 0o700
    under = list((home / "artifacts").rglob("*"))
    assert sum(p.name == "MLmodel" for p in under) == 6
    assert {_mode(p) for p in under if p.is_file()} == {0o600}
    assert {_mode(p) for p in under if p.is_dir()} == {0o700}


def _home(store: Store) -> str:
    return str(local_path(store.artifact_root).parent)


def _refused_everywhere(
    store: Store, model: str, version: int, other: int, sentence: str, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """show, check, compare and export (CLI, hence the API) each refuse with exactly ``sentence``."""
    home = _home(store)
    for argv in (
        ["show", model, str(version)],
        ["check", model, str(version)],
        ["compare", model, str(version), str(other)],
        ["export", model, str(version), "-o", str(tmp_path)],
    ):
        assert main([*argv, "--store", home]) == 3, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"handoff: error: {sentence}"], (argv, err)
    assert not list(tmp_path.glob("*.zip"))
    with pytest.raises(TamperedError, match=re.escape(sentence)):
        handoff.check_version(model, version, store=store)


def test_a_version_records_the_digest_of_every_artifact(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    assert result.ok, result.error
    local = store.local_artifacts(result.run_id)
    digests = json.loads((local / DIGESTS_PATH).read_bytes())
    expected = {
        p.relative_to(local).as_posix()
        for p in local.rglob("*")
        if p.is_file() and not p.relative_to(local).as_posix().startswith(("package/", DIGESTS_PATH))
    }
    assert set(digests["files"]) == expected
    assert {
        "handoff/record.json",
        "notebook/executed.ipynb",
        "notebook/source.ipynb",
        "checks/report.json",
        "model/MLmodel",
    } <= expected and any(f.startswith("model/model.") for f in expected)
    assert all(digests["files"][f] == sha256_file(local / f) for f in expected)
    assert digests["metrics"] == result.metrics and digests["status"] == "passed"
    anchor = hashlib.sha256((local / DIGESTS_PATH).read_bytes()).hexdigest()
    run = store.client.get_run(result.run_id)
    assert run.data.tags[DIGESTS_TAG] == anchor
    assert store.client.get_model_version("iris", "1").tags[DIGESTS_TAG] == anchor
    assert run.data.tags[PACKAGE_TAG] == sha256_file(local / "package" / "iris-v1.zip")


def test_every_command_refuses_a_version_whose_model_file_or_metrics_were_changed(
    iris_notebook: Path, store: Store, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    first, second = build(iris_notebook, store), build(iris_notebook, store, params={"C": 0.3})
    assert first.ok and second.ok, (first.error, second.error)
    home = _home(store)
    assert main(["verify-store", "--store", home]) == 0
    assert capsys.readouterr().out.strip() == "2 versions checked: all intact"

    model_file = next((store.local_artifacts(first.run_id) / "model").glob("model.*"))
    model_file.write_bytes(b"not the model that was recorded")
    with sqlite3.connect(local_path(store.artifact_root).parent / "mlflow.db") as db:
        changed = db.execute(
            "UPDATE metrics SET value = 0.25 WHERE key = 'accuracy' AND run_uuid = ?", (second.run_id,)
        ).rowcount
    assert changed == 1
    modified = f"model/{model_file.name}"
    _refused_everywhere(
        store,
        "iris",
        1,
        2,
        f"version 1 of iris was modified after it was recorded: {modified} differs",
        capsys,
        tmp_path / "x1",
    )
    _refused_everywhere(
        store,
        "iris",
        2,
        1,
        "version 2 of iris was modified after it was recorded: metric accuracy differs",
        capsys,
        tmp_path / "x2",
    )
    with pytest.raises(TamperedError):
        handoff.promote("iris", 2, store=store)

    assert main(["verify-store", "--store", home]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"iris v1: modified after it was recorded: {modified} differs",
        "iris v2: modified after it was recorded: metric accuracy differs",
        "2 versions checked: 2 modified",
    ]
    assert [v.version for v in store.list_versions("iris")] == [1, 2]  # listing stays cheap and works


def _record_one(store: Store, tmp_path: Path) -> Path:
    staging = tmp_path / "staging"
    (staging / "model").mkdir(parents=True)
    (staging / "model" / "MLmodel").write_text("flavors: {}\n")
    record = BuildRecord("m", "failed", Inputs(NotebookRef("m", "0" * 64)), Outputs(metrics=(Metric("a", 1.0),)))
    recorded = store.record_build(staging=staging, record=record, register=True)
    assert store.get_version("m", recorded.version).status == "failed"
    return store.local_artifacts(recorded.run_id)


@pytest.mark.parametrize(
    "tamper, problem",
    [
        ("digests", "handoff/digests.json differs"),
        ("added", "model/extra.py was added"),
        ("removed", "model/MLmodel is missing"),
        ("status", "status differs"),
        ("latest", "metric a differs"),
    ],
)
def test_replaced_digests_added_files_and_edited_tags_are_caught(
    store: Store, tmp_path: Path, tamper: str, problem: str
) -> None:
    local = _record_one(store, tmp_path)
    if tamper == "digests":  # a forger who edits a file and rewrites the digests file to match
        (local / "model" / "MLmodel").write_text("flavors: {python_function: {}}\n")
        digests = json.loads((local / DIGESTS_PATH).read_text())
        digests["files"]["model/MLmodel"] = sha256_file(local / "model" / "MLmodel")
        (local / DIGESTS_PATH).write_text(json.dumps(digests))
    elif tamper == "added":
        (local / "model" / "extra.py").write_text("import os")
    elif tamper == "removed":
        (local / "model" / "MLmodel").unlink()
    else:
        sql = {
            "status": "UPDATE model_version_tags SET value = 'passed' WHERE key = 'handoff.status'",
            "latest": "UPDATE latest_metrics SET value = 2.0 WHERE key = 'a'",
        }[tamper]
        with sqlite3.connect(local_path(store.artifact_root).parent / "mlflow.db") as db:
            assert db.execute(sql).rowcount == 1
    with pytest.raises(TamperedError) as caught:
        store.get_version("m", 1)
    assert str(caught.value) == f"version 1 of m was modified after it was recorded: {problem}"
    assert handoff.verify_store(store=store) == [{"name": "m", "version": 1, "ok": False, "problems": [problem]}]
