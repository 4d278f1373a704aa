"""Background builds: a job can be left and found again, and its progress and result read back."""

from __future__ import annotations

import threading
import time

from handoff.errors import ParameterError
from handoff.events import BuildEvent
from handoff.jobs import DONE, ERROR, RUNNING, BuildJobs


def _wait(job, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while job.state == RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)


def test_job_reports_progress_while_running_and_its_result_after() -> None:
    gate = threading.Event()

    def fake_build(*, value: int, on_event) -> int:
        on_event(BuildEvent("execute", "cell one", done=1, total=2, cell=1))
        gate.wait(5)
        on_event(BuildEvent("record", "done"))
        return value * 2

    jobs = BuildJobs(workers=1)
    job = jobs.submit("demo", fake_build, value=21)
    deadline = time.monotonic() + 5
    while not job.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.state == RUNNING and job.last_event.message == "cell one"
    assert jobs.get(job.id) is job and jobs.list() == [job]  # found again, e.g. after a page refresh
    gate.set()
    _wait(job)
    assert job.state == DONE and job.result == 42 and [e.stage for e in job.events] == ["execute", "record"]
    assert job.finished is not None and job.elapsed >= 0


def test_input_errors_and_bugs_end_the_job_visibly() -> None:
    def bad_input(*, on_event) -> None:
        raise ParameterError("unknown parameter x")

    def bug(*, on_event) -> None:
        raise KeyError("oops")

    jobs = BuildJobs(workers=2)
    first, second = jobs.submit("a", bad_input), jobs.submit("b", bug)
    _wait(first)
    _wait(second)
    assert (first.state, first.error) == (ERROR, "unknown parameter x")
    assert second.state == ERROR and second.error.startswith("internal error: KeyError")
    assert jobs.get("nope") is None and jobs.get(None) is None
