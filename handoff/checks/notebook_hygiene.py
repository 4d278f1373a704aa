"""notebook.hygiene: hazards in the *source* notebook: cells run out of order or never run
(stale outputs) and absolute local paths. Secrets are ``notebook.secrets``' job (blocking)."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from handoff.checks import WARNING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext

ABSOLUTE_PATH = re.compile(
    r"""["'](?:/(?:home|Users|mnt|media|data|tmp|var|opt|srv|root)/[^"'\s]*|[A-Za-z]:\\[^"'\s]+)["']"""
)


def run(ctx: CheckContext) -> Outcome:
    findings: list[str] = []
    found: dict[str, list[Any]] = {"order": [], "never_run": [], "paths": []}
    code_cells = [(i, c) for i, c in enumerate(ctx.source_notebook.cells, start=1) if c.cell_type == "code"]
    counts = [(i, c.get("execution_count")) for i, c in code_cells]
    ran = [(i, n) for i, n in counts if n is not None]
    if ran:
        out_of_order = [i for (i, n), (_, prev) in itertools.pairwise(ran) if n <= prev]
        if out_of_order:
            found["order"] = out_of_order
            findings.append(f"executed out of order (cells {out_of_order[:5]})")
        never = [i for (i, n), (_, c) in zip(counts, code_cells, strict=True) if n is None and c.source.strip()]
        if never:
            found["never_run"] = never
            findings.append(f"cells never run while others show outputs (cells {never[:5]}): outputs may be stale")
    for i, cell in code_cells:
        for match in ABSOLUTE_PATH.finditer(cell.source):
            found["paths"].append({"cell": i, "path": match.group(0).strip("\"'")})
    if found["paths"]:
        cells = sorted({p["cell"] for p in found["paths"]})
        findings.append(f"absolute local paths in cells {cells[:5]} (e.g. {found['paths'][0]['path']})")
    if findings:
        return failed("; ".join(findings), **found)
    return passed(f"{len(code_cells)} code cells: no ordering issues or absolute paths found")


register(Check("notebook.hygiene", "Source notebook is clean", WARNING, "build", run, order=110, needs="inspect"))
