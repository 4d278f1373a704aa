"""Operations on recorded versions: re-checking, exporting, verifying, promoting and rolling back.

A promotion or roll-back is previewed first (``promotion_preview`` / ``rollback_preview``: the
evidence against the current champion, computed without moving anything); every face shows that
preview before it asks, and ``promote`` itself refuses what the preview refuses.

A version is immutable: a re-check never changes its status or its original report; the new
report is recorded beside the original, with the time it was made. Every operation reads the
version through ``Store.get_version``, which refuses one modified since it was recorded
(``TamperedError``); ``verify_store`` checks them all, ``verify_recorded`` a package against the store.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handoff.check_config import CheckConfig, override
from handoff.checklist import CheckContext, CheckReport, run_checklist, write_report
from handoff.checks import CheckResult
from handoff.errors import OptionError, PromotionRefused, StoreError, TamperedError, WorseThanChampion
from handoff.fingerprint import sha256_file
from handoff.layout import EXECUTED_NOTEBOOK, FIDELITY_PATH, PACKAGE_DIR, SOURCE_NOTEBOOK
from handoff.package import VerifyReport, atomic_path, build_package, package_name, verify
from handoff.store import Store, VersionRecord, open_store
from handoff.timefmt import human_time
from handoff.uris import local_path

if TYPE_CHECKING:
    import nbformat

    from handoff.comparison import Comparison


def model_dir_of(store: Store, model_uri: str, scratch: Path) -> Path:
    """A local directory holding a version's MLflow model (in place for a local store)."""
    local = local_path(model_uri)
    if local is not None:
        return local
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(scratch), tracking_uri=store.uri)
    )


def check_version(
    name: str, version: int | str, *, store: Store | str | Path | None = None, checks: Mapping[str, Any] | None = None
) -> CheckReport:
    """Re-run the checklist on a stored version with its recorded settings plus ``checks``.

    The report is recorded beside the original (``checks/rechecks/<time>/``) and returned.
    ``reproducible`` is skipped: the build's working state no longer exists.
    """
    store = store if isinstance(store, Store) else open_store(store)
    stored = store.get_version(name, version)
    record, run_id = stored.build, _run_of(stored)
    recorded_checks = record.outputs.checks
    config = override(CheckConfig.from_dict(recorded_checks.config if recorded_checks else {}), checks)

    def notebook(path: str) -> nbformat.NotebookNode:
        import nbformat

        nb: nbformat.NotebookNode = nbformat.reads(store.read_artifact(run_id, path).decode(), as_version=4)
        return nb

    with tempfile.TemporaryDirectory(prefix="handoff-recheck-") as scratch:
        fidelity = Path(scratch) / "fidelity.pkl"
        try:
            fidelity.write_bytes(store.read_artifact(run_id, FIDELITY_PATH))
        except StoreError:  # versions recorded before fidelity rows were kept
            pass
        context = CheckContext(
            record=record,
            source_notebook=notebook(SOURCE_NOTEBOOK),
            executed_notebook=notebook(EXECUTED_NOTEBOOK),
            model_dir=model_dir_of(store, stored.model_uri, Path(scratch)),
            config=config,
            champion=store.alias_version(name, "champion") if config.gate else None,
            version=stored.version,
            fidelity=fidelity if fidelity.exists() else None,
        )
        report = run_checklist(context)
        out = Path(scratch) / "report"
        write_report(report, out)
        store.add_check_report(run_id, out)
    return report


def _run_of(version: VersionRecord) -> str:
    """The run that recorded a version (every version handoff registered has one)."""
    if version.run_id is None:
        raise StoreError(f"{version.name} version {version.version} has no MLflow run: it was not built by handoff")
    return version.run_id


