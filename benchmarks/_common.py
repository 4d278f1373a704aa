"""What the benchmark scripts share: argument parsing, quiet libraries, a median timer."""

from __future__ import annotations

import argparse
import logging
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
