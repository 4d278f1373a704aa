"""notebook.hygiene: hazards in the *source* notebook: cells run out of order or never run
(stale outputs), absolute local paths, and likely secrets in code or outputs."""

from __future__ import annotations

import re
from typing import Any

from handoff.checks import WARNING, Check, Outcome, failed, passed, register

ABSOLUTE_PATH = re.compile(r"""["'](?:/(?:home|Users|mnt|media|data|tmp|var|opt|srv|root)/[^"'\s]*|[A-Za-z]:\\[^"'\s]+)["']""")
SECRETS = [
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("API key", re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}\b")),
    ("Slack token", re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b")),
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----")),
    ("hard-coded credential", re.compile(
        r"""(?i)\b[\w]*(?:api_?key|secret|token|passw(?:or)?d|pwd|access_?key)[\w]*\s*[:=]\s*["'][^"'\s]{6,}["']""")),
]


def _text_of_outputs(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(str(output.get("text", "")))
        data = output.get("data", {})
        parts.append(str(data.get("text/plain", "")))
    return "\n".join(parts)


def run(ctx: Any) -> Outcome:
    findings: list[str] = []
    details: dict[str, list[Any]] = {"order": [], "never_run": [], "paths": [], "secrets": []}
    code_cells = [(i, c) for i, c in enumerate(ctx.source_notebook.cells, start=1) if c.cell_type == "code"]
    counts = [(i, c.get("execution_count")) for i, c in code_cells]
    ran = [(i, n) for i, n in counts if n is not None]
    if ran:
        out_of_order = [i for (i, n), (_, prev) in zip(ran[1:], ran) if n <= prev]
        if out_of_order:
            details["order"] = out_of_order
            findings.append(f"executed out of order (cells {out_of_order[:5]})")
        never = [i for (i, n), (_, c) in zip(counts, code_cells) if n is None and c.source.strip()]
        if never:
            details["never_run"] = never
            findings.append(f"cells never run while others show outputs (cells {never[:5]}): outputs may be stale")
    for i, cell in code_cells:
        for match in ABSOLUTE_PATH.finditer(cell.source):
            details["paths"].append({"cell": i, "path": match.group(0).strip("\"'")})
        for label, pattern in SECRETS:
            for where, text in (("code", cell.source), ("output", _text_of_outputs(cell))):
                if pattern.search(text):
                    details["secrets"].append({"cell": i, "kind": label, "in": where})
    if details["paths"]:
        cells = sorted({p["cell"] for p in details["paths"]})
        findings.append(f"absolute local paths in cells {cells[:5]} (e.g. {details['paths'][0]['path']})")
    if details["secrets"]:
        first = details["secrets"][0]
        findings.append(f"likely secrets: {len(details['secrets'])} (e.g. {first['kind']} in the {first['in']} "
                        f"of cell {first['cell']})")
    if findings:
        return failed("; ".join(findings), **details)
    return passed(f"{len(code_cells)} code cells: no ordering issues, absolute paths or secrets found")


register(Check("notebook.hygiene", "Source notebook is clean", WARNING, "build", run, order=110))
