"""A notebook doing its own MLflow tracking, on a real kernel: its run is kept, not thrown away."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from handoff.layout import NOTEBOOK_RUN_DIR
from handoff.store import EXPERIMENT, Store
from helpers import SAMPLES, build


def test_the_notebooks_mlflow_run_is_imported_and_its_model_shipped(tmp_path: Path, store: Store) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(SAMPLES / "mlflow_tracking.ipynb", folder)
    (folder / "mlruns").mkdir()  # the user's own tracking folder: never linked into the build
    (folder / "mlruns" / "mine.txt").write_text("untouched")

    result = build(folder / "mlflow_tracking.ipynb", store)
    assert result.ok, result.error

    model = result.model
    assert model.source == "mlflow" and model.type.endswith("Ridge")
    assert (
        model.chosen_by == "the model the notebook logged with MLflow (sklearn model 'model' of run 'ridge-baseline')"
    )
    assert {c.kind for c in model.candidates} == {"mlflow", "variable"}
    sources = result.record.metric_sources
    assert sources["rmse"] == sources["cv_rmse"] == "the notebook's MLflow run 'ridge-baseline'"
    assert sources["r2"].startswith("computed by handoff on X_test/y_test")
    assert "rmse" in result.metrics and result.metrics["rmse"] > 0

    # exactly one run per build in handoff's store, carrying the notebook's params and metric history
    client = store.client
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]
    run = runs[0]
    assert run.data.params["notebook_run.alpha"] == "0.5" and run.data.params["alpha"] == "0.5"
    history = client.get_metric_history(result.run_id, "cv_rmse")
    assert [p.step for p in sorted(history, key=lambda p: p.step)] == [0, 1, 2, 3, 4]
    exported = json.loads(store.read_artifact(result.run_id, f"{NOTEBOOK_RUN_DIR}/run.json"))
    assert exported["run_name"] == "ridge-baseline" and exported["model"]["flavor"] == "sklearn"
    assert set(exported["metric_history"]) == {"cv_rmse"}

    # nothing written into the user's folder; their own tracking folder untouched
    assert sorted(p.name for p in folder.iterdir()) == ["mlflow_tracking.ipynb", "mlruns"]
    assert [p.name for p in (folder / "mlruns").iterdir()] == ["mine.txt"]

    lineage = store.get_version(result.name, result.version).build.lineage
    assert lineage.notebook_run.params == {"alpha": "0.5", "folds": "5"}
