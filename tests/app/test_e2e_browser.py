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
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, SAMPLES, free_port

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 90  # seconds for the server to answer and the first page to render
RENDER_TIMEOUT = 60_000  # ms for one Streamlit rerun to show up (2 cores, other tests running)
BUILD_TIMEOUT = 180_000  # ms for the build to finish
# The tallest scrollable content on the page (Streamlit's main area scrolls, the document does not).
SCROLL_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section')]
        .map(e => e.scrollHeight))"""
NEXT_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(null))))"
# How many pixels of a canvas (st.dataframe's grid) have one colour, give or take a little.
CANVAS_PIXELS_JS = """([canvas, [r, g, b]]) => {
    const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let count = 0;
    for (let i = 0; i < data.length; i += 4)
        if (Math.abs(data[i] - r) <= 3 && Math.abs(data[i + 1] - g) <= 3 && Math.abs(data[i + 2] - b) <= 3) count++;
    return count;
}"""
GOOD_RGB, BAD_RGB = (0xD9, 0xF2, 0xD9), (0xF8, 0xD7, 0xD7)  # app/app_pages/compare.py's GOOD and BAD shades


def _healthy(base: str, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health?token={token}", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


@dataclass
class Server:
    base: str  # http://localhost:PORT
    url: str  # the URL `handoff app` printed, with its access token
    started: float  # time.monotonic() when the process was started


@dataclass
class UI:
    """The browser page and what the tests do with it: numbered screenshots, a check for exceptions."""

    page: Any  # playwright.sync_api.Page
    expect: Any  # playwright.sync_api.expect
    _step: Iterator[int] = field(default_factory=lambda: iter(range(1, 99)))

    def number_shots(self, first: int, last: int) -> None:
        """Number this test's screenshots from ``first``, after removing any old ones in first..last."""
        for old in ARTIFACTS.glob("[0-9][0-9]-*.png"):
            if first <= int(old.name[:2]) <= last:
                old.unlink()
        self._step = iter(range(first, last + 1))

    def shot(self, name: str) -> None:
        """A screenshot of the whole page: Streamlit scrolls inside its own container, not the document,
        so the viewport is made as tall as the content first (then put back)."""
        page = self.page
        viewport = page.viewport_size
        height = page.evaluate(SCROLL_HEIGHT_JS)
        if height > viewport["height"]:
            page.set_viewport_size({"width": viewport["width"], "height": min(height + 40, 8000)})
            page.evaluate(NEXT_FRAMES_JS)
            page.wait_for_timeout(750)  # st.dataframe's canvas grid repaints after a resize
        page.screenshot(path=str(ARTIFACTS / f"{next(self._step):02d}-{name}.png"), full_page=True)
        page.set_viewport_size(viewport)

    def no_exception(self) -> None:
        self.expect(self.page.get_by_test_id("stException")).to_have_count(0)

    def alert(self, text: str | re.Pattern[str]) -> Any:
        return self.page.get_by_test_id("stAlertContainer").filter(has_text=text)


