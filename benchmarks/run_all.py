"""``make bench``: every benchmark, one after the other, then one summary table.

Each ``bench_*.py`` runs in its own process (a cold start is part of what some measure) and hands its
figures over through ``_common.report`` (a JSON-lines file named by ``HANDOFF_BENCH_RESULTS``). The
table lists each figure with the peer measured in the same run, the ratio, the goal and whether it
was met; ``benchmarks/results/latest.json`` (gitignored) keeps it with the commit and the date, so a
later run can be compared with this one. A benchmark that fails is reported, and the rest still run.

    .venv/bin/python benchmarks/run_all.py [--only bench_cli,bench_build] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
QUICK = ["--runs", "1"]  # --quick: one run of each, for a smoke test of the benchmarks themselves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true", help="one run of each (figures are rough)")
    args = parser.parse_args()
    chosen = {n.strip() for n in args.only.split(",") if n.strip()}
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not chosen or p.stem in chosen)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for script in scripts:
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
            results = Path(handle.name)
        print(f"== {script.stem}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(script), *(QUICK if args.quick else [])],
            cwd=HERE.parent,
            env={**os.environ, "HANDOFF_BENCH_RESULTS": str(results)},
        )
        seconds = time.perf_counter() - started
        found = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        results.unlink()
        rows += [{"benchmark": script.stem, **r} for r in found]
        runs.append({"benchmark": script.stem, "exit_code": done.returncode, "seconds": round(seconds, 1)})
    print()
    print(table(rows))
    for failed in (r for r in runs if r["exit_code"] != 0):
        print(f"FAILED: {failed['benchmark']} exited with {failed['exit_code']} (its figures may be missing)")
    summary = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "quick": args.quick,
        "benchmarks": runs,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    return 1 if any(r["exit_code"] != 0 for r in runs) else 0


def table(rows: list[dict[str, Any]]) -> str:
    """The summary as aligned text: figure | value | peer | ratio | goal | met."""
    header = ("figure", "value", "peer", "ratio", "goal", "met")
    lines = [header]
    for r in rows:
        unit = r.get("unit", "s")
        peer = f"{r['peer']} {_amount(r['peer_value'], unit)}" if r.get("peer") else "-"
        met = {True: "met", False: "NOT MET", None: "-"}[r.get("met")]
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
        lines.append(
            (f"{r['benchmark']}: {r['figure']}", _amount(r["value"], unit), peer, ratio, r.get("goal") or "-", met)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:g} {unit}"


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
