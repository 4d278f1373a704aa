"""model.found: a model was captured, and from which variable or call."""

from __future__ import annotations

from typing import Any

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register


def run(ctx: Any) -> Outcome:
    model = (ctx.capture or {}).get("model")
    if not model:
        reason = ctx.error["message"] if ctx.error else "no model was captured"
        return failed(reason)
    where = "handoff.log_model()" if model["source"] == "log_model" else f"variable {model.get('variable')!r}"
    others = [c["name"] for c in model.get("candidates", []) if c["name"] != model.get("variable")]
    seen = f"; also seen: {', '.join(others)}" if others else ""
    return passed(f"{model['type'].rsplit('.', 1)[-1]} from {where} ({model.get('rule')}){seen}",
                  variable=model.get("variable"), source=model["source"], candidates=model.get("candidates", []))


register(Check("model.found", "A trained model was captured", BLOCKING, "build", run, order=20))
