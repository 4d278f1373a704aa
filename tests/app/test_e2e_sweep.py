"""A sweep end to end in a real browser: Sweep mode on the Build page, the point count before start,
the live grid, the results best first with the chart, and the best point promoted.

Screenshots 70-79 go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import handoff
from browser import BUILD_TIMEOUT, UI, Server, open_build_page, set_value
from handoff.store import Store
from helpers import SAMPLES


@pytest.mark.timeout(300)
def test_a_two_point_sweep_from_the_build_page(server: Server, ui: UI, tmp_path: Path) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(70, 79)
    open_build_page(ui, server.url)
    page.locator("input[type=file]").first.set_input_files(str(SAMPLES / "ridge_sweep.ipynb"))
    page.get_by_text("Sweep", exact=True).click()
    degree = page.get_by_label("degree (int) values", exact=True)
    expect(degree).to_have_value("1")
    expect(page.get_by_role("button", name="Start sweep")).to_be_disabled()  # nothing swept yet
    set_value(ui, degree, "1,2")
    expect(page.get_by_text("2 points, each a full build and version")).to_be_visible()
    set_value(ui, page.get_by_label("alpha (float) values", exact=True), "0.5:5:3")
    expect(page.get_by_text("6 points, each a full build and version")).to_be_visible()
    set_value(ui, page.get_by_label("alpha (float) values", exact=True), "0.5")
    expect(page.get_by_text("2 points, each a full build and version")).to_be_visible()
    ui.shot("sweep-form")
    page.get_by_role("button", name="Start sweep").click()
    page.wait_for_url(re.compile(r"[?&]sweep="))
    sweep_id = re.search(r"[?&]sweep=([0-9a-f]+)", page.url)
    assert sweep_id, page.url

    expect(ui.alert("Every point passed (2 passed).")).to_be_visible(timeout=BUILD_TIMEOUT)
    chart = page.get_by_test_id("stVegaLiteChart")
    expect(chart).to_be_visible()
    expect(page.get_by_text("rmse (lower is better) against each swept parameter")).to_be_visible()
    ui.no_exception()
    ui.shot("sweep-results")

    store = Store(tmp_path / "store")  # the one the server fixture started the app on
    result = handoff.sweep_status(sweep_id.group(1), store=store)
    assert [p.state for p in result.points] == ["passed", "passed"]
    best = result.best
    assert best is not None and best.version is not None
    expect(page.get_by_role("combobox", name="Version to promote (best first)")).to_have_value(str(best.version))
    page.get_by_role("button", name=f"Promote v{best.version} to champion").click()
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(ui.alert(re.compile(rf"champion of ridge_sweep: .*v{best.version} \(promote by"))).to_be_visible()
    assert store.alias_version("ridge_sweep", "champion").version == best.version
    ui.shot("sweep-promoted")
