"""Listing versions: what tells them apart (parameters, notebook, duration, author, aliases), filled
from one search of versions, models and runs; archived versions hidden unless asked for."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest

import handoff
from handoff.cli import main
from handoff.errors import OptionError, VersionNotFoundError
from handoff.store import Store, filter_versions, sort_versions
from versions_fixture import copy_store, record_version, versions_template


@pytest.fixture
def store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return copy_store(versions_template(tmp_path_factory.getbasetemp()), tmp_path / "store")


def _home(store: Store) -> str:
    return str(store.local_paths()[0])


def test_listing_carries_parameters_notebook_duration_author(store: Store) -> None:
    iris = store.list_versions("iris")
    assert [v.version for v in iris] == [1, 2, 3, 4, 5]
    assert [v.params["C"] for v in iris] == ["1.0", "0.5", "2.0", "1.0", "4.0"]
    assert {v.params["label"] for v in iris} == {"iris"}
    assert not any(k.startswith("notebook_run.") for v in iris for k in v.params)
    assert [v.notebook for v in iris] == [
        "iris.ipynb",
        "iris.ipynb",
        "iris-tuned.ipynb",
        "iris.ipynb",
        "iris-tuned.ipynb",
    ]
    assert [v.status for v in iris] == ["passed", "passed", "failed", "passed", "passed"]
    assert all(v.duration is not None and v.duration > 0 for v in iris)
    assert {v.author for v in iris} == {getpass.getuser()}
    assert [v.metrics["accuracy"] for v in iris[1:]] == [0.91, 0.42, 0.97, 0.95]
    assert not any(v.archived for v in iris)
    listed = iris[2].to_dict()
    assert {"params", "notebook", "duration", "author", "archived"} <= listed.keys()


def test_metrics_keep_the_order_the_notebook_reported(store: Store, tmp_path: Path) -> None:
    run_id = store.list_versions("iris")[0].run_id
    assert run_id is not None
    version = record_version(store, run_id, tmp_path, metrics={"rmse": 0.3, "accuracy": 0.9})
    listed = store.list_versions("iris")[-1]
    assert listed.version == version and list(listed.metrics) == ["rmse", "accuracy"]  # not the tag's sorted order
    assert list(store.get_version("iris", version).metrics) == ["rmse", "accuracy"]


def test_all_models_listed_by_name_then_version(store: Store) -> None:
    assert [(v.name, v.version) for v in store.list_versions()] == [
        ("iris", 1),
        ("iris", 2),
        ("iris", 3),
        ("iris", 4),
        ("iris", 5),
        ("other", 1),
        ("other", 2),
    ]
    assert [v.params["label"] for v in store.list_versions("other")] == ["first", "second"]
    with pytest.raises(VersionNotFoundError, match="no model named 'ghost'"):
        store.list_versions("ghost")


def test_aliases_are_filled_in_every_listing(store: Store) -> None:
    handoff.promote("iris", 4, store=store)
    handoff.promote("other", 1, store=store)
    store.client.set_registered_model_alias("iris", "staging", "2")
    everything = {(v.name, v.version): v.aliases for v in store.list_versions()}
    assert everything[("iris", 4)] == ("champion",) and everything[("iris", 2)] == ("staging",)
    assert everything[("other", 1)] == ("champion",) and everything[("iris", 1)] == ()
    assert [v.aliases for v in store.list_versions("iris")] == [(), ("staging",), (), ("champion",), ()]
    assert store.get_version("iris", 4).aliases == ("champion",)


class _Counting:
    """The store's real MLflow client, counting the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


def test_listing_reads_no_run_or_artifact_per_version(store: Store) -> None:
    store = Store(_home(store), direct_reads=False)  # through MLflow's client (tests/test_store_reads.py: directly)
    store.connect()
    counting = _Counting(store._client)
    store._client = counting  # type: ignore[assignment]
    assert len(store.list_versions()) == 7
    assert sorted(counting.calls) == ["search_model_versions", "search_registered_models"]
    counting.calls.clear()
    assert len(store.list_versions("iris")) == 5
    assert sorted(counting.calls) == ["get_registered_model", "search_model_versions"]


def test_versions_recorded_before_the_listing_tag_are_joined_with_their_runs(store: Store) -> None:
    from handoff.store import LISTING_TAG

    for version in ("2", "3"):
        store.client.delete_model_version_tag("iris", version, LISTING_TAG)
    store = Store(_home(store), direct_reads=False)
    store.connect()
    counting = _Counting(store._client)
    store._client = counting  # type: ignore[assignment]
    iris = store.list_versions("iris")
    assert counting.calls.count("search_runs") == 1 and "get_run" not in counting.calls
    assert [v.params["C"] for v in iris] == ["1.0", "0.5", "2.0", "1.0", "4.0"]
    assert [v.notebook for v in iris][1:3] == ["iris.ipynb", "iris-tuned.ipynb"]
    assert iris[1].author == getpass.getuser() and iris[2].duration == pytest.approx(iris[3].duration, abs=0.01)


def test_archived_hidden_only_when_asked(store: Store) -> None:
    handoff.archive("iris", 3, store=store)
    assert [v.version for v in store.list_versions("iris", include_archived=False)] == [1, 2, 4, 5]
    assert [(v.version, v.archived) for v in store.list_versions("iris")][2] == (3, True)
    assert len(store.list_versions(include_archived=False)) == 6


def test_filter_and_sort(store: Store) -> None:
    versions = store.list_versions()
    assert [v.version for v in filter_versions(versions, search="TUNED")] == [3, 5]
    assert [(v.name, v.version) for v in filter_versions(versions, search="c=4")] == [("iris", 5)]
    assert [v.name for v in filter_versions(versions, search="other")] == ["other", "other"]
    assert [v.version for v in filter_versions(versions, search=getpass.getuser())] == [1, 2, 3, 4, 5, 1, 2]
    assert [v.version for v in filter_versions(versions, status="failed")] == [3]
    assert filter_versions(versions, search="no such thing") == []
    by_notebook = sort_versions(versions, "notebook")
    assert [v.notebook for v in by_notebook][:2] == ["iris-tuned.ipynb"] * 2
    newest = sort_versions(versions, "created", descending=True)
    assert (newest[0].name, newest[0].version) == ("other", 2)
    assert [v.version for v in sort_versions(versions, "version", descending=True)][:2] == [5, 4]
    with pytest.raises(OptionError, match="cannot sort versions by 'size'"):
        sort_versions(versions, "size")


def test_cli_versions_listing_options(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    home = _home(store)
    handoff.archive("iris", 2, store=store)
    assert main(["versions", "iris", "--store", home, "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1, 3, 4, 5]
    assert main(["versions", "iris", "--archived", "--store", home, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["archived"]) for v in listed][1] == (2, True)
    assert listed[0]["notebook"] == "iris.ipynb" and listed[0]["params"]["C"] == "1.0"
    assert main(["list", "--store", home, "--search", "tuned", "--sort", "version", "--desc", "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [5, 3]
    assert main(["versions", "--store", home, "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "MODEL",
        "VERSION",
        "STATUS",
        "CREATED",
        "ALIASES",
        "NOTEBOOK",
        "DURATION",
        "AUTHOR",
        "METRICS",
    ]
    assert len(out.splitlines()) == 2 and "iris-tuned.ipynb" in out and "failed" in out
    assert main(["versions", "--store", home, "--search", "nothing-like-this"]) == 0
    assert "no versions match" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["versions", "--store", home, "--sort", "size"])
    assert usage.value.code == 2
