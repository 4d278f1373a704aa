"""model.found: a model was captured, and from which variable or call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    model = ctx.record.outputs.model
    if model is None:
        return failed(ctx.error.message if ctx.error else "no model was captured")
    where = "handoff.log_model()" if model.source == "log_model" else f"variable {model.variable!r}"
    others = [c.name for c in model.candidates if c.name != model.variable]
    seen = f"; also seen: {', '.join(others)}" if others else ""
    return passed(
        f"{model.type.rsplit('.', 1)[-1]} from {where} ({model.chosen_by}){seen}",
        variable=model.variable,
        source=model.source,
        candidates=[c.name for c in model.candidates],
    )


register(
    Check(
        "model.found",
        "A trained model was captured",
        BLOCKING,
        "build",
        run,
        order=20,
        needs="execute",
        reports="capture",
    )
)
