"""The Builds page (every job, filters) and the Build page re-attaching to a job by its id."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

import handoff
from apptest import APP, page, texts
from handoff.jobs import Job, JobTable, jobs_home
from handoff.store import Store
from helpers import TRAIN_IRIS


def _insert(store: Store, job_id: str, state: str, model: str = "iris", age: float = 0, **values: object) -> None:
    now = time.time()
    JobTable(jobs_home(store)).insert(
        Job(
            id=job_id,
            model=model,
            label=f"{model} (from {model}.ipynb)",
            notebook=f"{model}.ipynb",
            source=str(values.pop("source", "cli")),
            user="ada",
            state=state,
            created=now - age,
            started=now - age,
            **values,  # type: ignore[arg-type]
        )
    )


def _fill(store: Store) -> None:
    now = time.time()
    _insert(store, "passedjob", "passed", age=50, version=1, message="iris version 1 passed", finished=now - 40)
    _insert(
        store,
        "failedjob",
        "failed",
        model="churn",
        age=40,
        error_stage="execute",
        error_cell=3,
        error="a cell raised an error in execute stage, cell 3: ZeroDivisionError: division by zero",
        finished=now - 35,
    )
    _insert(store, "cancelledjob", "cancelled", age=30, message="cancelled by bob at cell 2", finished=now - 25)
    # a live build: this test process stands in for its worker (alive, beating)
    _insert(
        store,
        "runningjob",
        "running",
        age=5,
        pid=os.getpid(),
        heartbeat=now,
        stage="execute",
        cell=2,
        cells_done=1,
        cells_total=3,
        message="time.sleep(30)",
    )


def _table(at: AppTest) -> list[dict[str, object]]:
    return at.dataframe[0].value.to_dict("records")  # type: ignore[no-any-return]


def test_builds_page_empty(app: AppTest) -> None:
    at = page(app, "builds")
    assert not at.exception
    assert "No builds yet" in texts(at)


def test_builds_page_lists_every_state_newest_first_with_links(app: AppTest, store: Store) -> None:
    _fill(store)
    at = page(app, "builds")
    assert not at.exception
    rows = _table(at)
    assert [r["state"] for r in rows] == ["▶ running", "■ cancelled", "✗ FAILED", "✓ passed"]
    assert rows[0]["progress / result"] == "Running cell 2 (1 of 3 code cells)"
    assert rows[1]["progress / result"] == "cancelled by bob at cell 2"
    assert str(rows[2]["progress / result"]).startswith("a cell raised an error in execute stage, cell 3: ZeroDiv")
    assert rows[3]["version"] == 1 and rows[3]["by"] == "ada (cli)"
    assert [r["open"] for r in rows] == ["/?job=runningjob", "/?job=cancelledjob", "/?job=failedjob", "/?job=passedjob"]
    assert "refreshing every 2 s while builds run" in texts(at)
    # above the table: the running build and the last ended ones, each a line with its link
    listing = next(m.value for m in at.markdown if "[open](/?job=runningjob)" in m.value)
    assert listing.splitlines()[0].startswith("- ▶ running · **iris** · Running cell 2 (1 of 3 code cells)")
    assert "[open](/?job=failedjob)" in listing and "ZeroDivisionError" in listing


def test_builds_page_filters_by_state_and_model(app: AppTest, store: Store) -> None:
    _fill(store)
    at = page(app, "builds")
    at.multiselect(key="builds_state").set_value(["failed", "cancelled"]).run()
    assert [r["state"] for r in _table(at)] == ["■ cancelled", "✗ FAILED"]
    at.selectbox(key="builds_model").set_value("churn").run()
    assert [(r["state"], r["model"]) for r in _table(at)] == [("✗ FAILED", "churn")]
    at.multiselect(key="builds_state").set_value(["passed"]).run()
    assert "No builds match these filters (1 builds in all)" in texts(at) and not at.dataframe


def test_a_dead_worker_shows_as_interrupted(app: AppTest, store: Store) -> None:
    _insert(store, "ghost", "running", pid=2**22 + 1, heartbeat=time.time(), stage="execute")  # no such pid
    at = page(app, "builds")
    (row,) = _table(at)
    assert row["state"] == "⚠ interrupted" and "is gone without finishing" in str(row["progress / result"])
    at = page(AppTest.from_file(APP, default_timeout=60), "build", job="ghost")
    assert any("interrupted: its worker process" in e.value for e in at.error), texts(at)


def test_build_page_reattaches_to_a_running_job_and_cancels_it(app: AppTest, store: Store) -> None:
    _insert(store, "livejob", "running", pid=os.getpid(), heartbeat=time.time(), stage="execute", cells_done=0)
    at = page(app, "build", job="livejob")
    assert not at.exception
    assert "iris (from iris.ipynb)" in texts(at)
    assert any(p.proto.text == "Starting the kernel…" for p in at.get("progress")), texts(at)
    next(b for b in at.button if b.label == "Cancel this build").click().run()
    job = handoff.get_job("livejob", store=store)
    assert job.cancel_requested_by  # the worker (here: none) would now kill the kernel
    assert "Cancel requested by" in texts(at)


def test_build_page_shows_a_finished_jobs_result_in_a_new_session(
    app: AppTest, store: Store, write_notebook: Callable[..., Path]
) -> None:
    path = write_notebook(["x = 1", "y = x / 0", TRAIN_IRIS], name="broken.ipynb")
    job = handoff.wait(handoff.submit(path, store=store, timeout=240.0).id, store=store, timeout=240)
    assert job.state == "failed"
    at = page(app, "build", job=job.id)  # another tab, or after an app restart: only the id is known
    assert not at.exception
    message = next(e.value for e in at.error)
    assert "Build failed" in message and "cell 2" in message and "ZeroDivisionError" in message
    assert any("y = x / 0" in c.value for c in at.code)
    at = page(AppTest.from_file(APP, default_timeout=60), "builds")
    (row,) = _table(at)
    assert row["state"] == "✗ FAILED" and "cell 2" in str(row["progress / result"])


def test_build_page_for_a_cancelled_job_that_never_ran_and_an_unknown_id(app: AppTest, store: Store) -> None:
    _insert(store, "early", "cancelled", message="cancelled by bob before it started", finished=time.time())
    at = page(app, "build", job="early")
    assert any("cancelled by bob before it started" in w.value for w in at.warning), texts(at)
    at = page(AppTest.from_file(APP, default_timeout=60), "build", job="nosuchjob")
    assert any("no build job with that id" in w.value for w in at.warning)


def test_build_page_cancels_a_queued_job_at_once(app: AppTest, store: Store) -> None:
    _insert(store, "waiting", "queued", pid=os.getpid(), heartbeat=time.time(), message="waiting for a free build slot")
    at = page(app, "build", job="waiting")
    assert any(p.proto.text == "Queued: waiting for a free build slot" for p in at.get("progress")), texts(at)
    next(b for b in at.button if b.label == "Cancel this build").click().run()
    job = handoff.get_job("waiting", store=store)
    assert job.state == "cancelled" and job.cells_done is None  # it never ran a cell
    assert any(w.value.startswith("Build cancelled by ") and "before it started" in w.value for w in at.warning)
    assert any(b.label == "Build it again (same notebook and settings)" for b in at.button)
