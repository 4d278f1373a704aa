"""Build jobs end to end in a real browser: two tabs, cancel, an app restart mid-build, a cell failure.

Small notebooks written by the test (a ``time.sleep`` cell keeps a build running). Screenshots 30-49 go
to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest

import handoff
from browser import BUILD_TIMEOUT, RENDER_TIMEOUT, UI, Server, app_server, open_build_page, sidebar
from helpers import TRAIN_IRIS, notebook

SLEEPY = [("parameters", "seconds = 120"), "import time\ntime.sleep(seconds)", TRAIN_IRIS]


def _write(tmp_path: Path, name: str, cells: list) -> Path:
    import nbformat

    path = tmp_path / name
    nbformat.write(notebook(cells), path)
    return path


def _upload_and_build(ui: UI, path: Path, fields: dict[str, str] | None = None) -> str:
    """Upload a notebook on the Build page, set fields, press Build; returns the job id in the URL."""
    page = ui.page
    page.locator("input[type=file]").first.set_input_files(str(path))
    for label, value in (fields or {}).items():
        box = page.get_by_label(label, exact=True)
        ui.expect(box).to_be_visible()
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]job="))
    found = re.search(r"[?&]job=([0-9a-f]+)", page.url)
    assert found, page.url
    return found.group(1)


def _builds_row(ui: UI, text: str | re.Pattern[str]) -> object:
    """A line of the Builds page's running-and-recent list (the table below it is a canvas)."""
    return ui.page.get_by_test_id("stMarkdown").get_by_role("listitem").filter(has_text=text).first


@pytest.mark.timeout(300)
def test_second_tab_sees_the_running_build_and_cancel_stops_it(server: Server, ui: UI, tmp_path: Path) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(30, 35)
    open_build_page(ui, server.url)
    job_id = _upload_and_build(ui, _write(tmp_path, "sleepy.ipynb", SLEEPY))
    expect(page.get_by_text("Running cell 2 (2 of 3 code cells)")).to_be_visible(timeout=BUILD_TIMEOUT)
    ui.shot("build-running")

    # a second tab knows nothing but the app: the Builds page lists the first tab's build, running
    second = UI(page.context.new_page(), expect, ui._step)
    second.page.set_default_timeout(RENDER_TIMEOUT)
    second.page.goto(server.url, wait_until="domcontentloaded")
    sidebar(second, "Builds")
    expect(_builds_row(second, "▶ running")).to_be_visible()
    expect(_builds_row(second, "Running cell 2")).to_be_visible()
    expect(second.page.get_by_test_id("stDataFrame")).to_be_visible()
    second.no_exception()
    second.shot("builds-second-tab")

    # cancel from the first tab: the kernel is killed, the build ends cancelled, with who asked
    page.get_by_role("button", name="Cancel this build").click()
    user = getpass.getuser()
    expect(ui.alert(f"cancelled by {user} at cell 2")).to_be_visible(timeout=BUILD_TIMEOUT)
    # the failed build recorded for it, read back from the store: the partly executed notebook's cell
    expect(
        ui.alert(re.compile(rf"Build failed: the build was cancelled .*cell 2: cancelled by {user}"))
    ).to_be_visible()
    expect(page.get_by_text("time.sleep(seconds)").first).to_be_visible()
    ui.no_exception()
    ui.shot("build-cancelled")
    expect(_builds_row(second, "■ cancelled")).to_be_visible(timeout=BUILD_TIMEOUT)  # it refreshed itself
    expect(second.page.get_by_test_id("stDataFrame")).to_be_visible()
    second.shot("builds-cancelled")
    job = handoff.get_job(job_id, store=tmp_path / "store")
    assert job.state == "cancelled" and job.cancel_requested_by == user


@pytest.mark.timeout(300)
def test_a_build_survives_an_app_restart(ui: UI, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(36, 40)
    store_dir = tmp_path / "store"
    with app_server(store_dir, request.node.name) as first:
        open_build_page(ui, first.url)
        job_id = _upload_and_build(
            ui, _write(tmp_path, "sleepy.ipynb", SLEEPY), {"seconds (int)": "15", "Model name": "restarted"}
        )
        expect(page.get_by_text(re.compile(r"Running cell|Starting the kernel"))).to_be_visible(timeout=BUILD_TIMEOUT)
        ui.shot("before-restart")
    # the app is gone; its build goes on in its worker process
    assert handoff.get_job(job_id, store=store_dir).state in ("queued", "running")
    with app_server(store_dir, request.node.name) as second:
        page.goto(second.url, wait_until="domcontentloaded")
        page.goto(f"{second.base}/?job={job_id}", wait_until="domcontentloaded")
        expect(page.get_by_text(f"job {job_id}")).to_be_visible()
        ui.shot("after-restart-reattached")
        expect(ui.alert(re.compile(r"restarted version 1\s*passed"))).to_be_visible(timeout=BUILD_TIMEOUT)
        ui.no_exception()
        ui.shot("after-restart-passed")
        sidebar(ui, "Builds")
        expect(_builds_row(ui, "✓ passed")).to_be_visible()
        ui.shot("builds-after-restart")


@pytest.mark.timeout(300)
def test_a_cell_failure_is_visible_on_the_builds_page(server: Server, ui: UI, tmp_path: Path) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(41, 49)
    open_build_page(ui, server.url)
    _upload_and_build(ui, _write(tmp_path, "broken.ipynb", ["x = 1", "y = x / 0", TRAIN_IRIS]))
    expect(ui.alert("Build failed")).to_be_visible(timeout=BUILD_TIMEOUT)
    ui.shot("build-failed")
    sidebar(ui, "Builds")
    expect(_builds_row(ui, "✗ FAILED")).to_be_visible()
    expect(_builds_row(ui, re.compile(r"execute stage, cell 2: .*ZeroDivisionError"))).to_be_visible()
    ui.no_exception()
    ui.shot("builds-failed")
    # its line links to the build's result on the Build page (Streamlit opens links in a new tab)
    with page.context.expect_page() as opened:
        _builds_row(ui, "✗ FAILED").get_by_role("link", name="open").click()
    result = UI(opened.value, expect, ui._step)
    result.page.set_default_timeout(RENDER_TIMEOUT)
    expect(result.alert("Build failed")).to_be_visible()
    expect(result.page.get_by_text("y = x / 0").first).to_be_visible()
    result.shot("failed-build-opened-from-builds")
    result.page.close()
    page.get_by_label("State").click()
    page.get_by_role("option", name="passed", exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_text("No builds match these filters")).to_be_visible()
    ui.shot("builds-filtered")