@dataclass(frozen=True)
class ExportResult:
    """An exported package.

    Attributes:
        path: Where the zip was written.
        sha256: The zip's digest (the same as recorded with the version).
        size: Bytes.
        status: The version's status (``failed`` only with ``force``).
        seconds: Time the export took.
        outputs_stripped: The executed notebook was shipped without its outputs.
    """

    path: Path
    sha256: str
    size: int
    status: str
    seconds: float
    outputs_stripped: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def stored_package(store: Store, version: VersionRecord, scratch: Path, stripped: bool = False) -> Path:
    """The version's package zip: the one kept with its run, checked against the sha256 recorded
    when it was stored (rebuilt, identically, and kept if absent); ``stripped`` builds the variant
    without the notebook's outputs from the (verified) artifacts instead.

    Raises:
        TamperedError: the kept package (or a rebuild of a deleted one) differs from the recorded sha256.
    """
    run_id, created = _run_of(version), version.created or ""
    filename = f"{package_name(version.name, version.version)}.zip"
    if stripped:
        artifacts = store.download_artifacts(run_id, "", scratch / "artifacts")
        build_package(
            artifacts, version.build, version.version, created, scratch / "stripped" / filename, stripped=True
        )
        return scratch / "stripped" / filename
    recorded = store.package_sha256(run_id)
    zip_path = store.download_artifacts(run_id, f"{PACKAGE_DIR}/{filename}", scratch)
    if not zip_path.exists():
        artifacts = store.download_artifacts(run_id, "", scratch / "artifacts")
        zip_path = scratch / "rebuilt" / filename
        sha256 = build_package(artifacts, version.build, version.version, created, zip_path)
        if recorded in (None, sha256):
            store.log_package(run_id, zip_path, sha256)
    if recorded is not None and sha256_file(zip_path) != recorded:
        raise TamperedError(version.name, version.version, [f"{PACKAGE_DIR}/{filename} differs"])
    return zip_path


def export(
    name: str,
    version: int | str,
    output: str | Path | None = None,
    *,
    store: Store | str | Path | None = None,
    force: bool = False,
    strip_outputs: bool = False,
) -> ExportResult:
    """Copy a version's deterministic package to ``output`` (a file or folder; default: here).

    ``strip_outputs`` ships the executed notebook (and its HTML report) without the cells' outputs,
    e.g. when they show data that must not leave; the package says so and still verifies.

    Raises:
        OptionError: the version failed its checklist and ``force`` is not set.
        VersionNotFoundError: no such model or version.
        TamperedError: the version, or its stored package, changed after it was recorded.
    """
    started = time.perf_counter()
    store = store if isinstance(store, Store) else open_store(store)
    record = store.get_version(name, version)
    if record.status != "passed" and not force:
        raise OptionError(
            f"{name} version {record.version} failed its checklist; it is exported only with "
            "{option:force} (its manifest and README say it failed)"
        )
    filename = f"{package_name(name, record.version)}.zip"
    target = Path(output) if output else Path.cwd() / filename
    if target.is_dir() or not target.suffix:  # a folder (existing or to be made)
        target = target / filename
    with tempfile.TemporaryDirectory(prefix="handoff-export-") as scratch:
        source = stored_package(store, record, Path(scratch), strip_outputs)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return ExportResult(
        target,
        sha256_file(target),
        target.stat().st_size,
        record.status,
        round(time.perf_counter() - started, 4),
        strip_outputs,
    )


def verify_recorded(path: str | Path, *, store: Store | str | Path | None = None) -> VerifyReport:
    """``verify``, plus: the zip is byte for byte the package the store holds for the version its
    manifest names (or, for one exported with ``strip_outputs``, the one the store would export).

    A package rebuilt with altered files and a recomputed manifest passes ``verify``; not this.

    Raises:
        VersionNotFoundError: the store has no such version.
        TamperedError: the store's own copy of that version was modified.
    """
    report = verify(path)
    if not report.manifest:
        return report
    store = store if isinstance(store, Store) else open_store(store)
    name, version = report.manifest.get("name"), report.manifest.get("version")
    record = store.get_version(str(name), str(version))
    with tempfile.TemporaryDirectory(prefix="handoff-verify-") as scratch:
        expected = sha256_file(
            stored_package(store, record, Path(scratch), report.manifest.get("outputs_stripped") is True)
        )
    if sha256_file(path) == expected:
        return report
    problem = f"recorded: not the package the store holds for {name} version {version} (its sha256 differs)"
    return replace(report, ok=False, problems=(*report.problems, problem))


