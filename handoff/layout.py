"""Where things live in a build's artifacts (one MLflow run per build): every path, in one place.

The staging folder a build fills, the run's artifacts and (mostly) the package share this layout.
"""

from __future__ import annotations

MODEL_DIR = "model"
SOURCE_NOTEBOOK = "notebook/source.ipynb"
EXECUTED_NOTEBOOK = "notebook/executed.ipynb"
REPORT_HTML = "notebook/report.html"
CHECKS_DIR = "checks"
CHECK_REPORT = "checks/report.json"
CHECK_JUNIT = "checks/junit.xml"
#: Re-checks of a stored version, one folder per re-check (``checks/rechecks/<time>/report.json``).
RECHECKS_DIR = "checks/rechecks"
RECORD_PATH = "handoff/record.json"
DIGESTS_PATH = "handoff/digests.json"
#: The held-out rows and in-kernel predictions ``model.fidelity`` checks the artifact against.
FIDELITY_PATH = "handoff/fidelity.pkl"
#: The notebook's own MLflow run, imported: ``run.json`` and its ``artifacts/``.
NOTEBOOK_RUN_DIR = "notebook_run"
LOGS_DIR = "logs"
KERNEL_LOG = "logs/kernel.log"
CHECKS_LOG = "logs/checks.log"
#: The stored package (``package/<model>-v<version>.zip`` and its ``.sha256``).
PACKAGE_DIR = "package"
