"""Promote and roll back in the app with the evidence in view (AppTest): the metrics against the
champion above the question, a second confirmation for a version worse on the primary metric (and none
for a better one), Promote disabled on the champion, Roll back disabled with its reason, the history's
from/to, and the compare page's trend chart marking failed versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import handoff
from apptest import APP, page, texts
from handoff.store import Store
from versions_fixture import copy_store

# one worker builds the shared ``promotion_template`` for this module and test_promotion_evidence
pytestmark = [pytest.mark.kernel, pytest.mark.xdist_group("promotion_template")]


@pytest.fixture
def store(promotion_template: Path, tmp_path: Path) -> Store:
    """The built store, copied for each test (the ``app`` fixture opens this one)."""
    return copy_store(promotion_template, tmp_path / "store")


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def evidence_table(at: AppTest) -> Any:
    """The confirmation's metrics table (the page's other tables are the record's sections)."""
    return next((t.value for t in at.table if "change" in t.value.columns), None)


def detail(app: AppTest, version: int) -> AppTest:
    page(app, "version_detail", model="acc", version=str(version))
    assert not app.exception, app.exception
    return app


def test_promote_a_better_version_shows_the_evidence_and_asks_once(app: AppTest, store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    detail(app, 2)
    button(app, "Promote v2 to champion").click().run()
    assert "**v2** against the current champion **v1**" in texts(app)
    evidence = evidence_table(app)
    assert list(evidence.columns) == ["metric", "champion v1", "v2", "change"]
    accuracy = evidence.set_index("metric").loc["accuracy (↑) · primary"]
    assert (accuracy["champion v1"], accuracy["v2"], accuracy["change"]) == ("0.9", "0.95", "+0.05 (+5.6%) better")
    rows = evidence.set_index("metric")
    assert rows.loc["f1 (↑)", "change"] == "-0.1 (-20.0%) worse"  # a secondary metric: shown, no second ask
    assert any("Move **champion** of acc from v1 to v2?" in w.value for w in app.warning)
    assert not [c for c in app.checkbox if c.label == "I want to promote a worse version"]
    assert not app.error
    assert store.alias_version("acc").version == 1  # nothing moves before Confirm
    confirm = button(app, "Confirm")
    assert not confirm.disabled
    confirm.click().run()
    assert any("champion of acc: v1 → v2 (promote by" in s.value for s in app.success), texts(app)
    assert store.alias_version("acc").version == 2


def test_promote_a_worse_version_needs_the_second_confirmation(app: AppTest, store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    detail(app, 3)
    button(app, "Promote v3 to champion").click().run()
    assert any(e.value == "v3 is 1.7% worse than v1 on accuracy (0.885 vs 0.9)." for e in app.error), texts(app)
    assert evidence_table(app).set_index("metric").loc["accuracy (↑) · primary", "change"].endswith("worse")
    assert button(app, "Confirm").disabled  # not until the worse number is acknowledged
    insist = next(c for c in app.checkbox if c.label == "I want to promote a worse version")
    insist.check().run()
    assert store.alias_version("acc").version == 1  # ticking is not confirming
    confirm = button(app, "Confirm")
    assert not confirm.disabled
    confirm.click().run()
    assert any("champion of acc: v1 → v3 (promote by" in s.value for s in app.success), texts(app)
    assert store.alias_version("acc").version == 3
    # the next promotion starts unticked: Cancel on a worse one leaves Confirm disabled again
    assert not [c for c in app.checkbox if c.label == "I want to promote a worse version"]


def test_first_promotion_reads_none_to_the_version(app: AppTest, store: Store) -> None:
    detail(app, 1)
    button(app, "Promote v1 to champion").click().run()
    assert any("Make v1 the first **champion** of acc?" in w.value for w in app.warning)
    assert evidence_table(app) is None  # no champion: nothing to compare with
    button(app, "Confirm").click().run()
    message = next(s.value for s in app.success)
    assert message.startswith("champion of acc: none → v1 (promote by") and "v-" not in message


def test_promote_is_disabled_on_the_champion_and_on_a_failed_version(app: AppTest, store: Store) -> None:
    handoff.promote("acc", 2, store=store)
    detail(app, 2)
    promote = button(app, "Promote v2 to champion")
    assert promote.disabled and promote.help == "v2 is already the champion of acc."
    failed = AppTest.from_file(APP, default_timeout=60)
    detail(failed, 4)
    promote = button(failed, "Promote v4 to champion")
    assert promote.disabled and "can never be promoted" in promote.help


def test_rollback_is_disabled_with_the_reason_without_an_earlier_champion(app: AppTest, store: Store) -> None:
    detail(app, 1)
    rollback = button(app, "Roll back champion")
    assert rollback.disabled and rollback.help == "Nothing to roll back: acc has no champion yet."
    assert "Nothing to roll back: acc has no champion yet." in [c.value for c in app.caption]
    handoff.promote("acc", 1, store=store)
    app.run()
    rollback = button(app, "Roll back champion")
    reason = "Nothing to roll back to: v1 is the only champion acc has had (no earlier champion)."
    assert rollback.disabled and rollback.help == reason and reason in [c.value for c in app.caption]
    handoff.promote("acc", 2, store=store)
    app.run()
    rollback = button(app, "Roll back champion")
    assert not rollback.disabled
    rollback.click().run()
    assert any("Move **champion** of acc back from v2 to v1?" in w.value for w in app.warning)
    assert evidence_table(app).set_index("metric").loc["accuracy (↑) · primary", "change"].endswith("worse")
    button(app, "Confirm").click().run()
    assert any("champion of acc: v2 → v1 (rollback by" in s.value for s in app.success), texts(app)


def test_history_rows_read_from_and_to(app: AppTest, store: Store) -> None:
    handoff.promote("acc", 1, store=store, by="alice", reason="first release")
    handoff.promote("acc", 3, store=store, by="bob", allow_worse=True)
    handoff.rollback("acc", store=store, by="carol", reason="canary")
    page(app, "versions", model="acc")
    assert not app.exception, app.exception
    history = app.dataframe[-1].value
    assert list(history.columns) == ["time", "alias", "kind", "from", "to", "by", "reason"]
    assert history[["kind", "from", "to", "by", "reason"]].values.tolist() == [  # newest first
        ["rollback", "v3", "v1", "carol", "canary"],
        ["promote", "v1", "v3", "bob", ""],
        ["promote", "none", "v1", "alice", "first release"],
    ]
    assert set(history["time"]) == {"just now"}


def test_compare_page_promotes_with_the_evidence_and_marks_failed_versions(app: AppTest, store: Store) -> None:
    handoff.promote("acc", 1, store=store)
    page(app, "compare", model="acc", versions="1,3,4")
    assert not app.exception, app.exception
    charts = app.get("vega_lite_chart")
    assert charts, "no trend chart"
    spec = json.dumps(json.loads(charts[0].proto.spec))
    assert '"shape"' in spec and '"cross"' in spec and '"failed"' in spec  # failed versions drawn differently
    assert '"datum.champion"' in spec  # and the champion labelled
    assert "failed versions are red crosses" in texts(app)
    next(s for s in app.selectbox if s.label == "Version").set_value(3).run()
    button(app, "Promote v3 to champion").click().run()
    assert any(e.value == "v3 is 1.7% worse than v1 on accuracy (0.885 vs 0.9)." for e in app.error), texts(app)
    assert button(app, "Confirm").disabled
    next(c for c in app.checkbox if c.label == "I want to promote a worse version").check().run()
    button(app, "Confirm").click().run()
    assert any("champion of acc: v1 → v3" in s.value for s in app.success), texts(app)
