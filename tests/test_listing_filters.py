"""Finding versions among many: the metric-range filter (``MetricRange`` in ``filter_versions``, the
CLI's ``--metric/--min/--max``) and the store's revision, which the app's cached listing is keyed on
so that a write by any process is seen on the next read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.cli import main
from handoff.errors import OptionError
from handoff.store import MetricRange, Store, VersionRecord, filter_versions, store_revision
from versions_fixture import copy_store, versions_template


def _version(number: int, status: str = "passed", **metrics: float) -> VersionRecord:
    return VersionRecord(
        name="m",
        version=number,
        status=status,
        created=None,
        run_id=None,
        metrics=dict(metrics),
        aliases=(),
        model_uri="",
    )


VERSIONS = [
    _version(1, accuracy=0.85, f1=0.8),
    _version(2, accuracy=0.9),
    _version(3, "failed", accuracy=0.91),
    _version(4, accuracy=0.95),
    _version(5, f1=0.99),  # no accuracy
    _version(6, accuracy=float("nan")),
]


def _numbers(versions: list[VersionRecord]) -> list[int]:
    return [v.version for v in versions]


def test_metric_range_keeps_values_between_its_bounds_both_included() -> None:
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("accuracy", 0.9, 0.95))) == [2, 3, 4]
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("accuracy", 0.9001, 0.9499))) == [3]
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("accuracy", low=0.91))) == [3, 4]
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("accuracy", high=0.9))) == [1, 2]
    # no bound at all: every version that reported the metric (a missing or NaN value is in no range)
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("accuracy"))) == [1, 2, 3, 4]
    assert _numbers(filter_versions(VERSIONS, metric_range=MetricRange("f1", 0.9))) == [5]
    assert filter_versions(VERSIONS, metric_range=MetricRange("loss")) == []


def test_metric_range_combines_with_the_other_filters() -> None:
    ranged = MetricRange("accuracy", 0.9, 1.0)
    assert _numbers(filter_versions(VERSIONS, status="passed", metric_range=ranged)) == [2, 4]
    assert _numbers(filter_versions(VERSIONS, status="failed", metric_range=ranged)) == [3]
    assert _numbers(filter_versions(VERSIONS, search="no such text", metric_range=ranged)) == []


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(OptionError, match=r"min 0\.95 is above max 0\.9"):
        MetricRange("accuracy", 0.95, 0.9)


@pytest.fixture
def many(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """iris v1..v5 and other v1..v2 (tests/versions_fixture.py), accuracies 0.91, 0.42, 0.97, 0.95 (iris
    v2..v5), 0.80 and 0.85 (other)."""
    return copy_store(versions_template(tmp_path_factory.getbasetemp()), tmp_path / "store")


def test_cli_lists_versions_within_a_metric_range(many: Store, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(many.local_paths()[0])
    assert main(["list", "--store", home, "--metric", "accuracy", "--min", "0.9", "--max", "0.96", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    expected = [
        (v.name, v.version)
        for v in many.list_versions()
        if "accuracy" in v.metrics and 0.9 <= v.metrics["accuracy"] <= 0.96
    ]
    assert ("iris", 2) in expected and ("iris", 4) not in expected and ("iris", 3) not in expected
    assert sorted((v["name"], v["version"]) for v in listed) == sorted(expected)
    assert all(0.9 <= v["metrics"]["accuracy"] <= 0.96 for v in listed)

    assert main(["versions", "other", "--store", home, "--metric", "accuracy", "--min", "0.82", "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [2]
    assert main(["list", "--store", home, "--metric", "accuracy", "--min", "0.99"]) == 0
    assert "no versions match" in capsys.readouterr().out


def test_cli_refuses_bounds_without_a_metric_and_an_empty_range(
    many: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(many.local_paths()[0])
    assert main(["list", "--store", home, "--min", "0.9"]) == 2
    assert "--min and --max bound a metric: name it with --metric NAME" in capsys.readouterr().err
    assert main(["list", "--store", home, "--metric", "accuracy", "--min", "0.9", "--max", "0.8"]) == 2
    assert "min 0.9 is above max 0.8" in capsys.readouterr().err


def test_revision_changes_with_every_write_by_any_process(store: Store) -> None:
    home = store.local_paths()[0]
    before = store_revision(store)
    assert before is not None and store_revision(store) == before  # reading changes nothing
    store.list_versions()
    assert store_revision(store) == before
    for step in range(3):  # another process writes: each write is seen, however quick
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from handoff.store import Store; Store({str(home)!r}).client.create_registered_model('m{step}')",
            ],
            check=True,
        )
        after = store_revision(Store(home))
        assert after != before, step
        before = after
    store.client.set_registered_model_tag("m0", "k", "v")  # this process, a write that changes no size
    assert store_revision(store) != before


def test_revision_of_a_server_store_is_unknown() -> None:
    assert store_revision(Store("http://127.0.0.1:9")) is None  # never cached: read every time
