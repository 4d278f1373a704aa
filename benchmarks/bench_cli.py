"""How long does a cold ``handoff`` read command take? Each in a fresh interpreter, at 200 versions.

A synthetic store of its own (``benchmarks/synthetic.py``: 200 versions across 4 models, made in
a temporary folder, about a minute) gets one more version whose model folder holds a 10 MB file of
random bytes (a synthetic 10 MB model: its package is about 10 MB, incompressible), exported once
so its package is stored, and one alias move (so ``history`` has rows). Then, interleaved,
``--runs`` times each: ``handoff --help``, ``list``, ``list MODEL``, ``show``, ``history``,
``compare`` of 2 and ``export`` of the 10 MB version, each as its own process; the peer of each is
the same read by a fresh ``python -c`` with MLflow's own client (``MlflowClient(uri)
.search_model_versions``, ``get_model_version``, ``search_runs``,
``mlflow.artifacts.download_artifacts``), and ``python -c pass`` is the floor of ``--help``.
Prints medians (a loaded machine is noisy: medians of interleaved runs).

    .venv/bin/python benchmarks/bench_cli.py [--runs 5] [--versions 200] [--models 4]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _common import arguments, report, row
from synthetic import synthetic_store

HANDOFF = str(Path(sys.executable).with_name("handoff"))
MB = 1024 * 1024


def big_version(home: Path, name: str, like: int, scratch: Path) -> tuple[int, str]:
    """Record a version of ``name`` like version ``like`` plus a 10 MB model file; export it once (its
    package is then stored). Returns its number and its run id."""
    import handoff

    store = handoff.open_store(home)
    run_id = store.get_version(name, like).run_id or ""
    staging = scratch / "staging"
    shutil.copytree(store.local_artifacts(run_id) or "", staging, ignore=shutil.ignore_patterns("package", "handoff"))
    (staging / "model" / "weights.bin").write_bytes(os.urandom(10 * MB))
    recorded = store.record_build(staging=staging, record=replace(store.read_record(run_id), name=name), register=True)
    assert recorded.version is not None
    handoff.export(name, recorded.version, scratch / "first-export.zip", store=store)
    handoff.promote(name, like, "staging", store=store, by="bench")
    return recorded.version, recorded.run_id


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def mlflow_peer(uri: str, code: str) -> list[str]:
    """A fresh interpreter doing one read with MLflow's client (``c``) on the store."""
    return [sys.executable, "-c", f"from mlflow import MlflowClient\nc = MlflowClient({uri!r}, {uri!r})\n{code}"]


def main() -> None:
    args = arguments(__doc__, versions=200, models=4)
    with tempfile.TemporaryDirectory(prefix="handoff-bench-cli-") as tmp:
        scratch = Path(tmp)
        made = synthetic_store(args.versions, args.models, home=scratch / "store")  # its own: written to
        home = made.home
        name = made.models[0]
        a, b = made.full[name][-2:]
        big, big_run = big_version(home, name, a, scratch)
        zip_name = f"{name}-v{big}.zip"
        uri = f"sqlite:///{home / 'mlflow.db'}"
        store = ["--store", str(home)]
        run_of_a = f"c.get_model_version({name!r}, '{a}').run_id"
        cases: list[tuple[str, list[str], str, list[str], float]] = [
            ("handoff --help", [HANDOFF, "--help"], "python -c pass", [sys.executable, "-c", "pass"], 0.2),
            (
                f"handoff list ({args.versions + 1} versions)",
                [HANDOFF, "list", *store],
                "MlflowClient.search_model_versions",
                mlflow_peer(uri, "c.search_model_versions('', max_results=10000)"),
                1.0,
            ),
            (
                "handoff list MODEL",
                [HANDOFF, "list", name, *store],
                "search_model_versions(name)",
                mlflow_peer(uri, f"c.search_model_versions(\"name = '{name}'\", max_results=10000)"),
                1.0,
            ),
            (
                "handoff show MODEL V",
                [HANDOFF, "show", name, str(a), *store],
                "MlflowClient.get_model_version",
                mlflow_peer(uri, f"c.get_model_version({name!r}, '{a}')"),
                1.0,
            ),
            (
                "handoff history MODEL",
                [HANDOFF, "history", name, *store],
                "MlflowClient.search_runs (audit)",
                mlflow_peer(
                    uri,
                    "e = c.get_experiment_by_name('handoff-audit')\n"
                    f"c.search_runs([e.experiment_id], \"tags.`handoff.audit.model` = '{name}'\")",
                ),
                1.0,
            ),
            (
                "handoff compare MODEL A B",
                [HANDOFF, "compare", name, str(a), str(b), *store],
                "get_model_version x2 + get_run",
                mlflow_peer(uri, f"c.get_model_version({name!r}, '{b}')\nc.get_run({run_of_a})"),
                1.0,
            ),
            (
                "handoff export (10 MB model)",
                [HANDOFF, "export", name, str(big), "-o", str(scratch / "out.zip"), *store],
                "mlflow.artifacts.download_artifacts",
                [
                    sys.executable,
                    "-c",
                    "import mlflow.artifacts\nmlflow.artifacts.download_artifacts("
                    f"artifact_uri='runs:/{big_run}/package/{zip_name}', dst_path={str(scratch / 'dl')!r}, "
                    f"tracking_uri={uri!r})",
                ],
                1.0,
            ),
        ]
        times: dict[str, list[float]] = {}
        for _ in range(args.runs):  # interleaved: each command, then its peer
            for figure, command, _peer, peer_command, _goal in cases:
                times.setdefault(figure, []).append(timed(command, scratch))
                times.setdefault(f"peer {figure}", []).append(timed(peer_command, scratch))
            shutil.rmtree(scratch / "dl", ignore_errors=True)
        size = (scratch / "out.zip").stat().st_size
    rows = []
    print(f"cold CLI at {args.versions + 1} versions, median of {args.runs} (interleaved with the peer)")
    for figure, _command, peer, _peer_command, goal in cases:
        value, peer_value = statistics.median(times[figure]), statistics.median(times[f"peer {figure}"])
        print(f"  {figure:34} {value * 1000:8.0f} ms   peer {peer:34} {peer_value * 1000:8.0f} ms")
        rows.append(row(figure, value, peer=peer, peer_value=peer_value, goal=goal))
    print(f"  (the exported package is {size / MB:.1f} MB)")
    report(rows)


if __name__ == "__main__":
    main()
