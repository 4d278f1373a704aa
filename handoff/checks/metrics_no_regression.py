"""metrics.no_regression: no gated metric is worse than the champion's (MLflow MetricThreshold
semantics: direction inferred from the metric's name unless overridden; optional minimum absolute
and relative improvement; a metric the champion lacks fails)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.check_config import greater_is_better
from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    config = ctx.config
    if not config.gate:
        return skipped("gate off (enable with {option:gate})")
    if ctx.champion is None:
        return skipped("no champion version to compare with yet")
    champion = ctx.champion.metrics
    names = list(config.gate_metrics) or sorted(ctx.metrics)
    problems, compared = [], []
    for name in names:
        if name not in ctx.metrics:
            problems.append(f"{name} was not captured")
            continue
        if name not in champion:
            problems.append(f"champion v{ctx.champion.version} has no {name}")
            continue
        value, base = ctx.metrics[name], champion[name]
        up = greater_is_better(name, config.greater_is_better)
        gain = value - base if up else base - value
        relative = gain / abs(base) if base else (0.0 if gain == 0 else float("inf") if gain > 0 else float("-inf"))
        ok = gain >= config.min_absolute_change and relative >= config.min_relative_change
        compared.append({"metric": name, "value": value, "champion": base, "greater_is_better": up, "ok": ok})
        if not ok:
            problems.append(
                f"{name} {value:.6g} vs champion {base:.6g} "
                f"({'higher' if up else 'lower'} is better; change {gain:+.4g}, {relative:+.2%})"
            )
    if problems:
        return failed(f"regression against champion v{ctx.champion.version}: " + "; ".join(problems), compared=compared)
    return passed(
        f"no regression against champion v{ctx.champion.version}: "
        + ", ".join(f"{c['metric']} {c['value']:.4g} vs {c['champion']:.4g}" for c in compared),
        compared=compared,
    )


register(Check("metrics.no_regression", "No regression against the champion", BLOCKING, "build", run, order=70))
