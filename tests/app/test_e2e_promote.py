"""End to end in a real browser: promote a version that is worse than the champion on its primary metric.

Three versions of a notebook whose accuracy is a parameter (v1 0.9 is the champion, v2 0.85, v3 failed
its threshold) are built into a store, then `handoff app` serves it. On the Compare page the trend chart
marks the failed version; promoting v2 shows the evidence (its metrics against v1, shaded worse) and
the "5.6% worse" warning, and Confirm stays disabled until "I want to promote a worse version" is
ticked. The move is reported as "v1 → v2", Promote is then disabled on v2 (the champion), and the
Versions page's alias history reads "none → v1", "v1 → v2". Screenshots 60-69 in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

import handoff
from browser import STARTUP_TIMEOUT, UI, app_server, choose, sidebar
from handoff.store import Store
from helpers import build, notebook

pytestmark = pytest.mark.kernel

ACCURACY = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\nimport handoff\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "handoff.log_metrics({'accuracy': score, 'f1': second})"
)
WORSE_RGB = "rgb(248, 215, 215)"  # app/common.py's BAD shade


@pytest.mark.timeout(600)
def test_promote_a_worse_version_needs_the_second_confirmation(
    tmp_path: Path, _store_template: Path, ui: UI, request: pytest.FixtureRequest
) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(60, 69)
    home = tmp_path / "store"
    shutil.copytree(_store_template, home)
    store = Store(home)
    path = tmp_path / "acc.ipynb"
    nbformat.write(notebook([("parameters", "score = 0.9\nsecond = 0.5"), ACCURACY]), path)
    for score, second in ((0.9, 0.5), (0.85, 0.7)):
        assert build(path, store, name="acc", params={"score": score, "second": second}).ok
    assert build(path, store, name="acc", params={"score": 0.5}, checks={"thresholds": ["accuracy>=0.7"]}).version == 3
    handoff.promote("acc", 1, store=store, by="e2e", reason="first release")

    with app_server(home, request.node.name) as server:
        # 60. The Compare page of v1..v3: the trend chart draws the failed v3 differently (legend: status).
        page.goto(server.url, wait_until="domcontentloaded")  # the token becomes a cookie
        expect(page.get_by_role("heading", name="Build a model version")).to_be_visible(timeout=STARTUP_TIMEOUT * 1000)
        page.goto(f"{server.base}/compare?model=acc&versions=1,2,3", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Compare versions")).to_be_visible()
        expect(page.get_by_role("heading", name="Trend")).to_be_visible()
        expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg.marks").first).to_be_visible()
        expect(page.get_by_text("failed versions are red crosses", exact=False)).to_be_visible()
        ui.no_exception()
        ui.shot("compare-trend-failed-marked")

        # 61. Promote v2: the evidence against the champion v1, the warning, Confirm disabled.
        choose(ui, "Version", "2")
        page.get_by_role("button", name="Promote v2 to champion").click()
        warning = ui.alert("v2 is 5.6% worse than v1 on accuracy (0.85 vs 0.9).")
        expect(warning).to_be_visible()
        expect(ui.alert("Move champion of acc from v1 to v2?")).to_be_visible()
        evidence = page.get_by_test_id("stTable").filter(has_text="champion v1")
        expect(evidence).to_be_visible()
        for text in ("accuracy (↑) · primary", "0.85", "-0.05 (-5.6%) worse", "+0.2 (+40.0%) better"):
            expect(evidence).to_contain_text(text)
        worse_cell = evidence.locator("td", has_text="-0.05 (-5.6%) worse")
        assert worse_cell.evaluate("e => getComputedStyle(e).backgroundColor") == WORSE_RGB
        confirm = page.get_by_role("button", name="Confirm", exact=True)
        expect(confirm).to_be_disabled()
        ui.no_exception()
        ui.shot("promote-worse-evidence")

        # 62. The second confirmation enables Confirm; nothing has moved yet.
        page.get_by_test_id("stCheckbox").filter(has_text="I want to promote a worse version").click()
        expect(confirm).to_be_enabled()
        assert store.alias_version("acc").version == 1
        page.get_by_label("Reason (kept in the history)", exact=True).fill("f1 matters more (e2e)")
        page.get_by_label("Reason (kept in the history)", exact=True).press("Tab")
        ui.no_exception()
        ui.shot("promote-worse-acknowledged")

        # 63. Confirm: the move reads v1 → v2.
        confirm.click()
        expect(ui.alert("champion of acc: v1 → v2 (promote by")).to_be_visible()
        expect(warning).to_have_count(0)
        assert store.alias_version("acc").version == 2
        ui.no_exception()
        ui.shot("promoted-worse")

        # 64. v2's page: Promote is disabled on the champion, and says why.
        page.goto(f"{server.base}/version?model=acc&version=2", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="acc · version 2")).to_be_visible()
        expect(page.get_by_role("button", name="Promote v2 to champion")).to_be_disabled()
        expect(page.get_by_text("v2 is already the champion of acc.")).to_be_visible()
        expect(page.get_by_role("button", name="Roll back champion")).to_be_enabled()
        ui.no_exception()
        ui.shot("champion-promote-disabled")

        # 65. The Versions page: the alias history reads none → v1, v1 → v2, with who and why.
        sidebar(ui, "Versions")
        choose(ui, "Model", "acc")
        expect(page.get_by_role("heading", name="Alias history of acc")).to_be_visible()
        history = page.get_by_test_id("stDataFrame").last
        for text in ("none", "v1", "v2", "first release", "f1 matters more (e2e)", re.compile(r"just now|\d+ min ago")):
            expect(history).to_contain_text(text)
        ui.no_exception()
        ui.shot("alias-history")
