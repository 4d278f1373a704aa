"""model.latency: p95 of single-row predictions is under a budget (default 100 ms)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext

RUNS, WARMUP = 30, 3


def run(ctx: ArtifactContext) -> Outcome:
    if ctx.input_example is None:
        return skipped("no input example to time")
    example = ctx.input_example
    row = example.iloc[:1] if hasattr(example, "iloc") else example[:1]
    timings = []
    try:
        for i in range(RUNS + WARMUP):
            started = time.perf_counter()
            ctx.model.predict(row)
            if i >= WARMUP:
                timings.append((time.perf_counter() - started) * 1000)
    except Exception as exc:
        return skipped(f"predict raised {type(exc).__name__}: see model.predicts")
    timings.sort()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    budget = ctx.config.latency_budget_ms
    figures = {
        "p50_ms": round(timings[len(timings) // 2], 3),
        "p95_ms": round(p95, 3),
        "budget_ms": budget,
        "runs": RUNS,
    }
    if p95 > budget:
        return failed(f"single-row p95 {p95:.1f} ms exceeds the {budget:g} ms budget", **figures)
    return passed(f"single-row p95 {p95:.1f} ms (p50 {figures['p50_ms']:.1f} ms), budget {budget:g} ms", **figures)


register(Check("model.latency", "Single-row prediction latency", WARNING, "artifact", run, order=130))
