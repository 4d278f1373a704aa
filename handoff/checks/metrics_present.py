"""metrics.present: at least one metric was captured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    if not ctx.metrics:
        return failed("no metrics captured: use handoff.log_metric(), a `metrics` dict, or metric-named variables")
    return passed(
        f"{len(ctx.metrics)} metric(s): " + ", ".join(f"{k}={v:.4g}" for k, v in list(ctx.metrics.items())[:5])
    )


register(Check("metrics.present", "Metrics were captured", WARNING, "build", run, order=160))
