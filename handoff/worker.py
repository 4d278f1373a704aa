"""A build's worker process: ``python -m handoff.worker JOB_DIR``, or a sweep's:
``python -m handoff.worker --sweep SWEEP_ID HOME``.

Started detached (its own session) by ``handoff.jobs.submit``; it waits as ``queued`` for one of the
N build slots, then runs ``handoff.build`` with the inputs in ``JOB_DIR``, writing progress, a
heartbeat and the end state to the job's row. SIGTERM cancels the build like the Cancel button.

A sweep's workers (``handoff.sweeps``) take the sweep's queued points one after another until none
is left: N of them are the sweep's parallelism, and each later point runs in an already warm
process, on a kernel started while the point before it finished. SIGTERM cancels the point running
and takes no more.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from handoff.jobs import JobTable, run_job

USAGE = "usage: python -m handoff.worker JOB_DIR | python -m handoff.worker --sweep SWEEP_ID HOME\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 3) or (len(args) == 3) != (args[0] == "--sweep"):
        sys.stderr.write(USAGE)
        return 2
    from handoff.execution import Cancellation

    stopping = threading.Event()
    cancel = Cancellation()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        # not in the handler itself: the main thread may hold the cancellation's lock right now
        threading.Thread(target=cancel.cancel, args=("a signal (SIGTERM to the worker)",), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    if len(args) == 1:
        job_dir = Path(args[0]).resolve()
        run_job(JobTable(job_dir.parent.parent), job_dir.name, cancel=cancel)
        return 0
    from handoff.check_server import serve_checkers
    from handoff.execution import keep_kernel_ready

    table = JobTable(args[2])
    with serve_checkers():  # each point's check worker is forked from one warm server
        try:  # the next point's kernel starts while this one is checked and recorded
            while not stopping.is_set():
                job_id, left = table.claim(args[1], os.getpid())
                if job_id is None:
                    return 0
                keep_kernel_ready(left > 0, discard=False)  # none started for a point that will not come
                run_job(table, job_id, cancel=cancel, claimed=True)
                if not stopping.is_set():
                    cancel = Cancellation()  # a point's cancel ends that point only
            return 0
        finally:
            keep_kernel_ready(False)  # the kernel started for a point that never came


if __name__ == "__main__":
    raise SystemExit(main())
