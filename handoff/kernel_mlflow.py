"""Kernel side: the notebook's own MLflow tracking, kept instead of thrown away.

The prelude points ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` at a build-local SQLite
store in the build's working directory (MLflow's own default layout: ``mlflow.db`` and
``mlruns/``), never at handoff's store or the user's folder. After the last cell, if the notebook
tracked anything, this module exports its newest run (params, final metrics, the history of
stepped metrics, tags, artifacts) as ``notebook_run/run.json`` + ``notebook_run/artifacts/`` and
loads the newest model it logged (with the flavor's own ``load_model``) as a candidate.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from handoff.kernel_models import Candidate, is_model
from handoff.layout import NOTEBOOK_RUN_DIR
from handoff.uris import local_path, sqlite_uri

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
#: Run artifacts larger than this in total are listed, not copied.
MAX_RUN_ARTIFACT_BYTES = 50 * 2**20


def point_tracking_at(workdir: Path) -> None:
    """Send the notebook's MLflow calls to the build-local store (before any user code runs)."""
    uri = sqlite_uri(workdir / DB_NAME)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_REGISTRY_URI"] = uri


def export_run(workdir: Path, out: Path) -> tuple[dict[str, Any] | None, list[Candidate], list[str]]:
    """The notebook's newest MLflow run as a dict (also written to ``out/notebook_run``), the model
    it logged as a candidate, and warnings. ``(None, [], [])`` when the notebook tracked nothing."""
    if not (workdir / DB_NAME).exists():
        return None, [], []
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"))
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, order_by=["attributes.start_time DESC"], max_results=50)
    if not runs:
        return None, [], []
    models = sorted(
        mlflow.search_logged_models(experiment_ids=experiments, output_format="list"),
        key=lambda m: m.creation_timestamp or 0,
    )
    with_model = {m.source_run_id for m in models}
    run = next((r for r in runs if r.info.run_id in with_model), runs[0])
    run_id = run.info.run_id
    history = {}
    for key in run.data.metrics:
        points = client.get_metric_history(run_id, key)
        if len(points) > 1:
            history[key] = [[p.step, p.value, p.timestamp] for p in sorted(points, key=lambda p: (p.step, p.timestamp))]
    exported: dict[str, Any] = {
        "run_id": run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "runs_seen": len(runs),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "metric_history": history,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.note.content"},
        "model": None,
        "artifacts": [],
    }
    target = out / NOTEBOOK_RUN_DIR
    target.mkdir(parents=True, exist_ok=True)
    warnings = _copy_artifacts(run.info.artifact_uri, target / "artifacts", exported)
    candidates = []
    own = [m for m in models if m.source_run_id == run_id] or models
    if own:
        model_info = own[-1]
        candidate, flavor, warning = _load_logged(model_info, exported["run_name"])
        exported["model"] = {"model_id": model_info.model_id, "name": model_info.name, "flavor": flavor}
        if candidate is not None:
            candidates.append(candidate)
        if warning:
            warnings.append(warning)
    (target / "run.json").write_text(json.dumps(exported, indent=2, default=str))
    return exported, candidates, warnings


def _copy_artifacts(uri: str, target: Path, exported: dict[str, Any]) -> list[str]:
    source = local_path(uri) or Path(uri)
    if not source.is_dir():
        return []
    files = [p for p in sorted(source.rglob("*")) if p.is_file() and not p.is_symlink()]
    exported["artifacts"] = [p.relative_to(source).as_posix() for p in files]
    total = sum(p.stat().st_size for p in files)
    if total > MAX_RUN_ARTIFACT_BYTES:
        return [
            f"the notebook's MLflow run artifacts ({total / 2**20:.0f} MiB) are listed, not kept "
            f"(limit {MAX_RUN_ARTIFACT_BYTES / 2**20:.0f} MiB)"
        ]
    shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
    return []


def _load_logged(model_info: Any, run_name: str) -> tuple[Candidate | None, str | None, str | None]:
    """Load a logged model with its native flavor (not pyfunc: handoff re-saves the native object)."""
    from mlflow.models import Model

    uri = f"models:/{model_info.model_id}"
    try:
        flavors = [f for f in Model.load(uri).flavors if f != "python_function"]
        if not flavors:
            return (
                None,
                None,
                (
                    f"the notebook logged MLflow model {model_info.name!r} with no native flavor "
                    "(python_function only); handoff packages native models"
                ),
            )
        flavor = flavors[0]
        obj = importlib.import_module(f"mlflow.{flavor}").load_model(uri)
    except Exception as exc:  # a model that does not load is reported, the build goes on
        return None, None, f"the model the notebook logged to MLflow does not load ({type(exc).__name__}: {exc})"
    if not is_model(obj):
        return (
            None,
            flavor,
            f"the notebook's MLflow model {model_info.name!r} is a {type(obj).__name__} with no fit/predict",
        )
    note = f"{flavor} model {model_info.name!r} of run {run_name!r}"
    return Candidate(f"mlflow:{model_info.name}", "mlflow", obj, note=note), flavor, None
