"""`handoff server`: init, start, users and roles against a real PostgreSQL and `mlflow server`."""

from __future__ import annotations

import json

import pytest

from team import TeamServer

pytestmark = pytest.mark.xdist_group("team")


def test_users_have_the_roles_they_were_given(team: TeamServer) -> None:
    listed = team.handoff("server", "users", "--json", user="admin")
    assert listed.returncode == 0, listed.stderr
    roles = {u["name"]: u["role"] for u in json.loads(listed.stdout)}
    assert roles == {"admin": "admin", "vera": "viewer", "bob": "builder", "bea": "builder", "rita": "releaser"}
