"""Compare versions side by side: parameters, metrics, checklist, data, environment, code, trend.

Returns plain data (dicts and lists) that the CLI prints and the app renders; nothing here formats.
Metric changes are measured against a baseline (the champion when it is among the versions, else
the first one) and marked better or worse by the metric's direction (accuracy up, rmse down; a
``greater_is_better`` setting recorded with the versions' checklists wins, as it does for the gate).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handoff.check_config import CheckConfig, greater_is_better
from handoff.errors import OptionError
from handoff.layout import SOURCE_NOTEBOOK
from handoff.record import BuildRecord, Environment
from handoff.store import Store, VersionRecord, open_store

if TYPE_CHECKING:
    import nbformat


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


def primary_metric(
    metrics: Mapping[str, float], directions: Mapping[str, bool] | None = None
) -> tuple[str, bool] | None:
    """The metric a model is judged by first (name, greater is better): the first one its notebook
    reported, since notebooks report the headline number first. Used wherever one number must
    stand for a version: the promote confirmation's "worse" warning, the Versions trend chart."""
    name = next(iter(metrics), None)
    return None if name is None else (name, greater_is_better(name, directions))


def _parse_ref(model: str, ref: int | str) -> tuple[str, int]:
    text = str(ref)
    name, _, number = text.rpartition(":") if ":" in text else (model, "", text)
    try:
        return name or model, int(number.lstrip("v"))
    except ValueError:
        raise OptionError(f"bad version {text!r}: use a number, or MODEL:NUMBER for another model") from None


def _metric_delta(value: float | None, base: float | None, up: bool) -> dict[str, Any]:
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

    a, b = (
        [c for c in old.cells if c.cell_type in ("code", "markdown")],
        [c for c in new.cells if c.cell_type in ("code", "markdown")],
    )
    changes: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=[key(c) for c in a], b=[key(c) for c in b], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(pairs):
            before, after = a[i1 + k], b[j1 + k]
            changes.append(
                {
                    "change": "changed",
                    "cell_type": after.cell_type,
                    "old_cell": i1 + k + 1,
                    "new_cell": j1 + k + 1,
                    "diff": list(
                        difflib.unified_diff(before.source.splitlines(), after.source.splitlines(), lineterm="", n=2)
                    )[2:],
                }
            )
        for k in range(i1 + pairs, i2):
            changes.append(
                {
                    "change": "removed",
                    "cell_type": a[k].cell_type,
                    "old_cell": k + 1,
                    "new_cell": None,
                    "diff": [f"-{line}" for line in a[k].source.splitlines()],
                }
            )
        for k in range(j1 + pairs, j2):
            changes.append(
                {
                    "change": "added",
                    "cell_type": b[k].cell_type,
                    "old_cell": None,
                    "new_cell": k + 1,
                    "diff": [f"+{line}" for line in b[k].source.splitlines()],
                }
            )
    return changes


