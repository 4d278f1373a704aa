"""handoff: turn a Jupyter notebook into a versioned, tested model an ML engineer can deploy.

The public API. The notebook-side calls (``log_model``, ``log_metric``, ``log_metrics``) are
imported eagerly and are featherweight, because notebooks import this package inside their
kernel; everything else (MLflow, papermill) loads on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from handoff.errors import (
    BuildFailure,
    HandoffError,
    InputError,
    NotebookFormatError,
    OptionError,
    ParameterError,
    PromotionRefused,
    StoreError,
    TamperedError,
    VersionNotFoundError,
    WorseThanChampion,
)
from handoff.notebook_api import log_metric, log_metrics, log_model

__version__ = "0.1.0"

_LAZY = {
    "build": "handoff.build",
    "BuildOptions": "handoff.build",
    "BuildResult": "handoff.build",
    "BuildRecord": "handoff.record",
    "BuildEvent": "handoff.events",
    "CheckConfig": "handoff.check_config",
    "CheckReport": "handoff.checklist",
    "CheckResult": "handoff.checks",
    "check_version": "handoff.lifecycle",
    "export": "handoff.lifecycle",
    "verify_recorded": "handoff.lifecycle",
    "verify_store": "handoff.lifecycle",
    "promote": "handoff.lifecycle",
    "rollback": "handoff.lifecycle",
    "history": "handoff.lifecycle",
    "archive": "handoff.lifecycle",
    "unarchive": "handoff.lifecycle",
    "promotion_preview": "handoff.lifecycle",
    "rollback_preview": "handoff.lifecycle",
    "PromotionPreview": "handoff.lifecycle",
    "RollbackPreview": "handoff.lifecycle",
    "compare": "handoff.comparison",
    "Comparison": "handoff.comparison",
    "ExportResult": "handoff.lifecycle",
    "verify": "handoff.package",
    "VerifyReport": "handoff.package",
    "load_notebook": "handoff.inspection",
    "NotebookParameter": "handoff.inspection",
    "Store": "handoff.store",
    "VersionRecord": "handoff.store",
    "open_store": "handoff.store",
    "copy_store": "handoff.store_copy",
    "CopyReport": "handoff.store_copy",
    "Credentials": "handoff.credentials",
    "Job": "handoff.jobs",
    "JobNotFoundError": "handoff.jobs",
    "submit": "handoff.jobs",
    "resubmit": "handoff.jobs",
    "list_jobs": "handoff.jobs",
    "get_job": "handoff.jobs",
    "cancel": "handoff.jobs",
    "wait": "handoff.jobs",
    "result_of": "handoff.jobs",
    "sweep": "handoff.sweeps",
    "start_sweep": "handoff.sweeps",
    "sweep_status": "handoff.sweeps",
    "cancel_sweep": "handoff.sweeps",
    "SweepResult": "handoff.sweeps",
    "SweepPoint": "handoff.sweeps",
}

__all__ = [
    "BuildEvent",
    "BuildFailure",
    "BuildOptions",
    "BuildRecord",
    "BuildResult",
    "CheckConfig",
    "CheckReport",
    "CheckResult",
    "Comparison",
    "CopyReport",
    "Credentials",
    "ExportResult",
    "HandoffError",
    "InputError",
    "Job",
    "JobNotFoundError",
    "NotebookFormatError",
    "NotebookParameter",
    "OptionError",
    "ParameterError",
    "PromotionPreview",
    "PromotionRefused",
    "RollbackPreview",
    "Store",
    "StoreError",
    "SweepPoint",
    "SweepResult",
    "TamperedError",
    "VerifyReport",
    "VersionNotFoundError",
    "VersionRecord",
    "WorseThanChampion",
    "__version__",
    "archive",
    "build",
    "cancel",
    "cancel_sweep",
    "check_version",
    "compare",
    "copy_store",
    "export",
    "get_job",
    "history",
    "list_jobs",
    "load_notebook",
    "log_metric",
    "log_metrics",
    "log_model",
    "open_store",
    "promote",
    "promotion_preview",
    "resubmit",
    "result_of",
    "rollback",
    "rollback_preview",
    "start_sweep",
    "submit",
    "sweep",
    "sweep_status",
    "unarchive",
    "verify",
    "verify_recorded",
    "verify_store",
    "wait",
]

if TYPE_CHECKING:
    from handoff.build import BuildOptions, BuildResult, build
    from handoff.check_config import CheckConfig
    from handoff.checklist import CheckReport
    from handoff.checks import CheckResult
    from handoff.comparison import Comparison, compare
    from handoff.credentials import Credentials
    from handoff.events import BuildEvent
    from handoff.inspection import NotebookParameter, load_notebook
    from handoff.jobs import Job, JobNotFoundError, cancel, get_job, list_jobs, resubmit, result_of, submit, wait
    from handoff.lifecycle import (
        ExportResult,
        PromotionPreview,
        RollbackPreview,
        archive,
        check_version,
        export,
        history,
        promote,
        promotion_preview,
        rollback,
        rollback_preview,
        unarchive,
        verify_recorded,
        verify_store,
    )
    from handoff.package import VerifyReport, verify
    from handoff.record import BuildRecord
    from handoff.store import Store, VersionRecord, open_store
    from handoff.store_copy import CopyReport, copy_store
    from handoff.sweeps import SweepPoint, SweepResult, cancel_sweep, start_sweep, sweep, sweep_status


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'handoff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``handoff.build`` is the function, never the submodule of the same name.

    Importing a submodule makes it an attribute of its package, so the first ``from handoff.build
    import BuildOptions`` (or ``handoff.BuildOptions``) would shadow the function and a later
    ``handoff.build(...)`` would call a module. The submodule stays reachable by import.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "build" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
