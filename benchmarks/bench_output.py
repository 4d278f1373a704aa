"""What do output limits cost, and what do they save, on a notebook that prints 2 million lines?

Builds a notebook whose one cell runs ``for i in range(N): print(i)`` (about 14 MB of output) with
``handoff.build`` (default limits: 5 MB per cell, 50 MB in total), then runs the same notebook with
``papermill.execute_notebook`` with handoff's capped engine (the execute stage alone), and with bare
papermill, in this one process; prints each one's wall time, peak RSS during the run (sampled every
10 ms from /proc) and the size of the executed notebook it wrote. The capped runs go first, so the
uncapped run cannot make their peaks look smaller.

    .venv/bin/python benchmarks/bench_output.py [--lines 2000000]
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import papermill

import handoff
from _common import arguments, report, row
from handoff.output_limits import ENGINE_NAME, OutputBudget

PAGE = resource.getpagesize()


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def measure(action: Callable[[], Any]) -> tuple[Any, float, int, int]:
    """``action()``'s result, wall time, peak RSS while it ran, and RSS when it started."""
    start_rss, peak, done = _rss(), [_rss()], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = action()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return result, seconds, max(peak[0], _rss()), start_rss


def main() -> None:
    args = arguments(__doc__, lines=2_000_000)
    with tempfile.TemporaryDirectory(prefix="handoff-bench-output-") as tmp:
        notebook = Path(tmp) / "prints.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_code_cell(f"for i in range({args.lines}):\n    print(i)"),
            nbformat.v4.new_code_cell(
                "from sklearn.datasets import load_iris\n"
                "from sklearn.linear_model import LogisticRegression\n"
                "X, y = load_iris(return_X_y=True, as_frame=True)\n"
                "model = LogisticRegression(max_iter=300).fit(X, y)"
            ),
        ]
        nbformat.write(nb, notebook)
        store = handoff.open_store(Path(tmp) / "store")
        store.list_models()  # create the database outside the measured runs

        result, *build = measure(lambda: handoff.build(notebook, store=store))
        assert result.ok, result.error
        stored = len(store.read_artifact(result.run_id, "notebook/executed.ipynb"))

        def run_papermill(out: str, **engine: Any) -> tuple[Any, float, int, int]:
            return measure(
                lambda: papermill.execute_notebook(
                    str(notebook), f"{tmp}/{out}", progress_bar=False, kernel_name="python3", cwd=tmp, **engine
                )
            )

        _, *engine = run_papermill("engine.ipynb", engine_name=ENGINE_NAME, output_budget=OutputBudget())
        _, *bare = run_papermill("bare.ipynb")

        def line(label: str, figures: list[Any], size: int, extra: str = "") -> None:
            seconds, peak, start = figures
            print(
                f"{label:<32} {seconds:6.2f}s  peak RSS {peak / 1e6:6.1f} MB (+{(peak - start) / 1e6:5.1f} MB "
                f"during the run)  executed notebook {size / 1e6:5.1f} MB{extra}"
            )

        print(f"notebook: one cell printing {args.lines:,} lines")
        line(
            "handoff.build (5 MB cap)",
            build,
            stored,
            "\n  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()),
        )
        line("papermill + handoff engine", engine, Path(f"{tmp}/engine.ipynb").stat().st_size)
        line("papermill (no cap)", bare, Path(f"{tmp}/bare.ipynb").stat().st_size)
        print("warnings: " + "; ".join(result.warnings))
        report(
            [
                row("build of a 2M-line notebook", build[0], peer="papermill", peer_value=bare[0]),
                row("its peak RSS", build[1] / 1e6, unit="MB", peer="papermill", peer_value=bare[1] / 1e6),
            ]
        )


if __name__ == "__main__":
    main()
