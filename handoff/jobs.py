"""Builds in background workers, so a UI can start one, go away, and come back to it.

A Streamlit rerun (any click) restarts the page script, so a build must not run in it. A
``BuildJobs`` instance (one per process; the app keeps it in ``st.cache_resource``) runs builds in
a small thread pool and keeps each job's progress events and result, addressable by job id.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from handoff.errors import HandoffError
from handoff.events import BuildEvent

RUNNING, DONE, ERROR = "running", "done", "error"


@dataclass
class BuildJob:
    """One background build.

    Attributes:
        id: Opaque job id (put it in the URL to reconnect after a refresh).
        label: What is being built, for lists.
        state: ``running``, ``done`` (``result`` is set, passed or failed) or ``error`` (bad input:
            ``error`` says why, nothing ran or was recorded).
        events: Progress so far, oldest first.
        result: The ``BuildResult`` when done.
        error: The one-line message of an input error.
        started: ``time.time()`` at submission.
        request: The build's keyword arguments, to build again with a change (e.g. a package added).
    """

    id: str
    label: str
    request: dict[str, Any] = field(default_factory=dict)
    state: str = RUNNING
    events: list[BuildEvent] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def last_event(self) -> BuildEvent | None:
        return self.events[-1] if self.events else None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started


class BuildJobs:
    """A registry of background builds with a bounded worker pool (safe across threads)."""

    def __init__(self, workers: int = 2, keep: int = 50) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="handoff-build")
        self._jobs: dict[str, BuildJob] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, label: str, build: Callable[..., Any], **kwargs: Any) -> BuildJob:
        """Start ``build(**kwargs, on_event=...)`` in a worker; returns the job at once."""
        job = BuildJob(id=uuid.uuid4().hex[:12], label=label, request=dict(kwargs))
        with self._lock:
            self._jobs[job.id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.started)[: -self._keep]:
                if old.state != RUNNING:
                    del self._jobs[old.id]
        self._pool.submit(self._run, job, build, kwargs)
        return job

    def _run(self, job: BuildJob, build: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        try:
            job.result = build(**kwargs, on_event=job.events.append)
            job.state = DONE
        except HandoffError as exc:
            job.error, job.state = str(exc), ERROR
        except Exception as exc:  # a bug must still end the job visibly, not hang the page
            job.error, job.state = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}", ERROR
        finally:
            job.finished = time.time()

    def get(self, job_id: str | None) -> BuildJob | None:
        with self._lock:
            return self._jobs.get(job_id or "")

    def list(self) -> list[BuildJob]:
        """Every known job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started, reverse=True)
