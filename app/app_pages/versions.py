"""Versions page: every model's versions, newest first; open one, or compare several."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import common

st.title("Versions")
location = common.store_location()
rows = common.version_rows(location)
if not rows:
    st.info("No versions yet: build a notebook on the Build page.")
    st.stop()

models = sorted({r["model"] for r in rows})
chosen = st.selectbox(
    "Model",
    ["All models", *models],
    index=(models.index(st.query_params["model"]) + 1) if st.query_params.get("model") in models else 0,
)
shown = [r for r in rows if chosen == "All models" or r["model"] == chosen]
metric_names = list(dict.fromkeys(k for r in shown for k in r["metrics"]))[:4]
frame = pd.DataFrame(
    [
        {
            "model": r["model"],
            "version": r["version"],
            "status": common.STATUS_ICONS.get(r["status"]),
            "created": r["created"],
            "alias": r["aliases"],
            **{m: r["metrics"].get(m) for m in metric_names},
        }
        for r in shown
    ]
)
st.caption("Select one row to open it, or several of one model to compare them.")
selection = st.dataframe(
    frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="versions_table"
)
picked = [shown[i] for i in selection.selection.rows] if selection else []
left, right = st.columns(2)
if len(picked) == 1 and left.button(f"Open {picked[0]['model']} v{picked[0]['version']}", type="primary"):
    st.switch_page(
        "app_pages/version_detail.py", query_params={"model": picked[0]["model"], "version": str(picked[0]["version"])}
    )
if len(picked) >= 2:
    if len({p["model"] for p in picked}) == 1 and right.button(f"Compare {len(picked)} versions", type="primary"):
        st.switch_page(
            "app_pages/compare.py",
            query_params={
                "model": picked[0]["model"],
                "versions": ",".join(str(p["version"]) for p in sorted(picked, key=lambda p: p["version"])),
            },
        )
    elif len({p["model"] for p in picked}) > 1:
        right.caption("Pick versions of one model to compare them.")

if chosen != "All models":
    st.subheader(f"Alias history of {chosen}")
    common.history_table(location, chosen)