@pytest.fixture
def chromium_path() -> str:
    if CHROMIUM is None:
        reason = "the end-to-end browser test needs Debian's `chromium` on PATH (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """`handoff app` on a free port with a fresh store, answering its health check; stopped afterwards."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store_dir = tmp_path / "store"
    port = free_port()
    log_path = ARTIFACTS / f"server-{request.node.name}.log"
    log = log_path.open("wb")
    started = time.monotonic()
    command = [sys.executable, "-m", "handoff.cli", "app", "--port", str(port), "--store", str(store_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://localhost:{port}"
        deadline = started + STARTUP_TIMEOUT
        url, token = None, ""
        while url is None or not _healthy(base, token):  # fail fast if the process died
            found = re.search(r"on (http://\S+\?token=(\S+))", log_path.read_text(errors="replace"))
            url, token = found.groups() if found else (None, "")
            assert proc.poll() is None, f"handoff app exited with {proc.returncode}: see {log_path}"
            assert time.monotonic() < deadline, f"handoff app did not answer in {STARTUP_TIMEOUT} s"
            time.sleep(0.2)
        yield Server(base, url, started)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def ui(chromium_path: str, request: pytest.FixtureRequest) -> Iterator[UI]:
    """Headless Chromium with one page (1400x1000, downloads accepted, long timeouts); if the test fails,
    a screenshot of the page as it was goes to ``99-failure-<test>.png``."""
    from playwright.sync_api import Error, expect, sync_playwright

    failures_before = request.session.testsfailed
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(RENDER_TIMEOUT)
        expect.set_options(timeout=RENDER_TIMEOUT)  # Playwright's default (5 s) is too short here
        failure_shot = ARTIFACTS / f"99-failure-{request.node.name}.png"
        failure_shot.unlink(missing_ok=True)
        try:
            yield UI(page, expect)
        finally:
            # The call phase's report is counted before teardown runs, so a failed test shows up here.
            if request.session.testsfailed > failures_before:
                try:
                    page.screenshot(path=str(failure_shot), full_page=True)
                except Error as exc:  # the page itself may be what broke
                    print(f"no failure screenshot: {exc}")
            expect.set_options(timeout=5_000)
            context.close()
            browser.close()


def _open_build_page(ui: UI, url: str, timeout: float = RENDER_TIMEOUT) -> None:
    """A fresh Build page, in upload mode."""
    ui.page.goto(url, wait_until="domcontentloaded")
    ui.expect(ui.page.get_by_role("heading", name="Build a model version")).to_be_visible(timeout=timeout)
    ui.expect(ui.page.get_by_text("Upload a notebook to start")).to_be_visible()


def _upload_iris(ui: UI) -> Any:
    """Upload the iris sample on the Build page; returns the n_estimators field of the form that appears."""
    ui.page.locator("input[type=file]").first.set_input_files(str(SAMPLES / "iris_classifier.ipynb"))
    n_estimators = ui.page.get_by_label("n_estimators (int)", exact=True)
    ui.expect(n_estimators).to_be_visible()
    return n_estimators


def _set_value(ui: UI, field: Any, value: str) -> None:
    """Tab, not Enter: Enter inside a form would submit it."""
    field.fill(value)
    field.press("Tab")
    ui.expect(field).to_have_value(value)


def _start_build(ui: UI, version: int) -> Any:
    """Press Build: the job runs in the background and the URL gets ?job=. Returns the success message
    that the result will show (not yet visible)."""
    ui.page.get_by_role("button", name="Build", exact=True).click()
    ui.page.wait_for_url(re.compile(r"[?&]job="), timeout=RENDER_TIMEOUT)
    return ui.alert(re.compile(rf"iris_classifier version {version}\s*passed in [\d.]+ s"))


def _sidebar(ui: UI, page_title: str) -> None:
    ui.page.get_by_test_id("stSidebarNav").get_by_role("link", name=page_title, exact=True).click()
    ui.expect(ui.page.get_by_role("heading", name=page_title, exact=True)).to_be_visible()


def _choose(ui: UI, label: str, option: str) -> None:
    """Pick an option of the st.selectbox labelled ``label``. Its list closes when the page scrolls, so a
    click that scrolls the box into view may open nothing: scroll first, and click again if need be."""
    box = ui.page.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()
    choice = ui.page.get_by_role("option", name=option, exact=True)
    for attempt in range(5):
        if box.get_attribute("aria-expanded") != "true":
            box.click()
        try:
            ui.expect(choice).to_be_visible(timeout=3_000)
            break
        except AssertionError:
            assert attempt < 4, f"the list of selectbox {label!r} does not open"
    choice.click()
    ui.expect(box).to_have_value(option)


def _click_row_checkboxes(ui: UI, table: Any, rows: int, picks: list[int]) -> None:
    """Tick rows of an st.dataframe with selection: its glide-data-grid is a canvas, so click where the
    checkbox of each row is drawn (first column; the header and every row have the same height)."""
    canvas = table.get_by_test_id("data-grid-canvas")
    ui.expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    row_height = box["height"] / (rows + 1)
    for index in picks:
        ui.page.mouse.click(box["x"] + 16, box["y"] + row_height * (index + 1.5))


def _canvas_pixels(ui: UI, table: Any, rgb: tuple[int, int, int]) -> int:
    canvas = table.get_by_test_id("data-grid-canvas").element_handle()
    return ui.page.evaluate(CANVAS_PIXELS_JS, [canvas, list(rgb)])


@pytest.mark.timeout(600)
def test_build_download_verify_and_bad_upload_in_a_real_browser(server: Server, ui: UI) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(1, 9)
    for old in ARTIFACTS.glob("*.zip"):
        old.unlink()

    # 1. The Build page, first render.
    _open_build_page(ui, server.url, timeout=STARTUP_TIMEOUT * 1000)
    first_render = time.monotonic() - server.started
    ui.no_exception()
    ui.shot("build-page")

    # 2. Upload the sample notebook: a form with one widget per parameter appears.
    n_estimators = _upload_iris(ui)
    expect(n_estimators).to_have_value("50")
    for label, value in (("max_depth (int)", "4"), ("test_size (float)", "0.25"), ("random_state (int)", "0")):
        expect(page.get_by_label(label, exact=True)).to_have_value(value)
    expect(page.get_by_label("Model name", exact=True)).to_have_value("iris_classifier")
    ui.no_exception()
    ui.shot("notebook-uploaded")

    # 3. Change a parameter.
    _set_value(ui, n_estimators, "20")
    ui.shot("parameter-changed")

    # 4. Build: the job runs in the background, a progress bar shows.
    clicked = time.monotonic()
    success = _start_build(ui, version=1)
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
    _open_build_page(ui, server.url)
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
    _open_build_page(ui, server.url, timeout=STARTUP_TIMEOUT * 1000)
    for version, trees in ((1, "10"), (2, "60")):
        if version > 1:
            page.get_by_role("button", name="Start another build").click()
            expect(page.get_by_text("Upload a notebook to start")).to_be_visible()
        _set_value(ui, _upload_iris(ui), trees)
        expect(_start_build(ui, version)).to_be_visible(timeout=BUILD_TIMEOUT)
        ui.no_exception()
        ui.shot(f"build-v{version}-n_estimators-{trees}")

    # 12. The Versions page: tick both rows of the table (newest first), then compare them.
    _sidebar(ui, "Versions")
    table = page.get_by_test_id("stDataFrame").first
    for text in ("iris_classifier", "✓ passed", "accuracy"):
        expect(table).to_contain_text(text)
    _click_row_checkboxes(ui, table, rows=2, picks=[0, 1])
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
    while _canvas_pixels(ui, metrics, shade) < 500:
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
    _choose(ui, "Version", "1")
    page.get_by_role("button", name="Promote v1 to champion").click()
    question = ui.alert("Make v1 the first champion of iris_classifier?")
    expect(question).to_be_visible()
    expect(question.locator("strong", has_text="champion")).to_be_visible()  # **champion** rendered bold
    reason = page.get_by_label("Reason (kept in the history)", exact=True)
    _set_value(ui, reason, "best accuracy (e2e test)")
    expect(page.get_by_role("button", name="Confirm", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    ui.no_exception()
    ui.shot("promote-confirmation")

    # 15. Confirm: the move is reported.
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(ui.alert("champion of iris_classifier: v- → v1")).to_be_visible()
    expect(question).to_have_count(0)
    ui.no_exception()
    ui.shot("promoted")

    # 16. The Versions page of iris_classifier: the alias history has the move, with its reason.
    # (Not the table's "alias" column: Store.list_versions leaves it empty, MLflow's search omits aliases.)
    _sidebar(ui, "Versions")
    _choose(ui, "Model", "iris_classifier")
    expect(page.get_by_role("heading", name="Alias history of iris_classifier")).to_be_visible()
    history = page.get_by_test_id("stDataFrame").nth(1)
    expect(history).to_be_visible()
    for text in ("champion", "promote", "best accuracy (e2e test)"):
        expect(history).to_contain_text(text)
    ui.no_exception()
    ui.shot("alias-history")
