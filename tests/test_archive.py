"""Archiving a version: a tag and a history entry, never a deletion; refused for the champion; an
archived version cannot be promoted; the tamper check does not mistake the tag for tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.errors import PromotionRefused
from handoff.lifecycle import alias_stack
from handoff.store import Store
from versions_fixture import copy_store, versions_template


@pytest.fixture
def store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return copy_store(versions_template(tmp_path_factory.getbasetemp()), tmp_path / "store")


def _home(store: Store) -> str:
    return str(store.local_paths()[0])


def test_archive_then_unarchive_keeps_the_version_and_the_history(store: Store) -> None:
    entry = handoff.archive("iris", 2, store=store, by="ana", reason="superseded")
    assert (entry["kind"], entry["to_version"], entry["by"], entry["reason"]) == ("archive", 2, "ana", "superseded")
    archived = store.get_version("iris", 2)  # still there, still intact, readable in full
    assert archived.archived and archived.build.inputs.parameters["C"] == 0.5
    assert [v.version for v in store.list_versions("iris", include_archived=False)] == [1, 3, 4, 5]
    assert all(r["ok"] for r in handoff.verify_store(store=store))  # the tag is not tampering
    assert store.integrity_problems(store.client.get_model_version("iris", "2")) == []

    handoff.unarchive("iris", 2, store=store, by="bo")
    assert not store.get_version("iris", 2).archived
    assert [v.version for v in store.list_versions("iris", include_archived=False)] == [1, 2, 3, 4, 5]
    kinds = [(e["kind"], e["to_version"], e["by"]) for e in handoff.history("iris", store=store)]
    assert kinds == [("archive", 2, "ana"), ("unarchive", 2, "bo")]


def test_champion_cannot_be_archived(store: Store) -> None:
    handoff.promote("iris", 4, store=store)
    with pytest.raises(PromotionRefused, match="version 4 is the champion and cannot be archived"):
        handoff.archive("iris", 4, store=store)
    assert not store.get_version("iris", 4).archived
    handoff.promote("iris", 1, store=store)  # another champion: now v4 may go
    handoff.archive("iris", 4, store=store)
    assert store.get_version("iris", 4).archived


def test_archived_version_cannot_be_promoted(store: Store) -> None:
    handoff.archive("iris", 5, store=store)
    with pytest.raises(PromotionRefused, match="iris version 5 is archived: unarchive it first"):
        handoff.promote("iris", 5, store=store)
    assert store.alias_version("iris") is None
    handoff.unarchive("iris", 5, store=store)
    assert handoff.promote("iris", 5, store=store).entry["to_version"] == 5


def test_archive_twice_or_unarchive_a_listed_version_is_refused(store: Store) -> None:
    handoff.archive("iris", 1, store=store)
    with pytest.raises(PromotionRefused, match="archived already"):
        handoff.archive("iris", 1, store=store)
    with pytest.raises(PromotionRefused, match="iris version 2 is not archived"):
        handoff.unarchive("iris", 2, store=store)


def test_archive_entries_leave_rollback_alone(store: Store) -> None:
    handoff.promote("iris", 1, store=store)
    handoff.archive("iris", 2, store=store)
    handoff.promote("iris", 4, store=store, allow_worse=True)  # v4 may score below v1: not what this tests
    assert alias_stack(store.alias_history("iris", "champion")) == [1, 4]
    assert handoff.rollback("iris", store=store).entry["to_version"] == 1


def test_cli_archive_and_unarchive(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    home = _home(store)
    assert main(["promote", "iris", "4", "--store", home]) == 0
    capsys.readouterr()
    assert main(["archive", "iris", "4", "--store", home]) == 2  # the champion
    assert "is the champion and cannot be archived" in capsys.readouterr().err
    assert main(["archive", "iris", "9", "--store", home]) == 2  # no such version
    assert "has no version 9" in capsys.readouterr().err
    assert main(["archive", "iris", "2", "--store", home, "--by", "ci", "--reason", "bad data"]) == 0
    assert capsys.readouterr().out.startswith("iris v2: archived by ci at ")
    assert main(["list", "iris", "--store", home]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["1", "3", "4", "5"]
    assert main(["promote", "iris", "2", "--store", home]) == 2
    assert "unarchive it first" in capsys.readouterr().err
    assert main(["show", "iris", "2", "--store", home]) == 0
    assert "archived: hidden from `handoff list` (`handoff unarchive iris 2`)" in capsys.readouterr().out
    assert main(["unarchive", "iris", "2", "--store", home, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "unarchive"
    assert main(["verify-store", "--store", home]) == 0
