"""Two builders, twelve builds at once, one team server: versions 1..12, no duplicate, no lost history,
every package intact."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from helpers import TRAIN_IRIS, notebook
from team import HANDOFF, TeamServer

pytestmark = [pytest.mark.xdist_group("team"), pytest.mark.timeout(900)]

MODEL = "concurrent"


def test_twelve_builds_at_once_by_two_users(team: TeamServer, tmp_path: Path) -> None:
    path = tmp_path / f"{MODEL}.ipynb"
    nbformat.write(notebook([("parameters", "seed = 0"), TRAIN_IRIS]), path)

    def build(i: int) -> subprocess.CompletedProcess[str]:
        user = ("bob", "bea")[i % 2]
        env = team.env(user, HANDOFF_HOME=str(tmp_path / f"home-{user}"))  # each builder's own machine
        args = [*HANDOFF, "build", str(path), "-p", "seed", str(i), "--json"]
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=800)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(build, range(12)))
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    built = sorted(json.loads(r.stdout)["version"] for r in results)
    assert built == list(range(1, 13))

    listed = json.loads(team.handoff("list", MODEL, "--json", user="vera").stdout)
    assert sorted(v["version"] for v in listed) == list(range(1, 13))
    assert {v["author"] for v in listed} == {"bob", "bea"}
    verified = team.handoff("verify-store", "--json", user="vera", timeout=600)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    mine = [r for r in json.loads(verified.stdout) if r["name"] == MODEL]
    assert len(mine) == 12 and all(r["ok"] for r in mine), mine

    # history entries written at once by the releaser are all kept, in a consistent order
    def promote(version: int) -> subprocess.CompletedProcess[str]:
        return team.handoff("promote", MODEL, str(version), "--force-worse", user="rita")

    with ThreadPoolExecutor(4) as pool:
        moves = list(pool.map(promote, (3, 5, 7, 9)))
    assert all(m.returncode == 0 for m in moves), [m.stderr for m in moves]
    history = json.loads(team.handoff("history", MODEL, "--json", user="vera").stdout)
    assert sorted(e["to_version"] for e in history) == [3, 5, 7, 9]
    assert {e["by"] for e in history} == {"rita"}