def compare(
    model: str,
    versions: Sequence[int | str],
    baseline: int | str | None = None,
    *,
    store: Store | str | Path | None = None,
    include_code: bool = True,
    include_trend: bool = True,
) -> Comparison:
    """Compare two or more versions (``3`` for ``model``, ``other:2`` across models).

    ``include_code`` / ``include_trend`` off skip reading the notebooks / listing every version, for
    callers that only want the metrics (the promotion preview, drawn on every confirm).

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
    builds = {lbl: r.build for lbl, r in records.items()}
    return Comparison(
        labels=labels,
        baseline=base,
        parameters=_parameters(builds),
        metrics=_metrics(records, base, _directions(builds, base)),
        checklist=_checklist(builds),
        data=_data(builds),
        environment=_environment(builds),
        code=_code(store, records, base) if include_code else [],
        trend=_trend(store, refs[0][0]) if include_trend else [],
        status={lbl: r.status for lbl, r in records.items()},
    )


def _directions(builds: dict[str, BuildRecord], base: str) -> dict[str, bool]:
    """The ``greater_is_better`` overrides the versions' checklists ran with (the baseline's win), so
    compare calls a change better exactly when the regression gate would."""
    merged: dict[str, bool] = {}
    for lbl in [*(k for k in builds if k != base), base]:
        checks = builds[lbl].outputs.checks
        merged.update(CheckConfig.from_dict(checks.config).greater_is_better if checks else {})
    return merged


def _parameters(builds: dict[str, BuildRecord]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(k for b in builds.values() for k in b.inputs.parameters))
    rows = []
    for name in names:
        values = {lbl: b.inputs.parameters.get(name) for lbl, b in builds.items()}
        rows.append({"param": name, "values": values, "differs": len({repr(v) for v in values.values()}) > 1})
    return rows


def _metrics(records: dict[str, VersionRecord], base: str, directions: dict[str, bool]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(k for r in records.values() for k in r.metrics))
    rows = []
    for name in names:
        up = greater_is_better(name, directions)
        values = {lbl: r.metrics.get(name) for lbl, r in records.items()}
        rows.append(
            {
                "metric": name,
                "greater_is_better": up,
                "values": values,
                "deltas": {lbl: _metric_delta(v, values[base], up) for lbl, v in values.items() if lbl != base},
            }
        )
    return rows


def _checklist(builds: dict[str, BuildRecord]) -> list[dict[str, Any]]:
    statuses: dict[str, dict[str, str]] = {}
    for lbl, b in builds.items():
        for result in b.outputs.checks.results if b.outputs.checks else ():
            statuses.setdefault(result.id, {})[lbl] = result.status
    return [
        {
            "check": check,
            "statuses": {lbl: by.get(lbl) for lbl in builds},
            "changed": len(set(by.values())) > 1 or len(by) != len(builds),
        }
        for check, by in statuses.items()
    ]


def _data(builds: dict[str, BuildRecord]) -> dict[str, Any]:
    fingerprints = {lbl: b.outputs.data for lbl, b in builds.items()}
    digests: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    for fingerprint in fingerprints.values():
        for entry in fingerprint.files:
            digests.setdefault(entry.path, set()).add(entry.sha256)
            present[entry.path] = present.get(entry.path, 0) + 1
    changed = sorted(path for path, shas in digests.items() if len(shas) > 1 or present[path] != len(fingerprints))
    warning = f"training data changed between versions: {', '.join(changed)}" if changed else None
    return {
        "fingerprints": {
            lbl: {"sha256": f.sha256, "files": [asdict(e) for e in f.files]} for lbl, f in fingerprints.items()
        },
        "changed_files": changed,
        "warning": warning,
    }


def _environment(builds: dict[str, BuildRecord]) -> dict[str, Any]:
    envs = {lbl: b.outputs.environment or Environment() for lbl, b in builds.items()}
    names = sorted({k for e in envs.values() for k in {**e.imported, **e.model_packages}})
    packages = []
    for name in names:
        versions = {lbl: e.installed.get(name) or e.imported.get(name) for lbl, e in envs.items()}
        if len(set(versions.values())) > 1:
            packages.append({"package": name, "versions": versions})
    return {"python": {lbl: e.python for lbl, e in envs.items()}, "packages": packages}


def _code(store: Store, records: dict[str, VersionRecord], base: str) -> list[dict[str, Any]]:
    """Each version's notebook against the baseline's; notebooks are read (and nbformat, a slow
    import, loaded) only when one differs."""

    def source(record: VersionRecord) -> nbformat.NotebookNode:
        import nbformat

        nb: nbformat.NotebookNode = nbformat.reads(
            store.read_artifact(record.run_id or "", SOURCE_NOTEBOOK).decode(), as_version=4
        )
        return nb

    base_record = records[base]
    base_nb: nbformat.NotebookNode | None = None
    sha = base_record.build.inputs.notebook.sha256
    diffs = []
    for lbl, r in records.items():
        if lbl == base:
            continue
        cells: list[dict[str, Any]] = []
        if r.build.inputs.notebook.sha256 != sha:
            if base_nb is None:
                base_nb = source(base_record)
            cells = cell_diff(base_nb, source(r))
        diffs.append({"version": lbl, "against": base, "cells": cells})
    return diffs


def _trend(store: Store, model: str) -> list[dict[str, Any]]:
    return [
        {
            "version": r.version,
            "created": r.created,
            "status": r.status,
            "metrics": r.metrics,
            "aliases": list(r.aliases),
        }
        for r in store.list_versions(model)
    ]