def verify_store(*, store: Store | str | Path | None = None) -> list[dict[str, Any]]:
    """Every version of every model against the digests taken when it was recorded.

    Returns one ``{"name", "version", "ok", "problems"}`` per version, oldest first per model.
    """
    store = store if isinstance(store, Store) else open_store(store)
    results = []
    for listed in store.list_versions():
        try:
            store.get_version(listed.name, listed.version)
            problems: tuple[str, ...] = ()
        except TamperedError as exc:
            problems = exc.problems
        results.append({"name": listed.name, "version": listed.version, "ok": not problems, "problems": list(problems)})
    return results


def _who(store: Store, by: str | None) -> str:
    """Who an audit entry names: a server's logged-in user (never anyone else), else ``by`` or the OS user."""
    if store.credentials is not None:
        return store.credentials.username
    return by or store.user


@dataclass(frozen=True)
class MetricChange:
    """One metric of a candidate against the version whose alias it would take.

    Attributes:
        metric: The metric's name.
        greater_is_better: Its direction, as the gate sees it (the checklists' overrides win).
        candidate: The candidate's value (``None``: it did not report it).
        current: The value of the version that holds the alias now (``None``: none, or not reported).
        absolute: ``candidate - current``, when both exist.
        relative: ``absolute / |current|``, when ``current`` is not 0.
        better: True / False by the metric's direction; ``None`` when equal or not comparable.
        primary: This is the metric the model is judged by (``comparison.primary_metric``).
    """

    metric: str
    greater_is_better: bool
    candidate: float | None
    current: float | None
    absolute: float | None = None
    relative: float | None = None
    better: bool | None = None
    primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_label(version: int | None) -> str:
    """``v2``, or ``none`` for an alias that pointed nowhere: never ``v-`` or ``None``."""
    return "none" if version is None else f"v{version}"


def _changes(comparison: Comparison, candidate: str, current: str, primary: str | None) -> tuple[MetricChange, ...]:
    changes = []
    for row in comparison.metrics:
        delta = row["deltas"].get(candidate) or {}
        changes.append(
            MetricChange(
                row["metric"],
                row["greater_is_better"],
                row["values"].get(candidate),
                row["values"].get(current),
                delta.get("absolute"),
                delta.get("relative"),
                delta.get("better"),
                row["metric"] == primary,
            )
        )
    return tuple(changes)


def _evidence(
    store: Store, candidate: VersionRecord, current: VersionRecord | None
) -> tuple[tuple[MetricChange, ...], Comparison | None]:
    """The candidate's metrics against ``current`` (its own alone when there is none), in the order its
    notebook reported them (the primary one first: a listing's metrics are sorted by name), and the comparison.
    """
    from handoff.check_config import greater_is_better
    from handoff.comparison import compare, primary_metric

    reported = candidate.build.metrics  # in the order found, unlike VersionRecord.metrics
    if current is None or current.version == candidate.version:
        checks = candidate.build.outputs.checks
        directions = CheckConfig.from_dict(checks.config).greater_is_better if checks else {}
        first = primary_metric(reported, directions)
        alone = tuple(
            MetricChange(m, greater_is_better(m, directions), value, None, primary=first is not None and m == first[0])
            for m, value in reported.items()
        )
        return alone, None
    comparison = compare(
        candidate.name,
        [current.version, candidate.version],
        baseline=current.version,
        store=store,
        include_code=False,
        include_trend=False,
    )
    directions = {row["metric"]: row["greater_is_better"] for row in comparison.metrics}
    first = primary_metric(reported, directions)
    changes = _changes(comparison, f"v{candidate.version}", f"v{current.version}", first[0] if first else None)
    order = {name: i for i, name in enumerate(reported)}  # then the champion's metrics the candidate lacks
    return tuple(sorted(changes, key=lambda m: order.get(m.metric, len(order)))), comparison


