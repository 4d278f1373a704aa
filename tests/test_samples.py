"""Every sample notebook builds green, offline, and its model is what a reader would expect."""

from __future__ import annotations

import pytest

from handoff.store import Store
from helpers import SAMPLES, build

#: sample -> (what is shipped, metrics expected at least)
EXPECTED = {
    "iris_classifier": ("model", {"accuracy", "f1"}),
    "diabetes_regression": ("pipeline", {"rmse", "mae", "r2"}),
    "explicit_logging": ("wine_clf", {"accuracy"}),
    "dataframe_features": ("clf", {"accuracy", "roc_auc"}),
    "feature_subset": ("model", {"accuracy"}),
}
#: Samples built (and asserted in more depth) by other test modules, so not built twice.
TESTED_ELSEWHERE = {
    "grid_search_pipeline": "test_kernel_models.py",
    "train_in_function": "test_kernel_models.py",
    "classification_report": "test_kernel_models.py",
    "mlflow_tracking": "test_kernel_mlflow.py",
    "xgboost_classifier": "test_flavors.py",
    "lightgbm_booster": "test_flavors.py",
    "catboost_classifier": "test_flavors.py",
    "statsmodels_ols": "test_flavors.py",
    "pytorch_mlp": "test_flavors.py",
    "two_candidate_models": "app/test_page_parity.py",
    "ridge_sweep": "test_sweeps.py",
    "boosting_sweep": "test_sweeps.py",
    "scaler_fitted_apart": "test_kernel_preprocessing.py",
    "preprocessing_reassigned": "test_kernel_preprocessing.py",
}


def test_every_sample_is_built_by_a_test() -> None:
    samples = {p.stem for p in SAMPLES.glob("*.ipynb")}
    assert samples == set(EXPECTED) | set(TESTED_ELSEWHERE)
    for sample, module in TESTED_ELSEWHERE.items():
        assert f'"{sample}.ipynb"' in (SAMPLES.parent / "tests" / module).read_text()


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_builds_green(sample: str, store: Store) -> None:
    result = build(SAMPLES / f"{sample}.ipynb", store)
    packaged, metrics = EXPECTED[sample]
    assert result.ok, result.error
    assert result.version == 1 and result.name == sample
    assert result.model.packaged == packaged
    assert metrics <= result.metrics.keys()
    assert result.record.outputs.data.files, "every sample reads its data from a file"
    assert not [w for w in result.warnings if "input example" in w]


def test_sample_csv_is_fingerprinted_by_relative_path(store: Store) -> None:
    result = build(SAMPLES / "diabetes_regression.ipynb", store, params={"alpha": 0.5})
    assert result.ok, result.error
    assert [f.path for f in result.record.outputs.data.files] == ["diabetes.csv"]
    assert result.record.inputs.parameters["alpha"] == 0.5
