"""What the app's pages share: the store and worker handles, cached tables, small renderers.

Per-user state lives in ``st.session_state`` and the URL; process-wide handles in
``st.cache_resource``; tables in ``st.cache_data`` with bounded entries. Heavy imports
(MLflow, papermill) happen inside functions so the first page renders fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

SAMPLES = Path(__file__).resolve().parents[1] / "sample_notebooks"
STATUS_ICONS = {"passed": "✅ passed", "failed": "❌ failed", "warning": "⚠️ warning", "skipped": "⏭️ skipped"}


def store_location() -> str | None:
    """``HANDOFF_STORE`` (set by ``handoff app --store``), else the library's default (HANDOFF_HOME)."""
    return os.environ.get("HANDOFF_STORE") or None


@st.cache_resource
def store(location: str | None = None) -> Any:
    import handoff

    return handoff.open_store(location if location is not None else store_location())


@st.cache_resource
def jobs() -> Any:
    from handoff.jobs import BuildJobs

    return BuildJobs(workers=2)


@st.cache_data(max_entries=32, ttl=5, show_spinner=False)
def version_rows(location: str | None) -> list[dict[str, Any]]:
    """Every version as a plain row, newest first (cached for a few seconds)."""
    records = store(location).list_versions()
    rows = [{"model": r.name, "version": r.version, "status": r.status, "created": r.created,
             "aliases": ", ".join(r.aliases), "metrics": r.metrics} for r in records]
    return sorted(rows, key=lambda r: (r["created"] or "", r["version"]), reverse=True)


@st.cache_data(max_entries=64, show_spinner=False)
def version_details(location: str | None, model: str, version: int) -> dict[str, Any]:
    return store(location).get_version(model, version).to_dict()


@st.cache_data(max_entries=8, show_spinner="Packing…")
def package_bytes(location: str | None, model: str, version: int, force: bool) -> tuple[str, bytes, str]:
    """(file name, zip bytes, sha256) of a version's deterministic package."""
    import tempfile

    import handoff

    with tempfile.TemporaryDirectory(prefix="handoff-app-") as tmp:
        result = handoff.export(model, version, tmp, store=store(location), force=force)
        return result.path.name, result.path.read_bytes(), result.sha256


def samples() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.ipynb"))


def checklist_table(results: list[dict[str, Any]]) -> None:
    import pandas as pd

    frame = pd.DataFrame([{"check": r["id"], "status": STATUS_ICONS.get(r["status"], r["status"]),
                           "severity": r["severity"], "result": r["message"]} for r in results])
    # A static table, not st.dataframe: its text wraps, so every row and whole messages stay readable.
    st.table(frame, hide_index=True)


def metrics_row(metrics: dict[str, float]) -> None:
    if not metrics:
        st.caption("No metrics were captured.")
        return
    columns = st.columns(min(len(metrics), 6))
    for column, (name, value) in zip(columns * 10, metrics.items()):
        column.metric(name, f"{value:.4g}")


def render_notebook(nb: Any) -> None:
    """Cells with their outputs (text, tables as text, images); never JavaScript or raw HTML."""
    from handoff.notebook_view import blocks

    for block in blocks(nb):
        if block.kind == "markdown":
            st.markdown(block.content)
        elif block.kind == "code":
            st.caption(f"cell {block.cell} · In [{block.execution_count or ' '}]")
            st.code(block.content or " ", language="python")
        elif block.kind == "text":
            st.code(block.content, language=None)
        elif block.kind == "image":
            st.image(block.content)
        elif block.kind == "error":
            st.error(block.content.splitlines()[0])
            with st.expander("Traceback"):
                st.code(block.content, language=None)
