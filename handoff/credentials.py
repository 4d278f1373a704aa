"""Who a call to a tracking server is made as: credentials per caller, never per process.

MLflow's client reads credentials from process-wide environment variables, which is right for one
CLI run and wrong for an app where two people are logged in at once. So the credentials of a call
live in a context variable (``acting_as``), and an MLflow request-auth provider (registered as the
``handoff`` entry point of ``mlflow.request_auth_provider``) adds them to each request as HTTP basic
auth when, and only when, one is set. Threads started by a call (MLflow downloads artifacts on a
pool) get the caller's context through ``ContextExecutor``.
"""

from __future__ import annotations

import base64
import contextvars
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

AUTH_PROVIDER = "handoff"  # the entry point's name; MLFLOW_TRACKING_AUTH selects it

_current: contextvars.ContextVar[Credentials | None] = contextvars.ContextVar("handoff_credentials", default=None)


@dataclass(frozen=True)
class Credentials:
    """A user name and password for a tracking server (the password never shows in a repr)."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Credentials | None:
        """``HANDOFF_USER``/``HANDOFF_PASSWORD``, else MLflow's ``MLFLOW_TRACKING_USERNAME/PASSWORD``."""
        env = dict(os.environ) if env is None else env
        for user_var, password_var in (
            ("HANDOFF_USER", "HANDOFF_PASSWORD"),
            ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
        ):
            if env.get(user_var) and env.get(password_var):
                return cls(env[user_var], env[password_var])
        return None

    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def current() -> Credentials | None:
    """The credentials calls in this context are made with (``None``: MLflow's own settings)."""
    return _current.get()


@contextmanager
def acting_as(credentials: Credentials | None) -> Iterator[None]:
    """Make every tracking-server request in this context as ``credentials`` (``None``: unchanged)."""
    if credentials is None:
        yield
        return
    os.environ.setdefault("MLFLOW_TRACKING_AUTH", AUTH_PROVIDER)  # a provider's name, not a secret
    token = _current.set(credentials)
    try:
        yield
    finally:
        _current.reset(token)


class _BasicAuth:
    """A ``requests`` auth hook: the caller's credentials as basic auth, if the caller set any."""

    def __call__(self, request: Any) -> Any:
        credentials = _current.get()
        if credentials is not None:
            request.headers["Authorization"] = credentials.header()
        return request


class HandoffAuthProvider:
    """MLflow request-auth provider (``MLFLOW_TRACKING_AUTH=handoff``): see the module docstring."""

    def get_name(self) -> str:
        return AUTH_PROVIDER

    def get_auth(self) -> _BasicAuth:
        return _BasicAuth()


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context (so as the submitting user)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
