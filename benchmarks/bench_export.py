"""What does exporting a version cost, and what does it save over MLflow's own logging?

Builds a sample notebook once, then in the same process measures, N times each:
``handoff.export`` (a copy of the stored deterministic package), building the package from the
version's artifacts (what export does when nothing is stored), and ``mlflow.sklearn.log_model`` of
the same model with MLflow's default requirements inference (the peer: what a hand-rolled script
pays). Prints medians, the package size, and the ratios.

    .venv/bin/python benchmarks/bench_export.py [--runs 5]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import handoff
from _common import arguments, median_time, report, row
from handoff.lifecycle import stored_package


def main() -> None:
    args = arguments(__doc__)
    import mlflow
    import mlflow.sklearn

    from handoff.serialize import load_captured  # noqa: F401  (imports counted outside the timings)

    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        tmp_path = Path(tmp)
        store = handoff.open_store(tmp_path / "store")
        result = handoff.build(args.notebook, store=store)
        assert result.ok, result.error
        name, version = result.name, result.version
        model_dir = handoff.lifecycle.model_dir_of(store, store.get_version(name, version).model_uri, tmp_path)
        model = mlflow.sklearn.load_model(str(model_dir))

        export_s = median_time(args.runs, lambda: handoff.export(name, version, tmp_path / "out.zip", store=store))
        size = (tmp_path / "out.zip").stat().st_size

        def rebuild() -> None:
            with tempfile.TemporaryDirectory(dir=tmp) as scratch:
                (store.local_artifacts(result.run_id) / "package" / f"{name}-v{version}.zip").unlink()
                stored_package(store, store.get_version(name, version), Path(scratch))

        rebuild_s = median_time(args.runs, rebuild)

        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'peer.db'}")
        mlflow.set_experiment(
            experiment_id=mlflow.create_experiment("peer", artifact_location=(tmp_path / "peer-artifacts").as_uri())
        )  # not ./mlruns

        def log_model() -> None:
            with mlflow.start_run():
                mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")

        log_model()  # warm-up: database creation and first-use imports
        log_s = median_time(args.runs, log_model)

    print(f"notebook: {args.notebook.name}, model: {type(model).__name__}, runs: {args.runs}")
    print(f"package size                           {size / 1024:8.1f} KiB")
    print(f"handoff.export (copy of stored zip)    median {export_s * 1000:8.1f} ms")
    print(f"package rebuilt from artifacts         median {rebuild_s * 1000:8.1f} ms")
    print(f"mlflow.sklearn.log_model (inference)   median {log_s * 1000:8.1f} ms")
    print(f"ratio export / log_model               {export_s / log_s:.3f}")
    print(f"ratio rebuild / log_model              {rebuild_s / log_s:.3f}")
    peer = "mlflow.sklearn.log_model"
    report(
        [
            row("handoff.export (stored zip)", export_s, peer=peer, peer_value=log_s),
            row("package rebuilt from artifacts", rebuild_s, peer=peer, peer_value=log_s),
        ]
    )


if __name__ == "__main__":
    main()
