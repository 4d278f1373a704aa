"""notebook.secrets: no credentials in the executed notebook, which is stored and shipped in the package.

Cell sources and every textual output (stream text, ``text/*`` and JSON data, error tracebacks) are
decoded and scanned with detect-secrets' plugins and filters, not hand-written patterns: a printed
``{"AWS_SECRET_ACCESS_KEY": "..."}`` is caught like ``password = "..."`` in code. Findings name the
cell, where in it, and the secret's type; never its value. ``allow_secrets`` (a reason, from
``--allow-secrets``) lets the build pass and keeps the reason in the report and the configuration.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext
from handoff.workdirs import KINDS, private_dir

SKIP_TAGS = {"handoff-injected", "injected-parameters"}  # handoff's and papermill's own cells
_PRAGMA = "pragma: allowlist"  # detect-secrets' comment that exempts a line, or the next one
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: handoff's own random work-dir names (they show up in printed paths, e.g. an MLflow experiment's
#: artifact location) are not the notebook's secrets: their random suffix looks like one.
_WORKDIR = re.compile(rf"handoff-(?:{'|'.join(KINDS)})-[0-9]+-[A-Za-z0-9_]+")
_FILE_NAME = "cells.txt"  # what scan_file reads; its extension picks the plugins' rules


def _texts(cell: Any) -> list[tuple[str, str]]:
    """(where, text) pairs of a cell: its source, then each output decoded to text."""
    found = [("source", str(cell.get("source", "")))]
    for output in cell.get("outputs", []):
        if "text" in output:
            found.append(("output", str(output["text"])))
        if output.get("output_type") == "error":
            found.append(
                (
                    "output",
                    "\n".join(
                        [f"{output.get('ename')}: {output.get('evalue')}", *map(str, output.get("traceback", []))]
                    ),
                )
            )
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                found.append(("output", value if isinstance(value, str) else "".join(value)))
            elif mime == "application/json" or mime.endswith("+json"):
                found.append(("output", json.dumps(value, indent=1)))
    return [(where, _WORKDIR.sub("handoff-workdir", _ANSI.sub("", text))) for where, text in found if text.strip()]


def scan(notebook: Any) -> list[dict[str, Any]]:
    """Every likely secret as ``{"cell", "in", "type"}`` (cells numbered as in the source notebook).

    Each distinct line is scanned once, and only if a plugin finds a candidate in it: an
    estimator's HTML output repeats hundreds of its style lines, a training log prints thousands of
    lines with nothing in them, and detect-secrets judges a line alone, except that an allowlist
    pragma covers the line after it; so a notebook with a pragma is scanned line by line as it is."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings, get_plugins

    numbered: list[tuple[str, tuple[int, str]]] = []  # each line with its (cell number, where)
    position = 0
    for cell in notebook.cells:
        if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        position += 1
        numbered += [(line, (position, where)) for where, text in _texts(cell) for line in text.splitlines()]
    if not numbered:
        return []
    pragma = any(_PRAGMA in line for line, _ in numbered)
    origins: dict[str, list[tuple[int, str]]] = {}  # line -> every place it is in
    lines: list[str] = []
    for line, origin in numbered:
        if pragma or line not in origins:
            lines.append(line)
        origins.setdefault(line, []).append(origin)
    with default_settings():
        if not pragma:  # each line alone: only a line some plugin finds a candidate in can hold a finding
            plugins = get_plugins()
            lines = [line for line in lines if _has_candidate(line, plugins)]
        if not lines:
            return []
        scratch = private_dir("check")  # detect-secrets scans files; owner-only, swept if we are killed
        try:
            path = scratch / _FILE_NAME
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            secrets = list(scan_file(str(path)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    places = (lambda number: [numbered[number - 1][1]]) if pragma else (lambda number: origins[lines[number - 1]])
    findings = {(*origin, s.type) for s in secrets for origin in places(s.line_number)}
    return [{"cell": cell, "in": where, "type": kind} for cell, where, kind in sorted(findings)]


def _has_candidate(line: str, plugins: Iterable[Any]) -> bool:
    """Whether one of detect-secrets' ``plugins`` finds a candidate secret in ``line``, before any
    filter, as ``scan_file`` asks each of them. A line none does cannot hold a finding (the filters
    only take candidates away), so it is left out of ``scan_file``, whose per-plugin argument
    injection is most of its time: about a quarter of the time on a long training log, the same findings."""
    stripped = line.rstrip()
    return any(plugin.analyze_line(filename=_FILE_NAME, line=stripped, line_number=0) for plugin in plugins)


def run(ctx: CheckContext) -> Outcome:
    findings = ctx.early_result("notebook.secrets", scan)
    allowed = getattr(ctx.config, "allow_secrets", None)
    if not findings:
        return passed("no likely secrets in cell sources or outputs")
    cells = sorted({f["cell"] for f in findings})
    first = findings[0]
    summary = (
        f"{len(findings)} likely secret(s) in cells {cells[:5]}, e.g. {first['type']} in the "
        f"{first['in']} of cell {first['cell']}"
    )
    if allowed:
        return passed(f"{summary}; allowed: {allowed}", findings=findings, allowed=allowed)
    return failed(f"{summary}; remove them (or give a reason with {{option:allow_secrets}})", findings=findings)


register(
    Check(
        "notebook.secrets",
        "No secrets in the executed notebook",
        BLOCKING,
        "build",
        run,
        order=90,
        needs="inspect",
        early=scan,
    )
)
