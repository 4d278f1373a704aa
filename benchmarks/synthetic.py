"""A store with many versions, made fast: what the scale benchmarks measure against.

One real build of the sample notebook (model ``model-00``), then ``versions`` versions in all across
``models`` models. Most are *listing-only*: a run and a registered version written through
MlflowClient with the tags ``Store.record_build`` writes (status, metrics, ``handoff.listing``,
author, notebook, timings) but no artifacts, about 20 ms each instead of a notebook run. The last
``full`` versions of every model are recorded through ``Store.record_build`` itself from the first
build's artifacts with other parameters and metrics, so they can be shown, compared, verified and
exported like real ones. Every 10th version failed, every 25th archived, ``champion`` on version 5
of each model.

The store is kept in ``benchmarks/results/stores/<versions>x<models>-<key>`` (gitignored; or under
``HANDOFF_BENCH_STORES``) and reused
while this file is unchanged (delete it to remake it): 10,000 versions take a few minutes to make.

    .venv/bin/python benchmarks/synthetic.py [--versions 10000] [--models 20]   # make (or find) it
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_notebooks" / "iris_classifier.ipynb"
STORES = Path(os.environ.get("HANDOFF_BENCH_STORES", ROOT / "benchmarks" / "results" / "stores"))


@dataclass(frozen=True)
class SyntheticStore:
    """Where the store is and what is in it (``full``: the versions of each model with artifacts)."""

    home: Path
    models: tuple[str, ...]
    versions: int
    full: dict[str, tuple[int, ...]]
    seconds: float  # to make it (0 when found made)


def model_names(models: int) -> tuple[str, ...]:
    return tuple(f"model-{i:02d}" for i in range(models))


def synthetic_store(
    versions: int = 10_000, models: int = 20, full: int = 5, home: Path | None = None
) -> SyntheticStore:
    """The store with ``versions`` versions across ``models`` models (made once, then reused)."""
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]  # remade when this file changes
    home = home or STORES / f"{versions}x{models}-{key}"
    marker = home / "synthetic.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        return SyntheticStore(home, tuple(made["models"]), made["versions"], made["full"], 0.0)
    shutil.rmtree(home, ignore_errors=True)
    started = time.perf_counter()
    names = model_names(models)
    full_versions = _fill(home, versions, names, full)
    marker.write_text(json.dumps({"models": names, "versions": versions, "full": full_versions}))
    return SyntheticStore(home, names, versions, full_versions, time.perf_counter() - started)


def _fill(home: Path, versions: int, names: tuple[str, ...], full: int) -> dict[str, tuple[int, ...]]:
    import handoff

    return fill(handoff.open_store(home), versions, names, full)


def fill(store: Any, versions: int, names: tuple[str, ...], full: int = 5) -> dict[str, tuple[int, ...]]:
    """Fill ``store`` (embedded, or a team server as a releaser) as the module docstring says."""
    import handoff

    first = handoff.build(SAMPLE, name=names[0], store=store)
    assert first.ok and first.run_id, first.error
    per_model = [versions // len(names) + (1 if i < versions % len(names) else 0) for i in range(len(names))]
    full_versions: dict[str, tuple[int, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="handoff-synthetic-") as scratch:
        for name, count in zip(names, per_model, strict=True):
            start = 2 if name == names[0] else 1
            quick = max(count - full, start - 1)
            _register_listing_only(store, first.run_id, name, start, quick)
            for number in range(quick + 1, count + 1):
                _record_full(store, first.run_id, name, number, Path(scratch))
            full_versions[name] = tuple(range(quick + 1, count + 1))
            if count >= 5:
                store.client.set_registered_model_alias(name, "champion", "5")
    return full_versions


def _metrics(i: int) -> dict[str, float]:
    return {"accuracy": 0.85 + (i % 17) / 200, "f1": 0.83 + (i % 13) / 200}


def _params(i: int) -> dict[str, int]:
    return {"n_estimators": 10 + i % 50, "max_depth": 2 + i % 5, "random_state": 0}


def _register_listing_only(store: Any, run_id: str, name: str, first: int, last: int) -> None:
    """Versions ``first``..``last`` of ``name``: runs and versions with their tags, no artifacts."""
    from mlflow.entities import Metric, Param, RunTag

    from handoff.store import ARCHIVED_TAG, DIGESTS_TAG, LISTING_TAG, METRIC_ORDER_TAG, NOTEBOOK_TAG, USER_TAG

    client = store.client
    template = client.get_run(run_id)
    base_tags = {k: v for k, v in template.data.tags.items() if k.startswith("handoff.")}
    if first == 1:
        client.create_registered_model(name, tags={"handoff.model": "true"})
    for i in range(first, last + 1):
        status = "failed" if i % 10 == 0 else "passed"
        metrics, params = _metrics(i), {k: str(v) for k, v in _params(i).items()}
        tags = {
            **base_tags,
            "handoff.model": name,
            "handoff.status": status,
            NOTEBOOK_TAG: "iris_classifier.ipynb" if i % 3 else "iris_tuned.ipynb",
            USER_TAG: ("ana", "bo", "chen")[i % 3],
            METRIC_ORDER_TAG: json.dumps(list(metrics)),
            "handoff.timing.execute": f"{3 + i % 7:.3f}",
        }
        run = client.create_run(store.experiment_id, run_name=f"{name}-build", tags=tags)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(DIGESTS_TAG, "0" * 64)],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        listing = {
            "notebook": tags[NOTEBOOK_TAG],
            "duration": 3.0 + i % 7,
            "author": tags[USER_TAG],
            "metric_order": list(metrics),
            "params": params,
        }
        version_tags = {
            "handoff.status": status,
            "handoff.metrics": json.dumps(metrics, sort_keys=True),
            LISTING_TAG: json.dumps(listing, sort_keys=True),
        }
        if i % 25 == 0:
            version_tags[ARCHIVED_TAG] = "true"
        source = f"{run.info.artifact_uri}/model"  # within its own run, as a server requires (never read)
        client.create_model_version(name, source=source, run_id=run.info.run_id, tags=version_tags)


def _record_full(store: Any, run_id: str, name: str, i: int, scratch: Path) -> None:
    """Version ``i`` of ``name`` recorded by ``Store.record_build`` from ``run_id``'s artifacts."""
    from handoff.record import Metric

    record = store.read_record(run_id)
    staging = scratch / f"staging-{name}-{i}"
    artifacts = store.download_artifacts(run_id, "", scratch / f"artifacts-{name}-{i}")  # in place when local
    shutil.copytree(artifacts, staging, ignore=shutil.ignore_patterns("package", "handoff"))
    recorded = store.record_build(
        staging=staging,
        register=True,
        record=replace(
            record,
            name=name,
            inputs=replace(record.inputs, parameters={**record.inputs.parameters, **_params(i)}),
            outputs=replace(record.outputs, metrics=tuple(Metric(k, v) for k, v in _metrics(i).items())),
        ),
    )
    assert recorded.version == i, (name, i, recorded.version)
    shutil.rmtree(staging)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    made = synthetic_store(args.versions, args.models)
    print(f"{made.versions} versions of {len(made.models)} models in {made.home} ({made.seconds:.0f}s to make)")
    sys.exit(0)
