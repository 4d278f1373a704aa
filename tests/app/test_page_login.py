"""Logging in to a team server in the app (AppTest against the real `team` server): the form, wrong
passwords, who is shown, logout, and two people logged in at once each acting as themselves."""

from __future__ import annotations

import os
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import handoff
from apptest import APP, page, texts
from handoff.errors import PermissionDeniedError
from handoff.store import Store
from helpers import SAMPLES, build
from team import TeamServer

pytestmark = pytest.mark.xdist_group("team")

MODEL = "login_iris"


@pytest.fixture(scope="module")
def built(team: TeamServer) -> TeamServer:
    """One version of MODEL, built by bob through the library (as his own Store)."""
    from handoff.credentials import Credentials

    store = Store(team.uri, credentials=Credentials("bob", team.users["bob"][1]))
    assert build(SAMPLES / "iris_classifier.ipynb", store, name=MODEL).ok
    return team


def _app(server: TeamServer, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    for name in ("HANDOFF_USER", "HANDOFF_PASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HANDOFF_STORE", server.uri)
    return AppTest.from_file(APP, default_timeout=90)


def _log_in(at: AppTest, user: str, password: str) -> AppTest:
    at.run()
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def test_the_form_comes_first_and_a_wrong_password_stays_on_it(
    built: TeamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(built, monkeypatch).run()
    assert [t.value for t in at.title] == ["Log in"] and [t.label for t in at.text_input] == ["User name", "Password"]
    _log_in(at, "vera", "not-her-password")
    assert any("refused the login of 'vera'" in e.value for e in at.error), texts(at)
    assert [t.value for t in at.title] == ["Log in"]
    _log_in(at, "vera", built.users["vera"][1])
    assert not at.exception, at.exception
    assert "Logged in as **vera** (viewer)" in [c.value for c in at.sidebar.caption]
    _button(at, "Log out").click().run()
    assert [t.value for t in at.title] == ["Log in"]


def test_two_people_logged_in_at_once_act_as_themselves(built: TeamServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vera = _log_in(_app(built, monkeypatch), "vera", built.users["vera"][1])
    rita = _log_in(_app(built, monkeypatch), "rita", built.users["rita"][1])
    for at in (vera, rita):
        page(at, "version_detail", model=MODEL, version="1")
        assert not at.exception, at.exception
    promote = _button(vera, "Promote v1 to champion")
    assert promote.disabled and promote.help == f"'vera' (viewer) needs releaser rights to promote on {built.uri}"
    with pytest.raises(PermissionDeniedError, match="'vera' needs releaser rights on model `login_iris`"):
        handoff.promote(MODEL, 1, store=vera.session_state["handoff_login"])  # her session's own store
    _button(rita, "Promote v1 to champion").click().run()
    _button(rita, "Confirm").click().run()
    assert any("champion of login_iris: none → v1 (promote by rita" in s.value for s in rita.success), texts(rita)
    history = Store(built.uri, credentials=_creds(built, "vera")).alias_history(MODEL)
    assert [(e["kind"], e["by"]) for e in history] == [("promote", "rita")]
    assert all(built.users[u][1] not in os.environ.values() for u in ("vera", "rita"))  # never process-wide


def _creds(server: TeamServer, user: str) -> Any:
    from handoff.credentials import Credentials

    return Credentials(user, server.users[user][1])


def test_a_store_that_does_not_answer_is_an_error_box(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import free_port

    gone = TeamServer("", SAMPLES, free_port(), SAMPLES / "unused.log")
    at = _log_in(_app(gone, monkeypatch), "vera", "whatever-password")
    assert any(e.value.startswith("store unreachable: nothing answers at") for e in at.error), texts(at)
    assert not at.exception
