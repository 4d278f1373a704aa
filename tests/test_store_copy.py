"""`handoff store copy`: an embedded store into a team server, same version numbers, verified on arrival,
idempotent; refused for a builder and where the destination's numbers belong to other versions."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

import handoff
from handoff.credentials import Credentials
from handoff.errors import PermissionDeniedError
from handoff.store import Store
from handoff.store_copy import CopyConflictError
from helpers import build
from team import HANDOFF, TeamServer

pytestmark = [pytest.mark.xdist_group("team"), pytest.mark.kernel]


def _as(team: TeamServer, user: str) -> Store:
    return Store(team.uri, credentials=Credentials(user, team.users[user][1]))


def test_copy_keeps_numbers_authors_aliases_history_and_packages(
    team: TeamServer, store: Store, iris_notebook: Path, tmp_path: Path
) -> None:
    for c in (1.0, 0.5):
        assert build(iris_notebook, store, name="laptop", params={"C": c}).ok
    handoff.promote("laptop", 1, store=store, by="dana")
    handoff.check_version("laptop", 2, store=store)  # a re-check report travels too
    handoff.archive("laptop", 2, store=store, by="dana")

    report = handoff.copy_store(store, _as(team, "rita"))
    assert report.models["laptop"]["copied"] == [1, 2] and report.models["laptop"]["aliases"] == {"champion": 1}
    team_store = _as(team, "vera")
    for version in (1, 2):
        here, there = store.get_version("laptop", version), team_store.get_version("laptop", version)  # verified
        assert (there.status, there.metrics, there.author) == (here.status, here.metrics, here.author)
        assert there.record is not None and here.record is not None
        assert there.record.inputs.parameters == here.record.inputs.parameters
        exported = handoff.export("laptop", version, tmp_path / f"v{version}", store=team_store)
        assert exported.sha256 == store.package_sha256(here.run_id or "")  # the very package, byte for byte
        assert hashlib.sha256(exported.path.read_bytes()).hexdigest() == exported.sha256
    assert [v.version for v in team_store.list_versions("laptop", include_archived=False)] == [1]  # v2 archived
    assert team_store.alias_version("laptop").version == 1
    rechecks = team_store.check_reports(team_store.get_version("laptop", 2).run_id or "")
    assert rechecks == store.check_reports(store.get_version("laptop", 2).run_id or "") and rechecks
    moves = [(e["kind"], e["to_version"], e["by"]) for e in team_store.alias_history("laptop")]
    assert moves == [("promote", 1, "dana"), ("archive", 2, "dana")]  # who did it here, not who copied

    again = subprocess.run(  # the CLI, a second time: nothing is copied twice
        [*HANDOFF, "store", "copy", "--from", str(store.local_paths()[0]), "--to", team.uri, "--json"],
        env=team.env("rita"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    done = json.loads(again.stdout)["models"]["laptop"]
    assert (done["copied"], done["skipped"], done["history_added"]) == ([], [1, 2], 0)
    assert [v.version for v in team_store.list_versions("laptop")] == [1, 2]
    assert len(team_store.alias_history("laptop")) == 2


def test_copy_is_refused_to_a_builder_and_over_other_versions(
    team: TeamServer, store: Store, iris_notebook: Path
) -> None:
    assert build(iris_notebook, store, name="clash").ok
    with pytest.raises(PermissionDeniedError, match="'bob' \\(builder\\) needs releaser rights to copy a store into"):
        handoff.copy_store(store, _as(team, "bob"))
    assert build(iris_notebook, _as(team, "bob"), name="clash").ok  # the team's own v1 of the same name
    with pytest.raises(CopyConflictError, match="already has version 1 of clash, and it is not the copy"):
        handoff.copy_store(store, _as(team, "rita"))
    assert len(_as(team, "vera").list_versions("clash")) == 1
