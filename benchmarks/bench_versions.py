"""Does handoff stay fast with many versions? 200 versions of one model, then list, compare, render.

Creates the versions directly through the store API (one real build, then its artifacts recorded
199 more times with varying parameters and metrics: not 200 notebook runs), then measures
``Store.list_versions``, ``handoff.compare`` of 5 versions, and the server-side render of the
Versions and Compare pages with Streamlit's AppTest. The peer is MLflow's own
``search_model_versions`` for the same model, measured in the same process.

    .venv/bin/python benchmarks/bench_versions.py [--versions 200] [--runs 5]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import handoff
from _common import ROOT, arguments, median_time
from handoff.record import Metric


def main() -> None:
    args = arguments(__doc__, versions=200)

    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        home = Path(tmp) / "store"
        store = handoff.open_store(home)
        first = handoff.build(args.notebook, store=store)
        assert first.ok, first.error
        record = store.read_record(first.run_id)
        started = time.perf_counter()
        for i in range(2, args.versions + 1):
            staging = Path(tmp) / f"staging-{i}"
            shutil.copytree(
                store.local_artifacts(first.run_id), staging, ignore=shutil.ignore_patterns("package", "handoff")
            )
            metrics = {"accuracy": 0.9 + (i % 17) / 200, "f1": 0.88 + (i % 13) / 200}
            params = {**record.inputs.parameters, "n_estimators": 10 + i}
            store.record_build(
                staging=staging,
                register=True,
                record=replace(
                    record,
                    inputs=replace(record.inputs, parameters=params),
                    outputs=replace(record.outputs, metrics=tuple(Metric(k, v) for k, v in metrics.items())),
                ),
            )
            shutil.rmtree(staging)
        created = time.perf_counter() - started
        name = first.name
        versions = store.list_versions(name)
        assert len(versions) == args.versions
        five = [v.version for v in versions[-5:]]

        list_s = median_time(args.runs, lambda: store.list_versions(name))
        peer_s = median_time(
            args.runs, lambda: store.client.search_model_versions(f"name = '{name}'", max_results=10000)
        )
        compare_s = median_time(args.runs, lambda: handoff.compare(name, five, store=store))

        from streamlit.testing.v1 import AppTest

        os.environ["HANDOFF_STORE"] = str(home)
        app = str(ROOT / "app" / "streamlit_app.py")

        import streamlit as st

        def render(page: str, **query: str) -> None:
            st.cache_data.clear()  # measure the uncached render: tables are re-read from the store
            at = AppTest.from_file(app, default_timeout=120)
            at.run()
            at.switch_page(f"app_pages/{page}.py")
            at.query_params.update(query)
            at.run()
            assert not at.exception, at.exception

        versions_page_s = median_time(args.runs, lambda: render("versions"))
        compare_page_s = median_time(
            args.runs, lambda: render("compare", model=name, versions=",".join(map(str, five)))
        )

    print(f"{args.versions} versions of {name} recorded through the store API in {created:.1f}s")
    print(f"Store.list_versions                   median {list_s * 1000:8.1f} ms")
    print(f"MlflowClient.search_model_versions    median {peer_s * 1000:8.1f} ms  (peer)")
    print(f"ratio list_versions / peer            {list_s / peer_s:.2f}")
    print(f"handoff.compare of 5 versions         median {compare_s * 1000:8.1f} ms")
    print(f"Versions page, server-side render     median {versions_page_s * 1000:8.1f} ms (AppTest, no cache)")
    print(f"Compare page (5 versions) render      median {compare_page_s * 1000:8.1f} ms (AppTest, no cache)")
    print(json.dumps({"list_ms": list_s * 1000, "compare_ms": compare_s * 1000}))


if __name__ == "__main__":
    main()
