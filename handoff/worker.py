"""A build's worker process: ``python -m handoff.worker JOB_DIR``.

Started detached (its own session) by ``handoff.jobs.submit``; it waits as ``queued`` for one of the
N build slots, then runs ``handoff.build`` with the inputs in ``JOB_DIR``, writing progress, a
heartbeat and the end state to the job's row. SIGTERM cancels the build like the Cancel button.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from handoff.jobs import JobTable, run_job


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m handoff.worker JOB_DIR\n")
        return 2
    job_dir = Path(args[0]).resolve()
    table = JobTable(job_dir.parent.parent)
    from handoff.execution import Cancellation

    cancel = Cancellation()

    def on_term(signum: int, frame: FrameType | None) -> None:
        # not in the handler itself: the main thread may hold the cancellation's lock right now
        threading.Thread(target=cancel.cancel, args=("a signal (SIGTERM to the worker)",), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    run_job(table, job_dir.name, cancel=cancel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
