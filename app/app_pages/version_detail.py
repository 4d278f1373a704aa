"""Version detail: everything recorded for one version, its notebook, and its package.

The summary (status, aliases, promote / roll back, metrics and the record's sections) renders first;
the executed notebook, the package and the re-checks are read only when their tab is opened.
"""

from __future__ import annotations

from typing import Any

import nbformat
import streamlit as st

import common
import controls
from handoff.errors import HandoffError
from handoff.layout import EXECUTED_NOTEBOOK
from handoff.record_view import checklist_section, sections

location = common.store_location()
model = st.query_params.get("model")
version = st.query_params.get("version")
if not model or not version:
    st.title("Version detail")
    models = common.models(location)
    if not models:
        st.info("No versions yet: build a notebook on the Build page.")
        st.stop()
    model = st.selectbox("Model", models)
    numbers = sorted((v.version for v in common.versions(location, model)), reverse=True)
    if not numbers:
        st.info(f"{model} has no versions that are not archived (the Versions page lists archived ones).")
        st.stop()
    version = str(st.selectbox("Version", numbers))
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
    error = stored.build.error
    st.error(
        "This version failed its checklist: it is kept for inspection and comparison and cannot be promoted."
        + (f" {common.say(error.message, escape=False)}" if error else "")
    )
common.alias_controls(location, model, stored.version, status, key="detail")


def package_tab(model: str, stored: Any) -> None:
    """The version's deterministic package, to download (a failed version only when asked)."""
    status = stored.status
    force = False
    if status != "passed":
        force = st.checkbox("I understand this version failed its checklist; package it anyway")
    if status == "passed" or force:
        try:
            filename, data_bytes, sha256 = common.package_bytes(location, model, stored.version, force, common.viewer())
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
                "Verify it on the **Verify** page (or `handoff verify " + filename + "`); serve `model/` with "
                "`mlflow models serve -m model --env-manager local`."
            )
        except HandoffError as exc:
            st.error(f"Cannot package this version: {exc.render('app')}")


def recheck_form(model: str, version: int) -> None:
    """``handoff check`` in the app: the checklist again on this stored version, with new thresholds,
    gate, skips or test files; the report is kept beside the original, and every earlier one listed."""
    from handoff.checks import check_ids
    from handoff.record import CheckReport

    st.caption(
        "Run the checklist again on this version's saved model with other settings (the recorded ones, "
        "plus these). The new report is kept beside the original; the version itself never changes."
    )
    done_key = f"recheck_{model}_{version}"
    with st.form("recheck_form"):
        thresholds = st.text_area("Thresholds, one per line", placeholder="accuracy >= 0.9", key="recheck_thresholds")
        gate = st.checkbox("Gate: no metric may be worse than the champion's", key="recheck_gate")
        skip = st.multiselect("Skip checks", check_ids(), key="recheck_skip")
        files = controls.test_uploads(key="recheck_tests")
        submitted = st.form_submit_button("Re-check", type="primary")
    if submitted:
        import handoff

        settings = {
            "thresholds": [t for t in thresholds.splitlines() if t.strip()],
            "gate": gate or None,
            "skip": skip,
            "test_files": files or None,
        }
        try:
            with st.spinner("Running the checklist…"):
                report = handoff.check_version(model, version, store=common.store(location), checks=settings)
            st.session_state[done_key] = report.to_dict()
        except HandoffError as exc:
            st.error(f"Cannot re-check: {exc.render('app')}")
    if done_key in st.session_state:
        report = CheckReport.from_dict(st.session_state[done_key])
        if report.passed:
            st.success(f"Re-check passed: {report.summary}.")
        else:
            failures = "; ".join(f"{r.id} ({common.say(r.message)})" for r in report.failures)
            st.error(f"Re-check FAILED: {failures}.")
        common.render_sections([checklist_section(report)])
    reports = common.store(location).check_reports(stored.run_id) if stored.run_id else []
    if len(reports) > 1:
        st.subheader("Earlier re-checks")
        earlier = [CheckReport.from_dict(r) for r in reports[1:]]
        st.dataframe(
            [
                {
                    "time": r.created,
                    "result": "passed" if r.passed else "FAILED",
                    "summary": r.summary,
                    "thresholds": ", ".join(r.config.get("thresholds", [])),
                    "gate": bool(r.config.get("gate")),
                    "failed": ", ".join(x.id for x in r.failures),
                }
                for r in reversed(earlier)
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No re-checks yet: only the build's own checklist.")


# Only the open tab runs (a tab switch reruns the page): the summary comes first, and the executed
# notebook, the package and the re-check history are read only when their tab is opened.
overview, notebook, package, recheck = st.tabs(
    ["Overview", "Notebook", "Package", "Re-check"], key="detail_tab", on_change="rerun"
)
if overview.open:
    with overview:
        common.metrics_row(stored.metrics)
        common.render_sections(sections(stored.build))
if notebook.open:
    with notebook:
        raw = common.store(location).read_artifact(stored.run_id, EXECUTED_NOTEBOOK)
        common.render_notebook(nbformat.reads(raw.decode(), as_version=4))
if package.open:
    with package:
        package_tab(model, stored)
if recheck.open:
    with recheck:
        recheck_form(model, stored.version)
