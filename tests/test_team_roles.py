"""Roles against a real team server, through the CLI: who may read, build, promote, and what the
audit trail says. One builder build is shared by the module; every refusal is checked to change nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import SAMPLES
from team import HANDOFF, TeamServer

pytestmark = pytest.mark.xdist_group("team")

MODEL = "roles_iris"


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _refused(result: Any, *words: str) -> str:
    """A refusal: exit 2, one error line on stderr naming what is needed, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("handoff: error: "), result.stderr
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def built(team: TeamServer) -> TeamServer:
    """Two versions of MODEL built by the builder bob."""
    for n in (5, 10):
        result = team.handoff(
            "build", str(SAMPLES / "iris_classifier.ipynb"), "--name", MODEL, "-p", "n_estimators", str(n), user="bob"
        )
        assert result.returncode == 0, result.stderr
    return team


def _state(team: TeamServer) -> tuple[list[Any], list[Any]]:
    versions = _json(team.handoff("list", MODEL, "--json", user="vera"))
    history = _json(team.handoff("history", MODEL, "--json", user="vera"))
    return versions, history


def test_a_viewer_reads_everything_and_exports_a_package_that_verifies(built: TeamServer, tmp_path: Path) -> None:
    rows = _json(built.handoff("list", MODEL, "--json", user="vera"))
    assert sorted(r["version"] for r in rows) == [1, 2]
    assert {r["author"] for r in rows} == {"bob"}  # the logged-in builder, not the OS user
    shown = _json(built.handoff("show", MODEL, "1", "--json", user="vera"))
    assert shown["author"] == "bob"
    assert built.handoff("compare", MODEL, "1", "2", user="vera").returncode == 0
    exported = _json(built.handoff("export", MODEL, "2", "-o", str(tmp_path), "--json", user="vera"))
    verified = built.handoff("verify", exported["path"], "--store", built.uri, user="vera")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "it is the package the store recorded" in verified.stdout


def test_a_viewer_cannot_build_or_promote_and_nothing_changes(built: TeamServer) -> None:
    before = _state(built)
    build = built.handoff("build", str(SAMPLES / "iris_classifier.ipynb"), "--name", MODEL, user="vera")
    _refused(build, "'vera' (viewer) needs builder rights to build")
    assert "execute" not in build.stderr  # refused before the kernel started
    _refused(built.handoff("promote", MODEL, "1", user="vera"), "'vera'", "releaser rights", f"`{MODEL}`")
    assert _state(built) == before


def test_a_builder_cannot_promote_and_the_alias_does_not_move(built: TeamServer) -> None:
    before = _state(built)
    _refused(built.handoff("promote", MODEL, "1", user="bob"), "'bob' needs releaser rights on model", "to promote")
    versions, history = _state(built)
    assert (versions, history) == before
    assert all("champion" not in v["aliases"] for v in versions)


def test_a_releaser_promotes_and_rolls_back_and_history_names_them(built: TeamServer) -> None:
    assert built.handoff("promote", MODEL, "1", "--by", "someone-else", user="rita").returncode == 0
    assert built.handoff("promote", MODEL, "2", "--force-worse", user="rita").returncode == 0
    _refused(built.handoff("rollback", MODEL, user="bob"), "'bob' needs releaser rights", "to rollback")
    assert built.handoff("rollback", MODEL, user="rita").returncode == 0
    history = _json(built.handoff("history", MODEL, "--json", user="vera"))
    moves = [(e["kind"], e["to_version"], e["by"]) for e in history if e["alias"] == "champion"]
    assert moves == [("promote", 1, "rita"), ("promote", 2, "rita"), ("rollback", 1, "rita")]  # never --by's name
    champion = [
        v["version"] for v in _json(built.handoff("list", MODEL, "--json", user="vera")) if "champion" in v["aliases"]
    ]
    assert champion == [1]


def test_wrong_or_missing_credentials_are_one_clear_line(built: TeamServer) -> None:
    env_wrong = built.env("vera") | {"HANDOFF_PASSWORD": "not-her-password"}
    result = subprocess.run([*HANDOFF, "list"], env=env_wrong, capture_output=True, text=True, timeout=120)
    _refused(result, "refused the login of 'vera': wrong user name or password", built.uri)
    result = subprocess.run([*HANDOFF, "list"], env=built.env(), capture_output=True, text=True, timeout=120)
    _refused(result, "needs a login: set HANDOFF_USER and HANDOFF_PASSWORD")


def test_mlflow_credential_variables_and_the_store_flag_work_too(built: TeamServer) -> None:
    env = built.env()
    del env["HANDOFF_STORE"]
    env |= {"MLFLOW_TRACKING_USERNAME": "vera", "MLFLOW_TRACKING_PASSWORD": built.users["vera"][1]}
    result = subprocess.run(
        [*HANDOFF, "list", MODEL, "--json", "--store", built.uri], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert {r["version"] for r in json.loads(result.stdout)} == {1, 2}
    doctor = _json(built.handoff("doctor", "--json", user="rita"))
    assert (doctor["store"], doctor["user"], doctor["role"]) == (built.uri, "rita", "releaser")
