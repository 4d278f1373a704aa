"""Driving the app's pages with Streamlit's AppTest (the ``app`` fixture is in conftest.py)."""

from __future__ import annotations

import re
import time

from streamlit.testing.v1 import AppTest

from helpers import ROOT

APP = str(ROOT / "app" / "streamlit_app.py")


def page(at: AppTest, page: str, **query: str) -> AppTest:
    at.run()  # pages with a custom url_path are known only after a first run
    at.switch_page(f"app_pages/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def open_tab(at: AppTest, label: str, key: str = "detail_tab") -> AppTest:
    """Open a tab of a lazy ``st.tabs`` (``on_change="rerun"``, e.g. the Version detail's): only the open
    tab's content runs, as after a click on it in the browser."""
    at.session_state[key] = label
    return at.run()


def texts(at: AppTest) -> str:
    """Every text on the page, Markdown escapes removed, tables as ``cell | cell`` rows."""
    parts = [
        e.value
        for kind in ("markdown", "success", "error", "warning", "info", "caption", "title", "subheader")
        for e in getattr(at, kind)
    ]
    parts += [" | ".join(map(str, row)) for table in at.table for row in table.value.itertuples(index=False)]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def wait_for_result(at: AppTest, seconds: float = 120) -> AppTest:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        at.run()
        if at.success or any("failed" in e.value.lower() for e in at.error):
            return at
        time.sleep(1)
    raise AssertionError("the build did not finish: " + texts(at))
