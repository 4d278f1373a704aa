"""What the benchmark scripts share: argument parsing, quiet libraries, a median timer."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_notebooks" / "iris_classifier.ipynb"


def arguments(doc: str, **extra: Any) -> argparse.Namespace:
    """``--runs`` and ``--notebook`` (plus ``extra`` int options), with library logging silenced."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--notebook", type=Path, default=SAMPLE)
    for name, default in extra.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    warnings.simplefilter("ignore")
    for name in ("mlflow", "papermill", "nbclient", "alembic", "streamlit"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return parser.parse_args()


def median_time(runs: int, action: Callable[[], Any]) -> float:
    """Median wall time of ``runs`` calls of ``action``, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row(
    figure: str,
    value: float,
    *,
    unit: str = "s",
    peer: str | None = None,
    peer_value: float | None = None,
    goal: float | None = None,
    ratio_goal: float | None = None,
) -> dict[str, Any]:
    """One line of the summary table: a figure, its peer measured in the same run, and the issue's goal
    (``goal``: the figure at most this; ``ratio_goal``: figure / peer at most this). ``met`` is None
    when there is no goal."""
    ratio = value / peer_value if peer_value else None
    goals, met = [], []
    if goal is not None:
        goals.append(f"<= {goal:g} {unit}")
        met.append(value <= goal)
    if ratio_goal is not None and ratio is not None:
        goals.append(f"ratio <= {ratio_goal:g}")
        met.append(ratio <= ratio_goal)
    return {
        "figure": figure,
        "value": round(value, 4),
        "unit": unit,
        "peer": peer,
        "peer_value": None if peer_value is None else round(peer_value, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": ", ".join(goals) or None,
        "met": all(met) if met else None,
    }


def report(rows: list[dict[str, Any]]) -> None:
    """Hand the figures to ``benchmarks/run_all.py`` (``make bench``): appended as JSON lines to the file
    ``HANDOFF_BENCH_RESULTS`` names; printed as one JSON line when run alone."""
    target = os.environ.get("HANDOFF_BENCH_RESULTS")
    if target:
        with open(target, "a") as out:
            out.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        print(json.dumps(rows))
