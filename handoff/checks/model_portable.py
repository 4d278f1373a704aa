"""model.portable: the model is saved in a format whose loading runs no arbitrary code.

Passes for a library's own format (skops with an audited type list, XGBoost's UBJSON, LightGBM's
text model, CatBoost's cbm). Warns for a pickle (cloudpickle, statsmodels' and PyTorch's pickles)
and, louder, for the generic pyfunc fallback: whoever loads such a package runs whatever code the
pickle holds, so load it only from a source you trust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext

#: The flavor name of the generic fallback (``handoff/flavors/pyfunc.py``).
FALLBACK_FLAVOR = "pyfunc"


def run(ctx: CheckContext) -> Outcome:
    model = ctx.record.outputs.model
    saved = model.saved if model is not None else None
    if saved is None:
        return skipped("no saved model")
    if saved.flavor == FALLBACK_FLAVOR:
        return failed(
            f"no library flavor knows {model.type if model else 'the model'}: saved by the generic pyfunc "
            "fallback as an arbitrary pickle: loading runs code",
            flavor=saved.flavor,
            format=saved.format,
        )
    if "pickle" in saved.format.lower():
        return failed(
            f"saved as a pickle ({saved.format}, MLflow flavor {saved.flavor}): loading it runs code, so load "
            "it only from a trusted source",
            flavor=saved.flavor,
            format=saved.format,
        )
    return passed(f"saved in {saved.format} (MLflow flavor {saved.flavor}): loading it runs no pickled code")


register(
    Check(
        "model.portable", "Model format loads without running code", WARNING, "build", run, order=145, needs="serialize"
    )
)
