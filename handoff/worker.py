"""A build's worker process: ``python -m handoff.worker JOB_DIR``, or a sweep's:
``python -m handoff.worker --sweep SWEEP_ID HOME [WORKERS]``.

Started detached (its own session) by ``handoff.jobs.submit``; it waits as ``queued`` for one of the
N build slots, then runs ``handoff.build`` with the inputs in ``JOB_DIR``, writing progress, a
heartbeat and the end state to the job's row. SIGTERM cancels the build like the Cancel button.

A sweep's worker takes the sweep's queued points one after another until none is left, each later
point in an already warm process, on a kernel started while the point before it finished. For
``WORKERS`` > 1 it pays the imports and first-use costs every point has once, then forks the other
workers from itself, and serves them its warm servers (``handoff.warm_servers``): a sweep on
N cores pays one process's start-up, not N. SIGTERM cancels the point running and takes no more
(the first worker passes it on to the others; a fork whose first worker dies gets it too).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from handoff.execution import Cancellation
from handoff.forks import exit_now, fork
from handoff.jobs import QUEUED, JobTable, run_job, warm_server_keys

USAGE = "usage: python -m handoff.worker JOB_DIR | python -m handoff.worker --sweep SWEEP_ID HOME [WORKERS]\n"
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the thread that forked it ends


class _Signals:
    """What SIGTERM stops: the point or build running now (``cancel``) and the taking of more."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.cancel = Cancellation()
        self.forks: list[int] = []

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        for pid in self.forks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # not in the handler itself: the main thread may hold the cancellation's lock right now
        threading.Thread(target=self.cancel.cancel, args=("a signal (SIGTERM to the worker)",), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sweep = args[:1] == ["--sweep"]
    workers = args[3] if len(args) == 4 else "1"
    valid = len(args) in (3, 4) and workers.isdigit() and int(workers) > 0 if sweep else len(args) == 1
    if not valid:
        sys.stderr.write(USAGE)
        return 2
    signals = _Signals()
    signal.signal(signal.SIGTERM, signals.on_term)
    if not sweep:
        job_dir = Path(args[0]).resolve()
        run_job(JobTable(job_dir.parent.parent), job_dir.name, cancel=signals.cancel)
        return 0
    return _sweep(JobTable(args[2]), args[1], int(workers), signals)


def _sweep(table: JobTable, sweep_id: str, workers: int, signals: _Signals) -> int:
    """Run the sweep's points on ``workers`` processes: this one and ``workers - 1`` forks of it."""
    from handoff import warm_servers
    from handoff.sandbox import share_cores
    from handoff.workdirs import private_dir

    share_cores(workers)  # before anything starts a notebook's process
    root = private_dir("pool")
    if workers > 1:  # once, before forking: each fork starts with it done
        queued = table.select(sweep=sweep_id, state=QUEUED)
        with contextlib.suppress(Exception):  # a point that cannot be planned fails in its own build
            warm_servers.start_early(root, warm_server_keys(table, queued[0].id, root))
        warm_up()

    first = os.getpid()

    def forked() -> int:  # another worker: its points, then out
        signals.forks = []
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != first:  # the first worker died before prctl
            signals.stopping.set()
        with warm_servers.join_sweep(root):
            return _take_points(table, sweep_id, signals)

    for _ in range(workers - 1):
        signals.forks.append(fork(forked))
    with warm_servers.serve_sweep(root):  # each point's kernel and check worker are forked from warm servers
        try:
            return _take_points(table, sweep_id, signals)
        finally:
            for pid in signals.forks:  # their points use this process's warm servers
                os.waitpid(pid, 0)


def _take_points(table: JobTable, sweep_id: str, signals: _Signals) -> int:
    from handoff.execution import keep_kernel_ready

    try:  # the next point's kernel starts while this one is checked and recorded
        while not signals.stopping.is_set():
            job_id, left = table.claim(sweep_id, os.getpid())
            if job_id is None:
                return 0
            keep_kernel_ready(left > 0, discard=False)  # none started for a point that will not come
            run_job(table, job_id, cancel=signals.cancel, claimed=True)
            if not signals.stopping.is_set():
                signals.cancel = Cancellation()  # a point's cancel ends that point only
        return 0
    finally:
        keep_kernel_ready(False)  # the kernel started for a point that never came


def warm_up() -> None:
    """What every point's build pays on first use in a process: the build's modules (papermill,
    nbclient, nbconvert), the report's templates and the secrets scan's plugins. No thread is left
    running: the process forks after this (a sweep's first worker, and a Dask ``LocalCluster``'s
    forkserver: ``handoff.dask_preload``)."""
    from handoff import build, checklist, package  # noqa: F401 -- imported for the forks

    checklist.warm_up()
    package.warm_up()


if __name__ == "__main__":
    exit_now(main())  # everything is written and stopped: the sweep's caller waits for this exit
