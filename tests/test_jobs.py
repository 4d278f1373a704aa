"""Builds as durable jobs: a row per build beside the store, worker processes, cancel, interrupted workers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

import handoff
from handoff import cli, jobs
from handoff.errors import EXIT_INPUT, InputError, StoreUnreachableError
from handoff.events import BuildEvent
from handoff.jobs import Job, JobNotFoundError, JobTable
from handoff.lifecycle import verify_store
from handoff.sandbox import descendants, detect
from handoff.store import Store
from helpers import TRAIN_IRIS, as_in_a_terminal, survivors

SLEEPY = [("parameters", "seconds = 300"), "import time\ntime.sleep(seconds)", TRAIN_IRIS]
LIMITS = {"timeout": 300.0, "cell_timeout": 300.0}


def _wait_until(store: Store, job_id: str, ok: Callable[[Job], bool], seconds: float = 180) -> Job:
    deadline = time.monotonic() + seconds
    job = handoff.get_job(job_id, store=store)
    while not ok(job) and time.monotonic() < deadline:
        time.sleep(0.3)
        job = handoff.get_job(job_id, store=store)
    assert ok(job), f"job never got there: {job}"
    return job


def _row(job_id: str, state: str, model: str = "m", created: float | None = None, **values: object) -> Job:
    return Job(
        id=job_id,
        model=model,
        label=f"{model} (from nb.ipynb)",
        notebook="nb.ipynb",
        source="api",
        user="tester",
        state=state,
        created=created if created is not None else time.time(),
        **values,  # type: ignore[arg-type]
    )


def test_job_table_lists_newest_first_filters_and_reconciles_dead_workers(tmp_path: Path) -> None:
    table = JobTable(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    table.insert(_row("old", "passed", created=now - 30, version=1))
    table.insert(_row("gone", "running", model="other", created=now - 20, pid=dead.pid, heartbeat=now))
    table.insert(_row("silent", "running", created=now - 10, pid=os.getpid(), heartbeat=now - 3600))
    table.insert(_row("live", "running", created=now, pid=os.getpid(), heartbeat=now))

    listed = table.select()
    assert [j.id for j in listed] == ["live", "silent", "gone", "old"]
    states = {j.id: j for j in listed}
    # a worker that is gone, or has not beaten for an hour, is interrupted with a reason; a live one is not
    assert states["gone"].state == "interrupted" and f"pid {dead.pid}" in (states["gone"].message or "")
    assert states["silent"].state == "interrupted" and "stopped reporting" in (states["silent"].message or "")
    assert states["live"].state == "running" and states["old"].state == "passed"
    assert [j.id for j in table.select(state="interrupted")] == ["silent", "gone"]
    assert [j.id for j in table.select(model="other")] == ["gone"]
    assert table.models() == ["m", "other"]
    with sqlite3.connect(table.path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == jobs.SCHEMA_VERSION
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(JobNotFoundError) as caught:
        table.get("nope")
    assert caught.value.exit_code == EXIT_INPUT


def test_a_new_job_table_waits_for_another_process_that_holds_it(tmp_path: Path) -> None:
    # SQLite answers a switch to WAL that meets another writer with "database is locked" at once,
    # without its busy timeout: six CLI builds starting together on a fresh home failed on it
    (tmp_path / jobs.DB_NAME).touch()
    other = sqlite3.connect(tmp_path / jobs.DB_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, other.execute, ("COMMIT",)).start()
    try:
        assert JobTable(tmp_path).select() == []
    finally:
        other.close()


def test_progress_line_says_starting_the_kernel_until_a_cell_runs() -> None:
    starting = _row("a", "running", stage="execute", cells_done=0, cells_total=4, cell=None)
    running = _row("b", "running", stage="execute", cells_done=2, cells_total=4, cell=3)
    assert starting.progress == "Starting the kernel…"
    assert running.progress == "Running cell 3 (2 of 4 code cells)"


def test_submitted_build_runs_in_a_worker_and_the_cli_lists_it(
    store: Store, iris_notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = handoff.submit(iris_notebook, {"C": 0.5}, store=store, source="app", user="ada", **LIMITS)
    assert job.state in ("queued", "running") and job.pid is not None and job.pid != os.getpid()
    assert (Path(store.local_paths()[0]) / "jobs.db").exists()  # beside mlflow.db
    done = handoff.wait(job.id, store=store, timeout=240)
    assert done.state == "passed", done
    assert done.version == 1 and done.run_id and done.started and done.finished and done.cells_done == 2
    assert Path(done.executed_notebook or "").exists()
    result = handoff.result_of(done, store=store)
    assert result is not None and result.ok and result.record.inputs.parameters["C"] == 0.5
    assert result.notebook is not None

    assert cli.main(["builds", "--store", str(store.local_paths()[0]), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["id"], j["state"], j["source"], j["user"]) for j in listed] == [(job.id, "passed", "app", "ada")]
    assert cli.main(["builds", "--store", str(store.local_paths()[0]), "--state", "failed"]) == 0
    assert "no build jobs" in capsys.readouterr().out
    assert cli.main(["cancel", "nope", "--store", str(store.local_paths()[0])]) == EXIT_INPUT


def test_cli_build_writes_a_job_the_api_lists(
    store: Store, iris_notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(store.local_paths()[0])
    assert cli.main(["build", str(iris_notebook), "--store", home, "--timeout", "240"]) == 0
    assert "build job" in capsys.readouterr().err
    (job,) = handoff.list_jobs(store)
    assert (job.source, job.state, job.version, job.pid) == ("cli", "passed", 1, os.getpid())
    assert job.model == "iris"


def test_a_cell_failure_is_a_failed_job_with_stage_and_cell(store: Store, write_notebook: Callable[..., Path]) -> None:
    path = write_notebook(["x = 1", "1/0", TRAIN_IRIS], name="broken.ipynb")
    job = handoff.wait(handoff.submit(path, store=store, **LIMITS).id, store=store, timeout=240)
    assert job.state == "failed" and (job.error_stage, job.error_cell) == ("execute", 2)
    assert "ZeroDivisionError" in (job.error or "") and job.version is None and job.run_id  # recorded, failed
    assert Path(job.executed_notebook or "").exists()  # the partly executed notebook is kept
    result = handoff.result_of(job, store=store)
    assert result is not None and not result.ok and result.error is not None and result.error.cell == 2


def test_worker_outlives_the_process_that_submitted_it(store: Store, write_notebook: Callable[..., Path]) -> None:
    path = write_notebook([("parameters", "seconds = 3"), "import time\ntime.sleep(seconds)", TRAIN_IRIS])
    script = "import sys, handoff\njob = handoff.submit(sys.argv[1], store=sys.argv[2], timeout=300.0)\nprint(job.id)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(store.local_paths()[0])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    job_id = done.stdout.strip().splitlines()[-1]  # the submitting process has exited
    job = handoff.wait(job_id, store=store, timeout=240)
    assert job.state == "passed" and job.version == 1, job


def test_a_killed_worker_is_marked_interrupted(store: Store, write_notebook: Callable[..., Path]) -> None:
    path = write_notebook(SLEEPY)
    job = handoff.submit(path, store=store, **LIMITS)
    running = _wait_until(store, job.id, lambda j: (j.cells_done or 0) >= 2)
    assert running.pid is not None
    kernel = descendants(running.pid)
    os.kill(running.pid, signal.SIGKILL)
    ended = _wait_until(store, job.id, lambda j: not j.active, seconds=30)
    assert ended.state == "interrupted" and f"pid {running.pid}" in (ended.message or "")
    if detect().kind == "bubblewrap":  # the sandbox dies with its parent: no kernel is left behind
        assert not survivors(kernel, seconds=10)


def test_a_store_lost_while_the_notebook_runs_kills_it_and_keeps_the_run(
    store: Store, write_notebook: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store gives out before it was opened (a team server stopped as the notebook runs): the
    kernel is killed at once, the build fails with the store's error, and its job keeps the run."""
    path = write_notebook(["import time\ntime.sleep(60)", TRAIN_IRIS], name="slow.ipynb")
    sleeping = threading.Event()

    def lost(self: Store) -> None:
        assert sleeping.wait(120), "the notebook never reached its sleeping cell"
        raise StoreUnreachableError("store unreachable: nothing answers at http://127.0.0.1:9")

    monkeypatch.setattr(Store, "prepare_writes", lost)
    cells: list[int | None] = []

    def on_event(event: BuildEvent) -> None:
        cells.append(event.cell)
        if event.cell == 1:
            sleeping.set()

    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match="nothing answers"):
        jobs.run_here(path, store=store, on_event=on_event, **LIMITS)
    assert time.monotonic() - started < 50  # killed, not waited for
    assert 2 not in cells  # the model's cell never ran
    (job,) = handoff.list_jobs(store)
    assert job.state == "failed" and "nothing answers" in (job.error or "") and job.version is None
    kept = nbformat.read(job.executed_notebook or "", as_version=4)
    assert "time.sleep(60)" in kept.cells[0].source
    assert store.list_versions() == [] and all(v["ok"] for v in verify_store(store=store))  # nothing recorded


