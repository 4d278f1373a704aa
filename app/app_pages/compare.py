"""Compare page: versions side by side, shareable by URL (?model=NAME&versions=1,2&baseline=1)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import common
from handoff.errors import HandoffError

GOOD, BAD = "background-color: #d9f2d9", "background-color: #f8d7d7"

st.title("Compare versions")
location = common.store_location()
models = common.models(location)
if not models:
    st.info("No versions yet: build a notebook on the Build page.")
    st.stop()
asked = st.query_params.get("model")
model = st.selectbox("Model", models, index=models.index(asked) if asked in models else 0)
available = sorted((v.version for v in common.versions(location, model)), reverse=True)
wanted = [int(v) for v in (st.query_params.get("versions") or "").split(",") if v.strip().isdigit()]
chosen = st.multiselect("Versions", available, default=[v for v in wanted if v in available] or available[:2][::-1])
if len(chosen) < 2:
    st.info("Pick at least two versions.")
    st.stop()
chosen = sorted(chosen)
asked_base = st.query_params.get("baseline")
baseline = st.selectbox(
    "Baseline (deltas are against it)",
    ["champion, else the first", *chosen],
    index=(chosen.index(int(asked_base)) + 1)
    if asked_base and asked_base.isdigit() and int(asked_base) in chosen
    else 0,
)
query = {"model": model, "versions": ",".join(map(str, chosen))}
if baseline != "champion, else the first":
    query["baseline"] = str(baseline)
st.query_params.from_dict(query)


@st.cache_data(max_entries=16, ttl=30, show_spinner="Comparing…")
def comparison(
    location: str | None,
    model: str,
    versions: tuple[int, ...],
    base: int | None,
    champion: int | None,
    revision: Any,
    viewer: str | None,
) -> dict[str, Any]:
    """``champion``, ``revision`` and ``viewer`` are only the cache key: a promotion changes the default baseline,
    an archive the versions' tags (a server's store has no revision: the ttl bounds it)."""
    import handoff

    return handoff.compare(model, list(versions), base, store=common.store(location)).to_dict()


try:
    champion = common.store(location).alias_version(model) if isinstance(baseline, str) else None
    data = comparison(
        location,
        model,
        tuple(chosen),
        None if isinstance(baseline, str) else baseline,
        champion.version if champion else None,
        common.revision(location),
        common.viewer(),
    )
except HandoffError as exc:
    st.error(str(exc))
    st.stop()
labels, base = data["labels"], data["baseline"]
st.caption(
    f"Baseline **{base}** · "
    + " · ".join(f"{k} {common.STATUS_ICONS.get(v)}" for k, v in data["status"].items())
    + " · share this comparison with the page's URL"
)
if data["data"]["warning"]:
    st.warning(data["data"]["warning"].capitalize())

st.subheader("Metrics")
metric_rows, colours = [], []
for row in data["metrics"]:
    cells, shades = {}, {}
    for lbl in labels:
        value, delta = row["values"].get(lbl), row["deltas"].get(lbl)
        cells[lbl] = "–" if value is None else f"{value:.4g}"
        shades[lbl] = ""
        if delta and delta["absolute"] is not None:
            rel = f", {delta['relative']:+.1%}" if delta["relative"] is not None else ""
            cells[lbl] += f"  ({delta['absolute']:+.3g}{rel})"
            shades[lbl] = {True: GOOD, False: BAD}.get(delta["better"], "")
    arrow = "↑ better" if row["greater_is_better"] else "↓ better"
    metric_rows.append({"metric": f"{row['metric']} ({arrow})", **cells})
    colours.append({"metric": "", **shades})
if metric_rows:
    frame = pd.DataFrame(metric_rows).set_index("metric")
    styles = pd.DataFrame(colours).set_index(frame.index).drop(columns="metric")
    st.dataframe(frame.style.apply(lambda _: styles, axis=None), width="stretch")
else:
    st.caption("No metrics to compare.")

differences_only = st.toggle("Show only what differs", value=True)
st.subheader("Parameters")
params = [r for r in data["parameters"] if r["differs"] or not differences_only]
if params:
    st.dataframe(
        pd.DataFrame(
            [{"parameter": r["param"], **{lbl: repr(r["values"].get(lbl)) for lbl in labels}} for r in params]
        ).set_index("parameter"),
        width="stretch",
    )
else:
    st.caption("All parameters are equal.")

st.subheader("Checklist")
checks = [r for r in data["checklist"] if r["changed"] or not differences_only]
if checks:
    st.dataframe(
        pd.DataFrame(
            [
                {"check": r["check"], **{lbl: common.STATUS_ICONS.get(r["statuses"].get(lbl), "–") for lbl in labels}}
                for r in checks
            ]
        ).set_index("check"),
        width="stretch",
    )
else:
    st.caption("Every check has the same status in every version.")

st.subheader("Data")
st.dataframe(
    pd.DataFrame(
        [
            {
                "version": lbl,
                "fingerprint": fp.get("sha256", "")[:16],
                "files": ", ".join(f["path"] for f in fp.get("files", [])),
            }
            for lbl, fp in data["data"]["fingerprints"].items()
        ]
    ),
    hide_index=True,
    width="stretch",
)

st.subheader("Environment")
if data["environment"]["packages"]:
    st.dataframe(
        pd.DataFrame(
            [
                {"package": p["package"], **{lbl: p["versions"].get(lbl) for lbl in labels}}
                for p in data["environment"]["packages"]
            ]
        ).set_index("package"),
        width="stretch",
    )
else:
    st.caption(
        "Same package versions (Python "
        + ", ".join(sorted({str(v) for v in data["environment"]["python"].values()}))
        + ")."
    )

st.subheader("Code")
for diff in data["code"]:
    if not diff["cells"]:
        st.caption(f"{diff['version']}: same notebook source as {diff['against']}.")
        continue
    st.markdown(f"**{diff['version']}** against **{diff['against']}**: {len(diff['cells'])} cell(s) differ")
    for cell in diff["cells"]:
        where = cell["new_cell"] if cell["new_cell"] is not None else cell["old_cell"]
        st.caption(f"{cell['change']} {cell['cell_type']} cell {where}")
        st.code("\n".join(cell["diff"]) or " ", language="diff")

st.subheader("Trend")
trend = data["trend"]
names = sorted({m for t in trend for m in t["metrics"]})
if names:
    import altair as alt

    metric = st.selectbox("Metric", names)
    points = pd.DataFrame(
        [
            {
                "version": t["version"],
                metric: t["metrics"].get(metric),
                "status": t["status"],
                "compared": f"v{t['version']}" in labels or f"{model}:v{t['version']}" in labels,
                "champion": "champion" in t["aliases"],
            }
            for t in trend
            if metric in t["metrics"]
        ]
    )
    y = alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False))  # from 0, a 0.97 → 0.95 change looks flat
    line = alt.Chart(points).mark_line(color="#9aa5b1").encode(x=alt.X("version:O"), y=y)
    # Failed versions are red crosses, passed ones blue dots (one legend for both channels): a failed
    # version's number is not one to chase, however good it looks.
    statuses = alt.Scale(domain=["passed", "failed"], range=["#4c78a8", "#d62728"])
    shapes = alt.Scale(domain=["passed", "failed"], range=["circle", "cross"])
    dots = (
        alt.Chart(points)
        .mark_point(filled=True, opacity=1)
        .encode(
            x="version:O",
            y=y,
            color=alt.Color("status:N", scale=statuses, legend=alt.Legend(title="status")),
            shape=alt.Shape("status:N", scale=shapes, legend=alt.Legend(title="status")),
            size=alt.condition("datum.compared", alt.value(220), alt.value(70)),
            tooltip=["version", metric, "status"],
        )
    )
    champion_label = (
        alt.Chart(points)
        .transform_filter("datum.champion")
        .mark_text(dy=-16, fontSize=11, color="#31333f")
        .encode(x="version:O", y=y, text=alt.value("champion"))
    )
    st.altair_chart(line + dots + champion_label, width="stretch")
    st.caption("Compared versions are drawn larger; failed versions are red crosses; the champion is labelled.")

st.subheader("Promote")
candidate = st.selectbox("Version", chosen[::-1], key="promote_choice")
common.alias_controls(location, model, candidate, data["status"].get(f"v{candidate}", "passed"), key="compare")
