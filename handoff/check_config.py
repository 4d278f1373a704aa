"""Checklist configuration, from CLI flags, ``handoff.toml`` and the notebook's metadata.

Precedence, highest first: **command-line flags / API arguments > ``handoff.toml`` beside the
notebook (its ``[checks]`` table) > the notebook's metadata (``metadata.handoff.checks``) >
defaults**. Thresholds are merged per metric (a higher source replaces a metric's threshold, and
adds new ones); ``skip`` lists are united; every other key comes from the highest source that
sets it. Everything is validated before the build starts: a misspelled check id, key or a
malformed threshold is an ``OptionError``.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from handoff.errors import OptionError

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
#: Metrics for which lower is better, recognised by a ``_``-separated part of their name.
LOWER_IS_BETTER_PARTS = frozenset(
    {"loss", "logloss", "error", "err", "rmse", "mse", "mae", "mape", "rmsle", "medae", "brier", "latency", "time"}
)


@dataclass(frozen=True)
class Threshold:
    """A bound on a metric, e.g. ``accuracy >= 0.9``."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _THRESHOLD.match(text) if isinstance(text, str) else None
        if not match:
            raise OptionError(
                f"malformed threshold {text!r}: expected METRIC OP NUMBER with OP one of "
                f"{', '.join(_OPERATORS)}, e.g. 'accuracy>=0.9'"
            )
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def greater_is_better(metric: str, overrides: Mapping[str, bool] | None = None) -> bool:
    """Direction of a metric: from ``overrides``, else inferred from its name (rmse down, accuracy up)."""
    if overrides and metric in overrides:
        return bool(overrides[metric])
    return not (set(metric.lower().replace("-", "_").split("_")) & LOWER_IS_BETTER_PARTS)


@dataclass(frozen=True)
class CheckConfig:
    """The effective checklist configuration (stored with every version).

    Attributes:
        thresholds: Bounds on metrics (``metrics.thresholds``).
        gate: Compare against the ``champion`` version (``metrics.no_regression``).
        gate_metrics: Metrics the gate compares (default: every metric of the candidate).
        min_absolute_change: Required improvement over the champion, in the metric's units.
        min_relative_change: Required improvement over the champion, as a fraction of it.
        greater_is_better: Per-metric direction overrides.
        tests: The user's pytest files (``user.tests``).
        skip: Check ids not to run.
        reproduce: Run the optional ``reproducible`` check (a second run of the notebook).
        reproduce_tolerance: Absolute tolerance on metrics and predictions when reproducing.
        verify_env: Run the optional ``env.rebuilds`` check (the package's requirements installed
            alone into a new virtualenv, where the model must load and predict).
        latency_budget_ms: ``model.latency`` budget for the p95 of single-row predictions.
        size_budget_mb: ``model.size`` budget for the saved model.
        allow_secrets: Why likely secrets in the notebook are acceptable (``notebook.secrets`` then
            passes and reports the reason); command line / API only, never the notebook's own files.
        sources: Where the settings came from, highest precedence first.
    """

    thresholds: tuple[Threshold, ...] = ()
    gate: bool = False
    gate_metrics: tuple[str, ...] = ()
    min_absolute_change: float = 0.0
    min_relative_change: float = 0.0
    greater_is_better: dict[str, bool] = field(default_factory=dict)
    tests: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    reproduce: bool = False
    reproduce_tolerance: float = 1e-6
    verify_env: bool = False
    latency_budget_ms: float = 100.0
    size_budget_mb: float = 500.0
    allow_secrets: str | None = None
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = [str(t) for t in self.thresholds]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckConfig:
        return _from_mapping(data, "stored configuration", base=cls())


_KEYS = {f for f in CheckConfig.__dataclass_fields__ if f != "sources"}


