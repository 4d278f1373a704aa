"""env.rebuilds (optional, ``--verify-env``): the package's model loads and predicts its input
example in a brand-new virtualenv made only from the package's own ``requirements.txt`` (uv,
cached by those pins): proof that an engineer can install it from what it declares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    if not ctx.config.verify_env:
        return skipped(
            "off (enable with {option:verify_env}; it installs the package's requirements into a new virtualenv)"
        )
    if ctx.model_dir is None:
        return skipped("no model was saved")
    from handoff.environments import rebuild_and_predict

    found = rebuild_and_predict(ctx.model_dir, hidden=ctx.hidden)
    details = {"env": found.key, "created": found.created, "seconds": round(found.seconds, 2)}
    return (passed if found.ok else failed)(found.message, **details)


register(
    Check(
        "env.rebuilds",
        "The package's requirements alone rebuild a working environment",
        BLOCKING,
        "build",
        run,
        order=210,
        optional=True,
    )
)
