"""notebook.executed: every code cell ran, top to bottom, without error or early exit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    if ctx.error and ctx.error.stage == "execute":
        return failed(ctx.error.message, cell=ctx.error.cell)
    # papermill's injected-parameters cell is ours, not the notebook's: "all 4 code cells", never 5
    cells = [
        c
        for c in ctx.executed_notebook.cells
        if c.cell_type == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    counts = [c.get("execution_count") for c in cells]
    not_run = [i + 1 for i, (c, n) in enumerate(zip(cells, counts, strict=True)) if n is None and c.source.strip()]
    if not_run:
        return failed(f"{len(not_run)} code cell(s) did not run (code cells {not_run[:5]})", not_run=not_run)
    ran = [n for n in counts if n is not None]
    if ran != sorted(ran):
        return failed("cells did not run top to bottom", execution_counts=ran)
    return passed(f"all {len(cells)} code cells ran in order without error")


register(
    Check(
        "notebook.executed",
        "Notebook ran top to bottom without error",
        BLOCKING,
        "build",
        run,
        order=10,
        needs="inspect",
        reports="execute",
    )
)
