"""Compare versions side by side: parameters, metrics, checklist, data, environment, code, trend.

Returns plain data (dicts and lists) that the CLI prints and the app renders; nothing here formats.
Metric changes are measured against a baseline (the champion when it is among the versions, else
the first one) and marked better or worse by the metric's direction (accuracy up, rmse down).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import nbformat

from handoff.check_config import greater_is_better
from handoff.errors import OptionError
from handoff.store import Store, VersionRecord, open_store


@dataclass(frozen=True)
class Comparison:
    """Two or more versions side by side. Every section is keyed by version label (``v3`` or
    ``model:v3`` across models).

    Attributes:
        labels: The compared versions, in the order given.
        baseline: The label deltas are measured against.
        parameters: ``{"param", "values", "differs"}`` per parameter.
        metrics: ``{"metric", "greater_is_better", "values", "deltas"}``; a delta has ``absolute``,
            ``relative`` and ``better`` (True, False, or None when equal or not comparable).
        checklist: ``{"check", "statuses", "changed"}`` per check.
        data: ``{"fingerprints", "changed_files", "warning"}``.
        environment: ``{"python", "packages"}``: only packages whose versions differ.
        code: Per non-baseline version, the cell-aware diff of the source notebook against the baseline's.
        trend: Every version of the (first) model in order, with its metrics, for a chart.
        status: ``passed`` / ``failed`` per version.
    """

    labels: list[str]
    baseline: str
    parameters: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    checklist: list[dict[str, Any]]
    data: dict[str, Any]
    environment: dict[str, Any]
    code: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    status: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_ref(model: str, ref: int | str) -> tuple[str, int]:
    text = str(ref)
    name, _, number = text.rpartition(":") if ":" in text else (model, "", text)
    try:
        return name or model, int(number.lstrip("v"))
    except ValueError:
        raise OptionError(f"bad version {text!r}: use a number, or MODEL:NUMBER for another model") from None


def _metric_delta(name: str, value: float | None, base: float | None, up: bool) -> dict[str, Any]:
    if value is None or base is None:
        return {"absolute": None, "relative": None, "better": None}
    change = value - base
    relative = change / abs(base) if base else None
    better = None if change == 0 else (change > 0) == up
    return {"absolute": change, "relative": relative, "better": better}


def cell_diff(old: nbformat.NotebookNode, new: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """Cells added, removed and changed (with a line diff), ignoring outputs and execution counts."""
    def key(cell: Any) -> str:
        return hashlib.sha256(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()

    a, b = [c for c in old.cells if c.cell_type in ("code", "markdown")], [
        c for c in new.cells if c.cell_type in ("code", "markdown")]
    changes: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=[key(c) for c in a], b=[key(c) for c in b], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(pairs):
            before, after = a[i1 + k], b[j1 + k]
            changes.append({"change": "changed", "cell_type": after.cell_type, "old_cell": i1 + k + 1,
                            "new_cell": j1 + k + 1, "diff": list(difflib.unified_diff(
                                before.source.splitlines(), after.source.splitlines(), lineterm="", n=2))[2:]})
        for k in range(i1 + pairs, i2):
            changes.append({"change": "removed", "cell_type": a[k].cell_type, "old_cell": k + 1, "new_cell": None,
                            "diff": [f"-{line}" for line in a[k].source.splitlines()]})
        for k in range(j1 + pairs, j2):
            changes.append({"change": "added", "cell_type": b[k].cell_type, "old_cell": None, "new_cell": k + 1,
                            "diff": [f"+{line}" for line in b[k].source.splitlines()]})
    return changes


def compare(model: str, versions: Sequence[int | str], baseline: int | str | None = None, *,
            store: Store | str | Path | None = None, include_code: bool = True) -> Comparison:
    """Compare two or more versions (``3`` for ``model``, ``other:2`` across models).

    Raises:
        OptionError: fewer than two versions, or a malformed reference.
        VersionNotFoundError: a version does not exist.
    """
    store = store if isinstance(store, Store) else open_store(store)
    refs = list(dict.fromkeys(_parse_ref(model, v) for v in versions))
    if len(refs) < 2:
        raise OptionError("compare needs at least two different versions")
    across = len({name for name, _ in refs}) > 1
    label = {ref: (f"{ref[0]}:v{ref[1]}" if across else f"v{ref[1]}") for ref in refs}
    records: dict[str, VersionRecord] = {label[ref]: store.get_version(*ref) for ref in refs}
    labels = list(records)
    if baseline is not None:
        base_ref = _parse_ref(model, baseline)
        if base_ref not in label:
            raise OptionError(f"baseline {baseline} is not among the compared versions")
        base = label[base_ref]
    else:
        champion = next((lbl for lbl, r in records.items() if "champion" in r.aliases), None)
        base = champion or labels[0]
    details = {lbl: r.details for lbl, r in records.items()}
    return Comparison(
        labels=labels, baseline=base,
        parameters=_parameters(details),
        metrics=_metrics(records, base),
        checklist=_checklist(details),
        data=_data(details, base),
        environment=_environment(details),
        code=_code(store, records, base) if include_code else [],
        trend=_trend(store, refs[0][0]),
        status={lbl: r.status for lbl, r in records.items()},
    )


def _parameters(details: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(k for d in details.values() for k in d.get("params", {})))
    rows = []
    for name in names:
        values = {lbl: d.get("params", {}).get(name) for lbl, d in details.items()}
        rows.append({"param": name, "values": values, "differs": len({repr(v) for v in values.values()}) > 1})
    return rows


def _metrics(records: dict[str, VersionRecord], base: str) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(k for r in records.values() for k in r.metrics))
    rows = []
    for name in names:
        up = greater_is_better(name)
        values = {lbl: r.metrics.get(name) for lbl, r in records.items()}
        rows.append({"metric": name, "greater_is_better": up, "values": values,
                     "deltas": {lbl: _metric_delta(name, v, values[base], up) for lbl, v in values.items() if lbl != base}})
    return rows


def _checklist(details: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    statuses: dict[str, dict[str, str]] = {}
    for lbl, d in details.items():
        for result in (d.get("checks") or {}).get("results", []):
            statuses.setdefault(result["id"], {})[lbl] = result["status"]
    return [{"check": check, "statuses": {lbl: by.get(lbl) for lbl in details}, "changed": len(set(by.values())) > 1
             or len(by) != len(details)} for check, by in statuses.items()]


def _data(details: dict[str, dict[str, Any]], base: str) -> dict[str, Any]:
    fingerprints = {lbl: d.get("data", {}) for lbl, d in details.items()}
    digests: dict[str, set[str]] = {}
    for fingerprint in fingerprints.values():
        for entry in fingerprint.get("files", []):
            digests.setdefault(entry["path"], set()).add(entry["sha256"])
    present = {path: sum(any(e["path"] == path for e in f.get("files", [])) for f in fingerprints.values())
               for path in digests}
    changed = sorted(path for path, shas in digests.items() if len(shas) > 1 or present[path] != len(fingerprints))
    warning = (f"training data changed between versions: {', '.join(changed)}" if changed else None)
    return {"fingerprints": fingerprints, "changed_files": changed, "warning": warning}


def _environment(details: dict[str, dict[str, Any]]) -> dict[str, Any]:
    envs = {lbl: ((d.get("capture") or {}).get("environment") or {}) for lbl, d in details.items()}
    names = sorted({k for e in envs.values() for k in {**e.get("imported", {}), **e.get("model_packages", {})}})
    packages = []
    for name in names:
        versions = {lbl: e.get("installed", {}).get(name) or e.get("imported", {}).get(name) for lbl, e in envs.items()}
        if len(set(versions.values())) > 1:
            packages.append({"package": name, "versions": versions})
    return {"python": {lbl: e.get("python") for lbl, e in envs.items()}, "packages": packages}


def _code(store: Store, records: dict[str, VersionRecord], base: str) -> list[dict[str, Any]]:
    def source(record: VersionRecord) -> nbformat.NotebookNode:
        assert record.run_id is not None
        return nbformat.reads(store.read_artifact(record.run_id, "notebook/source.ipynb").decode(), as_version=4)

    base_record = records[base]
    base_nb = source(base_record)
    sha = (base_record.details.get("notebook") or {}).get("sha256")
    return [{"version": lbl, "against": base,
             "cells": [] if (r.details.get("notebook") or {}).get("sha256") == sha else cell_diff(base_nb, source(r))}
            for lbl, r in records.items() if lbl != base]


def _trend(store: Store, model: str) -> list[dict[str, Any]]:
    return [{"version": r.version, "created": r.created, "status": r.status, "metrics": r.metrics,
             "aliases": list(r.aliases)} for r in store.list_versions(model)]
