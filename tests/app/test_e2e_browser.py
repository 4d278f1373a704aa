"""End to end in a real browser: `handoff app` serving, headless Chromium driven by Playwright.

1. Upload the iris sample, change a parameter, build, read the result, open the version, download its
   package and verify it with the CLI; then upload a file that is not a notebook and read the error.
2. Build two versions, select both in the Versions table, compare them, promote one to champion with
   the confirmation step, and find the move in the model's alias history.

Screenshots of every step (01-... for the first test, 10-... for the second), each test's server log
and the two timings go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time

import pytest

from browser import (
    ARTIFACTS,
    BAD_RGB,
    BUILD_TIMEOUT,
    GOOD_RGB,
    RENDER_TIMEOUT,
    STARTUP_TIMEOUT,
    UI,
    Server,
    canvas_pixels,
    choose,
    click_row_checkboxes,
    open_build_page,
    set_value,
    sidebar,
    start_build,
    upload_iris,
)
from helpers import ROOT


@pytest.mark.timeout(600)
def test_build_download_verify_and_bad_upload_in_a_real_browser(server: Server, ui: UI) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(1, 9)
    for old in ARTIFACTS.glob("*.zip"):
        old.unlink()

    # 1. The Build page, first render.
    open_build_page(ui, server.url, timeout=STARTUP_TIMEOUT * 1000)
    first_render = time.monotonic() - server.started
    ui.no_exception()
    ui.shot("build-page")

    # 2. Upload the sample notebook: a form with one widget per parameter appears.
    n_estimators = upload_iris(ui)
    expect(n_estimators).to_have_value("50")
    for label, value in (("max_depth (int)", "4"), ("test_size (float)", "0.25"), ("random_state (int)", "0")):
        expect(page.get_by_label(label, exact=True)).to_have_value(value)
    expect(page.get_by_label("Model name", exact=True)).to_have_value("iris_classifier")
    ui.no_exception()
    ui.shot("notebook-uploaded")

    # 3. Change a parameter.
    set_value(ui, n_estimators, "20")
    ui.shot("parameter-changed")

    # 4. Build: the job runs in the background, a progress bar shows.
    clicked = time.monotonic()
    success = start_build(ui, version=1)
    try:  # a fast build may skip past the progress bar before we look
        expect(page.get_by_test_id("stProgress").or_(success).first).to_be_visible()
        ui.shot("build-running")
    except AssertionError:
        pass

    # 5. The result: success, metrics, the checklist.
    expect(success).to_be_visible(timeout=BUILD_TIMEOUT)
    build_seconds = time.monotonic() - clicked
    labels = page.get_by_test_id("stMetricLabel")
    for metric in ("accuracy", "f1"):
        expect(labels.filter(has_text=re.compile(rf"^{metric}$"))).to_be_visible()
    checklist = page.get_by_role("heading", name="Checklist", exact=True)
    expect(checklist).to_be_visible()
    table = page.get_by_test_id("stTable").filter(has_text="notebook.executed")
    expect(table).to_be_visible()
    for text in ("notebook.executed", "model.loads", "passed", "blocking"):
        expect(table).to_contain_text(text)
    ui.no_exception()
    ui.shot("build-result")

    timings = (
        f"time to first render (app process start -> Build page title visible): {first_render:.1f} s\n"
        f"time from pressing Build to the result: {build_seconds:.1f} s\n"
    )
    (ARTIFACTS / "timings.txt").write_text(timings)
    print("\n" + timings, end="")

    # 6. Open the version.
    page.get_by_role("button", name="Open this version").click()
    expect(page.get_by_role("heading", name="iris_classifier · version 1")).to_be_visible()
    page.wait_for_url(re.compile(r"/version\?.*model=iris_classifier"))
    assert "version=1" in page.url
    expect(page.get_by_role("tab", name="Overview")).to_be_visible()
    ui.no_exception()
    ui.shot("version-detail")

    # 7. The Package tab: download the package and verify it.
    page.get_by_role("tab", name="Package").click()
    panel = page.get_by_role("tabpanel", name="Package")
    download_button = panel.get_by_role("button", name=re.compile(r"^Download package"))
    expect(download_button).to_be_visible()
    expect(panel.get_by_text("iris_classifier-v1.zip", exact=True)).to_be_visible()
    sha256 = panel.get_by_text(re.compile(r"^[0-9a-f]{64}$"))
    expect(sha256).to_be_visible()
    shown_sha256 = sha256.inner_text().strip()
    ui.shot("package-tab")
    with page.expect_download(timeout=RENDER_TIMEOUT) as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == "iris_classifier-v1.zip"
    saved = ARTIFACTS / download.suggested_filename
    download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown_sha256
    verify = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "verify", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout, verify.stdout

    # 8. A fresh Build page, and an upload that is not a notebook.
    open_build_page(ui, server.url)
    page.locator("input[type=file]").first.set_input_files(
        files=[{"name": "junk.ipynb", "mimeType": "application/octet-stream", "buffer": b"not json"}]
    )
    error = ui.alert("Cannot use this file:")
    expect(error).to_be_visible()
    expect(error).to_contain_text("is not a notebook")
    ui.no_exception()
    ui.shot("bad-upload")


@pytest.mark.timeout(600)
def test_compare_two_builds_and_promote_one_in_a_real_browser(server: Server, ui: UI) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(10, 29)

    # 10. Two builds of iris_classifier, n_estimators 10 then 60 ("Start another build" in between).
    open_build_page(ui, server.url, timeout=STARTUP_TIMEOUT * 1000)
    for version, trees in ((1, "10"), (2, "60")):
        if version > 1:
            page.get_by_role("button", name="Start another build").click()
            expect(page.get_by_text("Upload a notebook to start")).to_be_visible()
        set_value(ui, upload_iris(ui), trees)
        expect(start_build(ui, version)).to_be_visible(timeout=BUILD_TIMEOUT)
        ui.no_exception()
        ui.shot(f"build-v{version}-n_estimators-{trees}")

    # 12. The Versions page: tick both rows of the table (newest first), then compare them.
    sidebar(ui, "Versions")
    table = page.get_by_test_id("stDataFrame").first
    for text in ("iris_classifier", "✓ passed", "accuracy"):
        expect(table).to_contain_text(text)
    click_row_checkboxes(ui, table, rows=2, picks=[0, 1])
    compare_button = page.get_by_role("button", name="Compare 2 versions")
    expect(compare_button).to_be_visible()
    ui.no_exception()
    ui.shot("versions-two-selected")
    compare_button.click()

    # 13. The Compare page: metrics (shaded against the baseline v1), parameters, the trend, promotion.
    expect(page.get_by_role("heading", name="Compare versions")).to_be_visible()
    page.wait_for_url(re.compile(r"/compare\?.*model=iris_classifier"))
    assert re.search(r"versions=1(,|%2C)2", page.url), page.url
    expect(page.get_by_text("Baseline v1", exact=False)).to_be_visible()
    metrics = page.get_by_test_id("stDataFrame").nth(0)
    expect(page.get_by_role("heading", name="Metrics")).to_be_visible()
    expect(metrics).to_be_visible()
    for text in ("accuracy (↑ better)", "f1 (↑ better)", "v1", "v2"):
        expect(metrics).to_contain_text(text)
    # v2's accuracy cell reads "value  (delta, relative)"; its shade says whether that is better or worse.
    expect(metrics).to_contain_text(re.compile(r"accuracy \(↑ better\)[\d.]+[\d.]+\s+\([+-]"))
    sign = re.search(r"accuracy \(↑ better\)[\d.]+?[\d.]+\s+\(([+-])", metrics.text_content()).group(1)
    shade = GOOD_RGB if sign == "+" else BAD_RGB
    deadline = time.monotonic() + RENDER_TIMEOUT / 1000
    while canvas_pixels(ui, metrics, shade) < 500:
        assert time.monotonic() < deadline, f"v2's metric cells are not shaded {shade} (delta {sign})"
        page.wait_for_timeout(250)
    expect(page.get_by_role("heading", name="Parameters")).to_be_visible()
    parameters = page.get_by_test_id("stDataFrame").nth(1)
    expect(parameters).to_be_visible()
    expect(parameters).to_contain_text(re.compile(r"n_estimators\s*10\s*60"))
    expect(page.get_by_role("heading", name="Trend")).to_be_visible()
    chart = page.get_by_test_id("stVegaLiteChart")
    expect(chart).to_be_visible()
    expect(chart.locator("canvas, svg.marks").first).to_be_visible()
    expect(page.get_by_role("heading", name="Promote")).to_be_visible()
    expect(page.get_by_role("combobox", name="Version", exact=True)).to_have_value("2")
    expect(page.get_by_role("button", name="Promote v2 to champion")).to_be_visible()
    expect(page.get_by_role("button", name="Roll back champion")).to_be_visible()
    ui.no_exception()
    ui.shot("compare-page")

    # 14. Promote v1 (the better accuracy): pick it, press Promote, read the confirmation.
    choose(ui, "Version", "1")
    page.get_by_role("button", name="Promote v1 to champion").click()
    question = ui.alert("Make v1 the first champion of iris_classifier?")
    expect(question).to_be_visible()
    expect(question.locator("strong", has_text="champion")).to_be_visible()  # **champion** rendered bold
    reason = page.get_by_label("Reason (kept in the history)", exact=True)
    set_value(ui, reason, "best accuracy (e2e test)")
    expect(page.get_by_role("button", name="Confirm", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    ui.no_exception()
    ui.shot("promote-confirmation")

    # 15. Confirm: the move is reported.
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(ui.alert("champion of iris_classifier: none → v1")).to_be_visible()
    expect(question).to_have_count(0)
    ui.no_exception()
    ui.shot("promoted")

    # 16. The Versions page of iris_classifier: the alias history has the move, with its reason.
    # (Not the table's "alias" column: Store.list_versions leaves it empty, MLflow's search omits aliases.)
    sidebar(ui, "Versions")
    choose(ui, "Model", "iris_classifier")
    expect(page.get_by_role("heading", name="Alias history of iris_classifier")).to_be_visible()
    history = page.get_by_test_id("stDataFrame").nth(1)
    expect(history).to_be_visible()
    for text in ("champion", "promote", "best accuracy (e2e test)"):
        expect(history).to_contain_text(text)
    ui.no_exception()
    ui.shot("alias-history")
