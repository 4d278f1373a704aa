"""Values in MLflow search filters are quoted so MLflow finds exactly them (MLflow has no escapes)."""

from __future__ import annotations

import pytest

import handoff
from handoff.cli import main
from handoff.errors import OptionError
from handoff.store import AUDIT_EXPERIMENT, Store, _quoted
from helpers import local_path

AWKWARD = ["o'brien", 'say "hi"', "back\\slash", "50% off_x", "a = 'b' or 1=1", "tab\tand\nnewline"]


@pytest.mark.parametrize(
    "value, literal",
    [("champion", "'champion'"), ("o'brien", '"o\'brien"'), ('say "hi"', "'say \"hi\"'"), ("a\\b", "'a\\b'")],
)
def test_quoted_picks_a_quote_the_value_does_not_contain(value: str, literal: str) -> None:
    assert _quoted(value) == literal


@pytest.mark.parametrize("value", ["both ' and \"", "ends in a backslash\\"])
def test_quoted_refuses_what_a_filter_cannot_express(value: str) -> None:
    with pytest.raises(OptionError, match="cannot be searched for"):
        _quoted(value)


def test_quoted_values_match_exactly_in_compound_filters(store: Store) -> None:
    """Against MLflow's real parser: each awkward value finds its own run and only it, also when another
    clause follows (where a wrongly ended literal would swallow the rest)."""
    client = store.client
    runs = {
        value: client.create_run(store.experiment_id, tags={"k": value, "other": "x"}).info.run_id for value in AWKWARD
    }
    for value, run_id in runs.items():
        query = f"tags.`k` = {_quoted(value)} and tags.`other` = {_quoted('x')}"
        found = client.search_runs([store.experiment_id], filter_string=query)
        assert [r.info.run_id for r in found] == [run_id], (value, query)


def test_alias_history_finds_an_alias_with_a_quote(store: Store) -> None:
    """MLflow itself refuses such an alias name, but the audit history is plain tags: whatever is there
    is found by its exact value, and a quote in it no longer breaks the query."""
    experiment = store._audit_experiment()
    for alias, version in (("o'brien", 1), ("champion", 2)):
        run = store.client.create_run(
            experiment,
            tags={
                "handoff.audit.model": "m",
                "handoff.audit.alias": alias,
                "handoff.audit.kind": "promote",
                "handoff.audit.from_version": "",
                "handoff.audit.to_version": str(version),
            },
        )
        store.client.set_terminated(run.info.run_id, "FINISHED")
    assert store.client.get_experiment_by_name(AUDIT_EXPERIMENT) is not None
    assert [e["to_version"] for e in store.alias_history("m", "o'brien")] == [1]
    assert [e["alias"] for e in store.alias_history("m")] == ["o'brien", "champion"]
    assert store.alias_history("o'brien") == [] and store.list_builds('say "hi"') == []


def test_cli_alias_with_a_quote_is_refused_cleanly_and_history_still_works(
    iris_notebook, store: Store, capsys: pytest.CaptureFixture
) -> None:
    from helpers import build

    assert build(iris_notebook, store).ok
    home = str(local_path(store.artifact_root).parent)
    assert main(["promote", "iris", "1", "--alias", "o'brien", "--store", home]) == 2
    assert "Invalid alias name: 'o'brien'" in capsys.readouterr().err
    assert main(["rollback", "iris", "--alias", "o'brien", "--store", home]) == 2
    assert '"o\'brien" has no earlier version to roll back to (it was never set)' in capsys.readouterr().err
    assert main(["promote", "iris", "1", "--store", home]) == 0
    assert main(["history", "iris", "--store", home, "--json"]) == 0
    assert '"alias": "champion"' in capsys.readouterr().out
    assert main(["history", "o'brien", "--store", home]) == 2
    assert 'no model named "o\'brien"' in capsys.readouterr().err
    assert handoff.history("iris", store=store)[0]["alias"] == "champion"
