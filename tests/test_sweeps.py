"""Parameter sweeps: typed grids, every point a tagged build on a local pool or Dask, best first, cancel."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from sklearn.datasets import load_iris

import handoff
from handoff import cli
from handoff.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, OptionError, ParameterError
from handoff.inspection import load_notebook
from handoff.jobs import JobNotFoundError, JobTable
from handoff.lifecycle import verify_store
from handoff.sandbox import descendants
from handoff.store import Store
from handoff.sweeps import plan_points, remote_hosts, sweep_versions
from helpers import SAMPLES, TRAIN_IRIS, as_in_a_terminal, survivors

RIDGE = SAMPLES / "ridge_sweep.ipynb"
LIMITS = {"timeout": 300.0, "cell_timeout": 300.0}
# the threads a point's notebook may use: joblib's n_jobs=-1 processes and its BLAS/OpenMP threads
THREADS_SEEN = (
    "import handoff, joblib\n"
    "from threadpoolctl import threadpool_info\n"
    "handoff.log_metrics({'cores': float(joblib.cpu_count()),\n"
    "                     'threads': float(max(lib['num_threads'] for lib in threadpool_info()))})"
)
TRAIN_FROM_CSV = (
    "import pandas as pd\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "frame = pd.read_csv('iris.csv')\n"
    "X, y = frame.drop(columns='target'), frame['target']\n"
    "model = LogisticRegression(max_iter=300).fit(X, y)"
)
SHARE_OF_TWO = max(1, len(os.sched_getaffinity(0)) // 2)  # each of 2 points at once gets half the cores


def _home(store: Store) -> str:
    return str(store.local_paths()[0])


# -- the points (no kernel) -----------------------------------------------------------------------


def test_grid_values_are_typed_by_the_notebooks_parameters() -> None:
    source = load_notebook(RIDGE)
    points = plan_points(source, {"degree": "1,2", "alpha": "0.1:10:3"})
    assert points == [
        {"degree": 1, "alpha": 0.1},
        {"degree": 1, "alpha": 5.05},
        {"degree": 1, "alpha": 10.0},
        {"degree": 2, "alpha": 0.1},
        {"degree": 2, "alpha": 5.05},
        {"degree": 2, "alpha": 10.0},
    ]
    assert all(type(p["degree"]) is int and type(p["alpha"]) is float for p in points)
    assert plan_points(source, {"degree": "1:3:3"}) == [{"degree": 1}, {"degree": 2}, {"degree": 3}]
    assert plan_points(source, {"degree": [3, 1, 3]}) == [{"degree": 3}, {"degree": 1}]  # typed, repeats dropped


def test_random_points_are_drawn_from_the_ranges_and_lists_reproducibly() -> None:
    source = load_notebook(RIDGE)
    grid = {"degree": "1,2,3", "alpha": "0.01:100:2"}
    drawn = plan_points(source, grid, random=20, seed=7)
    assert len(drawn) == 20 and drawn == plan_points(source, grid, random=20, seed=7)
    assert {p["degree"] for p in drawn} <= {1, 2, 3}
    assert all(0.01 <= p["alpha"] <= 100 for p in drawn)
    assert len({p["alpha"] for p in drawn}) == 20  # drawn from the range, not only its two ends


@pytest.mark.parametrize(
    ("grid", "error", "words"),
    [
        ({"depth": "1,2"}, ParameterError, "unknown parameter depth"),
        ({"degree": "1,two"}, ParameterError, "parameter degree expects int, got 'two'"),
        ({"alpha": "1:2:0"}, ParameterError, "needs a whole number of points"),
        ({"degree": "1:1000:1000", "alpha": "1,2"}, OptionError, "2000 points"),
        ({}, ParameterError, "at least one parameter"),
    ],
)
def test_bad_grids_are_refused_before_anything_runs(grid: dict[str, str], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        plan_points(load_notebook(RIDGE), grid)


def test_only_workers_on_other_machines_count_as_remote() -> None:
    here = ["tcp://127.0.0.1:40001", f"tcp://{socket.gethostname()}:40002", "tcp://localhost:40003"]
    assert remote_hosts(here) == []
    assert remote_hosts([*here, "tcp://10.254.254.254:40004"]) == ["10.254.254.254"]


def test_a_job_table_from_before_sweeps_gains_the_sweep_column(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.db") as con:  # the schema 1 table, as handoff 0.1 wrote it
        con.executescript(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, model TEXT NOT NULL, label TEXT NOT NULL, notebook TEXT NOT NULL,"
            " source TEXT NOT NULL, user TEXT NOT NULL, state TEXT NOT NULL, stage TEXT, cell INTEGER,"
            " cells_done INTEGER, cells_total INTEGER, message TEXT, created REAL NOT NULL, started REAL,"
            " finished REAL, heartbeat REAL, pid INTEGER, request TEXT NOT NULL, run_id TEXT, version INTEGER,"
            " error_stage TEXT, error_cell INTEGER, error TEXT, executed_notebook TEXT, cancel_requested_by TEXT);"
            "INSERT INTO jobs (id, model, label, notebook, source, user, state, created, request)"
            " VALUES ('old', 'm', 'm', 'nb.ipynb', 'cli', 'me', 'passed', 1.0, '{}');"
            "PRAGMA user_version = 1;"
        )
    (job,) = JobTable(tmp_path).select()
    assert (job.id, job.state, job.sweep) == ("old", "passed", None)
    assert JobTable(tmp_path).select(sweep="x") == []


# -- the local pool -------------------------------------------------------------------------------


def test_a_2x2_sweep_records_four_tagged_versions_best_first_and_promotes_the_best(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "sweep", str(RIDGE), "-p", "degree", "1,2", "-p", "alpha", "0.1,10", "--workers", "2",
            "--promote-best", "--store", _home(store), "--json", "--timeout", "300",
        ]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK, out
    assert out["metric"] == {"name": "rmse", "greater_is_better": False}
    points = out["points"]
    assert len(points) == 4 and {p["state"] for p in points} == {"passed"}
    rmse = [p["metrics"]["rmse"] for p in points]
    assert rmse == sorted(rmse), "the table is best (lowest rmse) first"
    assert sorted(p["version"] for p in points) == [1, 2, 3, 4]
    assert sorted((p["params"]["degree"], p["params"]["alpha"]) for p in points) == [
        (1, 0.1), (1, 10.0), (2, 0.1), (2, 10.0)
    ]  # fmt: skip
    assert out["best"]["version"] == points[0]["version"] == out["promoted"]
    assert store.alias_version("ridge_sweep", "champion").version == out["promoted"]
    versions = {v.version: v for v in store.list_versions("ridge_sweep")}
    for point in points:
        listed = versions[point["version"]]
        assert (listed.sweep, listed.sweep_point) == (out["id"], point["index"])
        assert store.run_tags(listed.run_id or "")["handoff.sweep"] == out["id"]
    assert sweep_versions("ridge_sweep", out["id"], store=store) == [1, 2, 3, 4]
    assert cli.main(["compare", "ridge_sweep", "--sweep", out["id"], "--store", _home(store), "--json"]) == EXIT_OK
    compared = json.loads(capsys.readouterr().out)
    assert sorted(compared["labels"]) == ["v1", "v2", "v3", "v4"]
    jobs = handoff.list_jobs(store)
    assert len(jobs) == 4 and {j.sweep for j in jobs} == {out["id"]} and {j.source for j in jobs} == {"cli"}
    assert cli.main(["builds", "--sweep", out["id"], "--store", _home(store), "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert handoff.list_jobs(store, sweep="other") == []


def test_a_boosting_sweep_ranks_by_auc_highest_first_and_ships_the_classifier(store: Store) -> None:
    result = handoff.sweep(
        SAMPLES / "boosting_sweep.ipynb",
        {"n_estimators": "5,40", "max_depth": "2", "learning_rate": "0.1"},
        store=store,
        workers=2,
        **LIMITS,
    )
    assert result.ok and result.metric == ("auc", True)
    best, worse = result.ranked()
    assert best.metrics["auc"] > worse.metrics["auc"] and best.params["n_estimators"] == 40  # more trees win here
    for point in result.points:
        model = store.get_version("boosting_sweep", point.version or 0).record.outputs.model
        assert model is not None and (model.shipped, model.type) == (
            "clf",
            "sklearn.ensemble._gb.GradientBoostingClassifier",
        )
        assert {"auc", "accuracy"} <= point.metrics.keys()


def test_a_failing_point_is_recorded_failed_and_does_not_stop_the_others(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", str(RIDGE), "-p", "alpha", "0.5,-1,5", "--workers", "2", "--store", _home(store)]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    lines = captured.out.splitlines()
    table = lines[1 : lines.index(next(x for x in lines if x.startswith("best:")))]
    assert table[0].split() == ["RANK", "POINT", "ALPHA", "STATE", "VERSION", "RMSE", "TIME"]
    assert [row.split()[3] for row in table[1:]] == ["passed", "passed", "failed"]  # the failed point last
    assert "point 2 failed" in captured.err and "alpha=-1.0" in captured.err and "cell 4" in captured.err
    result = handoff.sweep_status(handoff.list_jobs(store)[0].sweep or "", store=store)
    failed = next(p for p in result.points if p.state == "failed")
    assert (failed.params, failed.error_stage, failed.error_cell, failed.version) == (
        {"alpha": -1.0},
        "execute",
        4,
        None,
    )
    assert "alpha" in (failed.message or "")
    assert [v.version for v in store.list_versions("ridge_sweep")] == [1, 2]
    assert all(v["ok"] for v in verify_store(store=store))


def test_eight_points_on_two_workers_get_unique_versions_that_all_verify_and_share_the_cores(
    store: Store, write_notebook: Callable[..., Path]
) -> None:
    path = write_notebook([("parameters", "point = 0"), TRAIN_IRIS, THREADS_SEEN], name="tiny.ipynb")
    seen: list[int] = []
    with _ProcessWatch() as watch:
        result = handoff.sweep(
            path, {"point": "1:8:8"}, store=store, workers=2, on_point=lambda p, r: seen.append(p.index), **LIMITS
        )
    assert result.ok and len(result.points) == 8 and sorted(seen) == list(range(1, 9))
    assert sorted(p.version for p in result.points if p.version) == list(range(1, 9))
    listed = store.list_versions("tiny")
    assert sorted(v.version for v in listed) == list(range(1, 9))
    assert sorted(v.sweep_point or 0 for v in listed) == list(range(1, 9))
    assert {int(v.params["point"]) for v in listed} == set(range(1, 9))
    assert {(v.metrics["cores"], v.metrics["threads"]) for v in listed} == {(SHARE_OF_TWO, SHARE_OF_TWO)}
    pids = {j.pid for j in handoff.list_jobs(store)}
    assert len(pids) == 2, "two workers took turns at the 8 points"
    first, fork = sorted(pids, key=lambda pid: watch.parents.get(pid or 0) in pids)
    assert watch.parents[fork] == first, "the second worker is a fork of the first (its imports done once)"
    assert len(watch.started_servers()) == 1, f"both workers' points used one warm check server: {watch.servers}"
    assert len(watch.started_servers("kernel")) == 1, f"... and one kernel server: {watch.servers['kernel']}"
    assert all(v["ok"] for v in verify_store(store=store))


class _ProcessWatch:
    """While in use: the parent of every sweep worker, of every check and kernel server (and fork of
    one) and of every multiprocessing forkserver (and fork of one) seen among this process's descendants."""

    def __init__(self) -> None:
        self.parents: dict[int, int] = {}
        self.servers: dict[str, dict[int, int]] = {"checks": {}, "kernel": {}}
        self.forkservers: dict[int, int] = {}
        self.polls: collections.Counter[int] = collections.Counter()  # how many polls saw each process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def started_servers(self, kind: str = "checks") -> set[int]:
        servers = self.servers[kind]
        return {pid for pid, parent in servers.items() if parent not in servers}  # not their forks

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            for process in me.children(recursive=True):  # not another test's
                try:
                    line, parent = process.cmdline(), process.ppid()
                except psutil.Error:
                    continue
                self.polls[process.pid] += 1
                if line[1:4] == ["-m", "handoff.worker", "--sweep"]:
                    self.parents[process.pid] = parent
                elif line[1:4] == ["-m", "handoff.checks.runner", "--serve"]:  # not bubblewrap's line
                    self.servers["checks"][process.pid] = parent
                elif line[1:3] == ["-m", "handoff.kernel_server"]:
                    self.servers["kernel"][process.pid] = parent
                elif "from multiprocessing.forkserver import main" in " ".join(line):
                    self.forkservers[process.pid] = parent


