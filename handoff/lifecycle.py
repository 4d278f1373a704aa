"""Operations on recorded versions: re-checking, exporting, verifying, promoting and rolling back.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import nbformat

from handoff.check_config import CheckConfig, override
from handoff.checklist import CheckContext, CheckReport, run_checklist, write_report
from handoff.errors import OptionError, PromotionRefused, StoreError, TamperedError
from handoff.fingerprint import sha256_file
from handoff.layout import EXECUTED_NOTEBOOK, FIDELITY_PATH, PACKAGE_DIR, SOURCE_NOTEBOOK
from handoff.package import VerifyReport, atomic_path, build_package, package_name, verify
from handoff.store import Store, VersionRecord, open_store
from handoff.uris import local_path


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


def _who(by: str | None) -> str:
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class AliasMove:
    """A promotion or roll-back that was made.

    Attributes:
        entry: The audit-history entry (model, alias, kind, from/to version, by, reason, time).
        comparison: The new version against the one the alias left, when there was one.
    """

    entry: dict[str, Any]
    comparison: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry, "comparison": self.comparison.to_dict() if self.comparison is not None else None}


def promote(
    name: str,
    version: int | str,
    alias: str = "champion",
    *,
    store: Store | str | Path | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> AliasMove:
    """Point ``alias`` at ``version``; refused for a version whose checklist failed.

    Raises:
        PromotionRefused: the version failed its checklist, or already holds the alias.
    """
    from handoff.comparison import compare

    store = store if isinstance(store, Store) else open_store(store)
    record = store.get_version(name, version)
    if record.archived:
        raise PromotionRefused(f"{name} version {record.version} is archived: unarchive it first")
    if record.status != "passed":
        raise PromotionRefused(
            f"{name} version {record.version} failed its checklist and can never be "
            f"promoted; see `handoff show {name} {record.version}`"
        )
    current = store.alias_version(name, alias)
    if current is not None and current.version == record.version:
        raise PromotionRefused(f"{name} version {record.version} is already {alias!r}")
    comparison = (
        compare(name, [current.version, record.version], baseline=current.version, store=store, include_code=False)
        if current is not None
        else None
    )
    entry = store.move_alias(
        name,
        alias,
        record.version,
        kind="promote",
        previous=current.version if current else None,
        by=_who(by),
        reason=reason,
    )
    return AliasMove(entry, comparison)


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
    stack = alias_stack(store.alias_history(name, alias))
    if len(stack) < 2:
        raise PromotionRefused(
            f"{name}: {alias!r} has no earlier version to roll back to"
            + (f" (it holds version {stack[-1]})" if stack else " (it was never set)")
        )
    entry = store.move_alias(name, alias, stack[-2], kind="rollback", previous=stack[-1], by=_who(by), reason=reason)
    return AliasMove(entry)


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
    return store.set_archived(name, record.version, True, by=_who(by), reason=reason)


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
    return store.set_archived(name, record.version, False, by=_who(by), reason=reason)


def history(name: str, *, store: Store | str | Path | None = None) -> list[dict[str, Any]]:
    """Every alias move of a model, oldest first (the store must know the model)."""
    store = store if isinstance(store, Store) else open_store(store)
    store.require_model(name)  # an unknown model is a clear error, not an empty history
    return store.alias_history(name)
