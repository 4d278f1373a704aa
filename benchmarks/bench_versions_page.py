"""Versions page at scale: ``Store.list_versions`` and the page's render with 1,000 versions.

One real build of the sample notebook, then ``--versions`` - 1 more versions of its model registered
through MlflowClient the way ``Store.record_build`` does (a run with the record's parameters, metrics
and tags, then a registered version with the status, metrics and digests tags), with varied
parameters, metrics, notebooks and statuses, a champion and some archived versions; no artifacts are
copied (listing reads none). Then the median of ``--runs`` of: the listing of every version, the
listing of one model, and one run of the Versions page's script with AppTest (tables uncached):
all models, one model, one model sorted by a parameter and searched. Target: each at most 1 s.

    python benchmarks/bench_versions_page.py [--versions 1000] [--runs 5]

``HANDOFF_BENCH_STORE=DIR`` keeps the store in DIR and, on later runs, measures it again without
recording the versions anew.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, arguments, median_time


def _register_more(store, first_run_id: str, name: str, count: int) -> None:  # type: ignore[no-untyped-def]
    """``count`` more versions of ``name`` recorded as ``Store.record_build`` records them (no artifacts)."""
    from mlflow.entities import Metric, Param, RunTag

    from handoff.store import ARCHIVED_TAG, DIGESTS_TAG, LISTING_TAG, METRIC_ORDER_TAG, NOTEBOOK_TAG, USER_TAG

    client = store.client
    first = client.get_run(first_run_id)
    source = client.get_model_version(name, "1").source
    base_tags = {k: v for k, v in first.data.tags.items() if k.startswith("handoff.")}
    for i in range(2, count + 2):
        status = "failed" if i % 10 == 0 else "passed"
        metrics = {"accuracy": 0.85 + (i % 17) / 200, "f1": 0.83 + (i % 13) / 200}
        params = {"n_estimators": str(10 + i % 50), "max_depth": str(2 + i % 5), "random_state": "0"}
        tags = {
            **base_tags,
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
        client.create_model_version(name, source=source, run_id=run.info.run_id, tags=version_tags)


def main() -> None:
    args = arguments(__doc__, versions=1000)
    import handoff

    kept = os.environ.get("HANDOFF_BENCH_STORE")  # keep the store there, and reuse it when it is there
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        home = Path(kept) if kept else Path(tmp) / "store"
        reuse = (home / "mlflow.db").exists()
        store = handoff.open_store(home)
        name, created = "iris_classifier", 0.0
        if not reuse:
            first = handoff.build(args.notebook, store=store)
            assert first.ok and first.run_id, first.error
            name = first.name
            started = time.perf_counter()
            _register_more(store, first.run_id, name, args.versions - 1)
            created = time.perf_counter() - started
            store.client.set_registered_model_alias(name, "champion", "5")  # promote would verify digests
        versions = store.list_versions()
        assert len(versions) == args.versions, len(versions)
        assert versions[4].aliases == ("champion",) and versions[3].author in ("ana", "bo", "chen")

        list_all = median_time(args.runs, store.list_versions)
        list_one = median_time(args.runs, lambda: store.list_versions(name, include_archived=False))
        peer = median_time(args.runs, lambda: store.client.search_model_versions(f"name = '{name}'", max_results=10000))

        from streamlit.testing.v1 import AppTest

        os.environ["HANDOFF_STORE"] = str(home)
        app = str(ROOT / "app" / "streamlit_app.py")
        import streamlit as st

        def render(model: str | None = None, sort: str | None = None, search: str | None = None) -> float:
            """Seconds of the Versions page's script runs (not the app's first page, run before it)."""
            st.cache_data.clear()  # uncached: the listing is read from the store each time
            at = AppTest.from_file(app, default_timeout=120)
            at.run()
            at.switch_page("app_pages/versions.py")
            if model:
                at.query_params["model"] = model
            started = time.perf_counter()
            at.run()
            if sort:
                next(s for s in at.selectbox if s.label == "Sort by").set_value(sort)
            if search:
                next(t for t in at.text_input if t.label == "Search").set_value(search)
            if sort or search:
                st.cache_data.clear()
                at.run()
            seconds = time.perf_counter() - started
            assert not at.exception, at.exception
            assert len(at.dataframe[0].value) == 50, len(at.dataframe[0].value)
            return seconds

        page_all = statistics.median(render() for _ in range(args.runs))
        page_one = statistics.median(render(name) for _ in range(args.runs))
        page_sorted = statistics.median(render(name, "n_estimators", "ana") for _ in range(args.runs)) / 2

    if not reuse:
        print(f"{args.versions} versions of {name} registered through MlflowClient in {created:.1f}s")
    print(f"Store.list_versions() (all, with aliases)         median {list_all * 1000:8.1f} ms")
    print(f"Store.list_versions(model, archived hidden)      median {list_one * 1000:8.1f} ms")
    print(f"MlflowClient.search_model_versions (peer)        median {peer * 1000:8.1f} ms")
    print(f"Versions page, all models (AppTest, uncached)    median {page_all * 1000:8.1f} ms")
    print(f"Versions page, one model                         median {page_one * 1000:8.1f} ms")
    print(f"Versions page, one model sorted + searched       median {page_sorted * 1000:8.1f} ms (per run)")
    print(
        json.dumps(
            {
                "list_all_ms": list_all * 1000,
                "list_one_ms": list_one * 1000,
                "page_all_ms": page_all * 1000,
                "page_one_ms": page_one * 1000,
                "page_sorted_ms": page_sorted * 1000,
            }
        )
    )


if __name__ == "__main__":
    main()
