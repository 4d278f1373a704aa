"""Promote with the evidence: the preview of a promotion or roll-back (the champion, every metric against
it, the candidate's failed checks, worse on the primary metric, allowed or why not), the refusal of a
worse promotion without the explicit confirmation, and the history's from/to as people read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.errors import PromotionRefused, WorseThanChampion
from handoff.lifecycle import history_rows, version_label
from handoff.store import Store
from handoff.timefmt import human_time
from helpers import local_path
from versions_fixture import copy_store

# one worker builds the shared ``promotion_template`` for this module and the app's promote page
pytestmark = [pytest.mark.kernel, pytest.mark.xdist_group("promotion_template")]


@pytest.fixture
def store(promotion_template: Path, tmp_path: Path) -> Store:
    """A copy of the built store per test, so each starts with no alias moved (the versions' artifacts
    stay where they were built; nothing here writes to them)."""
    return copy_store(promotion_template, tmp_path / "store")


def metric(preview: handoff.PromotionPreview | handoff.RollbackPreview, name: str) -> handoff.lifecycle.MetricChange:
    return next(m for m in preview.metrics if m.metric == name)


def test_first_promotion_has_no_champion_to_compare_with(store: Store) -> None:
    preview = handoff.promotion_preview("acc", 1, store=store)
    assert (preview.current, preview.allowed, preview.worse, preview.move) == (None, True, False, "none → v1")
    assert [(m.metric, m.candidate, m.current, m.better, m.primary) for m in preview.metrics] == [
        ("accuracy", 0.9, None, None, True),
        ("f1", 0.5, None, None, False),
    ]
    assert store.alias_version("acc") is None  # a preview moves nothing
    move = handoff.promote("acc", 1, store=store, by="alice")
    assert move.move == "none → v1" and move.entry["from_version"] is None and move.evidence == preview


def test_better_candidate_shows_every_metric_against_the_champion(store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    preview = handoff.promotion_preview("acc", 2, store=store)
    assert preview.current == 1 and preview.allowed and preview.move == "v1 → v2"
    accuracy, f1 = metric(preview, "accuracy"), metric(preview, "f1")
    assert (accuracy.candidate, accuracy.current, accuracy.better, accuracy.primary) == (0.95, 0.9, True, True)
    assert accuracy.absolute == pytest.approx(0.05) and accuracy.relative == pytest.approx(0.05 / 0.9)
    assert (f1.better, f1.primary) == (False, False)  # worse on a secondary metric: shown, not a second ask
    assert not preview.worse and preview.worse_message is None
    assert preview.primary == accuracy
    move = handoff.promote("acc", 2, store=store)  # no allow_worse needed
    assert move.move == "v1 → v2" and store.alias_version("acc").version == 2
    assert move.to_dict()["evidence"]["metrics"][0]["metric"] == "accuracy"


def test_worse_on_the_primary_metric_needs_an_explicit_confirmation(store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    preview = handoff.promotion_preview("acc", 3, store=store)
    assert preview.allowed and preview.worse  # allowed, but only when asked for twice
    assert preview.worse_message == "v3 is 1.7% worse than v1 on accuracy (0.885 vs 0.9)"
    assert metric(preview, "f1").better is True  # better elsewhere does not make up for the primary metric
    with pytest.raises(WorseThanChampion, match=r"v3 is 1\.7% worse than v1 on accuracy") as refused:
        handoff.promote("acc", 3, store=store)
    assert refused.value.preview == preview and isinstance(refused.value, PromotionRefused)
    assert store.alias_version("acc").version == 1 and len(handoff.history("acc", store=store)) == 1
    move = handoff.promote("acc", 3, store=store, allow_worse=True, reason="f1 matters more here")
    assert move.move == "v1 → v3" and store.alias_version("acc").version == 3


def test_lower_is_better_metric_and_the_checklists_direction_override(store: Store) -> None:
    handoff.promote("reg", 1, store=store)
    better = handoff.promotion_preview("reg", 2, store=store)  # rmse 1.5 against 2.0: lower is better
    rmse = metric(better, "rmse")
    assert (rmse.greater_is_better, rmse.better, rmse.primary, better.worse) == (False, True, True, False)
    # v3 (rmse 2.5) was built with rmse declared greater-is-better: the preview follows that, as the gate does
    overridden = handoff.promotion_preview("reg", 3, store=store)
    assert metric(overridden, "rmse").greater_is_better is True and not overridden.worse
    handoff.promote("reg", 2, store=store)
    worse = handoff.promotion_preview("reg", 1, store=store)  # rmse 2.0 against 1.5
    assert worse.worse and worse.worse_message == "v1 is 33.3% worse than v2 on rmse (2 vs 1.5)"


def test_failed_candidate_is_refused_with_its_failed_checks(store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    preview = handoff.promotion_preview("acc", 4, store=store)
    assert not preview.allowed and preview.status == "failed"
    assert "acc version 4 failed its checklist and can never be promoted" in (preview.refused or "")
    assert [(c.id, c.status) for c in preview.concerns if c.status == "failed"] == [("metrics.thresholds", "failed")]
    assert "accuracy = 0.5 misses accuracy >= 0.7" in preview.concerns[0].message
    assert metric(preview, "accuracy").better is False  # the evidence is there even when the answer is no
    with pytest.raises(PromotionRefused, match="failed its checklist"):
        handoff.promote("acc", 4, store=store, allow_worse=True)


def test_the_champion_cannot_be_promoted_again(store: Store) -> None:
    handoff.promote("acc", 2, store=store)
    preview = handoff.promotion_preview("acc", 2, store=store)
    assert not preview.allowed and preview.refused == "acc version 2 is already 'champion'"
    with pytest.raises(PromotionRefused, match="is already 'champion'"):
        handoff.promote("acc", 2, store=store)


def test_rollback_preview_without_an_earlier_champion(store: Store) -> None:
    never = handoff.rollback_preview("acc", store=store)
    assert (never.current, never.target, never.allowed) == (None, None, False)
    assert "never set" in (never.refused or "")
    handoff.promote("acc", 1, store=store)
    once = handoff.rollback_preview("acc", store=store)
    assert (once.current, once.target, once.allowed) == (1, None, False)
    assert once.refused == "acc: 'champion' has no earlier version to roll back to (it holds version 1)"
    with pytest.raises(PromotionRefused, match="no earlier version to roll back to"):
        handoff.rollback("acc", store=store)
    assert len(handoff.history("acc", store=store)) == 1  # refused: nothing was written


def test_rollback_preview_with_an_earlier_champion(store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    handoff.promote("acc", 2, store=store)
    preview = handoff.rollback_preview("acc", store=store)
    assert (preview.current, preview.target, preview.allowed, preview.move) == (2, 1, True, "v2 → v1")
    assert (metric(preview, "accuracy").candidate, metric(preview, "accuracy").better) == (0.9, False)
    assert store.alias_version("acc").version == 2  # computed without moving anything
    assert handoff.rollback_preview("acc", store=store, evidence=False).metrics == ()
    move = handoff.rollback("acc", store=store, reason="canary")
    assert move.move == "v2 → v1" and move.evidence == preview
    after = handoff.rollback_preview("acc", store=store)  # v1 again, and before it nothing
    assert (after.current, after.target, after.allowed) == (1, None, False)


def test_history_rows_read_from_none_to_a_version_with_a_human_time(store: Store) -> None:
    handoff.promote("acc", 1, store=store, by="alice", reason="first")
    handoff.promote("acc", 2, store=store, by="bob")
    handoff.rollback("acc", store=store, by="carol", reason="canary")
    entries = handoff.history("acc", store=store)
    rows = history_rows(entries)
    assert [(r["kind"], r["from"], r["to"], r["by"], r["reason"]) for r in rows] == [
        ("promote", "none", "v1", "alice", "first"),
        ("promote", "v1", "v2", "bob", ""),
        ("rollback", "v2", "v1", "carol", "canary"),
    ]
    assert all(r["time"] == "just now" for r in rows)
    iso = history_rows(entries, human=False)
    assert [r["time"] for r in iso] == [e["time"] for e in entries]
    assert datetime.fromisoformat(iso[0]["time"]).tzinfo is not None
    assert "None" not in str(rows) and "v-" not in str(rows)


def test_human_time_and_version_label() -> None:
    now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)

    def ago(**delta: float) -> str:
        return human_time((now - timedelta(**delta)).isoformat(timespec="seconds"), now)

    assert ago(seconds=20) == "just now"
    assert ago(minutes=5) == "5 min ago"
    assert ago(hours=3) == "3 h ago"
    assert ago(hours=20) == "20 h ago"
    assert ago(hours=30) == "yesterday"
    assert ago(days=4) == "4 days ago"
    assert ago(days=30) == "24 Oct 2026"
    assert human_time("not a time", now) == "not a time" and human_time(None, now) == ""
    assert (version_label(None), version_label(2)) == ("none", "v2")
    # an entry that moves no alias (an archive) reads as its version alone, never "none → v3"
    archived = {"alias": "", "kind": "archive", "from_version": None, "to_version": 3, "by": "a", "reason": ""}
    assert [(r["kind"], r["from"], r["to"]) for r in history_rows([archived], now=now)] == [("archive", "", "v3")]


def test_cli_shows_the_evidence_and_refuses_a_worse_promotion(store: Store, capsys: pytest.CaptureFixture) -> None:
    home = str(local_path(store.artifact_root).parent)
    assert main(["promote", "acc", "1", "--store", home]) == 0
    first = capsys.readouterr().out
    assert "acc: champion none -> v1 (promote by" in first and "accuracy=0.9" in first
    assert main(["promote", "acc", "3", "--store", home]) == 2
    refused = capsys.readouterr()
    assert "WORSE: v3 is 1.7% worse than v1 on accuracy (0.885 vs 0.9)" in refused.out
    lines = refused.out.splitlines()
    assert lines[0].split() == ["METRIC", "v1", "v3", "CHANGE"]
    assert lines[1].split()[:4] == ["accuracy", "(primary)", "0.9", "0.885"] and lines[1].endswith("worse")
    assert refused.err == (
        "handoff: error: acc: v3 is 1.7% worse than v1 on accuracy (0.885 vs 0.9): refused; "
        "pass --force-worse to promote it anyway\n"
    )
    assert store.alias_version("acc").version == 1
    assert main(["promote", "acc", "3", "--store", home, "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["evidence"]["worse"] is True and data["evidence"]["primary"] == "accuracy"
    assert main(["promote", "acc", "3", "--store", home, "--force-worse", "--reason", "f1"]) == 0
    assert "acc: champion v1 -> v3 (promote by" in capsys.readouterr().out
    assert main(["rollback", "acc", "--store", home]) == 0
    rolled = capsys.readouterr().out
    assert "acc: champion v3 -> v1 (rollback by" in rolled and "accuracy (primary)" in rolled
    assert main(["history", "acc", "--store", home]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["TIME", "ALIAS", "KIND", "FROM", "TO", "BY", "REASON"]
    assert [line.split()[:6] for line in table[1:]] == [  # the time reads "just now"
        ["just", "now", "champion", "promote", "none", "v1"],
        ["just", "now", "champion", "promote", "v1", "v3"],
        ["just", "now", "champion", "rollback", "v3", "v1"],
    ]
    assert table[2].rstrip().endswith("f1")  # the reason
    assert main(["history", "acc", "--store", home, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["from_version"] is None and datetime.fromisoformat(entries[0]["time"]).tzinfo is not None