def _worse_sentence(change: MetricChange | None, candidate: int | None, current: int | None) -> str | None:
    """The sentence both faces show: ``v5 is 1.5% worse than v1 on accuracy (0.95 vs 0.965)``, when it is."""
    if change is None or change.better is not False or change.absolute is None:
        return None
    by = f"{abs(change.relative):.1%}" if change.relative is not None else f"{abs(change.absolute):.4g}"
    return (
        f"{version_label(candidate)} is {by} worse than {version_label(current)} on {change.metric} "
        f"({change.candidate:.4g} vs {change.current:.4g})"
    )


@dataclass(frozen=True)
class PromotionPreview:
    """What promoting a version would do, computed without moving anything: the evidence a person
    (app) or a pipeline (CLI) sees before the alias moves.

    Attributes:
        model: The model.
        alias: The alias that would move (``champion``).
        version: The candidate.
        status: The candidate's checklist status (``passed`` / ``failed``).
        current: The version that holds the alias now (``None``: the first promotion).
        metrics: Every metric of the candidate against ``current``, with delta and better/worse.
        concerns: The candidate's failed and warning checks.
        refused: Why the promotion cannot be made (failed checklist, already holds the alias), or ``None``.
        comparison: The ``handoff.compare`` result behind ``metrics`` (``None`` without a champion).
    """

    model: str
    alias: str
    version: int
    status: str
    current: int | None
    metrics: tuple[MetricChange, ...] = ()
    concerns: tuple[CheckResult, ...] = ()
    refused: str | None = None
    comparison: Comparison | None = field(default=None, repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.refused is None

    @property
    def primary(self) -> MetricChange | None:
        """The metric the model is judged by (the first the candidate reported), or ``None``."""
        return next((m for m in self.metrics if m.primary), None)

    @property
    def worse(self) -> bool:
        """Worse than the current holder on the primary metric: the promotion needs a second confirmation."""
        return self.worse_message is not None

    @property
    def worse_message(self) -> str | None:
        """``v5 is 1.5% worse than v1 on accuracy (0.95 vs 0.965)``, or ``None`` when it is not worse."""
        return _worse_sentence(self.primary, self.version, self.current)

    @property
    def move(self) -> str:
        """``v1 → v5`` (``none → v5`` for the first promotion)."""
        return f"{version_label(self.current)} → {version_label(self.version)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "status": self.status,
            "current": self.current,
            "allowed": self.allowed,
            "refused": self.refused,
            "worse": self.worse,
            "worse_message": self.worse_message,
            "primary": self.primary.metric if self.primary else None,
            "metrics": [m.to_dict() for m in self.metrics],
            "concerns": [asdict(c) for c in self.concerns],
        }


def promotion_preview(
    name: str, version: int | str, alias: str = "champion", *, store: Store | str | Path | None = None
) -> PromotionPreview:
    """The evidence for promoting ``version``: the current holder of ``alias``, every metric against
    it, the candidate's failed and warning checks, whether it is worse on the primary metric, and
    whether the promotion is allowed at all. Nothing moves.

    Raises:
        VersionNotFoundError: no such model or version.
        TamperedError: the candidate or the champion changed after it was recorded.
    """
    store = store if isinstance(store, Store) else open_store(store)
    candidate = store.get_version(name, version)
    current = store.alias_version(name, alias)  # listed: compare reads (and verifies) it
    metrics, comparison = _evidence(store, candidate, current)
    checks = candidate.build.outputs.checks
    concerns = tuple(r for r in (checks.results if checks else ()) if r.status in ("failed", "warning"))
    refused = None
    if candidate.archived:
        refused = f"{name} version {candidate.version} is archived: unarchive it first"
    elif candidate.status != "passed":
        refused = (
            f"{name} version {candidate.version} failed its checklist and can never be "
            f"promoted; see `handoff show {name} {candidate.version}`"
        )
    elif current is not None and current.version == candidate.version:
        refused = f"{name} version {candidate.version} is already {alias!r}"
    return PromotionPreview(
        name,
        alias,
        candidate.version,
        candidate.status,
        current.version if current else None,
        metrics,
        concerns,
        refused,
        comparison,
    )


