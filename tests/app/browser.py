"""The browser side of the end-to-end tests: `handoff app` servers, headless Chromium pages and the
steps the tests share (upload, build, choose in a selectbox, tick table rows). Fixtures are in conftest.py.

Screenshots, server logs and timings go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def healthy(base: str, token: str) -> bool:
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
    port: int


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


@contextmanager
def app_server(store_dir: Path | str, name: str, port: int | None = None) -> Iterator[Server]:
    """`handoff app --store store_dir` (a folder or a server's URL) on ``port`` (default: a free one),
    answering its health check; stopped (its whole process group) on exit. Its log:
    ``server-<name>.log`` (appended to)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = ARTIFACTS / f"server-{name}.log"
    log = log_path.open("ab")
    offset = log.tell()  # this server's lines start here
    started = time.monotonic()
    command = [sys.executable, "-m", "handoff.cli", "app", "--port", str(port), "--store", str(store_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://localhost:{port}"
        deadline = started + STARTUP_TIMEOUT
        url, token = None, ""
        while url is None or not healthy(base, token):  # fail fast if the process died
            found = re.search(r"on (http://\S+\?token=(\S+))", log_path.read_bytes()[offset:].decode(errors="replace"))
            url, token = found.groups() if found else (None, "")
            assert proc.poll() is None, f"handoff app exited with {proc.returncode}: see {log_path}"
            assert time.monotonic() < deadline, f"handoff app did not answer in {STARTUP_TIMEOUT} s"
            time.sleep(0.2)
        yield Server(base, url, started, port)
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


def open_build_page(ui: UI, url: str, timeout: float = RENDER_TIMEOUT) -> None:
    """A fresh Build page, in upload mode."""
    ui.page.goto(url, wait_until="domcontentloaded")
    ui.expect(ui.page.get_by_role("heading", name="Build a model version")).to_be_visible(timeout=timeout)
    ui.expect(ui.page.get_by_text("Upload a notebook to start")).to_be_visible()


def upload_iris(ui: UI) -> Any:
    """Upload the iris sample on the Build page; returns the n_estimators field of the form that appears."""
    ui.page.locator("input[type=file]").first.set_input_files(str(SAMPLES / "iris_classifier.ipynb"))
    n_estimators = ui.page.get_by_label("n_estimators (int)", exact=True)
    ui.expect(n_estimators).to_be_visible()
    return n_estimators


def set_value(ui: UI, field: Any, value: str) -> None:
    """Tab, not Enter: Enter inside a form would submit it."""
    field.fill(value)
    field.press("Tab")
    ui.expect(field).to_have_value(value)


def start_build(ui: UI, version: int) -> Any:
    """Press Build: the job runs in the background and the URL gets ?job=. Returns the success message
    that the result will show (not yet visible)."""
    ui.page.get_by_role("button", name="Build", exact=True).click()
    ui.page.wait_for_url(re.compile(r"[?&]job="), timeout=RENDER_TIMEOUT)
    return ui.alert(re.compile(rf"iris_classifier version {version}\s*passed in [\d.]+ s"))


def sidebar(ui: UI, page_title: str) -> None:
    ui.page.get_by_test_id("stSidebarNav").get_by_role("link", name=page_title, exact=True).click()
    ui.expect(ui.page.get_by_role("heading", name=page_title, exact=True)).to_be_visible()


def choose(ui: UI, label: str, option: str) -> None:
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


def click_row_checkboxes(ui: UI, table: Any, rows: int, picks: list[int]) -> None:
    """Tick rows of an st.dataframe with selection: its glide-data-grid is a canvas, so click where the
    checkbox of each row is drawn (first column; the header and every row have the same height)."""
    canvas = table.get_by_test_id("data-grid-canvas")
    ui.expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    row_height = box["height"] / (rows + 1)
    for index in picks:
        ui.page.mouse.click(box["x"] + 16, box["y"] + row_height * (index + 1.5))


def canvas_pixels(ui: UI, table: Any, rgb: tuple[int, int, int]) -> int:
    canvas = table.get_by_test_id("data-grid-canvas").element_handle()
    return ui.page.evaluate(CANVAS_PIXELS_JS, [canvas, list(rgb)])
