"""reproducible (optional): a second run with the same parameters gives the same metrics (within a
tolerance) and the same predictions on the input example."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    if not ctx.config.reproduce:
        return skipped("off (enable with {option:reproduce}; it runs the notebook a second time)")
    if ctx.rerun is None:
        return skipped("cannot re-run: the source notebook is not available")
    import numpy as np

    again = ctx.rerun()
    if again.error:
        return failed(f"the second run failed: {again.error}")
    tolerance = ctx.config.reproduce_tolerance
    diffs = {
        k: (v, again.metrics.get(k))
        for k, v in ctx.metrics.items()
        if again.metrics.get(k) is None or abs(again.metrics[k] - v) > tolerance
    }
    problems = [f"{k}: {a:.6g} then {b if b is None else f'{b:.6g}'}" for k, (a, b) in diffs.items()]
    if again.predictions is not None and again.baseline_predictions is not None:
        first, second = np.asarray(again.baseline_predictions), np.asarray(again.predictions)
        close = first.shape == second.shape and (
            np.allclose(first, second, atol=tolerance) if first.dtype.kind in "fc" else np.array_equal(first, second)
        )
        if not close:
            problems.append("predictions on the input example differ")
    if problems:
        return failed("not reproducible: " + "; ".join(problems), tolerance=tolerance)
    return passed(
        f"second run matched: {len(ctx.metrics)} metric(s) within {tolerance:g}, same predictions", tolerance=tolerance
    )


register(
    Check(
        "reproducible",
        "Re-running gives the same results",
        BLOCKING,
        "build",
        run,
        order=200,
        optional=True,
        needs="serialize",
    )
)