@dataclass(frozen=True)
class RollbackPreview:
    """What rolling an alias back would do, computed without moving anything.

    Attributes:
        model: The model.
        alias: The alias.
        current: The version that holds it now (``None``: never set).
        target: The version it would go back to (``None``: there is no earlier one).
        metrics: The target's metrics against ``current``.
        refused: Why it cannot be rolled back, or ``None``.
        comparison: The ``handoff.compare`` result behind ``metrics``.
    """

    model: str
    alias: str
    current: int | None
    target: int | None
    metrics: tuple[MetricChange, ...] = ()
    refused: str | None = None
    comparison: Comparison | None = field(default=None, repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.refused is None

    @property
    def move(self) -> str:
        return f"{version_label(self.current)} → {version_label(self.target)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "current": self.current,
            "target": self.target,
            "allowed": self.allowed,
            "refused": self.refused,
            "metrics": [m.to_dict() for m in self.metrics],
        }


def rollback_preview(
    name: str, alias: str = "champion", *, store: Store | str | Path | None = None, evidence: bool = True
) -> RollbackPreview:
    """Where a roll-back of ``alias`` would go (the version before the last promotion still in
    force, replayed from the history with ``alias_stack``), or why it cannot; nothing moves.
    ``evidence`` off skips the metrics (for a button that only needs to know whether it is enabled).
    """
    store = store if isinstance(store, Store) else open_store(store)
    stack = alias_stack(store.alias_history(name, alias))
    listed = store.alias_version(name, alias)
    current = listed.version if listed is not None else (stack[-1] if stack else None)
    if len(stack) < 2:
        refused = f"{name}: {alias!r} has no earlier version to roll back to" + (
            f" (it holds version {current})" if current is not None else " (it was never set)"
        )
        return RollbackPreview(name, alias, current, None, refused=refused)
    target = stack[-2]
    if not evidence or current is None or current == target:
        return RollbackPreview(name, alias, current, target)
    metrics, comparison = _evidence(store, store.get_version(name, target), listed)
    return RollbackPreview(name, alias, current, target, metrics, None, comparison)


@dataclass(frozen=True)
class AliasMove:
    """A promotion or roll-back that was made.

    Attributes:
        entry: The audit-history entry (model, alias, kind, from/to version, by, reason, time).
        comparison: The new version against the one the alias left, when there was one.
        evidence: The preview the move was made on (``PromotionPreview`` / ``RollbackPreview``).
    """

    entry: dict[str, Any]
    comparison: Comparison | None = None
    evidence: PromotionPreview | RollbackPreview | None = None

    @property
    def move(self) -> str:
        """``none → v2``: the alias's from and to."""
        return f"{version_label(self.entry['from_version'])} → {version_label(self.entry['to_version'])}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.entry,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "evidence": self.evidence.to_dict() if self.evidence is not None else None,
        }


def promote(
    name: str,
    version: int | str,
    alias: str = "champion",
    *,
    store: Store | str | Path | None = None,
    by: str | None = None,
    reason: str | None = None,
    allow_worse: bool = False,
) -> AliasMove:
    """Point ``alias`` at ``version``; refused for a version whose checklist failed, and, unless
    ``allow_worse``, for one worse than the current holder on the primary metric (the explicit
    second confirmation the app's checkbox and the CLI's ``--force-worse`` give).

    Raises:
        PromotionRefused: the version failed its checklist, is archived, or already holds the alias.
        WorseThanChampion: it is worse on the primary metric and ``allow_worse`` is not set.
    """
    store = store if isinstance(store, Store) else open_store(store)
    preview = promotion_preview(name, version, alias, store=store)
    if preview.refused is not None:
        raise PromotionRefused(preview.refused)
    if preview.worse and not allow_worse:
        raise WorseThanChampion(
            f"{name}: {preview.worse_message}; promoting a worse version needs an explicit confirmation",
            preview,
        )
    entry = store.move_alias(
        name, alias, preview.version, kind="promote", previous=preview.current, by=_who(store, by), reason=reason
    )
    return AliasMove(entry, preview.comparison, preview)


