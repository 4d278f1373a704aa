"""Compare page: versions of one model side by side (parameters and metrics)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import common
from handoff.errors import HandoffError

st.title("Compare versions")
location = common.store_location()
rows = common.version_rows(location)
models = sorted({r["model"] for r in rows})
if not models:
    st.info("No versions yet: build a notebook on the Build page.")
    st.stop()
model = st.query_params.get("model")
model = st.selectbox("Model", models, index=models.index(model) if model in models else 0)
available = sorted((r["version"] for r in rows if r["model"] == model), reverse=True)
wanted = [int(v) for v in (st.query_params.get("versions") or "").split(",") if v.strip().isdigit()]
chosen = st.multiselect("Versions", available, default=[v for v in wanted if v in available] or available[:2])
if len(chosen) < 2:
    st.info("Pick at least two versions.")
    st.stop()
st.query_params.update({"model": model, "versions": ",".join(map(str, sorted(chosen)))})
try:
    records = {v: common.version_details(location, model, v) for v in sorted(chosen)}
except HandoffError as exc:
    st.error(str(exc))
    st.stop()
columns = {f"v{v}": r for v, r in records.items()}
params = sorted({k for r in records.values() for k in r["details"].get("params", {})})
metrics = sorted({k for r in records.values() for k in r["metrics"]})
st.subheader("Metrics")
st.dataframe(pd.DataFrame({name: [r["metrics"].get(m) for m in metrics] for name, r in columns.items()}, index=metrics))
st.subheader("Parameters")
st.dataframe(pd.DataFrame({name: [repr(r["details"].get("params", {}).get(p)) for p in params]
                           for name, r in columns.items()}, index=params))
st.caption("Status: " + ", ".join(f"v{v} {r['status']}" for v, r in records.items()))
