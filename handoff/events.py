"""Progress events: what every stage of a build reports while it runs.

The CLI turns them into a progress bar, the app into a live progress view; both only read
these plain values, so a new face needs nothing more than a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

STAGES = ("inspect", "environment", "execute", "capture", "serialize", "check", "record", "package")


@dataclass(frozen=True)
class BuildEvent:
    """One step of progress.

    Attributes:
        stage: The stage reporting (one of ``STAGES``).
        message: A short human-readable line, e.g. the running cell's first line.
        done: Units finished in this stage (code cells started, for ``execute``).
        total: Units in this stage, when known.
        cell: 1-based position of the running cell in the source notebook.
        elapsed: Seconds since the build started.
    """

    stage: str
    message: str
    done: int | None = None
    total: int | None = None
    cell: int | None = None
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EventCallback = Callable[[BuildEvent], None]


def ignore_event(event: BuildEvent) -> None:
    """The default callback: progress goes nowhere."""
