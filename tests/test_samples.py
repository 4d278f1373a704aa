"""Every sample notebook builds green, offline, and its model is what a reader would expect."""

from __future__ import annotations

import pytest

from handoff.store import Store
from helpers import SAMPLES, build

EXPECTED = {
    "iris_classifier": ("model", {"accuracy", "f1"}),
    "diabetes_regression": ("pipeline", {"rmse", "mae", "r2"}),
    "explicit_logging": ("wine_clf", {"accuracy"}),
    "dataframe_features": ("clf", {"accuracy", "roc_auc"}),
}


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_builds_green(sample: str, store: Store) -> None:
    result = build(SAMPLES / f"{sample}.ipynb", store)
    variable, metrics = EXPECTED[sample]
    assert result.ok, result.error
    assert result.version == 1 and result.name == sample
    assert result.model["variable"] == variable
    assert metrics <= result.metrics.keys()
    assert result.data_files, "every sample reads its data from a file"
    assert not [w for w in result.warnings if "input example" in w]


def test_sample_csv_is_fingerprinted_by_relative_path(store: Store) -> None:
    result = build(SAMPLES / "diabetes_regression.ipynb", store, params={"alpha": 0.5})
    assert result.ok, result.error
    assert [f["path"] for f in result.data_files] == ["diabetes.csv"]
    assert result.params["alpha"] == 0.5
