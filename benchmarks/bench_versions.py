"""Does handoff stay fast with many versions? 10,000 versions across 20 models: list, compare, show.

The store is ``benchmarks/synthetic.py``'s (made once, then reused; only read here). In one process,
``--runs`` times each, interleaved with the peer: ``Store.list_versions()`` (all), ``list_versions
(MODEL)``, ``handoff.compare`` of 5 versions and ``Store.get_version`` (verified, with its record);
the peer is MLflow's own client on the same store (``search_model_versions`` of all / of the model,
``get_model_version`` of the 5, ``get_model_version`` + ``get_run``). Then the same reads from the
cold CLI (``handoff list``, ``list MODEL``, ``compare`` of 5), each a fresh process, against a fresh
``python -c`` with MLflow's client. Prints medians (a loaded machine is noisy: compare the ratios).

    .venv/bin/python benchmarks/bench_versions.py [--runs 5] [--versions 10000] [--models 20]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import handoff
from _common import arguments, report, row
from bench_cli import HANDOFF, mlflow_peer, timed
from synthetic import synthetic_store


def interleaved(runs: int, ours: Callable[[], Any], peer: Callable[[], Any]) -> tuple[float, float]:
    """Medians of ``runs`` timings of ``ours`` and of ``peer``, run one after the other."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for action, kept in ((ours, times[0]), (peer, times[1])):
            started = time.perf_counter()
            action()
            kept.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    args = arguments(__doc__, versions=10_000, models=20)
    made = synthetic_store(args.versions, args.models)
    store = handoff.open_store(made.home)
    peer = handoff.open_store(made.home).client  # MLflow's client, opened outside the timings
    name = made.models[len(made.models) // 2]
    five = list(made.full[name][-5:])
    query = f"name = '{name}'"
    assert len(store.list_versions()) == made.versions, "the synthetic store is not what it says"

    def search(filter_string: str) -> list[Any]:
        found: list[Any] = []
        token = None
        while True:
            page = peer.search_model_versions(filter_string, max_results=10000, page_token=token)
            found += page
            token = page.token
            if not token:
                return found

    def peer_get(number: int) -> None:
        peer.get_run(peer.get_model_version(name, str(number)).run_id)

    library = [
        (
            f"Store.list_versions() ({made.versions} versions)",
            store.list_versions,
            "search_model_versions()",
            lambda: search(""),
            1.0,
        ),
        (
            "Store.list_versions(MODEL)",
            lambda: store.list_versions(name),
            "search_model_versions(name)",
            lambda: search(query),
            0.5,
        ),
        (
            "handoff.compare of 5",
            lambda: handoff.compare(name, five, store=store),
            "get_model_version x5",
            lambda: [peer.get_model_version(name, str(v)) for v in five],
            0.5,
        ),
        (
            "Store.get_version (verified)",
            lambda: store.get_version(name, five[-1]),
            "get_model_version + get_run",
            lambda: peer_get(five[-1]),
            0.5,
        ),
    ]
    rows = []
    print(f"{made.versions} versions across {len(made.models)} models ({made.home}); medians of {args.runs}")
    for figure, ours, peer_name, theirs, goal in library:
        value, peer_value = interleaved(args.runs, ours, theirs)
        print(f"  {figure:42} {value * 1000:8.1f} ms   peer {peer_name:28} {peer_value * 1000:8.1f} ms")
        rows.append(row(figure, value, peer=f"MlflowClient.{peer_name}", peer_value=peer_value, goal=goal))

    uri = store.uri
    home = ["--store", str(made.home)]
    cold = [
        ("cold CLI: handoff list", [HANDOFF, "list", *home], "c.search_model_versions('', max_results=10000)", 1.0),
        ("cold CLI: handoff list MODEL", [HANDOFF, "list", name, *home], f'c.search_model_versions("{query}")', 0.5),
        (
            "cold CLI: handoff compare of 5",
            [HANDOFF, "compare", name, *map(str, five), *home],
            f"[c.get_model_version({name!r}, str(v)) for v in {five}]",
            0.5,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="handoff-bench-versions-") as tmp:
        for figure, command, code, goal in cold:
            value, peer_value = interleaved(
                args.runs, lambda c=command: timed(c, Path(tmp)), lambda p=code: timed(mlflow_peer(uri, p), Path(tmp))
            )
            print(
                f"  {figure:42} {value * 1000:8.1f} ms   peer python -c MlflowClient       {peer_value * 1000:8.1f} ms"
            )
            rows.append(row(figure, value, peer="python -c MlflowClient (same read)", peer_value=peer_value, goal=goal))
    report(rows)
    sys.exit(0)


if __name__ == "__main__":
    main()
