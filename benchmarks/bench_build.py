"""How much does a handoff build cost over only running the notebook?

Two comparisons, each interleaved with its peer so both see the same machine state, medians printed:

* library, warm process: ``handoff.build`` (store included; ``keep_kernel_ready()`` on, as the app
  and sweeps use it) against bare ``papermill.execute_notebook`` with the same parameters; plus
  handoff's median per stage (``kernel_start``, ``kernel_prestarted`` and ``store_open`` are parts
  of other stages or done ahead of the build, not added to the total) and the sandbox's overhead
  (the same builds with ``HANDOFF_SANDBOX=partial``, in a block of their own);
* CLI, a fresh process each: ``handoff build NOTEBOOK`` (a warm store) against the ``papermill``
  CLI with the same parameters.

The default notebook trains a 50-tree random forest (``n_estimators=50``).

    .venv/bin/python benchmarks/bench_build.py [--runs 5] [--notebook sample_notebooks/iris_classifier.ipynb]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import papermill

import handoff
from _common import ROOT, arguments, report, row
from handoff import sandbox

try:
    from handoff.execution import keep_kernel_ready
except ImportError:  # a checkout from before it (run with that checkout's venv, for a before/after)

    def keep_kernel_ready(enabled: bool = True) -> None:
        pass


BIN = Path(sys.executable).parent


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def _line(label: str, times: list[float]) -> str:
    return f"{label:<28} median {statistics.median(times):6.2f}s  (min {min(times):.2f}s, max {max(times):.2f}s)"


def main() -> None:
    args = arguments(__doc__)
    notebook = args.notebook.resolve()
    params = {p.name: p.default for p in handoff.load_notebook(notebook).parameters or ()}

    def run_papermill(out: str) -> None:
        papermill.execute_notebook(
            str(notebook),
            out,
            parameters=params,
            progress_bar=False,
            cwd=str(notebook.parent),
            kernel_name="python3",
        )

    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        store = handoff.open_store(Path(tmp) / "store")
        store.list_models()  # create the database once, outside the timed runs
        keep_kernel_ready()
        # one untimed warm-up of each, so imports and first-use costs are not counted
        handoff.build(notebook, params, store=store)
        run_papermill(f"{tmp}/warm.ipynb")
        build_times, papermill_times, stages = [], [], {}
        for i in range(args.runs):
            seconds, result = _timed(lambda: handoff.build(notebook, params, store=store))
            assert result.ok, result.error
            build_times.append(seconds)
            for stage, value in result.timings.items():
                stages.setdefault(stage, []).append(value)
            papermill_times.append(_timed(lambda i=i: run_papermill(f"{tmp}/out{i}.ipynb"))[0])
        keep_kernel_ready(False)

        os.environ["HANDOFF_SANDBOX"] = "partial"
        sandbox.detect.cache_clear()
        partial_times = [_timed(lambda: handoff.build(notebook, params, store=store))[0] for _ in range(args.runs)]
        del os.environ["HANDOFF_SANDBOX"]
        sandbox.detect.cache_clear()
        own_kernel = [_timed(lambda: handoff.build(notebook, params, store=store))[0] for _ in range(args.runs)]

        cli_args = [a for name, value in params.items() for a in ("-p", name, str(value))]
        handoff_cli = [str(BIN / "handoff"), "build", str(notebook), "--store", str(Path(tmp) / "store"), *cli_args]
        papermill_cli = [str(BIN / "papermill"), str(notebook), f"{tmp}/cli.ipynb", "--cwd", str(notebook.parent)]
        papermill_cli += ["-k", "python3", "--no-progress-bar", *cli_args]
        cli_times, papermill_cli_times = [], []
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        for _ in range(args.runs):
            cli_times.append(_timed(lambda: subprocess.run(handoff_cli, **quiet))[0])
            papermill_cli_times.append(_timed(lambda: subprocess.run(papermill_cli, **quiet))[0])

    build_median, papermill_median = statistics.median(build_times), statistics.median(papermill_times)
    cli_median, papermill_cli_median = statistics.median(cli_times), statistics.median(papermill_cli_times)
    print(f"notebook: {notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook}, runs: {args.runs}")
    print(_line("handoff.build (warm)", build_times))
    print(_line("papermill.execute_notebook", papermill_times))
    print(f"ratio handoff/papermill      {build_median / papermill_median:.2f}  (goal <= 1.0)")
    print(_line("handoff.build, own kernel", own_kernel) + "  (no kernel started ahead)")
    print(
        f"sandbox ({sandbox.detect().kind}) overhead per build: median "
        f"{statistics.median(own_kernel) - statistics.median(partial_times):+.3f}s (unsandboxed build median "
        f"{statistics.median(partial_times):.2f}s)"
    )
    print(
        "handoff median per stage: "
        + ", ".join(f"{stage} {statistics.median(values):.3f}s" for stage, values in stages.items())
    )
    print(_line("handoff build (CLI)", cli_times))
    print(_line("papermill (CLI)", papermill_cli_times))
    print(f"ratio handoff/papermill CLI  {cli_median / papermill_cli_median:.2f}  (goal <= 1.5)")
    report(
        [
            row(
                "handoff.build, warm process",
                build_median,
                peer="papermill.execute_notebook",
                peer_value=papermill_median,
                ratio_goal=1.0,
            ),
            row(
                "handoff build (CLI)", cli_median, peer="papermill CLI", peer_value=papermill_cli_median, ratio_goal=1.5
            ),
        ]
    )


if __name__ == "__main__":
    main()
