"""The app's front door on a real `handoff app` server: foreign Host/Origin and missing tokens get 403
and no Streamlit page or session; the printed URL's token (then its cookie) lets the browser in."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from handoff.app_guard import AppGuard, GuardSettings
from helpers import ROOT, free_port

STARTUP_TIMEOUT = 90


@dataclass
class App:
    port: int
    token: str | None

    def get(self, path: str = "/", host: str | None = None, **headers: str) -> http.client.HTTPResponse:
        """A GET with exactly the Host (and other headers) given, as a rebinding page's request arrives."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"localhost:{self.port}")
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def websocket(self, host: str = "localhost", origin: str | None = None, cookie: str | None = None) -> int:
        """Open Streamlit's WebSocket with the given Host/Origin/cookie; the handshake's status code."""
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        headers = {**({"Origin": origin} if origin else {}), **({"Cookie": cookie} if cookie else {})}
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        try:
            with connect(
                f"ws://{host}:{self.port}/_stcore/stream",
                sock=sock,
                additional_headers=headers,
                subprotocols=["streamlit"],
                open_timeout=30,
                origin=None,
            ):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code


@contextmanager
def running_app(tmp_path: Path, *args: str) -> Iterator[App]:
    """`handoff app` on a free port with a fresh store; its printed URL's token; stopped afterwards."""
    port = free_port()
    log_path = tmp_path / f"app-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "handoff.cli",
                "app",
                "--port",
                str(port),
                "--store",
                str(tmp_path / "store"),
                *args,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                printed = re.search(r"handoff app on (http://\S+)", log_path.read_text())
                if printed and "You can now view" in log_path.read_text():
                    break
                time.sleep(0.2)
            token = re.search(r"\?token=(\S+)", printed.group(1))
            assert printed.group(1).startswith(f"http://localhost:{port}/")
            yield App(port, token.group(1) if token else None)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _is_streamlit_page(response: http.client.HTTPResponse) -> bool:
    return response.status == 200 and b"<html" in response.body.lower()  # type: ignore[attr-defined]


def _set_cookies(response: http.client.HTTPResponse) -> list[str]:
    return response.headers.get_all("Set-Cookie") or []


def test_token_host_and_origin_on_a_real_server(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        assert app.token and len(app.token) >= 40
        good = f"/?token={app.token}"
        # the printed URL opens the page and leaves the token as a cookie for this port
        first = app.get(good)
        assert _is_streamlit_page(first)
        cookie = next(c for c in _set_cookies(first) if c.startswith(f"handoff-token-{app.port}="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        cookie = cookie.split(";")[0]
        assert _is_streamlit_page(app.get("/", Cookie=cookie))
        assert app.get("/_stcore/health", Cookie=cookie).status == 200
        # DNS rebinding: the right token, but another site's host name or origin -> no page, no session
        for refused in (
            app.get(good, host=f"evil.example:{app.port}"),
            app.get(good, Origin="http://evil.example"),
            app.get("/", host="evil.example", Cookie=cookie),
        ):
            assert refused.status == 403 and not _set_cookies(refused)
            assert b"<html" not in refused.body.lower()  # type: ignore[attr-defined]
        # no token, a wrong one, a wrong cookie
        for refused in (
            app.get("/"),
            app.get("/?token=nope"),
            app.get("/_stcore/health"),
            app.get("/", Cookie=f"handoff-token-{app.port}=nope"),
        ):
            assert refused.status == 403 and not _set_cookies(refused)
        # the WebSocket that drives a session: only from an allowed Host and Origin, with the token
        assert app.websocket(origin=f"http://localhost:{app.port}", cookie=cookie) == 101
        assert app.websocket(origin="http://evil.example", cookie=cookie) == 403
        assert app.websocket(host="evil.example", origin=f"http://evil.example:{app.port}", cookie=cookie) == 403
        assert app.websocket(origin=f"http://localhost:{app.port}") == 403


def test_no_token_and_allowed_host_on_a_real_server(tmp_path: Path) -> None:
    with running_app(tmp_path, "--no-token", "--allowed-host", "notebooks.example") as app:
        assert app.token is None
        assert _is_streamlit_page(app.get("/"))
        assert _is_streamlit_page(
            app.get("/", host=f"notebooks.example:{app.port}", Origin=f"http://notebooks.example:{app.port}")
        )
        assert _is_streamlit_page(app.get("/", host=f"[::1]:{app.port}"))
        assert app.get("/", host=f"evil.example:{app.port}").status == 403
        assert app.websocket(host="notebooks.example", origin=f"http://notebooks.example:{app.port}") == 101
        assert app.websocket(origin="http://evil.example") == 403


def test_guard_started_without_settings_is_closed() -> None:
    """Started some other way than `handoff app` (no settings in the environment): a token nobody knows."""
    settings = GuardSettings.from_env({})
    assert settings.token and settings.allowed_hosts == {"localhost", "127.0.0.1", "::1"}
    assert AppGuard(lambda *a: None, settings).settings.token == settings.token


@pytest.mark.parametrize(
    "header, allowed",
    [
        ("localhost:8501", True),
        ("LOCALHOST", True),
        ("[::1]:8501", True),
        ("127.0.0.1", True),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example:8501", False),
        ("", False),
        ("[bad", False),
    ],
)
def test_host_header_parsing(header: str, allowed: bool) -> None:
    from handoff.app_guard import _hostname

    assert (_hostname(header, url=False) in GuardSettings.make().allowed_hosts) is allowed
