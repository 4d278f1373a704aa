"""The checklist's building blocks: checks, their results, and the registry.

Each module in this package defines one ``Check`` (an id, a title, a severity, a scope and a
function) and registers it, so adding a check is adding one file. Checks of scope ``build`` look
at what the build recorded (notebooks, capture report, metrics, requirements); checks of scope
``artifact`` run in a fresh Python process against the saved MLflow model, as production will
(see ``handoff.checks.runner``). A failing check is data (a ``CheckResult``), not an exception.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BLOCKING, WARNING = "blocking", "warning"
PASSED, FAILED, WARNED, SKIPPED = "passed", "failed", "warning", "skipped"
#: The build's stages up to the checklist, in order: a check needs one of them to have succeeded.
STAGES = ("inspect", "environment", "execute", "capture", "serialize")


@dataclass(frozen=True)
class Outcome:
    """What a check function returns: passed, not passed, or skipped, with a one-line message."""

    ok: bool | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def passed(message: str, **details: Any) -> Outcome:
    return Outcome(True, message, details)


def failed(message: str, **details: Any) -> Outcome:
    return Outcome(False, message, details)


def skipped(message: str, **details: Any) -> Outcome:
    return Outcome(None, message, details)


@dataclass(frozen=True)
class Check:
    """One item of the checklist.

    Attributes:
        id: Stable identifier, e.g. ``model.loads`` (used in config, reports and JUnit).
        title: What it verifies, for people.
        severity: ``blocking`` (a failure fails the build) or ``warning``.
        scope: ``build`` (runs in the build's process) or ``artifact`` (fresh process, saved model).
        run: The function: context in, ``Outcome`` out.
        order: Position in reports.
        optional: Off unless asked for (it costs a second run of the notebook).
        needs: The last build stage whose output it reads (``STAGES``); when the build failed at
            that stage or before it, the check is skipped, not failed: one root cause, one failure.
            Empty: ``serialize`` for artifact checks, ``capture`` for build checks.
        reports: The stage whose failure this check is the root cause of (``notebook.executed``
            for ``execute``): it keeps the build's error when that stage failed.
        early: Work on the executed notebook alone that a build starts as soon as the run ends,
            beside capture and serialize; ``run`` takes its result with ``CheckContext.early_result``.
    """

    id: str
    title: str
    severity: str
    scope: str
    run: Callable[[Any], Outcome]
    order: int
    optional: bool = False
    needs: str = ""
    reports: str = ""
    early: Callable[[Any], Any] | None = None

    @property
    def needed_stage(self) -> str:
        return self.needs or ("serialize" if self.scope == "artifact" else "capture")

    def blocked_by(self, failed_stage: str | None) -> bool:
        """Whether a build that failed in ``failed_stage`` leaves this check nothing to look at."""
        if failed_stage not in STAGES or self.reports == failed_stage:
            return False
        return STAGES.index(self.needed_stage) >= STAGES.index(failed_stage)


@dataclass(frozen=True)
class CheckResult:
    """The result of one check.

    Attributes:
        id: The check's id.
        title: The check's title.
        status: ``passed``, ``failed`` (blocking), ``warning`` (non-blocking failure) or ``skipped``.
        severity: ``blocking`` or ``warning``.
        message: One line, with the measured figure where there is one.
        details: Anything else worth keeping (figures, offending items).
        seconds: How long the check took.
    """

    id: str
    title: str
    status: str
    severity: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def from_outcome(cls, check: Check, outcome: Outcome, seconds: float = 0.0) -> CheckResult:
        if outcome.ok is None:
            status = SKIPPED
        elif outcome.ok:
            status = PASSED
        else:
            status = FAILED if check.severity == BLOCKING else WARNED
        return cls(check.id, check.title, status, check.severity, outcome.message, outcome.details, round(seconds, 4))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            **{k: data[k] for k in ("id", "title", "status", "severity", "message", "details", "seconds") if k in data}
        )


_REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add a check to the registry (each check module calls this at import)."""
    _REGISTRY[check.id] = check
    return check


def all_checks() -> list[Check]:
    """Every registered check, in report order."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in ("runner",):
            importlib.import_module(f"{__name__}.{module.name}")
    return sorted(_REGISTRY.values(), key=lambda c: (c.order, c.id))


def check_ids() -> list[str]:
    return [c.id for c in all_checks()]


def get(check_id: str) -> Check:
    """The check called ``check_id``; an unknown id fails listing the known ones."""
    from handoff.errors import OptionError

    known = {c.id: c for c in all_checks()}
    if check_id not in known:
        raise OptionError(f"unknown check {check_id!r}; available checks: {', '.join(known)}")
    return known[check_id]
