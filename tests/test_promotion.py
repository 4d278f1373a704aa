"""Promote and roll back an alias, with an append-only audit history; failed versions never promote."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nbformat
import pytest

import handoff
from handoff.cli import main
from handoff.errors import PromotionRefused
from handoff.lifecycle import alias_stack
from handoff.store import Store
from helpers import build, local_path, notebook
from versions_fixture import copy_store

SCORED = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "accuracy = float(score)"
)


# one worker builds the module's three versions once; each test promotes on its own copy
pytestmark = pytest.mark.xdist_group("promotion")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, _store_template: Path) -> Path:
    """m v1 (accuracy 0.8), v2 (0.9), v3 (0.5: failed its threshold)."""
    tmp = tmp_path_factory.mktemp("promotion")
    store = copy_store(_store_template, tmp / "store")
    path = tmp / "m.ipynb"
    nbformat.write(notebook([("parameters", "score = 0.8"), SCORED]), path)
    for score in (0.8, 0.9):
        assert build(path, store, params={"score": score}).ok
    failed = build(path, store, params={"score": 0.5}, checks={"thresholds": ["accuracy>=0.7"]})
    assert failed.status == "failed" and failed.version == 3
    return tmp / "store"


@pytest.fixture
def three_versions(built: Path, tmp_path: Path) -> Store:
    """The built store, copied for each test: no alias moved, no history yet."""
    return copy_store(built, tmp_path / "store")


def test_promote_promote_rollback_and_history(three_versions: Store) -> None:
    store = three_versions
    first = handoff.promote("m", 1, store=store, by="alice", reason="first release")
    assert first.comparison is None and first.entry["from_version"] is None
    second = handoff.promote("m", 2, store=store, by="bob")
    assert store.alias_version("m").version == 2
    accuracy = next(r for r in second.comparison.metrics if r["metric"] == "accuracy")
    assert accuracy["deltas"]["v2"]["better"] is True  # the promotion shows what changed against the champion
    back = handoff.rollback("m", store=store, reason="bad canary")
    assert back.entry["from_version"] == 2 and back.entry["to_version"] == 1
    assert store.alias_version("m").version == 1
    history = handoff.history("m", store=store)
    assert [(e["kind"], e["from_version"], e["to_version"], e["by"], e["reason"]) for e in history] == [
        ("promote", None, 1, "alice", "first release"),
        ("promote", 1, 2, "bob", ""),
        ("rollback", 2, 1, history[2]["by"], "bad canary"),
    ]
    assert history[2]["by"]  # the OS user when --by is not given
    assert all(a["time"] <= b["time"] for a, b in itertools.pairwise(history))
    with pytest.raises(PromotionRefused, match="no earlier version to roll back to"):
        handoff.rollback("m", store=store)


def test_failed_version_is_never_promoted(three_versions: Store) -> None:
    with pytest.raises(PromotionRefused, match="version 3 failed its checklist and can never be promoted"):
        handoff.promote("m", 3, store=three_versions)
    assert three_versions.alias_version("m") is None and handoff.history("m", store=three_versions) == []


def test_alias_stack_replays_promotions_and_rollbacks() -> None:
    moves = [
        {"kind": "promote", "from_version": 4, "to_version": 5},
        {"kind": "promote", "from_version": 5, "to_version": 6},
        {"kind": "rollback", "from_version": 6, "to_version": 5},
    ]
    assert alias_stack(moves) == [4, 5]


def test_cli_promote_rollback_history(three_versions: Store, capsys: pytest.CaptureFixture) -> None:
    home = str(local_path(three_versions.artifact_root).parent)
    assert main(["promote", "m", "3", "--store", home]) == 2
    assert "can never be promoted" in capsys.readouterr().err
    assert main(["promote", "m", "1", "--store", home, "--by", "ci", "--reason", "green"]) == 0
    assert main(["promote", "m", "2", "--store", home]) == 0
    out = capsys.readouterr().out
    assert "champion v1 -> v2" in out and "accuracy" in out and "better" in out
    assert main(["rollback", "m", "--store", home]) == 0
    assert "champion v2 -> v1 (rollback" in capsys.readouterr().out
    assert main(["history", "m", "--store", home, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["to_version"]) for e in entries] == [("promote", 1), ("promote", 2), ("rollback", 1)]
    assert main(["compare", "m", "1", "2", "--store", home, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "v1"  # v1 is the champion again


def test_listings_show_which_version_holds_an_alias(three_versions: Store) -> None:
    handoff.promote("m", 2, store=three_versions)
    assert [v.aliases for v in three_versions.list_versions("m")] == [(), ("champion",), ()]
