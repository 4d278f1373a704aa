"""The store: versions are immutable, ordered, never created for failures, safe under concurrency."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import handoff
from handoff.errors import ParameterError, VersionNotFoundError
from handoff.store import Store, model_name_from
from helpers import build, local_path


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_versions_are_ordered_and_unchanged_by_later_builds(iris_notebook: Path, store: Store) -> None:
    first = build(iris_notebook, store, params={"C": 0.1})
    second = build(iris_notebook, store, params={"C": 10.0})
    assert (first.version, second.version) == (1, 2)
    v1 = store.get_version("iris", 1)
    v1_files = _digest_tree(local_path(v1.model_uri))
    third = build(iris_notebook, store, params={"label": "again"})
    assert third.version == 3
    assert [v.version for v in store.list_versions("iris")] == [1, 2, 3]
    again = store.get_version("iris", 1)
    assert again == v1 and again.build.inputs.parameters == {"C": 0.1, "label": "iris"}
    assert _digest_tree(local_path(again.model_uri)) == v1_files
    assert store.get_version("iris", 2).build.inputs.parameters["C"] == 10.0


def test_a_version_records_everything_needed_to_reproduce_it(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    record = store.get_version(result.name, result.version)
    run = store.client.get_run(record.run_id)
    assert run.data.params == {"C": "1.0", "label": "iris"}
    assert run.data.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    tags = run.data.tags
    assert tags["handoff.notebook_sha256"] == hashlib.sha256(iris_notebook.read_bytes()).hexdigest()
    assert tags["handoff.data_sha256"] == record.build.outputs.data.sha256
    assert tags["handoff.version"] == handoff.__version__
    assert {"handoff.timing.execute", "handoff.timing.serialize"} <= tags.keys()
    assert store.read_artifact(record.run_id, "notebook/source.ipynb") == iris_notebook.read_bytes()
    executed = json.loads(store.read_artifact(record.run_id, "notebook/executed.ipynb"))
    assert any(c["outputs"] == [] and c["execution_count"] for c in executed["cells"])
    assert record.build.outputs.environment.imported["scikit-learn"]
    assert record.build.inputs.notebook.sha256 == tags["handoff.notebook_sha256"]


def test_bad_input_leaves_the_store_untouched(iris_notebook: Path, store: Store) -> None:
    with pytest.raises(ParameterError):
        build(iris_notebook, store, params={"nope": 1})
    assert store.list_models() == [] and store.list_builds() == []


def test_unknown_model_and_version_are_clear_errors(iris_notebook: Path, store: Store) -> None:
    with pytest.raises(VersionNotFoundError, match="no model named 'ghost'"):
        store.get_version("ghost", 1)
    build(iris_notebook, store)
    with pytest.raises(VersionNotFoundError, match=r"model 'iris' has no version 7 \(latest is 1\)"):
        store.get_version("iris", 7)
    with pytest.raises(VersionNotFoundError, match="no model named 'ghost'"):
        store.list_versions("ghost")


def test_two_concurrent_builds_in_threads_get_distinct_versions(iris_notebook: Path, store: Store) -> None:
    cwd = os.getcwd()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: build(iris_notebook, store, params={"C": c}), [0.5, 2.0]))
    assert all(r.ok for r in results), [r.error and (r.error.message, r.error.traceback) for r in results]
    assert sorted(r.version for r in results) == [1, 2]
    by_version = {v.version: v.run_id for v in store.list_versions("iris")}
    assert sorted(by_version.values()) == sorted(r.run_id for r in results)
    assert os.getcwd() == cwd  # builds never chdir the process (that would race between threads)


@pytest.mark.timeout(900)
def test_store_accepts_a_tracking_uri(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'team.db'}")
    assert store.list_models() == []
    assert store.uri.endswith("team.db")
    assert store.artifact_root == (tmp_path / "artifacts").as_uri()


def test_model_names_are_derived_safely() -> None:
    assert model_name_from("My Notebook (v2)") == "My-Notebook-v2"
    assert model_name_from("...") == "model"
