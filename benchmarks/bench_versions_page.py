"""The app at 10,000 versions: the Versions page's first render, a filtered page, a version's detail,
and the memory of the real app server that served them.

The store is ``benchmarks/synthetic.py``'s (``--versions`` across ``--models``, made once and kept; see
that file); this benchmark reads a copy of its database (the artifacts stay where they are), so the
kept store is never written. Each figure is the median of ``--runs``, measured with Streamlit's
AppTest in this process, the app's tables uncached (``st.cache_data`` cleared before the run) but
where said:

- the Versions page of all models, of one model, and of one model filtered by status and metric range;
- the rerun after a filter changed on the all-models page (the listing cached: the store unchanged);
- the Version detail page of one of that model's versions (its summary; the heavy tabs are lazy).

The peer, measured in the same process and interleaved with the pages: ``MlflowClient``'s
``search_model_versions`` of the one model and of every model (what listing cost before handoff read
the store itself). Then ``handoff app`` is started on a free port (a real ``streamlit run`` server),
headless Chromium (Playwright, Debian's ``chromium``) opens the Versions page, a filtered page and a
version's detail, and the server's resident memory (``VmRSS``; ``VmHWM`` is its peak) is read from
``/proc``. Goals (issue 15): page <= 1.5 s, detail <= 0.5 s, server <= 500 MB.

    .venv/bin/python benchmarks/bench_versions_page.py [--versions 10000] [--models 20] [--runs 5]
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import ROOT, arguments, report, row
from synthetic import synthetic_store

APP = str(ROOT / "app" / "streamlit_app.py")
METRIC, LOW, HIGH = "accuracy", 0.9, 0.93  # the filtered page: passed versions in this range
HEAVY = ("mlflow", "sqlalchemy", "pandas", "pyarrow", "sklearn", "torch", "altair")


def _search_all(client: Any) -> list[Any]:
    """Every model version through MlflowClient, page by page (the peer of the all-models page)."""
    found: list[Any] = []
    token = None
    while True:
        page = client.search_model_versions("", max_results=10000, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def _widget(at: Any, kind: str, label: str) -> Any:
    return next((w for w in getattr(at, kind) if w.label == label), None)


def _filter(at: Any) -> bool:
    """Status "passed" and, where the page has it, the metric range ``LOW`` <= ``METRIC`` <= ``HIGH``
    (whether it has: the page before the range filter had none)."""
    _widget(at, "selectbox", "Status").set_value("passed")
    metric = _widget(at, "selectbox", "Metric")
    if metric is None:
        return False
    metric.set_value(METRIC)
    at.run()
    _widget(at, "number_input", "Min").set_value(LOW)
    _widget(at, "number_input", "Max").set_value(HIGH)
    return True


def _page(model: str | None = None, filtered: bool = False) -> float:
    """Seconds of one uncached run of the Versions page's script (the app's first page runs before it)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/versions.py")
    if model:
        at.query_params["model"] = model
    ranged = False
    if filtered:  # the widgets exist after a first run; the measured run is the one that applies them
        at.run()
        ranged = _filter(at)
    st.cache_data.clear()
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert 0 < len(table) <= 50, len(table)
    if filtered:
        assert set(table["model"]) == {model}, set(table["model"])
        assert "FAILED" not in " ".join(table["status"]), table
        assert not ranged or table[METRIC].astype(float).between(LOW, HIGH).all(), table
    return seconds


def _refilter() -> float:
    """Seconds of the rerun after a filter changed on the all-models page, the listing cached (the
    store unchanged): what each click costs after the first render."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/versions.py")
    at.run()
    _widget(at, "selectbox", "Status").set_value("failed")
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["status"]) == {"✗ FAILED"}
    return seconds


def _detail(model: str, version: int) -> float:
    """Seconds of one uncached run of the Version detail page (its first tab: the summary)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/version_detail.py")
    at.query_params.update({"model": model, "version": str(version)})
    st.cache_data.clear()
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    assert at.title[0].value == f"{model} · version {version}", at.title[0].value
    return seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def _loaded(pid: int) -> list[str]:
    """Which of the heavy libraries have native code mapped into the process (sqlalchemy stands for
    MLflow's tracking store, which has none of its own)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY if re.search(rf"site-packages/{name}[/.]", maps)]


def _server_memory(home: Path, model: str, version: int, log: Path) -> tuple[float, float, list[str]] | None:
    """(RSS MB, peak MB, heavy libraries loaded) of ``handoff app`` after it served the Versions page,
    a filtered page and a version's detail to headless Chromium; ``None`` without Chromium/Playwright."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("no chromium or playwright: the server's memory is not measured")
        return None
    port = _free_port()
    command = [sys.executable, "-m", "handoff.cli", "app", "--port", str(port), "--store", str(home), "--no-token"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://localhost:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)
            deadline = time.monotonic() + 120
            while True:  # the server answers once streamlit has started
                try:
                    page.goto(f"{base}/versions", wait_until="domcontentloaded")
                    break
                except Exception:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.5)
            expect(page.get_by_text(re.compile(r"^Versions 1–50 of"))).to_be_visible()
            page.goto(f"{base}/versions?model={model}", wait_until="domcontentloaded")
            expect(page.get_by_text(re.compile(r"^Versions 1–50 of"))).to_be_visible()
            box = page.get_by_role("combobox", name="Status", exact=True)
            choice = page.get_by_role("option", name="passed", exact=True)
            for _ in range(5):  # the list closes when the page scrolls: open it again if need be
                if box.get_attribute("aria-expanded") != "true":
                    box.click()
                try:
                    expect(choice).to_be_visible(timeout=3_000)
                    break
                except AssertionError:
                    pass
            choice.click()
            expect(page.get_by_text(re.compile(r"^Versions 1–50 of \d+ \(of"))).to_be_visible()
            page.goto(f"{base}/version?model={model}&version={version}", wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name=f"{model} · version {version}")).to_be_visible()
            expect(page.get_by_test_id("stException")).to_have_count(0)
            time.sleep(1)  # the last rerun's memory settles
            memory = _status(proc.pid)
            loaded = _loaded(proc.pid)
            browser.close()
        return memory["VmRSS"] / 1024, memory["VmHWM"] / 1024, loaded
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


