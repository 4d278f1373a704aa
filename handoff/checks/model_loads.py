"""model.loads: the saved MLflow model loads in a fresh interpreter with none of the notebook's state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext


def run(ctx: ArtifactContext) -> Outcome:
    if ctx.load_error:
        return failed(f"mlflow.pyfunc.load_model failed in a fresh process: {ctx.load_error}")
    return passed(
        f"loads with mlflow.pyfunc in a fresh process in {ctx.load_seconds * 1000:.0f} ms",
        load_ms=round(ctx.load_seconds * 1000, 1),
    )


register(
    Check(
        "model.loads", "Saved model loads in a fresh process", BLOCKING, "artifact", run, order=30, reports="serialize"
    )
)
