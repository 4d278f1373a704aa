"""model.deterministic: the same input predicts the same output twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext


def run(ctx: ArtifactContext) -> Outcome:
    if ctx.input_example is None:
        return skipped("no input example to predict on")
    import numpy as np

    try:
        first, second = (
            np.asarray(ctx.model.predict(ctx.input_example)),
            np.asarray(ctx.model.predict(ctx.input_example)),
        )
    except Exception as exc:
        return skipped(f"predict raised {type(exc).__name__}: see model.predicts")
    same = first.shape == second.shape and (
        np.array_equal(first, second)
        if first.dtype.kind not in "fc"
        else np.allclose(first, second, rtol=0, atol=0, equal_nan=True)
    )
    if not same:
        differing = int(np.sum(first != second)) if first.shape == second.shape else len(first)
        return failed(f"two predictions on the same {len(first)} rows differ in {differing} value(s)")
    return passed(f"two predictions on the same {len(first)} rows are identical")


register(Check("model.deterministic", "Predictions are deterministic", WARNING, "artifact", run, order=120))
