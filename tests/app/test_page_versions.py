"""The Versions page as a place to work: differing parameters, notebook, duration and author columns,
sort, search, filters, pages of 50, the trend chart (failed versions marked, archived left out),
archive / unarchive of the selected row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import handoff
from apptest import APP, page, texts
from handoff.store import Store
from versions_fixture import copy_store, record_version, versions_template


@pytest.fixture
def store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return copy_store(versions_template(tmp_path_factory.getbasetemp()), tmp_path / "store")


@pytest.fixture
def app(store: Store, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("HANDOFF_STORE", str(store.local_paths()[0]))
    return AppTest.from_file(APP, default_timeout=60)


def _table(at: AppTest) -> pd.DataFrame:
    assert not at.exception, at.exception
    return at.dataframe[0].value


def _widget(at: AppTest, kind: str, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in getattr(at, kind) if w.label == label)


def _trend_points(at: AppTest) -> tuple[dict, pd.DataFrame]:
    """The trend chart's Vega-Lite spec and the points it draws."""
    import pyarrow as pa

    chart = at.get("vega_lite_chart")[0].proto
    data = pa.ipc.open_stream(chart.datasets[0].data.data).read_all().to_pandas()
    return json.loads(chart.spec), data


def test_columns_tell_versions_apart(app: AppTest) -> None:
    page(app, "versions", model="iris")
    table = _table(app)
    assert list(table["version"]) == [5, 4, 3, 2, 1]  # newest first
    assert {"notebook", "author", "duration", "created", "alias", "C", "accuracy"} <= set(table.columns)
    assert "label" not in table.columns  # the same in every iris version
    assert list(table["C"]) == ["4.0", "1.0", "2.0", "0.5", "1.0"]
    assert list(table["notebook"]) == ["iris-tuned.ipynb", "iris.ipynb", "iris-tuned.ipynb", "iris.ipynb", "iris.ipynb"]
    # human, not ISO; the shared template store may have been built long before this test runs
    assert all(re.fullmatch(r"just now|\d+ min ago|\d+ h ago", c) for c in table["created"]), table["created"]
    assert all(d.endswith(" s") for d in table["duration"])
    assert table["status"].tolist()[2] == "✗ FAILED"
    _widget(app, "selectbox", "Model").set_value("All models").run()
    table = _table(app)
    assert len(table) == 7 and {"C", "label"} <= set(table.columns)  # label differs between other's versions


def test_sort_search_and_filters(app: AppTest, store: Store) -> None:
    handoff.promote("iris", 4, store=store)
    page(app, "versions")
    _widget(app, "selectbox", "Sort by").set_value("C").run()
    table = _table(app)
    assert table["C"].tolist() == ["4.0", "2.0", "1.0", "1.0", "1.0", "1.0", "0.5"]  # as numbers, descending
    _widget(app, "toggle", "Descending").set_value(False).run()
    assert _table(app)["C"].tolist()[:2] == ["0.5", "1.0"]
    _widget(app, "selectbox", "Sort by").set_value("accuracy").run()
    assert _table(app)["version"].tolist()[:2] == [3, 1]  # iris v3 0.42, other v1 0.80

    _widget(app, "text_input", "Search").set_value("tuned").run()
    assert sorted(_table(app)["version"]) == [3, 5]
    _widget(app, "text_input", "Search").set_value("C=0.5").run()
    assert _table(app)["version"].tolist() == [2]
    _widget(app, "text_input", "Search").set_value("second").run()  # other v2's label
    assert [(m, v) for m, v in zip(_table(app)["model"], _table(app)["version"], strict=True)] == [("other", 2)]
    _widget(app, "text_input", "Search").set_value("").run()

    _widget(app, "selectbox", "Status").set_value("failed").run()
    assert _table(app)["version"].tolist() == [3]
    _widget(app, "selectbox", "Status").set_value("any").run()
    _widget(app, "selectbox", "Alias").set_value("champion").run()
    table = _table(app)
    assert (table["model"].tolist(), table["version"].tolist(), table["alias"].tolist()) == (
        ["iris"],
        [4],
        ["champion"],
    )
    _widget(app, "selectbox", "Status").set_value("failed").run()
    assert _table(app).empty and "No version matches" in texts(app)


def test_sorting_by_a_column_another_model_lacks(app: AppTest) -> None:
    page(app, "versions")
    _widget(app, "selectbox", "Sort by").set_value("label").run()  # differs only among other's versions
    assert _table(app)["label"].tolist() == ["second", *["iris"] * 5, "first"]
    _widget(app, "selectbox", "Model").set_value("iris").run()
    table = _table(app)
    assert "label" not in table.columns and table["version"].tolist() == [5, 4, 3, 2, 1]


