"""How much does a handoff build cost over only running the notebook?

Builds a sample notebook N times with ``handoff.build`` (store included) and runs the same notebook
with the same parameters N times with bare ``papermill.execute_notebook``, interleaved so both see
the same machine state; prints the median of each, the ratio, and handoff's median per stage
(capture is the kernel-side capture cell). It also builds N times with the sandbox turned off
(``HANDOFF_SANDBOX=partial``) and prints the sandbox's overhead per build (bubblewrap + limits).

    .venv/bin/python benchmarks/bench_build.py [--runs 5] [--notebook sample_notebooks/iris_classifier.ipynb]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import papermill

import handoff
from _common import ROOT, arguments
from handoff import sandbox


def main() -> None:
    args = arguments(__doc__)

    notebook = args.notebook.resolve()
    params = {p.name: p.default for p in handoff.load_notebook(notebook).parameters or ()}
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        store = handoff.open_store(Path(tmp) / "store")
        store.list_models()  # create the database once, outside the timed runs
        # one untimed warm-up of each, so imports and first-use costs are not counted
        handoff.build(notebook, params, store=store)
        papermill.execute_notebook(
            str(notebook),
            f"{tmp}/warm.ipynb",
            parameters=params,
            progress_bar=False,
            cwd=str(notebook.parent),
            kernel_name="python3",
        )
        build_times, papermill_times, partial_times, stages = [], [], [], {}
        for i in range(args.runs):
            os.environ["HANDOFF_SANDBOX"] = "partial"
            sandbox.detect.cache_clear()
            started = time.perf_counter()
            handoff.build(notebook, params, store=store)
            partial_times.append(time.perf_counter() - started)
            del os.environ["HANDOFF_SANDBOX"]
            sandbox.detect.cache_clear()
            started = time.perf_counter()
            result = handoff.build(notebook, params, store=store)
            build_times.append(time.perf_counter() - started)
            assert result.ok, result.error
            for stage, seconds in result.timings.items():
                stages.setdefault(stage, []).append(seconds)
            started = time.perf_counter()
            papermill.execute_notebook(
                str(notebook),
                f"{tmp}/out{i}.ipynb",
                parameters=params,
                progress_bar=False,
                cwd=str(notebook.parent),
                kernel_name="python3",
            )
            papermill_times.append(time.perf_counter() - started)

    build_median, papermill_median = statistics.median(build_times), statistics.median(papermill_times)
    print(f"notebook: {notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook}, runs: {args.runs}")
    print(
        f"handoff.build            median {build_median:6.2f}s  (min {min(build_times):.2f}s, "
        f"max {max(build_times):.2f}s)"
    )
    print(
        f"papermill.execute        median {papermill_median:6.2f}s  (min {min(papermill_times):.2f}s, "
        f"max {max(papermill_times):.2f}s)"
    )
    print(f"ratio handoff/papermill  {build_median / papermill_median:.2f}  (target <= 1.5)")
    print(
        f"sandbox ({sandbox.detect().kind}) overhead per build: median "
        f"{build_median - statistics.median(partial_times):+.3f}s (target <= 0.3s; unsandboxed build median "
        f"{statistics.median(partial_times):.2f}s)"
    )
    print(
        "handoff median per stage: "
        + ", ".join(f"{stage} {statistics.median(values):.3f}s" for stage, values in stages.items())
    )


if __name__ == "__main__":
    main()
