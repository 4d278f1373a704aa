"""Team mode in a real browser: log in to the team server as a builder, build, and the version is his."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import BUILD_TIMEOUT, UI, app_server, start_build, upload_iris
from handoff.credentials import Credentials
from handoff.store import Store
from team import TeamServer

pytestmark = pytest.mark.xdist_group("team")


@pytest.mark.timeout(300)
def test_a_builder_logs_in_and_builds(
    team: TeamServer, ui: UI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    for name in ("HANDOFF_USER", "HANDOFF_PASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # the app knows nobody: each browser session logs in
    monkeypatch.setenv("HANDOFF_HOME", str(tmp_path / "home"))  # this app's job table
    page, expect = ui.page, ui.expect
    ui.number_shots(80, 85)
    with app_server(team.uri, request.node.name) as server:
        page.goto(server.url, wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.get_by_label("User name").fill("bob")
        page.get_by_label("Password", exact=True).fill("wrong-password-for-bob")
        page.get_by_role("button", name="Log in").click()
        expect(ui.alert("refused the login of 'bob'")).to_be_visible()
        page.get_by_label("Password", exact=True).fill(team.users["bob"][1])
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_text("Logged in as bob (builder)")).to_be_visible()
        ui.shot("team-logged-in")
        # the Build page, in this same session (a reload starts a new session, which asks again)
        expect(page.get_by_role("heading", name="Build a model version")).to_be_visible()
        upload_iris(ui)
        passed = start_build(ui, version=1)
        expect(passed).to_be_visible(timeout=BUILD_TIMEOUT)
        ui.shot("team-built")
        ui.no_exception()
    versions = Store(team.uri, credentials=Credentials("vera", team.users["vera"][1])).list_versions("iris_classifier")
    assert [(v.version, v.author) for v in versions] == [(1, "bob")]
