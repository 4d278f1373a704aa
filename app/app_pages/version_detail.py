"""Version detail: everything recorded for one version, its notebook, and its package."""

from __future__ import annotations

import nbformat
import pandas as pd
import streamlit as st

import common
from handoff.errors import HandoffError

location = common.store_location()
rows = common.version_rows(location)
model = st.query_params.get("model")
version = st.query_params.get("version")
if not model or not version:
    st.title("Version detail")
    if not rows:
        st.info("No versions yet: build a notebook on the Build page.")
        st.stop()
    models = sorted({r["model"] for r in rows})
    model = st.selectbox("Model", models)
    version = str(st.selectbox("Version", sorted((r["version"] for r in rows if r["model"] == model), reverse=True)))
try:
    record = common.version_details(location, model, int(version))
except (HandoffError, ValueError) as exc:
    st.error(f"Cannot open {model} version {version}: {exc}")
    st.stop()

details = record["details"]
status = record["status"]
st.title(f"{model} · version {record['version']}")
st.markdown(f"{common.STATUS_ICONS.get(status)} · created {record['created']}"
            + (f" · alias **{', '.join(record['aliases'])}**" if record["aliases"] else ""))
if status != "passed":
    st.error("This version failed its checklist: it is kept for inspection and comparison and cannot be promoted.")
common.alias_controls(location, model, record["version"], status, key="detail")

overview, lineage, notebook, package = st.tabs(["Overview", "Lineage", "Notebook", "Package"])
capture = details.get("capture") or {}
with overview:
    common.metrics_row(record["metrics"])
    common.metric_sources(record["metrics"], capture.get("metric_sources", {}))
    st.subheader("Parameters")
    params = details.get("params", {})
    if params:
        st.dataframe(pd.DataFrame([{"parameter": k, "value": repr(v)} for k, v in params.items()]), hide_index=True)
    else:
        st.caption("The notebook has no parameters.")
    serialization = details.get("serialization") or {}
    st.subheader("Model")
    common.model_choice(capture.get("model", {}), serialization.get("serialization"))
    st.caption(f"Saved as {serialization.get('serialization')}: {serialization.get('reason')}")
    checks = details.get("checks") or {}
    st.subheader(f"Checklist — {checks.get('summary', 'not run')}")
    common.checklist_table(checks.get("results", []))
    for warning in details.get("warnings", []):
        st.warning(warning)
with lineage:
    notebook_info = details.get("notebook", {})
    st.markdown(f"**Notebook** `{notebook_info.get('name')}` · sha256 `{notebook_info.get('sha256')}`")
    data = details.get("data", {})
    st.markdown(f"**Data fingerprint** `{data.get('sha256')}`")
    if data.get("files"):
        st.dataframe(pd.DataFrame(data["files"]), hide_index=True, width="stretch")
    else:
        st.caption("The notebook read no data files.")
    env = capture.get("environment", {})
    st.markdown(f"**Environment** Python {env.get('python')} · kernel `{details.get('kernel')}`")
    st.dataframe(pd.DataFrame([{"package": k, "version": v, "imported by the notebook": k in env.get("imported", {}),
                                "needed by the model": k in env.get("model_packages", {})}
                               for k, v in sorted({**env.get("imported", {}), **env.get("model_packages", {})}.items())]),
                 hide_index=True)
    st.markdown("**Requirements** " + " ".join(f"`{r}`" for r in serialization.get("requirements", [])))
    st.markdown("**Timings** " + ", ".join(f"{k} {v:.2f}s" for k, v in details.get("timings", {}).items()))
with notebook:
    raw = common.store(location).read_artifact(record["run_id"], "notebook/executed.ipynb")
    common.render_notebook(nbformat.reads(raw.decode(), as_version=4))
with package:
    force = False
    if status != "passed":
        force = st.checkbox("I understand this version failed its checklist; package it anyway")
    if status == "passed" or force:
        try:
            filename, data_bytes, sha256 = common.package_bytes(location, model, record["version"], force)
            st.download_button(f"Download package ({len(data_bytes) / 1024:.0f} KiB)", data_bytes, file_name=filename,
                               mime="application/zip", type="primary", key="download_package")
            st.markdown(f"`{filename}` · sha256 `{sha256}`")
            st.caption("Verify it with `handoff verify " + filename + "`; serve `model/` with "
                       "`mlflow models serve -m model --env-manager local`.")
        except HandoffError as exc:
            st.error(f"Cannot package this version: {exc}")
