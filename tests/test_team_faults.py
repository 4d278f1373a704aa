"""The team server goes away: a build fails with "store unreachable", keeps its executed notebook, and
after a restart the store holds nothing half-recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from helpers import TRAIN_IRIS, free_port, notebook
from team import HANDOFF, TeamServer

pytestmark = [pytest.mark.xdist_group("team"), pytest.mark.timeout(600)]


def test_the_server_stopped_mid_build(team: TeamServer, tmp_path: Path) -> None:
    """On the shared server: stopped while a build waits in its second cell, started again after."""
    path, go = tmp_path / "stopped_mid_build.ipynb", tmp_path / "go"
    waits = "import os, time\nwhile wait_for and not os.path.exists(wait_for):\n    time.sleep(0.1)"
    nbformat.write(notebook([("parameters", "wait_for = ''"), waits, TRAIN_IRIS]), path)
    env = team.env("bob", HANDOFF_HOME=str(tmp_path / "home"))
    build = subprocess.Popen(
        [*HANDOFF, "build", str(path), "-p", "wait_for", str(go)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert build.stderr is not None
    progress = []
    try:
        for line in build.stderr:  # in its waiting cell; whether the store was opened yet or not, the same end
            progress.append(line)
            if "execute 2/3" in line:
                break
        team.stop()
        go.touch()  # the cell ends only once the server is gone
        _, err = build.communicate(timeout=300)
    finally:
        go.touch()
        if team.proc is None:  # stopped: the next tests need it
            team.start()
    lines = [*progress, *err.splitlines(keepends=True)]
    assert build.returncode == 3, "".join(lines)
    last = lines[-1]
    assert last.startswith("handoff: error: ") and "store unreachable: nothing answers at" in last, last
    assert "Traceback" not in "".join(lines)
    executed = list((tmp_path / "home" / "jobs").glob("*/executed.ipynb"))  # the partial result, kept
    assert executed, "".join(lines)
    assert "wait_for" in executed[0].read_text()

    listed = team.handoff("list", "--json", user="vera")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "stopped_mid_build" not in {row["name"] for row in json.loads(listed.stdout)}
    verified = team.handoff("verify-store", user="vera")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = subprocess.run([*HANDOFF, "build", str(path), "--json"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 1  # nothing was taken by the broken build


def test_a_store_that_does_not_answer_fails_before_the_kernel(tmp_path: Path) -> None:
    gone = TeamServer("", tmp_path, free_port(), tmp_path / "log")
    path = tmp_path / "quick.ipynb"
    nbformat.write(notebook([TRAIN_IRIS]), path)
    env = gone.env("bob", HANDOFF_HOME=str(tmp_path / "home"))
    result = subprocess.run([*HANDOFF, "build", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"handoff: error: store unreachable: nothing answers at {gone.uri}"
    assert "execute" not in result.stderr
