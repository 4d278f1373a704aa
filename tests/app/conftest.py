"""Fixtures of the end-to-end browser tests (helpers and steps: browser.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest import APP
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, RENDER_TIMEOUT, UI, Server, app_server
from handoff.store import Store
from helpers import local_path


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
    with app_server(tmp_path / "store", request.node.name) as running:
        yield running


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


@pytest.fixture
def app(store: Store, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("HANDOFF_STORE", str(local_path(store.artifact_root).parent))
    at = AppTest.from_file(APP, default_timeout=60)
    return at
