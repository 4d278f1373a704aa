"""What does a build environment cost? Cold (made now) and warm (reused from the cache) overhead.

Builds the iris sample in this one process: without requirements (handoff's own environment, the
baseline), then with ``--with scikit-learn`` (a build environment made by uv: resolve, install
into a fresh virtualenv) against an empty env cache, then again (the env is reused). Prints each
build's wall time, its ``environment`` stage and its overhead against the baseline's median.
The cold figure depends on uv's own package cache (``~/.cache/uv``): warm on a machine that has
installed these packages before, a download otherwise.

    [BENCH_ENV_PACKAGE=scikit-learn] .venv/bin/python benchmarks/bench_env.py [--runs 3] [--notebook PATH]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import handoff
from _common import arguments, report, row


def timed_build(notebook: Path, store: handoff.Store, **options: object) -> tuple[float, float, bool | None]:
    """Wall time, the environment stage's time, and whether the env was created (None: no env)."""
    started = time.perf_counter()
    result = handoff.build(notebook, store=store, **options)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the build failed: {result.error}")
    env = result.record.inputs.build_environment
    return wall, result.timings.get("environment", 0.0), env.created if env else None


def main() -> None:
    args = arguments(__doc__ or "")
    package = os.environ.get("BENCH_ENV_PACKAGE", "scikit-learn")
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        os.environ["HANDOFF_ENVS"] = str(Path(tmp) / "envs")  # an empty cache: the first build makes it
        store = handoff.open_store(Path(tmp) / "store")
        store.list_models()  # create the database outside the measured runs
        timed_build(args.notebook, store)  # warm up imports and the kernel's first start
        first = timed_build(args.notebook, store)[0]
        cold = timed_build(args.notebook, store, with_packages=(package,))
        # interleaved, so a busy machine slows both alike
        plain, warm = [first], []
        for _ in range(args.runs):
            warm.append(timed_build(args.notebook, store, with_packages=(package,)))
            plain.append(timed_build(args.notebook, store)[0])
    baseline = statistics.median(plain)
    rows = [(f"no requirements (baseline, median of {len(plain)})", baseline, 0.0, None)]
    rows.append((f"--with {package}: cold (env made)", *cold))
    rows += [(f"--with {package}: warm #{i} (env reused)", *run) for i, run in enumerate(warm, start=1)]
    print(f"{'build':<42} {'wall s':>8} {'env stage s':>12} {'overhead s':>11}  created")
    for label, wall, stage, created in rows:
        print(f"{label:<42} {wall:8.2f} {stage:12.3f} {wall - baseline:11.2f}  {'' if created is None else created}")
    warm_stage = statistics.median(run[1] for run in warm)
    warm_wall = statistics.median(run[0] for run in warm)
    print(
        f"environment stage: cold {cold[1]:.2f} s, warm median {warm_stage:.3f} s; "
        f"whole build over the baseline: cold {cold[0] - baseline:+.2f} s, warm median {warm_wall - baseline:+.2f} s"
    )
    plain_build = "build with no requirements"
    report(
        [
            row(f"build --with {package}, env made", cold[0], peer=plain_build, peer_value=baseline),
            row(f"build --with {package}, env reused", warm_wall, peer=plain_build, peer_value=baseline),
        ]
    )


if __name__ == "__main__":
    main()
