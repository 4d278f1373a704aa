"""metrics.thresholds: the user's bounds on metrics (e.g. ``accuracy >= 0.9``), when any are set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    thresholds = ctx.config.thresholds
    if not thresholds:
        return skipped("no thresholds set")
    misses: list[str] = []
    met: list[str] = []
    results: list[dict[str, object]] = []
    for bound in thresholds:
        value = ctx.metrics.get(bound.metric)
        if value is None:
            misses.append(f"{bound.metric} was not captured (needed {bound})")
            continue
        results.append({"threshold": str(bound), "value": value, "ok": bound.holds(value)})
        (met if bound.holds(value) else misses).append(
            f"{bound.metric} = {value:.6g} {'meets' if bound.holds(value) else 'misses'} {bound}"
        )
    if misses:
        return failed("; ".join(misses), results=results)
    return passed("; ".join(met), results=results)


register(Check("metrics.thresholds", "Metrics meet the thresholds", BLOCKING, "build", run, order=60))