def test_ctrl_c_cancels_the_sweep_and_leaves_no_kernel_or_worker(
    store: Store, write_notebook: Callable[..., Path]
) -> None:
    path = write_notebook([("parameters", "seconds = 300"), "import time\ntime.sleep(seconds)", TRAIN_IRIS])
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", "sweep", str(path), "-p", "seconds", "300,301,302,303,304",
         "--workers", "2", "--store", _home(store), "--timeout", "600", "--cell-timeout", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        running: list[handoff.Job] = []
        while time.monotonic() < deadline and len(running) < 2:
            running = [j for j in handoff.list_jobs(store) if (j.cells_done or 0) >= 2]
            time.sleep(0.3)
        assert len(running) == 2, handoff.list_jobs(store)
        processes = [p for j in running for p in (j.pid or 0, *descendants(j.pid or 0))]
        assert len(processes) > 2  # two sweep workers and the sandboxed kernels below them
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "cancelled by" in err and "(Ctrl-C)" in err
    assert out.count(" cancelled ") == 5, out  # the table of what the sweep did still prints
    assert not survivors(processes, seconds=15)
    jobs = handoff.list_jobs(store)
    assert len(jobs) == 5 and {j.state for j in jobs} == {"cancelled"}
    assert sorted(j.message or "" for j in jobs if j.started is None)[0].endswith("before it started")
    assert {j.message for j in jobs if j.id in {r.id for r in running}} == {
        f"cancelled by {jobs[0].cancel_requested_by} at cell 2"
    }
    assert store.list_versions() == [] and all(v["ok"] for v in verify_store(store=store))
    with pytest.raises(JobNotFoundError):
        handoff.cancel_sweep("nosuchsweep", store=store)


