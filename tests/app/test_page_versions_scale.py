"""The Versions page and the Version detail over a store of hundreds of versions: benchmarks/synthetic.py's
store of 420 versions of two models (210 each; every 10th failed, every 25th archived; the last of each
recorded with artifacts). Pages of 50 through all of them; filters by model, status and metric range
together; a version recorded (or archived) by another process shown on the next rerun, as the listing's
cache follows the store; a trend of the latest 200 versions; the detail's tabs rendered when opened."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from apptest import APP, open_tab, page, texts
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from synthetic import SyntheticStore, synthetic_store

# one worker builds the module's shared fixture (not one per xdist worker)
pytestmark = pytest.mark.xdist_group("page_versions_scale")

PER_MODEL = 210
TESTS = Path(__file__).resolve().parents[1]


def _accuracy(i: int) -> float:
    return 0.85 + (i % 17) / 200  # benchmarks/synthetic.py's metrics of version i


def _listed(i: int) -> bool:
    """Whether version ``i`` of model-01 is listed by default (the full last version is never archived)."""
    return i == PER_MODEL or i % 25 != 0


def _failed(i: int) -> bool:
    return i != PER_MODEL and i % 10 == 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStore:
    return synthetic_store(2 * PER_MODEL, 2, full=1, home=tmp_path_factory.mktemp("synthetic") / "store")


@pytest.fixture
def home(synthetic: SyntheticStore, tmp_path: Path) -> Path:
    """A copy of the synthetic store's database, which the test may write (its artifacts stay where they are)."""
    home = tmp_path / "store"
    home.mkdir(mode=0o700)
    shutil.copy2(synthetic.home / "mlflow.db", home / "mlflow.db")
    return home


