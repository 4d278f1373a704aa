"""The web app's front door: refuse foreign Host/Origin headers and requests without the access token.

The app builds notebooks, i.e. runs code, so a page on another site must not be able to drive it:
through DNS rebinding a browser sends that page's requests to 127.0.0.1 with ``Host: evil.example``,
and a WebSocket from it carries ``Origin: evil.example``. Like Jupyter, a random token in the printed
URL (a cookie after first use) also keeps out other local users and pages that guess the port.

``AppGuard`` is plain ASGI middleware (no Streamlit import): ``app/server.py`` puts it in front of
Streamlit's ``st.App``, so it runs for every HTTP request and WebSocket handshake before any of
Streamlit's routes or page logic. ``handoff app`` passes its settings in the environment.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
TOKEN_ENV, HOSTS_ENV = "HANDOFF_APP_TOKEN", "HANDOFF_APP_ALLOWED_HOSTS"
COOKIE_PREFIX = "handoff-token-"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def new_token() -> str:
    """A fresh access token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _hostname(value: str, *, url: bool) -> str | None:
    """The lower-cased host name of a ``Host`` header (``host[:port]``) or an ``Origin`` URL."""
    try:
        return urlsplit(value if url else f"//{value}").hostname
    except ValueError:
        return None


@dataclass(frozen=True)
class GuardSettings:
    """What the guard lets in.

    Attributes:
        allowed_hosts: Host names accepted in ``Host`` and ``Origin`` (lower case, no port).
        token: The access token, or ``None`` when ``--no-token`` turned it off.
    """

    allowed_hosts: frozenset[str]
    token: str | None

    @classmethod
    def make(cls, extra_hosts: Iterable[str] = (), token: str | None = None) -> GuardSettings:
        hosts = {h.strip().lower().strip("[]") for h in (*LOCAL_HOSTS, *extra_hosts) if h.strip()}
        return cls(frozenset(hosts), token or None)

    def to_env(self) -> dict[str, str]:
        return {HOSTS_ENV: ",".join(sorted(self.allowed_hosts)), TOKEN_ENV: self.token or ""}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GuardSettings:
        """The settings ``handoff app`` put in the environment; without them, local hosts and a
        fresh token nobody knows (closed rather than open when started some other way)."""
        env = dict(os.environ if env is None else env)
        if TOKEN_ENV not in env:
            return cls.make(token=new_token())
        return cls.make(env.get(HOSTS_ENV, "").split(","), env[TOKEN_ENV])


class AppGuard:
    """ASGI middleware: 403 for a foreign Host or Origin, or a missing/wrong token; else pass through.

    The token is accepted from ``?token=`` (then set as an HttpOnly, SameSite=Strict cookie named
    after the port, so apps on other ports keep their own) or from that cookie.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], settings: GuardSettings | None = None) -> None:
        self.app = app
        self.settings = settings or GuardSettings.from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal, from_query = self._check(scope, headers)
        if refusal:
            await self._refuse(scope, receive, send, refusal)
            return
        if from_query and scope["type"] == "http":
            send = self._setting_cookie(send, headers)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[str | None, bool]:
        """(why it is refused or None, whether the token came in the query string)."""
        allowed = self.settings.allowed_hosts
        if _hostname(headers.get("host", ""), url=False) not in allowed:
            return "this host name is not allowed (start the app with --allowed-host NAME to allow it)", False
        if "origin" in headers and _hostname(headers["origin"], url=True) not in allowed:
            return "requests from another site are not allowed", False
        token = self.settings.token
        if token is None:
            return None, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        if any(hmac.compare_digest(given.encode(), token.encode()) for given in query):
            return None, True
        cookie = _cookies(headers.get("cookie", "")).get(_cookie_name(headers))
        if cookie is not None and hmac.compare_digest(cookie.encode(), token.encode()):
            return None, False
        return "open the URL `handoff app` printed: it carries the access token", False

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        if scope["type"] == "websocket":  # closing before accepting: the server answers the handshake 403
            await send({"type": "websocket.close", "code": 1008})
            return
        body = f"403 Forbidden: {reason}\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _setting_cookie(self, send: Send, headers: dict[str, str]) -> Send:
        cookie = (f"{_cookie_name(headers)}={self.settings.token}; Path=/; HttpOnly; SameSite=Strict").encode()

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return wrapped


def _cookie_name(headers: dict[str, str]) -> str:
    try:
        port = urlsplit(f"//{headers.get('host', '')}").port
    except ValueError:
        port = None
    return f"{COOKIE_PREFIX}{port or 'default'}"


def _cookies(header: str) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}
