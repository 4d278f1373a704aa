"""Team mode: reads against a real team server (PostgreSQL + `mlflow server` with basic auth) beside
the same reads of an embedded store, both with 200 versions across 4 models.

Starts its own PostgreSQL cluster and `handoff server` on 127.0.0.1 (``tests/team.py``), fills the
server like ``benchmarks/synthetic.py`` fills the embedded store (as the releaser ``rita``), then
times as the viewer ``vera``, interleaved with the embedded store: ``Store.list_versions()``,
``list_versions(MODEL)``, ``handoff.compare`` of 5 versions and a version page
(``get_version``, verified, with its record, plus its re-check reports: what the app's version
detail reads). The ratio is server / embedded: what a network, PostgreSQL and logins cost.

    .venv/bin/python benchmarks/bench_team.py [--runs 5]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import handoff
from _common import ROOT, arguments, report, row
from bench_versions import interleaved
from synthetic import fill, model_names, synthetic_store

sys.path.insert(0, str(ROOT / "tests"))
from team import postgres, team_server

VERSIONS, MODELS = 200, 4


def main() -> None:
    args = arguments(__doc__)
    made = synthetic_store(VERSIONS, MODELS)
    embedded = handoff.open_store(made.home)
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-team-") as tmp,
        postgres() as cluster,
        team_server(cluster, "bench", Path(tmp)) as server,
    ):
        started = time.perf_counter()
        as_rita = handoff.Store(server.uri, credentials=handoff.Credentials("rita", server.users["rita"][1]))
        full = fill(as_rita, VERSIONS, model_names(MODELS))
        print(f"filled the team server with {VERSIONS} versions in {time.perf_counter() - started:.0f} s")
        team = handoff.Store(server.uri, credentials=handoff.Credentials("vera", server.users["vera"][1]))
        name = made.models[1]
        five = list(full[name][-5:])
        assert five == list(made.full[name][-5:]) and len(team.list_versions()) == VERSIONS

        def page(store: handoff.Store) -> None:
            version = store.get_version(name, five[-1])
            store.check_reports(version.run_id or "")

        rows = []
        for figure, action in (
            (f"list ({VERSIONS} versions)", lambda s: s.list_versions()),
            ("list MODEL", lambda s: s.list_versions(name)),
            ("compare of 5", lambda s: handoff.compare(name, five, store=s)),
            ("version page (verified + record + re-checks)", page),
        ):
            ours, peer = interleaved(args.runs, lambda a=action: a(team), lambda a=action: a(embedded))
            rows.append(row(f"team server: {figure}", ours, peer="embedded store", peer_value=peer))
    for r in rows:
        print(
            f"{r['figure']:<60} {r['value'] * 1000:8.0f} ms   embedded {r['peer_value'] * 1000:7.0f} ms   x{r['ratio']}"
        )
    report(rows)


if __name__ == "__main__":
    main()