# -- Dask -----------------------------------------------------------------------------------------


def test_a_sweep_on_a_dask_local_cluster_reads_the_data_beside_the_notebook_and_shares_the_cores(
    store: Store, write_notebook: Callable[..., Path]
) -> None:
    path = write_notebook([("parameters", "point = 0"), TRAIN_FROM_CSV, THREADS_SEEN], name="tiny.ipynb")
    load_iris(as_frame=True).frame.to_csv(path.parent / "iris.csv", index=False)
    # the CLI in a process of its own: a LocalCluster's worker processes re-import their parent's
    # __main__, which in a pytest worker that ran the app's AppTest is the Streamlit script
    with _ProcessWatch() as watch:
        done = subprocess.run(
            [sys.executable, "-m", "handoff.cli", "sweep", str(path), "-p", "point", "1,2", "--cluster", "local",
             "--workers", "2", "--store", _home(store), "--json"],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert len(watch.started_servers()) == 1, f"the Dask workers shared the sweep's check server: {watch.servers}"
    assert len(watch.started_servers("kernel")) == 1, f"... and its kernel server: {watch.servers['kernel']}"
    roots = [pid for pid, parent in watch.forkservers.items() if parent not in watch.forkservers]
    # a process's own fork shows its command line until it execs (bubblewrap): only long-lived ones count
    workers = [pid for pid, parent in watch.forkservers.items() if parent in roots and watch.polls[pid] >= 3]
    assert len(roots) == 1 and len(workers) == 2, (
        f"both Dask workers were forked from one process that imported Dask and handoff once: {watch.forkservers}"
    )
    result = json.loads(done.stdout)
    assert result["where"] == "Dask LocalCluster (2 workers)"
    assert sorted(p["version"] for p in result["points"]) == [1, 2]
    listed = store.list_versions("tiny")
    assert {(v.sweep, v.sweep_point) for v in listed} == {(result["id"], 1), (result["id"], 2)}
    assert {(v.metrics["cores"], v.metrics["threads"]) for v in listed} == {(SHARE_OF_TWO, SHARE_OF_TWO)}
    for version in listed:  # read where the sweep started, as a local build reads it
        data = store.get_version("tiny", version.version).record.outputs.data
        assert [f.path for f in data.files] == ["iris.csv"]
    assert all(v["ok"] for v in verify_store(store=store))


WARM_MODULES = ("papermill", "nbconvert.exporters.html", "detect_secrets")


def test_a_local_clusters_workers_start_with_a_builds_first_use_costs_paid() -> None:
    """Each worker is forked from a process that warmed up a build once (``handoff.dask_preload``): the
    build's and the report's modules and the secrets scanner are there before the worker's first point."""
    code = (
        "import sys\nfrom distributed import Client\nfrom handoff.sweeps import _local_cluster\n"
        f"with Client(_local_cluster(1)) as client:\n"
        f"    print(*client.run(lambda: [m for m in {WARM_MODULES!r} if m in sys.modules]).values())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(list(WARM_MODULES))


def test_an_embedded_store_is_refused_for_dask_workers_on_other_machines(
    store: Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second machine here: the cluster's worker list is the real one, the verdict on it is forced."""
    monkeypatch.setattr("handoff.sweeps.remote_hosts", lambda addresses: ["10.254.254.254"])
    with pytest.raises(OptionError, match=r"workers on other machines \(10\.254\.254\.254\).*team server store"):
        handoff.sweep(RIDGE, {"degree": [1, 2]}, store=store, cluster=dask_scheduler)
    assert store.list_versions() == [] and handoff.list_jobs(store) == []


DASK_LOCAL = ["--host", "127.0.0.1", "--no-dashboard"]


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """Real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (every worker on this machine:
    the embedded store is theirs too)."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask, "dask's command line is installed with handoff[dask]"
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 - closed below
    # The scheduler picks its own free port and writes it down: a port picked here and freed could be
    # taken by another test's kernel before the scheduler binds it.
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--port", "0", "--scheduler-file", str(scheduler_file), *DASK_LOCAL],
        stdout=log,
        stderr=log,
    )
    processes = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip().endswith("}"):
            assert scheduler.poll() is None and time.monotonic() < deadline, (tmp_path / "dask.log").read_text()
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", *DASK_LOCAL]
        processes.insert(0, subprocess.Popen(worker, stdout=log, stderr=log))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def test_a_sweep_through_a_dask_scheduler_address(
    store: Store, dask_scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["sweep", str(RIDGE), "-p", "alpha", "0.5,5", "--cluster", dask_scheduler, "--store", _home(store), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK, out
    assert out["where"] == f"Dask cluster {dask_scheduler}"
    assert sorted(p["version"] for p in out["points"]) == [1, 2]
    assert [v.sweep for v in store.list_versions("ridge_sweep")] == [out["id"], out["id"]]
    # the workers stay up for the next sweep; the kernel each started ahead and its check server do not
    workers = next(
        p for p in psutil.process_iter(["cmdline"]) if {"worker", dask_scheduler} <= set(p.info["cmdline"] or [])
    )
    below = []
    for process in workers.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a zombie has no command line
            below.append(" ".join(process.cmdline()))
    assert len(below) >= 2 and not [c for c in below if "ipykernel" in c or "handoff.checks.runner" in c], below