def _from_mapping(data: Mapping[str, Any], origin: str, base: CheckConfig) -> CheckConfig:
    """Apply one source's settings on top of ``base``, validating every key and value."""
    from handoff import checks

    unknown = sorted(set(data) - _KEYS - {"sources"})
    if unknown:
        raise OptionError(
            f"{origin}: unknown checklist setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "sources":
            continue
        if key == "thresholds":
            items = value.items() if isinstance(value, Mapping) else ((None, v) for v in _as_list(value, key, origin))
            parsed = [Threshold.parse(f"{metric}{bound}" if metric else bound) for metric, bound in items]
            merged = {t.metric: t for t in base.thresholds} | {t.metric: t for t in parsed}
            changes[key] = tuple(merged.values())
        elif key == "skip":
            ids = _as_list(value, key, origin)
            for check_id in ids:
                checks.get(check_id)
            changes[key] = tuple(dict.fromkeys([*base.skip, *ids]))
        elif key in ("tests", "gate_metrics"):
            changes[key] = tuple(str(v) for v in _as_list(value, key, origin))
        elif key in ("gate", "reproduce", "verify_env"):
            if not isinstance(value, bool):
                raise OptionError(f"{origin}: {key} must be true or false, got {value!r}")
            changes[key] = value
        elif key == "allow_secrets":
            if value is None:  # a stored configuration without a waiver
                continue
            if not isinstance(value, str) or not value.strip():
                raise OptionError(f"{origin}: allow_secrets must be a reason (non-empty text), got {value!r}")
            changes[key] = value.strip()
        elif key == "greater_is_better":
            if not isinstance(value, Mapping) or not all(isinstance(v, bool) for v in value.values()):
                raise OptionError(f"{origin}: greater_is_better must map metric names to true/false")
            changes[key] = {**base.greater_is_better, **value}
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise OptionError(f"{origin}: {key} must be a non-negative number, got {value!r}")
            changes[key] = float(value)
    return replace(base, **changes, sources=(origin, *base.sources) if changes else base.sources)


def _as_list(value: Any, key: str, origin: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise OptionError(f"{origin}: {key} must be a list, got {value!r}")


def resolve_config(
    *,
    cli: Mapping[str, Any] | None = None,
    notebook_metadata: Mapping[str, Any] | None = None,
    notebook_dir: Path | None = None,
) -> CheckConfig:
    """The effective configuration: defaults < notebook metadata < handoff.toml < CLI/API.

    Test paths are relative to the notebook's folder in the metadata and ``handoff.toml``, and to
    the current directory on the command line.
    """
    config = CheckConfig()
    section = (notebook_metadata or {}).get("handoff", {})
    if isinstance(section, Mapping) and section.get("checks"):
        table = _no_self_allowing(_absolute_tests(section["checks"], notebook_dir or Path.cwd()), "notebook metadata")
        config = _from_mapping(table, "notebook metadata (handoff.checks)", config)
    toml_path = notebook_dir / "handoff.toml" if notebook_dir else None
    if toml_path is not None and toml_path.is_file():
        try:
            table = tomllib.loads(toml_path.read_text()).get("checks", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise OptionError(f"{toml_path}: not valid TOML: {exc}") from exc
        config = _from_mapping(
            _no_self_allowing(_absolute_tests(table, toml_path.parent), str(toml_path)), str(toml_path), config
        )
    given = _with_test_files({k: v for k, v in (cli or {}).items() if v not in (None, (), [], {})})
    if given:
        config = _from_mapping(_absolute_tests(given, Path.cwd()), "command line", config)
    missing = [t for t in config.tests if not Path(t).is_file()]
    if missing:
        raise OptionError(f"user test file not found: {', '.join(missing)}")
    return config


def override(config: CheckConfig, settings: Mapping[str, Any] | None, origin: str = "command line") -> CheckConfig:
    """``config`` with ``settings`` applied on top (e.g. a new threshold for a re-check)."""
    given = _with_test_files({k: v for k, v in (settings or {}).items() if v not in (None, (), [], {})})
    if not given:
        return config
    config = _from_mapping(_absolute_tests(given, Path.cwd()), origin, config)
    missing = [t for t in config.tests if not Path(t).is_file()]
    if missing:
        raise OptionError(f"user test file not found: {', '.join(missing)}")
    return config


def write_test_files(files: Mapping[str, bytes]) -> list[str]:
    """Uploaded pytest files (name to bytes, e.g. from the app) written by the library into a private
    temp dir, so a build request carries plain data, not a directory that dies with the page that
    made it. The dir is swept once the process that wrote it is gone (``workdirs``)."""
    from handoff.workdirs import private_dir

    if not isinstance(files, Mapping) or not all(isinstance(v, bytes) for v in files.values()):
        raise OptionError("test_files must map file names to their bytes")
    directory = private_dir("tests")
    paths = []
    for name, content in files.items():
        base = Path(str(name)).name
        if not base.endswith(".py") or base in ("", ".py") or base.startswith("."):
            raise OptionError(f"a test file must be a .py file, got {name!r}")
        (directory / base).write_bytes(content)
        paths.append(str(directory / base))
    return paths


def _with_test_files(given: dict[str, Any]) -> dict[str, Any]:
    """``test_files`` (name to bytes) replaced by the paths the library wrote them to, added to ``tests``."""
    files = given.pop("test_files", None)
    if files:
        given["tests"] = [*_as_list(given.get("tests", []), "tests", "command line"), *write_test_files(files)]
    return given


def _no_self_allowing(table: dict[str, Any], origin: str) -> dict[str, Any]:
    """The notebook's own files must not waive the secrets check: only the person building may."""
    if "allow_secrets" in table:
        raise OptionError(f"{origin}: allow_secrets can only be given on the command line or in the API call")
    return table


def _absolute_tests(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    table = dict(table)
    if "tests" in table:
        table["tests"] = [str((base / t).resolve()) for t in _as_list(table["tests"], "tests", str(base))]
    return table