def alias_stack(history: list[dict[str, Any]]) -> list[int]:
    """The versions an alias has held, replaying promotions (push) and roll-backs (pop)."""
    stack: list[int] = []
    for entry in history:
        if entry["kind"] == "rollback" and stack:
            stack.pop()
        elif entry["kind"] == "promote" and entry["to_version"] is not None:
            previous = entry.get("from_version")
            if previous is not None and (not stack or stack[-1] != previous):
                stack.append(previous)  # the alias was set outside handoff before this move
            stack.append(entry["to_version"])
    return stack


def rollback(
    name: str,
    alias: str = "champion",
    *,
    store: Store | str | Path | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> AliasMove:
    """Move ``alias`` back to the version it held before the last promotion still in force.

    Raises:
        PromotionRefused: there is no earlier version to go back to.
    """
    store = store if isinstance(store, Store) else open_store(store)
    preview = rollback_preview(name, alias, store=store)
    if preview.refused is not None or preview.target is None:
        raise PromotionRefused(preview.refused or f"{name}: {alias!r} has no earlier version to roll back to")
    entry = store.move_alias(
        name, alias, preview.target, kind="rollback", previous=preview.current, by=_who(store, by), reason=reason
    )
    return AliasMove(entry, preview.comparison, preview)


def archive(
    name: str,
    version: int | str,
    *,
    store: Store | str | Path | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Hide a version from the default lists (app, ``handoff list``, compare's choices); never delete it.

    The version stays readable, exportable and verifiable; ``unarchive`` brings it back. Both are
    kept in the model's audit history. Returns that history entry.

    Raises:
        VersionNotFoundError: no such model or version.
        PromotionRefused: the version is the current champion (roll back or promote another first),
            or is archived already.
    """
    store = store if isinstance(store, Store) else open_store(store)
    record = store.get_version(name, version, verify=False)
    if record.archived:
        raise PromotionRefused(f"{name} version {record.version} is archived already")
    champion = store.alias_version(name, "champion")
    if champion is not None and champion.version == record.version:
        raise PromotionRefused(
            f"{name} version {record.version} is the champion and cannot be archived: "
            "promote another version (or roll back) first"
        )
    return store.set_archived(name, record.version, True, by=_who(store, by), reason=reason)


def unarchive(
    name: str,
    version: int | str,
    *,
    store: Store | str | Path | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Show an archived version in the default lists again; returns the audit-history entry.

    Raises:
        VersionNotFoundError: no such model or version.
        PromotionRefused: the version is not archived.
    """
    store = store if isinstance(store, Store) else open_store(store)
    record = store.get_version(name, version, verify=False)
    if not record.archived:
        raise PromotionRefused(f"{name} version {record.version} is not archived")
    return store.set_archived(name, record.version, False, by=_who(store, by), reason=reason)


def history(name: str, *, store: Store | str | Path | None = None) -> list[dict[str, Any]]:
    """Every alias move of a model, oldest first (the store must know the model)."""
    store = store if isinstance(store, Store) else open_store(store)
    store.require_model(name)  # an unknown model is a clear error, not an empty history
    return store.alias_history(name)


def history_rows(
    entries: list[dict[str, Any]], *, human: bool = True, now: datetime | None = None
) -> list[dict[str, str]]:
    """History entries (in their order) as table rows: time (``human_time``, or as recorded with
    ``human`` off), alias, kind, from and to (``none`` / ``v2``), by, reason: the same columns in
    the app and the CLI, so neither shows ``None`` or ``v-``. An entry that moves no alias (e.g. an
    archive) has no "from": its version is the "to"."""
    return [
        {
            "time": human_time(e.get("time"), now) if human else str(e.get("time") or ""),
            "alias": str(e.get("alias") or ""),
            "kind": str(e.get("kind") or ""),
            "from": version_label(e.get("from_version")) if e.get("alias") else "",
            "to": version_label(e.get("to_version")),
            "by": str(e.get("by") or ""),
            "reason": str(e.get("reason") or ""),
        }
        for e in entries
    ]
