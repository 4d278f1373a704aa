"""Operations on recorded versions: re-running the checklist (and, later, promotion).

A version is immutable: a re-check never changes its status or its original report; the new
report is recorded beside the original, with the time it was made.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

import nbformat

from handoff.check_config import CheckConfig, override
from handoff.checklist import CheckContext, CheckReport, run_checklist
from handoff.store import Store, open_store


def model_dir_of(store: Store, model_uri: str, scratch: Path) -> Path:
    """A local directory holding a version's MLflow model (in place for a local store)."""
    if model_uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(model_uri).path))
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(scratch),
                                                    tracking_uri=store.uri))


def check_version(name: str, version: int | str, *, store: Store | str | Path | None = None,
                  checks: Mapping[str, Any] | None = None) -> CheckReport:
    """Re-run the checklist on a stored version with its recorded settings plus ``checks``.

    The report is recorded beside the original (``checks/rechecks/<time>/``) and returned.
    ``reproducible`` is skipped: the build's working state no longer exists.
    """
    store = store if isinstance(store, Store) else open_store(store)
    record = store.get_version(name, version)
    details = record.details
    config = override(CheckConfig.from_dict((details.get("checks") or {}).get("config", {})), checks)
    assert record.run_id is not None

    def notebook(path: str) -> nbformat.NotebookNode:
        return nbformat.reads(store.read_artifact(record.run_id, path).decode(), as_version=4)

    with tempfile.TemporaryDirectory(prefix="handoff-recheck-") as scratch:
        capture = details.get("capture") or {}
        context = CheckContext(
            name=name, source_notebook=notebook("notebook/source.ipynb"),
            executed_notebook=notebook("notebook/executed.ipynb"), error=details.get("error"), capture=capture,
            metrics=details.get("metrics", {}), model_dir=model_dir_of(store, record.model_uri, Path(scratch)),
            champion=store.alias_version(name, "champion") if config.gate else None, config=config,
            manifest={"name": name, "version": record.version, "params": details.get("params", {}),
                      "metrics": details.get("metrics", {}), "model": capture.get("model"),
                      "serialization": details.get("serialization"), "environment": capture.get("environment"),
                      "data_files": capture.get("data_files", [])},
        )
        report = run_checklist(context)
        out = Path(scratch) / "report"
        report.write(out)
        store.add_check_report(record.run_id, out)
    return report
