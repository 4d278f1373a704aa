"""End to end in a real browser: `handoff app` serving, headless Chromium driven by Playwright.

Upload the iris sample, change a parameter, build, read the result, open the version, download its
package and verify it with the CLI; then upload a file that is not a notebook and read the error.
Screenshots of every step, the server log and the two timings go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from helpers import ROOT, SAMPLES

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT = 90  # seconds for the server to answer and the first page to render
RENDER_TIMEOUT = 60_000  # ms for one Streamlit rerun to show up (2 cores, other tests running)
BUILD_TIMEOUT = 180_000  # ms for the build to finish
# The tallest scrollable content on the page (Streamlit's main area scrolls, the document does not).
SCROLL_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section')]
        .map(e => e.scrollHeight))"""
NEXT_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(null))))"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture
def chromium_path() -> str:
    if CHROMIUM is None:
        reason = "the end-to-end browser test needs Debian's `chromium` on PATH (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """`handoff app` on a free port with a fresh store; yields (base URL, process, start time)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store_dir = tmp_path / "store"
    port = _free_port()
    log = (ARTIFACTS / "server.log").open("wb")
    started = time.monotonic()
    command = [sys.executable, "-m", "handoff.cli", "app", "--port", str(port), "--store", str(store_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://localhost:{port}", proc, started
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


@pytest.mark.timeout(600)
def test_build_download_verify_and_bad_upload_in_a_real_browser(
        chromium_path: str, server: tuple[str, subprocess.Popen, float], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, proc, started = server
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    for old in ARTIFACTS.glob("*.zip"):
        old.unlink()
    step = iter(range(1, 100))

    def shot(page, name: str) -> None:
        """A screenshot of the whole page: Streamlit scrolls inside its own container, not the document,
        so the viewport is made as tall as the content first (then put back)."""
        viewport = page.viewport_size
        height = page.evaluate(SCROLL_HEIGHT_JS)
        if height > viewport["height"]:
            page.set_viewport_size({"width": viewport["width"], "height": min(height + 40, 8000)})
            page.evaluate(NEXT_FRAMES_JS)
            page.wait_for_timeout(750)  # st.dataframe's canvas grid repaints after a resize
        page.screenshot(path=str(ARTIFACTS / f"{next(step):02d}-{name}.png"), full_page=True)
        page.set_viewport_size(viewport)

    def no_exception(page) -> None:
        expect(page.get_by_test_id("stException")).to_have_count(0)

    # The server: wait for the health endpoint (and fail fast if the process died).
    deadline = started + STARTUP_TIMEOUT
    while not _healthy(base):
        assert proc.poll() is None, f"handoff app exited with {proc.returncode}: see {ARTIFACTS / 'server.log'}"
        assert time.monotonic() < deadline, f"handoff app did not answer in {STARTUP_TIMEOUT} s"
        time.sleep(0.2)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(RENDER_TIMEOUT)
        expect.set_options(timeout=RENDER_TIMEOUT)  # Playwright's default (5 s) is too short here
        try:
            # 1. The Build page, first render.
            page.goto(base, wait_until="domcontentloaded")
            title = page.get_by_role("heading", name="Build a model version")
            expect(title).to_be_visible(timeout=STARTUP_TIMEOUT * 1000)
            first_render = time.monotonic() - started
            expect(page.get_by_text("Upload a notebook to start")).to_be_visible()
            no_exception(page)
            shot(page, "build-page")

            # 2. Upload the sample notebook: a form with one widget per parameter appears.
            page.locator("input[type=file]").first.set_input_files(str(SAMPLES / "iris_classifier.ipynb"))
            n_estimators = page.get_by_label("n_estimators (int)", exact=True)
            expect(n_estimators).to_be_visible()
            expect(n_estimators).to_have_value("50")
            for label, value in (("max_depth (int)", "4"), ("test_size (float)", "0.25"),
                                 ("random_state (int)", "0")):
                expect(page.get_by_label(label, exact=True)).to_have_value(value)
            expect(page.get_by_label("Model name", exact=True)).to_have_value("iris_classifier")
            no_exception(page)
            shot(page, "notebook-uploaded")

            # 3. Change a parameter. Tab, not Enter: Enter inside a form would submit it.
            n_estimators.fill("20")
            n_estimators.press("Tab")
            expect(n_estimators).to_have_value("20")
            shot(page, "parameter-changed")

            # 4. Build: the job runs in the background, the URL gets ?job=, a progress bar shows.
            build = page.get_by_role("button", name="Build", exact=True)
            clicked = time.monotonic()
            build.click()
            page.wait_for_url(re.compile(r"[?&]job="), timeout=RENDER_TIMEOUT)
            success = page.get_by_test_id("stAlertContainer").filter(
                has_text=re.compile(r"iris_classifier version 1\s*passed in [\d.]+ s"))
            try:  # a fast build may skip past the progress bar before we look
                expect(page.get_by_test_id("stProgress").or_(success).first).to_be_visible()
                shot(page, "build-running")
            except AssertionError:
                pass

            # 5. The result: success, metrics, the checklist.
            expect(success).to_be_visible(timeout=BUILD_TIMEOUT)
            build_seconds = time.monotonic() - clicked
            labels = page.get_by_test_id("stMetricLabel")
            for metric in ("accuracy", "f1"):
                expect(labels.filter(has_text=re.compile(rf"^{metric}$"))).to_be_visible()
            checklist = page.get_by_role("heading", name=re.compile(r"^Checklist — "))
            expect(checklist).to_be_visible()
            table = page.get_by_test_id("stTable").first
            expect(table).to_be_visible()
            for text in ("notebook.executed", "model.loads", "passed", "blocking"):
                expect(table).to_contain_text(text)
            no_exception(page)
            shot(page, "build-result")

            timings = (f"time to first render (app process start -> Build page title visible): {first_render:.1f} s\n"
                       f"time from pressing Build to the result: {build_seconds:.1f} s\n")
            (ARTIFACTS / "timings.txt").write_text(timings)
            print("\n" + timings, end="")

            # 6. Open the version.
            page.get_by_role("button", name="Open this version").click()
            expect(page.get_by_role("heading", name="iris_classifier · version 1")).to_be_visible()
            page.wait_for_url(re.compile(r"/version\?.*model=iris_classifier"))
            assert "version=1" in page.url
            expect(page.get_by_role("tab", name="Overview")).to_be_visible()
            no_exception(page)
            shot(page, "version-detail")

            # 7. The Package tab: download the package and verify it.
            page.get_by_role("tab", name="Package").click()
            panel = page.get_by_role("tabpanel", name="Package")
            download_button = panel.get_by_role("button", name=re.compile(r"^Download package"))
            expect(download_button).to_be_visible()
            expect(panel.get_by_text("iris_classifier-v1.zip", exact=True)).to_be_visible()
            sha256 = panel.get_by_text(re.compile(r"^[0-9a-f]{64}$"))
            expect(sha256).to_be_visible()
            shown_sha256 = sha256.inner_text().strip()
            shot(page, "package-tab")
            with page.expect_download(timeout=RENDER_TIMEOUT) as info:
                download_button.click()
            download = info.value
            assert download.suggested_filename == "iris_classifier-v1.zip"
            saved = ARTIFACTS / download.suggested_filename
            download.save_as(saved)
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown_sha256
            verify = subprocess.run([sys.executable, "-m", "handoff.cli", "verify", str(saved)],
                                    cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert verify.returncode == 0, verify.stdout + verify.stderr
            assert "intact" in verify.stdout, verify.stdout

            # 8. A fresh Build page, and an upload that is not a notebook.
            page.goto(base, wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="Build a model version")).to_be_visible()
            expect(page.get_by_text("Upload a notebook to start")).to_be_visible()
            page.locator("input[type=file]").first.set_input_files(
                files=[{"name": "junk.ipynb", "mimeType": "application/octet-stream", "buffer": b"not json"}])
            error = page.get_by_test_id("stAlertContainer").filter(has_text="Cannot use this file:")
            expect(error).to_be_visible()
            expect(error).to_contain_text("is not a notebook")
            no_exception(page)
            shot(page, "bad-upload")
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "99-failure.png"), full_page=True)
            raise
        finally:
            expect.set_options(timeout=5_000)
            context.close()
            browser.close()
