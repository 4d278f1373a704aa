"""From a laptop to the team: copy a store (usually the embedded one) into another (a team server).

Every model's versions are recorded again in order, so they keep their numbers (MLflow numbers a
model's versions 1, 2, ... as they are created), with their artifacts, record, checks, re-check
reports, package and original author; then the aliases and the audit history (who and when kept).
Each copied run carries ``handoff.copied_from`` (the source run), so a second run skips what is
there: copying twice copies nothing twice. Each version is verified on arrival: the destination's
tamper check must pass and its package must have the source's sha256, or the copy stops there.
Failed builds (runs without a version) are not copied: they are not part of any model's history.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handoff.errors import InputError, StoreError, TamperedError
from handoff.layout import DIGESTS_PATH, PACKAGE_DIR, RECHECKS_DIR
from handoff.package import package_name
from handoff.store import ARCHIVED_TAG, Store, VersionRecord

COPIED_TAG = "handoff.copied_from"  # on a copied run: the source run's id


class CopyConflictError(InputError):
    """The destination holds a version under a number the copy needs, and it is not that version's copy."""


@dataclass
class CopyReport:
    """What a copy did, per model: versions copied and skipped (already there), aliases, history."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model(self, name: str) -> dict[str, Any]:
        return self.models.setdefault(name, {"copied": [], "skipped": [], "aliases": {}, "history_added": 0})

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models}


def copy_store(
    source: Store, destination: Store, *, on_version: Callable[[str, int, str], None] | None = None
) -> CopyReport:
    """Copy every model of ``source`` into ``destination`` (see the module docstring).

    ``on_version(model, version, "copied" | "skipped")`` is called as it goes.

    Raises:
        CopyConflictError: the destination has another version under a number being copied.
        TamperedError: a copied version does not verify on arrival.
        PermissionDeniedError: the destination's user is not a releaser (aliases and history need it).
    """
    destination.require_role("releaser", "copy a store into")
    report = CopyReport()
    for name in source.list_models():
        entry = report.model(name)
        there = _copies_in(destination, name)
        for listed in sorted(source.list_versions(name), key=lambda v: v.version):
            if listed.version in there or max(there, default=0) != listed.version - 1:
                if there.get(listed.version) != listed.run_id:
                    raise CopyConflictError(
                        f"{destination.uri} already has version {listed.version} of {name}, and it is not the copy of "
                        f"{source.uri}'s version {listed.version}: nothing more is copied"
                    )
                entry["skipped"].append(listed.version)
                if on_version:
                    on_version(name, listed.version, "skipped")
                continue
            _copy_version(source, destination, listed)
            there[listed.version] = listed.run_id
            entry["copied"].append(listed.version)
            if on_version:
                on_version(name, listed.version, "copied")
        entry["aliases"] = _copy_aliases(source, destination, name)
        entry["history_added"] = _copy_history(source, destination, name)
    return report


def _copies_in(destination: Store, name: str) -> dict[int, str | None]:
    """The destination's versions of ``name``: number to the source run it was copied from (``None``:
    not a copy)."""
    try:
        listed = destination.list_versions(name)
    except StoreError:  # no such model there yet
        return {}
    return {v.version: destination.run_tags(v.run_id).get(COPIED_TAG) if v.run_id else None for v in listed}


def _copy_version(source: Store, destination: Store, listed: VersionRecord) -> None:
    """Record one version again, then verify it where it arrived."""
    if listed.run_id is None:
        raise StoreError(f"version {listed.version} of {listed.name} has no run in {source.uri}: it cannot be copied")
    full = source.get_version(listed.name, listed.version)  # the source must verify before it travels
    assert full.record is not None
    sha256 = source.package_sha256(listed.run_id)
    with tempfile.TemporaryDirectory(prefix="handoff-copy-") as tmp:
        artifacts = source.download_artifacts(listed.run_id, "", Path(tmp) / "source")
        staging = Path(tmp) / "staging"
        shutil.copytree(artifacts, staging, ignore=shutil.ignore_patterns(PACKAGE_DIR, RECHECKS_DIR))
        (staging / DIGESTS_PATH).unlink(missing_ok=True)  # made again over the same files
        recorded = destination.record_build(
            staging=staging,
            record=full.record,
            register=True,
            author=listed.author,
            tags={COPIED_TAG: listed.run_id},
        )
        if recorded.version != listed.version:
            raise CopyConflictError(
                f"{listed.name} v{listed.version} arrived as v{recorded.version} in {destination.uri}: its versions "
                "were not copies of this store's; the copy stopped"
            )
        run_id = recorded.run_id
        package = next((artifacts / PACKAGE_DIR).glob("*.zip"), None) if (artifacts / PACKAGE_DIR).is_dir() else None
        if package is not None and sha256:
            destination.log_package(run_id, _copy_to(package, Path(tmp) / "package"), sha256)
        for report in sorted((artifacts / RECHECKS_DIR).glob("*")) if (artifacts / RECHECKS_DIR).is_dir() else ():
            destination.add_check_report(run_id, report, report.name)
    if listed.archived:
        destination.client.set_model_version_tag(listed.name, str(listed.version), ARCHIVED_TAG, "true")
    _verify_arrival(destination, listed, sha256)


def _copy_to(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(path, folder / path.name))


def _verify_arrival(destination: Store, listed: VersionRecord, sha256: str | None) -> None:
    arrived = destination.get_version(listed.name, listed.version)  # the destination's own tamper check
    if sha256 is None or arrived.run_id is None:
        return
    data = destination.read_artifact(arrived.run_id, f"{PACKAGE_DIR}/{package_name(listed.name, listed.version)}.zip")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise TamperedError(listed.name, listed.version, [f"the package that arrived in {destination.uri} differs"])


def _copy_aliases(source: Store, destination: Store, name: str) -> dict[str, int]:
    aliases = {alias: v.version for v in source.list_versions(name) for alias in v.aliases}
    for alias, version in aliases.items():
        destination.client.set_registered_model_alias(name, alias, str(version))
    return aliases


def _copy_history(source: Store, destination: Store, name: str) -> int:
    def key(entry: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(entry.get(k) or "") for k in ("time", "alias", "kind", "from_version", "to_version", "by"))

    there = {key(e) for e in destination.alias_history(name)}
    added = 0
    for entry in source.alias_history(name):
        if key(entry) not in there:
            destination.copy_history_entry(entry)
            added += 1
    return added