def test_pages_of_fifty(app: AppTest, store: Store, tmp_path: Path) -> None:
    run_id = store.list_versions("other")[0].run_id
    assert run_id is not None
    for i in range(50):
        record_version(store, run_id, tmp_path, name="many", parameters={"C": i / 10})
    page(app, "versions")
    assert len(_table(app)) == 50 and "Versions 1–50 of 57" in texts(app) and "Page 1 of 2" in texts(app)
    first = _table(app)
    app.session_state["versions_table"] = {"selection": {"rows": [0], "columns": []}}
    app.run()
    assert any(b.label.startswith("Open ") for b in app.button)
    next(b for b in app.button if b.label == "Next →").click().run()
    second = _table(app)
    assert not any(b.label.startswith("Open ") for b in app.button)  # a row ticked on page 1 is not kept
    assert len(second) == 7 and "Versions 51–57 of 57" in texts(app) and "Page 2 of 2" in texts(app)
    shown = {(m, v) for frame in (first, second) for m, v in zip(frame["model"], frame["version"], strict=True)}
    assert len(shown) == 57
    _widget(app, "text_input", "Search").set_value("many").run()  # a new search starts from page 1
    assert len(_table(app)) == 50 and "Versions 1–50 of 50 (of 57)" in texts(app)
    assert not any(b.label == "Next →" for b in app.button)


def test_trend_marks_failed_versions_and_leaves_out_archived(app: AppTest, store: Store) -> None:
    handoff.archive("iris", 2, store=store)
    page(app, "versions", model="iris")
    spec, points = _trend_points(app)
    assert spec["title"] == "iris: accuracy (↑ better)"
    marks = spec["layer"][1]["encoding"]
    assert marks["color"]["legend"]["title"] == "status" and marks["color"]["field"] == "status"
    assert marks["shape"]["scale"] == {"domain": ["passed", "failed"], "range": ["circle", "cross"]}
    assert points["version"].tolist() == [1, 3, 4, 5]  # v2 is archived
    assert dict(zip(points["version"], points["status"], strict=True))[3] == "failed"
    assert points["value"].tolist()[1:] == [0.42, 0.97, 0.95]
    _widget(app, "toggle", "Show archived").set_value(True).run()  # listed again, still not in the trend
    assert 2 in _table(app)["version"].tolist()
    assert _trend_points(app)[1]["version"].tolist() == [1, 3, 4, 5]


def test_archive_and_unarchive_from_the_page(app: AppTest, store: Store) -> None:
    handoff.promote("iris", 4, store=store)
    page(app, "versions", model="iris")
    app.session_state["versions_table"] = {"selection": {"rows": [1], "columns": []}}  # v4, the champion
    app.run()
    refused = next(b for b in app.button if b.label == "Archive v4")
    assert refused.disabled and "v4 is the champion" in texts(app)
    app.session_state["versions_table"] = {"selection": {"rows": [3], "columns": []}}  # v2
    app.run()
    next(b for b in app.button if b.label == "Archive v2").click().run()
    assert any("Archive **iris v2**?" in w.value for w in app.warning)
    assert not store.get_version("iris", 2).archived  # nothing before the confirmation
    _widget(app, "text_input", "Reason (kept in the history)").set_value("worse than v4")
    next(b for b in app.button if b.label == "Confirm archive").click().run()
    assert any("iris v2 archived by" in s.value for s in app.success), texts(app)
    assert store.get_version("iris", 2).archived
    assert _table(app)["version"].tolist() == [5, 4, 3, 1]
    entries = handoff.history("iris", store=store)
    assert (entries[-1]["kind"], entries[-1]["reason"]) == ("archive", "worse than v4")

    _widget(app, "toggle", "Show archived").set_value(True).run()
    table = _table(app)
    assert table["status"].tolist()[3] == "✓ passed · archived"
    app.session_state["versions_table"] = {"selection": {"rows": [3], "columns": []}}
    app.run()
    next(b for b in app.button if b.label == "Unarchive v2").click().run()
    next(b for b in app.button if b.label == "Confirm unarchive").click().run()
    assert not store.get_version("iris", 2).archived


def test_compare_choices_leave_out_archived(app: AppTest, store: Store) -> None:
    handoff.archive("iris", 5, store=store)
    page(app, "compare", model="iris")
    assert not app.exception, app.exception
    versions = _widget(app, "multiselect", "Versions")
    assert 5 not in versions.options and "4" in [str(o) for o in versions.options]
