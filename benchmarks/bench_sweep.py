"""How much faster is a sweep on 2 workers than building its points one after another?

One run, four ways of building the same 8 points of a sweep notebook, each into a fresh store
whose tables are made before the clock starts (a store's one-time set-up is not a sweep's work).
Two notebooks, the two ends of what a sweep meets:

* ``sample_notebooks/boosting_sweep.ipynb`` (the default): ``n_estimators`` 100,200 x ``max_depth``
  2,3 x ``learning_rate`` 0.05,0.1 (``--points 16`` adds 0.2,0.3), points that each train a
  gradient-boosted model for seconds on one core, as real sweeps do;
* ``--notebook sample_notebooks/ridge_sweep.ipynb``: ``degree`` 1,2 x ``alpha`` 0.1,1,10,100 (16: four
  more alphas), points whose model trains in milliseconds: the sweep's own cost per point and its
  start-up are nearly all there is, the worst case for a pool.

The four ways:

* by hand: ``handoff build -p ...`` from the CLI, once per point, one after another (what a sweep
  replaces);
* sequential: ``handoff.sweep(workers=1)``, one sweep worker taking the points in turn;
* local pool: ``handoff.sweep(workers=2)``;
* Dask: ``handoff.sweep(cluster="local", workers=2)``, a ``LocalCluster`` of 2 single-thread workers
  (its start-up included).

Printed: wall time, the speed-up over sequential (goal: at least 1.7x on 2 cores), the peak memory
of one worker (its process and what runs below it, without the sweep workers forked from it,
sampled every 0.2 s), and how many of the machine's cores were busy on average (``/proc/stat``).
The last one bounds the speed-up: a sequential sweep that already keeps C of N cores busy can get
at most N / C faster on N cores (a build's sandboxed checker and the next kernel run beside the
notebook, see docs/architecture.md). So does the machine: as its peer, the bench times N
processes of plain CPU work (a Python loop) started at once against the same N one after another,
before each way (the shared cores' speed changes over minutes: the median is printed);
on a virtual machine whose cores are shared that ratio is below N, and a sweep, whose sequential
run already keeps C cores busy, can get at most that ratio / C faster.

    .venv/bin/python benchmarks/bench_sweep.py [--repeat 1] [--points 8] [--notebook NOTEBOOK]

Run with ``--points 16`` too: the difference between the two runs is what one more point costs,
which shows how much of the gap to 2x is each worker process's start-up.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import handoff
from _common import ROOT, SAMPLE, arguments, report, row

#: Each sweep notebook's grid at 8 and at 16 points.
GRIDS: dict[str, dict[int, dict[str, str]]] = {
    "boosting_sweep.ipynb": {
        n: {"n_estimators": "100,200", "max_depth": "2,3", "learning_rate": rates}
        for n, rates in ((8, "0.05,0.1"), (16, "0.05,0.1,0.2,0.3"))
    },
    "ridge_sweep.ipynb": {
        n: {"degree": "1,2", "alpha": alphas} for n, alphas in ((8, "0.1,1,10,100"), (16, "0.1,1,10,100,1000,0.5,5,50"))
    },
}
SPEED_UP_GOAL = 1.7


class PeakMemory:
    """The largest resident memory of any one worker tree (a direct child process of this one and all
    its descendants), sampled in the background while a sweep runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children():
                try:
                    for tree in worker_trees(child):
                        self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
                except psutil.Error:
                    continue


def worker_trees(root: psutil.Process) -> list[list[psutil.Process]]:
    """The processes of each worker under ``root``: a sweep worker and what runs below it, without
    the sweep workers forked from it (each has its own tree); ``root``'s whole tree otherwise."""
    everything = [root, *root.children(recursive=True)]
    workers = [p for p in everything if "handoff.worker" in " ".join(p.cmdline())] or [root]
    trees = []
    for worker in workers:
        below = worker.children(recursive=True)
        forks = {q.pid for f in below if f in workers for q in (f, *f.children(recursive=True))}
        trees.append([worker, *(p for p in below if p.pid not in forks)])
    return trees


def busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def machine_ceiling(seconds: float = 1.0) -> float:
    """How much faster ``cores`` processes of plain CPU work (a Python loop of about ``seconds``) run
    started at once than one after another: the most any pool of processes gets on this machine."""
    import subprocess
    import sys

    cores = os.cpu_count() or 1
    loop = "n = 0\nfor i in range({}): n += i"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", loop.format(10_000_000)], check=True)
    count = int(10_000_000 * seconds / (time.perf_counter() - started))  # about ``seconds`` of work
    command = [sys.executable, "-S", "-c", loop.format(count)]
    started = time.perf_counter()
    for _ in range(cores):
        subprocess.run(command, check=True)
    in_turn = time.perf_counter() - started
    started = time.perf_counter()
    for process in [subprocess.Popen(command) for _ in range(cores)]:
        process.wait()
    return in_turn / (time.perf_counter() - started)


