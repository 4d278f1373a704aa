"""The Build page's Sweep mode: values per parameter (a list or a range), the number of points before
start, a live grid of the points, then the results best first, a chart of the primary metric against
each swept parameter, and the chosen points compared or promoted.

A sweep is a set of build jobs taken by detached sweep workers (``handoff.start_sweep``): the page
reads their rows, so ``?sweep=ID`` finds it again after a refresh, in another tab or after a restart.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

import common
import handoff
from handoff.errors import HandoffError
from handoff.inspection import NotebookSource
from handoff.jobs import JobNotFoundError
from handoff.sweeps import plan_points

RANGE_HELP = "A list (50,100,200), or a range START:STOP:COUNT (0.1:1.0:4). One value keeps the parameter fixed."


def sweep_form(source: NotebookSource, files: dict[str, bytes]) -> None:
    """Values per parameter, how many at once; the point count updates as they are typed."""
    from handoff.build import BuildOptions
    from handoff.store import model_name_from

    if not source.parameters:
        st.info("This notebook has no parameters cell (a code cell tagged `parameters`): there is nothing to sweep.")
        return
    st.caption(RANGE_HELP)
    grid: dict[str, str] = {}
    columns = st.columns(2)
    for index, param in enumerate(source.parameters):
        with columns[index % 2]:
            text = st.text_input(
                f"{param.name} ({param.type}) values",
                value=param.default_source,
                help=param.help or None,
                key=f"sweep_{source.sha256[:12]}_{param.name}",
            )
        if text.strip() and text.strip() != param.default_source:
            grid[param.name] = text
    limits = BuildOptions()
    left, middle, right = st.columns(3)
    name = left.text_input("Model name", value=model_name_from(source.name), key="sweep_model_name")
    workers = middle.number_input("Builds at once", min_value=1, max_value=16, value=os.cpu_count() or 1, step=1)
    sample = right.number_input("Random points (0: the whole grid)", min_value=0, max_value=1000, value=0, step=1)
    with st.expander("Time limits (each point)"):
        timeout = st.number_input(
            "Whole-run limit (seconds)", min_value=5, value=int(limits.timeout), step=60, key="sweep_timeout"
        )
        cell_timeout = st.number_input(
            "Per-cell limit (seconds)", min_value=5, value=int(limits.cell_timeout), step=30, key="sweep_cell_timeout"
        )
    try:
        points = plan_points(source, grid, random=int(sample) or None)
    except HandoffError as exc:
        st.warning(exc.render("app"))
        points = []
    if points:
        st.info(f"**{len(points)} points**, each a full build and version, {min(int(workers), len(points))} at a time.")
    refused = common.missing_role("builder", "build")
    if refused:
        st.warning(refused)
    if not st.button("Start sweep", type="primary", disabled=not points or refused is not None):
        return
    try:
        handle = handoff.start_sweep(
            source,
            grid,
            name,
            store=common.store(),
            workers=int(workers),
            random=int(sample) or None,
            files=files,
            source="app",
            user=common.current_user(),
            timeout=float(timeout),
            cell_timeout=float(cell_timeout),
        )
    except HandoffError as exc:
        st.error(f"Cannot start the sweep: {exc.render('app')}")
        return
    st.query_params["sweep"] = handle.id
    st.rerun()


def points_frame(result: handoff.SweepResult, ranked: bool = False) -> pd.DataFrame:
    """One row per point: its parameters, state, version, primary metric and where it is or why it failed."""
    metric = result.metric
    rows = []
    for point in result.ranked() if ranked else result.points:
        row: dict[str, Any] = {"point": point.index, **point.params, "state": point.state, "version": point.version}
        if metric:
            row[metric[0]] = point.metrics.get(metric[0])
        row["time (s)"] = round(point.seconds, 1) if point.seconds else None
        row["message"] = common.say_plain(point.message or "")
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_page(sweep_id: str) -> None:
    """A sweep by id: live while it runs, its results once every point has ended."""
    try:
        result = handoff.sweep_status(sweep_id, store=common.store())
    except JobNotFoundError:
        st.warning("There is no sweep with that id in this store; the Builds page lists every build.")
        return
    st.markdown(f"**Sweep `{sweep_id}`** of **{result.model}** · {len(result.points)} points")
    if result.ended:
        results(result)
    else:
        live(sweep_id)


@st.fragment(run_every=1.0)
def live(sweep_id: str) -> None:
    result = handoff.sweep_status(sweep_id, store=common.store())
    if result.ended:
        st.rerun(scope="app")
        return
    st.progress(result.done / len(result.points), text=f"{result.done} of {len(result.points)} points done")
    if not result.cancelled_by:
        st.button("Cancel the sweep", key=f"cancel_sweep_{sweep_id}", on_click=cancel, args=(sweep_id,))
    else:
        st.warning(f"Cancel requested by {result.cancelled_by}: stopping the running points…")
    st.dataframe(points_frame(result), hide_index=True, width="stretch")
    st.caption("You can leave this page: the sweep goes on in its own worker processes.")


def cancel(sweep_id: str) -> None:
    handoff.cancel_sweep(sweep_id, by=common.current_user(), store=common.store())


def results(result: handoff.SweepResult) -> None:
    """The points best first, the metric against each swept parameter, and the chosen ones compared or promoted."""
    counts = ", ".join(
        f"{sum(p.state == s for p in result.points)} {s}" for s in sorted({p.state for p in result.points})
    )
    if result.cancelled_by:
        st.warning(f"Cancelled by {result.cancelled_by}: {counts}.")
    elif result.ok:
        st.success(f"Every point passed ({counts}).")
    else:
        st.error(f"Not every point passed: {counts}. A failed point's row says where and why.")
    st.dataframe(points_frame(result, ranked=True), hide_index=True, width="stretch")
    chart(result)
    recorded = [p for p in result.ranked() if p.version is not None]
    if not recorded:
        return
    location = common.store_location()
    versions = [p.version for p in recorded]
    chosen = st.multiselect("Versions to compare", versions, default=versions[:2], key=f"sweep_cmp_{result.id}")
    if st.button("Compare selected", disabled=len(chosen) < 2):
        st.switch_page(
            "app_pages/compare.py",
            query_params={"model": result.model, "versions": ",".join(str(v) for v in sorted(chosen))},
        )
    best = result.best
    target = st.selectbox(
        "Version to promote (best first)",
        versions,
        index=versions.index(best.version) if best is not None else 0,
        key=f"sweep_promote_{result.id}",
    )
    status = next(p.state for p in recorded if p.version == target)
    common.alias_controls(
        location, result.model, int(target), "passed" if status == "passed" else "failed", f"sweep_{result.id}"
    )


def chart(result: handoff.SweepResult) -> None:
    """The primary metric against each parameter the sweep varied (one panel each), coloured by state."""
    import altair as alt

    metric = result.metric
    frame = points_frame(result)
    names = list(result.points[0].params) if result.points else []
    swept = [name for name in names if frame[name].nunique() > 1] or names  # a fixed value makes no panel
    if metric is None or frame[metric[0]].isna().all():
        return
    direction = "higher is better" if metric[1] else "lower is better"
    st.markdown(f"**{metric[0]}** ({direction}) against each swept parameter")
    panels = []
    for name in swept:
        kind = "Q" if pd.api.types.is_numeric_dtype(frame[name]) else "N"
        panels.append(
            alt.Chart(frame.dropna(subset=[metric[0]]))
            .mark_circle(size=90)
            .encode(
                x=alt.X(f"{name}:{kind}", title=name, scale=alt.Scale(zero=False)),
                y=alt.Y(f"{metric[0]}:Q", title=metric[0], scale=alt.Scale(zero=False)),
                color=alt.Color("state:N", title="state"),
                tooltip=["point", *swept, "version", metric[0]],
            )
            .properties(width=260, height=220)
        )
    st.altair_chart(alt.hconcat(*panels), width="content")