def test_cancel_a_running_build_kills_every_process_of_it(store: Store, write_notebook: Callable[..., Path]) -> None:
    path = write_notebook(SLEEPY, name="sleepy.ipynb")
    job = handoff.submit(path, store=store, **LIMITS)
    running = _wait_until(store, job.id, lambda j: (j.cells_done or 0) >= 2)
    assert running.state == "running" and running.cell == 2 and running.pid is not None
    processes = [running.pid, *descendants(running.pid)]
    assert len(processes) > 1  # the worker and the sandboxed kernel below it
    handoff.cancel(job.id, by="alice", store=store)
    ended = _wait_until(store, job.id, lambda j: not j.active, seconds=90)
    assert ended.state == "cancelled" and ended.cancel_requested_by == "alice"
    assert ended.message == "cancelled by alice at cell 2"
    assert (ended.error_stage, ended.error_cell) == ("execute", 2)
    assert ended.run_id is not None and ended.version is None  # recorded as a failed build, like a timeout
    assert Path(ended.executed_notebook or "").exists()
    assert not survivors(processes, seconds=10)
    assert all(v["ok"] for v in verify_store(store=store))
    result = handoff.result_of(ended, store=store)
    assert result is not None and result.error is not None and "cancelled by alice" in result.error.message


def test_cancel_a_queued_build_and_resubmit(
    store: Store, write_notebook: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_MAX_BUILDS", "1")
    path = write_notebook(SLEEPY)
    first = handoff.submit(path, store=store, **LIMITS)
    second = handoff.submit(path, {"seconds": 1}, store=store, **LIMITS)
    _wait_until(store, first.id, lambda j: j.state == "running")
    time.sleep(1.5)  # the second's worker is up and waiting for the one slot
    assert handoff.get_job(second.id, store=store).state == "queued"
    cancelled = handoff.cancel(second.id, by="bob", store=store)
    assert cancelled.state == "cancelled" and cancelled.message == "cancelled by bob before it started"
    again = handoff.resubmit(cancelled, store=store, params={"seconds": 2}, cell_timeout=200.0)
    assert again.id != second.id and again.request["params"] == {"seconds": 2}
    assert again.request["options"]["cell_timeout"] == 200.0 and again.state == "queued"
    handoff.cancel(again.id, store=store)
    handoff.cancel(first.id, store=store)
    ended = _wait_until(store, first.id, lambda j: not j.active, seconds=90)
    assert ended.state == "cancelled"
    assert handoff.get_job(second.id, store=store).started is None  # never ran
    assert handoff.get_job(again.id, store=store).state == "cancelled"


def test_ctrl_c_on_a_cli_build_marks_its_job_cancelled(store: Store, write_notebook: Callable[..., Path]) -> None:
    path = write_notebook(SLEEPY, name="sleepy.ipynb")
    home = str(store.local_paths()[0])
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", "build", str(path), "--store", home],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not [j for j in handoff.list_jobs(store) if (j.cells_done or 0) >= 2]:
            time.sleep(0.3)
        (job,) = handoff.list_jobs(store)
        assert (job.source, job.state, job.pid) == ("cli", "running", proc.pid)
        kernel = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    ended = handoff.get_job(job.id, store=store)
    assert ended.state == "cancelled" and "(Ctrl-C)" in (ended.message or "")
    assert ended.cancel_requested_by and ended.finished is not None
    assert not survivors(kernel, seconds=10)


def test_bad_input_makes_no_job(store: Store, iris_notebook: Path) -> None:
    for kwargs in (
        {"checks": {"thresholds": ["accuracy => 0.9"]}},
        {"params": {"nope": 1}},
        {"timeout": -1.0},
        {"files": {"../escape.csv": b"x"}},
    ):
        with pytest.raises(InputError):
            handoff.submit(iris_notebook, store=store, **kwargs)
    assert handoff.list_jobs(store) == []
    assert not any((Path(store.local_paths()[0]) / "jobs").glob("*"))
    with pytest.raises(InputError, match="HANDOFF_MAX_BUILDS"):
        os.environ["HANDOFF_MAX_BUILDS"] = "0"
        try:
            jobs.max_builds()
        finally:
            del os.environ["HANDOFF_MAX_BUILDS"]


def test_sigterm_to_a_worker_cancels_its_build(store: Store, write_notebook: Callable[..., Path]) -> None:
    job = handoff.submit(write_notebook(SLEEPY), store=store, **LIMITS)
    running = _wait_until(store, job.id, lambda j: (j.cells_done or 0) >= 2)
    assert running.pid is not None
    os.kill(running.pid, signal.SIGTERM)
    ended = _wait_until(store, job.id, lambda j: not j.active, seconds=90)
    assert ended.state == "cancelled" and ended.message == "cancelled by a signal (SIGTERM to the worker) at cell 2"


def test_cancel_while_the_build_environment_is_made_records_nothing(
    store: Store, write_notebook: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_ENVS", str(tmp_path / "envs"))  # nothing cached: uv has work to do
    path = write_notebook(["import pyfiglet", TRAIN_IRIS])
    job = handoff.submit(path, store=store, with_packages=("pyfiglet", "scikit-learn", "pandas"), **LIMITS)
    making = _wait_until(store, job.id, lambda j: j.stage == "environment" or not j.active)
    assert making.stage == "environment" and making.active, making
    handoff.cancel(job.id, by="carol", store=store)
    ended = _wait_until(store, job.id, lambda j: not j.active, seconds=60)
    assert (ended.state, ended.message) == (
        "cancelled",
        "cancelled by carol before the notebook ran; nothing was recorded",
    )
    assert ended.run_id is None and store.list_builds() == []
