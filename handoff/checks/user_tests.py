"""user.tests: the user's own pytest files, run against the saved artifact with the fixtures
``model`` (the loaded model), ``input_example`` and ``manifest``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register, skipped

if TYPE_CHECKING:
    from handoff.checks.runner import ArtifactContext


def _plugin(ctx: Any) -> Any:
    """A pytest plugin providing the artifact fixtures and recording each test's outcome."""
    import pytest

    class Plugin:
        def __init__(self) -> None:
            self.outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}

        @pytest.fixture
        def model(self) -> Any:
            return ctx.model

        @pytest.fixture
        def input_example(self) -> Any:
            return ctx.input_example

        @pytest.fixture
        def manifest(self) -> dict[str, Any]:
            record: dict[str, Any] = ctx.manifest
            return record

        def pytest_runtest_logreport(self, report: Any) -> None:
            if report.when == "call" or report.outcome != "passed":
                bucket = self.outcomes.get(report.outcome)
                if bucket is not None and report.nodeid not in bucket:
                    bucket.append(report.nodeid)

    return Plugin()


def run(ctx: ArtifactContext) -> Outcome:
    if not ctx.config.tests:
        return skipped("no user tests given ({option:tests})")
    import pytest

    plugin = _plugin(ctx)
    code = pytest.main(
        [
            *ctx.config.tests,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--no-header",
            "-W",
            "ignore::DeprecationWarning",
        ],
        plugins=[plugin],
    )
    done = plugin.outcomes
    summary = f"{len(done['passed'])} passed, {len(done['failed'])} failed"
    if done["failed"] or code not in (0, 5):
        return failed(f"user tests: {summary} (failed: {', '.join(done['failed'][:5]) or f'exit code {code}'})", **done)
    if not done["passed"]:
        return failed("user tests: no test ran", **done)
    return passed(f"user tests: {summary}", **done)


register(Check("user.tests", "User's tests pass against the artifact", BLOCKING, "artifact", run, order=80))