@pytest.fixture
def app(home: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("HANDOFF_STORE", str(home))
    return AppTest.from_file(APP, default_timeout=120)


def _table(at: AppTest) -> Any:
    assert not at.exception, at.exception
    return at.dataframe[0].value


def _widget(at: AppTest, kind: str, label: str) -> Any:
    return next(w for w in getattr(at, kind) if w.label == label)


def _shown(at: AppTest) -> list[tuple[str, int]]:
    table = _table(at)
    return list(zip(table["model"], table["version"].astype(int), strict=True))


def test_pages_of_fifty_through_every_version(app: AppTest) -> None:
    page(app, "versions")
    total = 2 * sum(_listed(i) for i in range(1, PER_MODEL + 1))  # model-00's v1 is a real build, never archived
    pages = math.ceil(total / 50)
    assert f"Versions 1–50 of {total}." in texts(app) and f"Page 1 of {pages}" in texts(app)
    seen = _shown(app)
    for number in range(2, pages + 1):
        next(b for b in app.button if b.label == "Next →").click().run()
        assert f"Page {number} of {pages}" in texts(app)
        seen += _shown(app)
    assert f"Versions {50 * (pages - 1) + 1}–{total} of {total}." in texts(app)
    assert next(b for b in app.button if b.label == "Next →").disabled
    assert len(seen) == len(set(seen)) == total  # every version once, newest first
    assert {v for m, v in seen if m == "model-01"} == {i for i in range(1, PER_MODEL + 1) if _listed(i)}
    assert [v for m, v in seen if m == "model-01"] == sorted((v for m, v in seen if m == "model-01"), reverse=True)


def test_filters_by_model_status_and_metric_range(app: AppTest) -> None:
    page(app, "versions", model="model-01")
    listed = [i for i in range(1, PER_MODEL + 1) if _listed(i)]
    assert set(_table(app)["model"]) == {"model-01"} and f"Versions 1–50 of {len(listed)}." in texts(app)

    _widget(app, "selectbox", "Status").set_value("failed").run()
    assert sorted(_table(app)["version"]) == [i for i in listed if _failed(i)]
    assert set(_table(app)["status"]) == {"✗ FAILED"} and f"(of {len(listed)})" in texts(app)
    _widget(app, "selectbox", "Status").set_value("any").run()

    assert _widget(app, "number_input", "Min").disabled  # no metric chosen: no range
    _widget(app, "selectbox", "Metric").set_value("accuracy").run()
    assert _widget(app, "number_input", "Min").placeholder == "0.85"  # the smallest value, as a hint
    _widget(app, "number_input", "Min").set_value(0.9).run()
    _widget(app, "number_input", "Max").set_value(0.91).run()
    within = [i for i in listed if 0.9 <= _accuracy(i) <= 0.91]
    assert 0 < len(within) < 50
    table = _table(app)
    assert sorted(table["version"]) == within and table["accuracy"].between(0.9, 0.91).all()
    assert f"Versions 1–{len(within)} of {len(within)} (of {len(listed)})" in texts(app)

    _widget(app, "selectbox", "Status").set_value("failed").run()  # both filters at once
    assert sorted(_table(app)["version"]) == [i for i in within if _failed(i)]
    _widget(app, "toggle", "Show archived").set_value(True).run()  # archived versions in the range too
    assert sorted(_table(app)["version"]) == [
        i for i in range(1, PER_MODEL) if _failed(i) and 0.9 <= _accuracy(i) <= 0.91
    ]
    _widget(app, "toggle", "Show archived").set_value(False).run()
    _widget(app, "selectbox", "Status").set_value("any").run()

    _widget(app, "number_input", "Min").set_value(0.95).run()  # min above max: said, and not applied
    assert any("Min 0.95 is above Max 0.91" in w.value for w in app.warning)
    assert f"Versions 1–50 of {len(listed)}." in texts(app)

    _widget(app, "selectbox", "Metric").set_value("f1").run()  # another metric: the old bounds are gone
    assert _widget(app, "number_input", "Min").value is None and _widget(app, "number_input", "Max").value is None
    assert "f1" in _table(app).columns


def test_versions_written_by_another_process_show_on_the_next_rerun(app: AppTest, home: Path, tmp_path: Path) -> None:
    page(app, "versions", model="model-01")
    listed = sum(_listed(i) for i in range(1, PER_MODEL + 1))
    assert f"Versions 1–50 of {listed}." in texts(app)
    app.run()  # a rerun with the store unchanged lists the same
    assert f"Versions 1–50 of {listed}." in texts(app)
    record = (
        "import sys; from pathlib import Path; from handoff.store import Store; "
        "from versions_fixture import record_version; store = Store(sys.argv[1]); "
        "run_id = store.list_versions('model-01')[-1].run_id; "
        "print(record_version(store, run_id, Path(sys.argv[2]), name='model-01', metrics={'accuracy': 0.5}))"
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", record, str(home), str(scratch)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert done.stdout.split()[-1] == str(PER_MODEL + 1)
    app.run()
    assert f"Versions 1–50 of {listed + 1}." in texts(app)
    assert _shown(app)[0] == ("model-01", PER_MODEL + 1)  # the newest first

    cli = [sys.executable, "-m", "handoff.cli", "archive", "model-01", str(PER_MODEL + 1), "--store", str(home)]
    subprocess.run(cli, check=True, capture_output=True)
    app.run()
    assert f"Versions 1–50 of {listed}." in texts(app)
    assert ("model-01", PER_MODEL + 1) not in _shown(app)


def test_trend_draws_the_latest_200_versions(app: AppTest) -> None:
    import pyarrow as pa

    page(app, "versions", model="model-01")
    assert not app.exception, app.exception
    chart = app.get("vega_lite_chart")[0].proto
    spec = json.loads(chart.spec)
    points = pa.ipc.open_stream(chart.datasets[0].data.data).read_all().to_pandas()
    listed = [i for i in range(1, PER_MODEL + 1) if _listed(i)]
    assert spec["title"] == "model-01: accuracy (↑ better)"
    assert points["version"].tolist() == listed[-200:]  # archived versions left out, the oldest cut
    failed = dict(zip(points["version"], points["status"], strict=True))
    assert {v for v, s in failed.items() if s == "failed"} == {i for i in listed[-200:] if _failed(i)}
    assert f"model-01: the latest 200 of its {len(listed)} versions." in texts(app)


def test_version_detail_renders_its_tabs_when_opened(app: AppTest) -> None:
    page(app, "version_detail", model="model-01", version=str(PER_MODEL))
    assert not app.exception, app.exception
    assert app.title[0].value == f"model-01 · version {PER_MODEL}"
    assert "Checklist" in texts(app)  # the summary: the record's sections
    assert not app.code and not app.get("download_button") and not app.text_area  # nothing else ran yet

    open_tab(app, "Notebook")
    assert not app.exception, app.exception
    assert any("load_iris" in c.value for c in app.code) and "Checklist" not in texts(app)
    open_tab(app, "Package")
    downloads = app.get("download_button")
    assert downloads and re.match(r"Download package \(\d+ KiB\)", downloads[0].proto.label)
    open_tab(app, "Re-check")
    assert app.text_area(key="recheck_thresholds") is not None
    assert "No re-checks yet" in texts(app)
    open_tab(app, "Overview")
    assert "Checklist" in texts(app) and not app.code


def test_version_detail_without_a_version_offers_the_newest(app: AppTest) -> None:
    page(app, "version_detail")
    assert not app.exception, app.exception
    assert _widget(app, "selectbox", "Model").value == "model-00"
    assert _widget(app, "selectbox", "Version").value == PER_MODEL
    assert app.title[-1].value == f"model-00 · version {PER_MODEL}"
