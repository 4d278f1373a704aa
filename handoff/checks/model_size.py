"""model.size: the saved model is under a size budget (default 500 MB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    if ctx.model_dir is None:
        return skipped("no saved model")
    size = sum(p.stat().st_size for p in ctx.model_dir.rglob("*") if p.is_file())
    mb, budget = size / 1e6, ctx.config.size_budget_mb
    if mb > budget:
        return failed(f"model is {mb:.1f} MB, over the {budget:g} MB budget", bytes=size)
    shown = f"{mb:.1f} MB" if mb >= 0.1 else f"{size / 1e3:.1f} kB"
    return passed(f"model is {shown} (budget {budget:g} MB)", bytes=size)


register(Check("model.size", "Model size within budget", WARNING, "build", run, order=140, needs="serialize"))
