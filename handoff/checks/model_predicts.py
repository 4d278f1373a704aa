"""model.predicts: it predicts on the stored input example; output matches the input length and
conforms to the signature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext

_KINDS = {
    "long": "iu",
    "integer": "iu",
    "double": "fiu",
    "float": "fiu",
    "boolean": "b",
    "string": "OUS",
    "binary": "OS",
    "datetime": "M",
}


def run(ctx: ArtifactContext) -> Outcome:
    if ctx.input_example is None:
        return failed("no input example is stored with the model, so it cannot be tried")
    try:
        output = ctx.model.predict(ctx.input_example)
    except Exception as exc:  # any error here is the finding
        return failed(f"predict on the input example raised {type(exc).__name__}: {exc}")
    rows, produced = len(ctx.input_example), len(output)
    if produced != rows:
        return failed(f"{produced} predictions for {rows} input rows")
    outputs = ctx.signature.outputs if ctx.signature is not None else None
    expected = outputs.input_types() if outputs is not None else []
    if len(expected) == 1:  # one output column or tensor: its dtype must match the signature's
        import numpy as np

        values = np.asarray(output)
        kind = expected[0]
        allowed = (
            np.dtype(kind).kind + ("iu" if np.dtype(kind).kind == "f" else "")
            if isinstance(kind, np.dtype)
            else _KINDS.get(getattr(kind, "name", ""), values.dtype.kind)
        )
        if values.dtype.kind not in allowed:
            return failed(f"output dtype {values.dtype} does not conform to the signature's {kind}")
    return passed(f"{produced} predictions for {rows} example rows, conforming to the signature")


register(Check("model.predicts", "Model predicts on the input example", BLOCKING, "artifact", run, order=40))