def timed_sweep(notebook: Path, grid: dict[str, str], **how: Any) -> tuple[float, float, float]:
    """(seconds, peak MB of one worker, average busy cores) of the sweep into a fresh store."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as home:
        store = handoff.open_store(Path(home))
        store.connect()  # the store's tables made before the clock starts, as in daily use
        with PeakMemory() as memory:
            busy, total = busy_ticks()
            started = time.perf_counter()
            result = handoff.sweep(notebook, grid, store=store, **how)
            seconds = time.perf_counter() - started
            busy_after, total_after = busy_ticks()
    assert result.ok, [p.message for p in result.points if p.state != "passed"]
    cores = (os.cpu_count() or 1) * (busy_after - busy) / max(1, total_after - total)
    return seconds, memory.peak / 2**20, cores


def by_hand(notebook: Path, grid: dict[str, str]) -> tuple[float, float, float]:
    """(seconds, peak MB, average busy cores) of one ``handoff build`` CLI run per point, in turn."""
    import itertools
    import subprocess
    import sys

    points = [
        [arg for name, value in zip(grid, values, strict=True) for arg in ("-p", name, value)]
        for values in itertools.product(*(axis.split(",") for axis in grid.values()))
    ]
    cli = [sys.executable, "-m", "handoff.cli", "build", str(notebook)]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as home:
        handoff.open_store(Path(home)).connect()
        with PeakMemory() as memory:
            busy, total = busy_ticks()
            started = time.perf_counter()
            for params in points:
                done = subprocess.run([*cli, *params, "--store", home], capture_output=True)
                assert done.returncode == 0, done.stderr.decode()
            seconds = time.perf_counter() - started
            busy_after, total_after = busy_ticks()
    return seconds, memory.peak / 2**20, (os.cpu_count() or 1) * (busy_after - busy) / max(1, total_after - total)


def main() -> None:
    args = arguments(__doc__, repeat=1, points=8)  # each way takes about a minute: one run by default
    n = args.points
    notebook = ROOT / "sample_notebooks" / "boosting_sweep.ipynb" if args.notebook == SAMPLE else args.notebook
    if notebook.name not in GRIDS or n not in (8, 16):
        raise SystemExit(f"--notebook is one of {', '.join(GRIDS)}; --points is 8 or 16")
    grid = GRIDS[notebook.name][n]
    hand_name = f"by hand ({n} CLI builds)"
    ways: list[tuple[str, Callable[[], tuple[float, float, float]]]] = [
        (hand_name, lambda: by_hand(notebook, grid)),
        ("sequential (workers=1)", lambda: timed_sweep(notebook, grid, workers=1)),
        ("local pool (workers=2)", lambda: timed_sweep(notebook, grid, workers=2)),
        ("Dask LocalCluster(2)", lambda: timed_sweep(notebook, grid, cluster="local", workers=2)),
    ]
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in ways}
    ceilings = []  # sampled before each way: what the shared cores give changes over minutes
    for _ in range(max(1, args.repeat)):
        for name, run in ways:
            ceilings.append(machine_ceiling())
            figures[name].append(run())
    ceiling = statistics.median(ceilings)
    cores = os.cpu_count() or 1
    print(f"{n} points of {notebook.name} ({cores} cores)")
    print(f"{'how':26} {'wall':>8} {'per point':>10} {'speed-up':>9} {'peak MB / worker':>17} {'busy cores':>11}")
    best = {name: min(values) for name, values in figures.items()}
    hand = best[hand_name][0]
    sequential, _, sequential_busy = best["sequential (workers=1)"]
    rows = []
    print(f"{'':26} {'':>8} {'':>10} {'vs seq.':>9} {'':>17} {'':>11} {'vs by hand':>11}")
    for name, (seconds, peak, busy) in best.items():
        print(
            f"{name:26} {seconds:7.1f}s {seconds / n:9.2f}s {sequential / seconds:8.2f}x {peak:16.0f} "
            f"{busy:6.2f} of {cores} {hand / seconds:10.2f}x"
        )
        rows.append(row(f"{n} points of {notebook.stem}, {name}", seconds))
        if name.endswith("(2)") or "workers=2" in name:
            for peer, value in (("sequential (workers=1)", sequential), (hand_name, hand)):
                rows.append(
                    row(
                        f"{n} points of {notebook.stem}, {name} vs {peer}",
                        seconds,
                        peer=peer,
                        peer_value=value,
                        ratio_goal=round(1 / SPEED_UP_GOAL, 3),
                    )
                )
        rows.append(row(f"{n} points of {notebook.stem}, {name}: peak memory of one worker", peak, unit="MB"))
    print(f"goal: a speed-up of at least {SPEED_UP_GOAL}x (a wall-time ratio of at most {1 / SPEED_UP_GOAL:.3f})")
    print(
        f"bound: {cores} processes of plain CPU work ran {ceiling:.2f}x faster at once than in turn on this "
        f"machine (median of {len(ceilings)}: {', '.join(f'{c:.2f}' for c in ceilings)}), and the sequential "
        f"sweep kept {sequential_busy:.2f} cores busy, so a pool here can be about {ceiling / sequential_busy:.2f}x "
        "faster at most"
    )
    rows.append(row(f"{n} points of {notebook.stem}, sequential: average busy cores", sequential_busy, unit="cores"))
    rows.append(row(f"{cores} processes of plain CPU work: at once vs in turn", ceiling, unit="x"))
    report(rows)


if __name__ == "__main__":
    main()
