"""data.fingerprinted: the training data was fingerprinted (warn when nothing was read from files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import WARNING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    files = ctx.record.outputs.data.files
    if not files:
        return failed(
            "the notebook read no data files, so the training data cannot be traced "
            "(data made in code or fetched over the network is not fingerprinted)"
        )
    total = sum(f.size for f in files)
    return passed(
        f"{len(files)} data file(s), {total:,} bytes: " + ", ".join(f.path for f in files[:3]),
        files=[f.path for f in files],
    )


register(Check("data.fingerprinted", "Training data is fingerprinted", WARNING, "build", run, order=150))
