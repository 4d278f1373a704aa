"""Does the Builds page stay fast with many jobs? 1,000 jobs in every state, then list and render.

Fills a job table (beside a fresh store) with ``--jobs`` rows spread over six states and ten models
(no notebook runs: the page reads only the table), then measures the raw listing call
(``handoff.list_jobs``, with its liveness check), a filtered listing, and the server-side render of
the Builds page with Streamlit's AppTest (median of ``--runs``). Target: the page in <= 1 s.

    .venv/bin/python benchmarks/bench_builds_page.py [--jobs 1000] [--runs 5]
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import handoff
from _common import ROOT, arguments, median_time, report, row
from handoff.jobs import STATES, Job, JobTable, jobs_home


def fill(home: Path, count: int) -> None:
    table = JobTable(jobs_home(home))
    rng = random.Random(14)
    now = time.time()
    for i in range(count):
        state = STATES[i % len(STATES)]
        if state == "running" and i < count - 12:  # a few live ones (this process stands in for their workers)
            state = "passed"
        if state == "queued":
            state = "cancelled"
        model = f"model_{i % 10}"
        created = now - (count - i) * 60
        failed = state == "failed"
        table.insert(
            Job(
                id=f"job{i:05d}",
                model=model,
                label=f"{model} (from {model}.ipynb)",
                notebook=f"{model}.ipynb",
                source=("app", "cli", "api")[i % 3],
                user=rng.choice(["ada", "bob", "cy"]),
                state=state,
                created=created,
                started=created + 1,
                finished=None if state == "running" else created + rng.uniform(5, 120),
                heartbeat=now if state == "running" else None,
                pid=os.getpid() if state == "running" else None,
                stage="execute" if state in ("running", "failed") else "package",
                cell=3,
                cells_done=2,
                cells_total=5,
                message=f"{model} version {i} passed" if state == "passed" else "working",
                request={"params": {"C": rng.random()}, "options": {}, "checks": {}, "store": str(home)},
                run_id=f"{i:032x}" if state in ("passed", "failed") else None,
                version=i if state == "passed" else None,
                error_stage="execute" if failed else None,
                error_cell=3 if failed else None,
                error="a cell raised an error in execute stage, cell 3: ZeroDivisionError" if failed else None,
            )
        )


def main() -> None:
    args = arguments(__doc__, jobs=1000)
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        home = Path(tmp) / "store"
        started = time.perf_counter()
        fill(home, args.jobs)
        print(f"{args.jobs} jobs written in {time.perf_counter() - started:.2f} s")

        listing_s = median_time(args.runs, lambda: handoff.list_jobs(home))
        filtered_s = median_time(args.runs, lambda: handoff.list_jobs(home, state="failed", model="model_3"))
        assert len(handoff.list_jobs(home)) == args.jobs

        from streamlit.testing.v1 import AppTest

        os.environ["HANDOFF_STORE"] = str(home)
        app = str(ROOT / "app" / "streamlit_app.py")

        def render() -> None:
            at = AppTest.from_file(app, default_timeout=120)
            at.run()
            at.switch_page("app_pages/builds.py")
            at.run()
            assert not at.exception, at.exception
            assert len(at.dataframe[0].value) == 200  # the newest page of rows

        render()  # warm: imports, first AppTest
        page_s = median_time(args.runs, render)

    print(f"handoff.list_jobs ({args.jobs} jobs)           median {listing_s * 1000:8.1f} ms")
    print(f"handoff.list_jobs (state + model filter)  median {filtered_s * 1000:8.1f} ms")
    print(f"Builds page, server-side render           median {page_s * 1000:8.1f} ms (AppTest: app + page runs)")
    report(
        [
            row(f"list_jobs ({args.jobs} jobs)", listing_s),
            row(f"Builds page render ({args.jobs} jobs)", page_s, goal=1.0),
        ]
    )


if __name__ == "__main__":
    main()