def _interleaved(runs: int, measures: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of ``runs`` of each measure, taken in turn (A B C A B C ...) so that load on the
    machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: statistics.median(values) for name, values in times.items()}


def _timed(action: Callable[[], Any]) -> Callable[[], float]:
    def measure() -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    return measure


def main() -> None:
    args = arguments(__doc__, versions=10_000, models=20)
    import handoff

    made = synthetic_store(args.versions, args.models)
    model = made.models[min(7, len(made.models) - 1)]
    version = made.full[model][-1]
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        home = Path(tmp) / "store"
        home.mkdir(mode=0o700)
        shutil.copy2(made.home / "mlflow.db", home / "mlflow.db")  # a copy: the kept store is never written
        os.environ["HANDOFF_STORE"] = str(home)
        store = handoff.open_store(home)
        assert len(store.list_versions(model)) == args.versions // args.models
        client = store.client
        figures = _interleaved(
            args.runs,
            {
                "peer_one": _timed(lambda: client.search_model_versions(f"name = '{model}'", max_results=10000)),
                "peer_all": _timed(lambda: _search_all(client)),
                "page_all": _page,
                "page_one": lambda: _page(model),
                "page_filtered": lambda: _page(model, filtered=True),
                "refilter": _refilter,
                "detail": lambda: _detail(model, version),
            },
        )
        memory = _server_memory(home, model, version, Path(tmp) / "server.log")

    print(f"{args.versions} versions of {args.models} models ({made.home}); medians of {args.runs}, interleaved")
    print(f"MlflowClient.search_model_versions, one model (peer)  {figures['peer_one'] * 1000:8.0f} ms")
    print(f"MlflowClient.search_model_versions, all (peer)        {figures['peer_all'] * 1000:8.0f} ms")
    print(f"Versions page, all models (AppTest, uncached)         {figures['page_all'] * 1000:8.0f} ms")
    print(f"Versions page, one model                              {figures['page_one'] * 1000:8.0f} ms")
    print(f"Versions page, one model, status + {METRIC} range   {figures['page_filtered'] * 1000:8.0f} ms")
    print(f"Versions page, all models, Status changed (cached)    {figures['refilter'] * 1000:8.0f} ms")
    print(f"Version detail ({model} v{version})                   {figures['detail'] * 1000:8.0f} ms")
    rows = [
        row("Versions page, all models (10k)", figures["page_all"], peer="search_model_versions all",
            peer_value=figures["peer_all"], goal=1.5),
        row("Versions page, one model (10k)", figures["page_one"], peer="search_model_versions one",
            peer_value=figures["peer_one"], goal=1.5),
        row("Versions page, filtered (10k)", figures["page_filtered"], peer="search_model_versions one",
            peer_value=figures["peer_one"], goal=1.5),
        row("Versions page, a filter changed (10k, cached)", figures["refilter"], goal=1.5),
        row("Version detail (10k)", figures["detail"], peer="search_model_versions one",
            peer_value=figures["peer_one"], goal=0.5),
    ]  # fmt: skip
    if memory is not None:
        rss, peak, loaded = memory
        print(f"app server after Versions, filtered, detail: RSS {rss:.0f} MB (peak {peak:.0f} MB)")
        print(f"  heavy libraries with native code loaded: {', '.join(loaded) or 'none'}")
        rows.append(row("app server memory (10k)", rss, unit="MB", goal=500))
    report(rows)


if __name__ == "__main__":
    main()
