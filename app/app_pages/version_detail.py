"""Version detail: everything recorded for one version, its notebook, and its package."""

from __future__ import annotations

import nbformat
import streamlit as st

import common
from handoff.errors import HandoffError
from handoff.layout import EXECUTED_NOTEBOOK
from handoff.record_view import sections

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
    stored = common.version_details(location, model, int(version))
except (HandoffError, ValueError) as exc:
    st.error(f"Cannot open {model} version {version}: {exc}")
    st.stop()

status = stored.status
st.title(f"{model} · version {stored.version}")
st.markdown(
    f"{common.STATUS_ICONS.get(status)} · created {stored.created}"
    + (f" · alias **{', '.join(stored.aliases)}**" if stored.aliases else "")
)
if status != "passed":
    st.error("This version failed its checklist: it is kept for inspection and comparison and cannot be promoted.")
common.alias_controls(location, model, stored.version, status, key="detail")

overview, notebook, package = st.tabs(["Overview", "Notebook", "Package"])
with overview:
    common.metrics_row(stored.metrics)
    common.render_sections(sections(stored.build))
with notebook:
    raw = common.store(location).read_artifact(stored.run_id, EXECUTED_NOTEBOOK)
    common.render_notebook(nbformat.reads(raw.decode(), as_version=4))
with package:
    force = False
    if status != "passed":
        force = st.checkbox("I understand this version failed its checklist; package it anyway")
    if status == "passed" or force:
        try:
            filename, data_bytes, sha256 = common.package_bytes(location, model, stored.version, force)
            st.download_button(
                f"Download package ({len(data_bytes) / 1024:.0f} KiB)",
                data_bytes,
                file_name=filename,
                mime="application/zip",
                type="primary",
                key="download_package",
            )
            st.markdown(f"`{filename}` · sha256 `{sha256}`")
            st.caption(
                "Verify it with `handoff verify " + filename + "`; serve `model/` with "
                "`mlflow models serve -m model --env-manager local`."
            )
        except HandoffError as exc:
            st.error(f"Cannot package this version: {exc}")
