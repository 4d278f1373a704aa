"""model.fidelity: the saved artifact reproduces the model the notebook trained.

The kernel kept the chosen model's predictions on the held-out rows (or on the input example when
there were none); here, in a fresh process, the *saved* model predicts on the same rows and must
give the same answers (labels exactly, floats within a tolerance). When handoff computed metrics on
held-out data, the artifact's metrics on those rows must agree too. A package that holds the wrong
object (a pipeline's last step without its scaler) fails here, whatever else passes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from handoff import evaluation
from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext


def run(ctx: ArtifactContext) -> Outcome:
    data = ctx.fidelity
    if data is None:
        return skipped("no held-out rows or input example were kept by the build to compare against")
    if not data.get("deterministic", True):
        return skipped(
            "the notebook's model gave different predictions twice on the same rows, so the "
            "artifact's predictions cannot be compared with it"
        )
    try:
        output = ctx.model.predict(data["X"])
    except Exception as exc:  # the artifact cannot even take the notebook's rows: that is the finding
        return failed(f"the saved model cannot predict on {data['source']} ({type(exc).__name__}: {exc})")
    wrong, rows, note = evaluation.compare_predictions(data["predictions"], output)
    if wrong:
        return failed(
            f"the saved model disagrees with the notebook's model on {wrong} of {rows} rows of "
            f"{data['source']} ({wrong / rows:.1%} mismatch{'; ' + note if note else ''})",
            mismatched=wrong,
            rows=rows,
            mismatch_rate=wrong / rows,
        )
    agreed = []
    if data.get("y") is not None and data.get("task"):
        kept = evaluation.standard_metrics(data["task"], data["y"], data["predictions"])
        again = evaluation.standard_metrics(data["task"], data["y"], output)
        off = {
            k: (v, again.get(k))
            for k, v in kept.items()
            if again.get(k) is None or not math.isclose(v, again[k], rel_tol=1e-9, abs_tol=1e-12)
        }
        if off:
            return failed(
                "the saved model's metrics differ on "
                + data["source"]
                + ": "
                + ", ".join(f"{k} {a:.6g} in the notebook, {b} from the artifact" for k, (a, b) in off.items())
            )
        agreed = sorted(kept)
    return passed(
        f"same predictions as the notebook's model on {rows} rows of {data['source']}"
        + (f"; {', '.join(agreed)} agree" if agreed else ""),
        rows=rows,
        metrics=agreed,
    )


register(Check("model.fidelity", "Saved model reproduces the notebook's model", BLOCKING, "artifact", run, order=35))
