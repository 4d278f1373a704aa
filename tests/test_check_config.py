"""Checklist configuration: parsing, validation before the build, and precedence of sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handoff.check_config import CheckConfig, Threshold, greater_is_better, override, resolve_config
from handoff.errors import OptionError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("accuracy>=0.9", ("accuracy", ">=", 0.9)),
        (" rmse <= 55 ", ("rmse", "<=", 55.0)),
        ("val.loss<1e-2", ("val.loss", "<", 0.01)),
        ("r2 > -0.5", ("r2", ">", -0.5)),
        ("f1==1", ("f1", "==", 1.0)),
    ],
)
def test_thresholds_parse(text: str, expected: tuple) -> None:
    t = Threshold.parse(text)
    assert (t.metric, t.op, t.value) == expected


@pytest.mark.parametrize("text", ["accuracy", "accuracy >= high", "=> 3", "accuracy => 0.9", "accuracy >= 0.9 and"])
def test_malformed_thresholds_are_clear_errors(text: str) -> None:
    with pytest.raises(OptionError, match="malformed threshold"):
        Threshold.parse(text)


def test_metric_direction_is_inferred_and_overridable() -> None:
    assert greater_is_better("accuracy") and greater_is_better("test_f1") and greater_is_better("r2")
    assert not greater_is_better("rmse") and not greater_is_better("val_loss") and not greater_is_better("mae")
    assert greater_is_better("rmse", {"rmse": True})


def test_unknown_check_id_and_setting_fail_before_the_build() -> None:
    with pytest.raises(OptionError, match=re.escape("unknown check 'model.lods'; available checks: notebook.executed")):
        resolve_config(cli={"skip": ["model.lods"]})
    with pytest.raises(OptionError, match="unknown checklist setting threshold;"):
        resolve_config(cli={"threshold": ["a>1"]})
    with pytest.raises(OptionError, match="gate must be true or false"):
        resolve_config(cli={"gate": "yes"})
    with pytest.raises(OptionError, match="user test file not found"):
        resolve_config(cli={"tests": ["/nonexistent/test_x.py"]})


def test_precedence_cli_over_toml_over_notebook_metadata(tmp_path: Path) -> None:
    (tmp_path / "handoff.toml").write_text(
        '[checks]\nthresholds = ["accuracy >= 0.8", "f1 >= 0.7"]\nlatency_budget_ms = 50\nskip = ["model.size"]\n'
        'tests = ["test_model.py"]\n'
    )
    (tmp_path / "test_model.py").write_text("def test_ok():\n    pass\n")
    metadata = {
        "handoff": {
            "checks": {
                "thresholds": {"accuracy": ">= 0.5", "rmse": "<= 9"},
                "gate": True,
                "latency_budget_ms": 10,
                "size_budget_mb": 1,
            }
        }
    }
    config = resolve_config(
        cli={"thresholds": ["accuracy>=0.95"], "skip": ["model.latency"]},
        notebook_metadata=metadata,
        notebook_dir=tmp_path,
    )
    assert sorted(map(str, config.thresholds)) == ["accuracy >= 0.95", "f1 >= 0.7", "rmse <= 9"]
    assert config.gate is True  # only the notebook sets it
    assert config.latency_budget_ms == 50  # toml beats notebook metadata
    assert config.size_budget_mb == 1
    assert config.skip == ("model.size", "model.latency")  # skips are united
    assert config.tests == (str(tmp_path / "test_model.py"),)  # relative to the notebook's folder
    assert config.sources == ("command line", str(tmp_path / "handoff.toml"), "notebook metadata (handoff.checks)")


def test_stored_config_round_trips_and_overrides_add_on_top() -> None:
    config = resolve_config(cli={"thresholds": ["accuracy>=0.9"], "gate": True, "skip": ["model.size"]})
    again = CheckConfig.from_dict(config.to_dict())
    assert again.thresholds == config.thresholds and again.gate and again.skip == ("model.size",)
    more = override(again, {"thresholds": ["accuracy>=0.99", "f1>0.5"]})
    assert sorted(map(str, more.thresholds)) == ["accuracy >= 0.99", "f1 > 0.5"]


def test_bad_toml_is_an_option_error(tmp_path: Path) -> None:
    (tmp_path / "handoff.toml").write_text("[checks\n")
    with pytest.raises(OptionError, match="not valid TOML"):
        resolve_config(notebook_dir=tmp_path)
