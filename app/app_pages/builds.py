"""Builds page: every build job (app, CLI, API), newest first, each linking to its live view or result.

Read from the job table beside the store, so it shows builds started in another tab, by the CLI, or
before the app restarted; it refreshes itself while any build is queued or running.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import common
import handoff
from handoff.jobs import STATES, Job, table_for

STATE_LABELS = {
    "queued": "… queued",
    "running": "▶ running",
    "passed": "✓ passed",
    "failed": "✗ FAILED",
    "cancelled": "■ cancelled",
    "interrupted": "⚠ interrupted",
}
PAGE_SIZE = 200
RECENT = 5  # ended builds listed above the table, with the running ones

st.title("Builds")


def _row(job: Job) -> dict[str, Any]:
    if job.active:
        where = job.progress
    elif job.state == "cancelled":
        where = job.message or "cancelled"
    else:  # the error names the stage and cell
        where = job.error or job.message or ""
    return {
        "state": STATE_LABELS.get(job.state, job.state),
        "model": job.model,
        "version": job.version,
        "notebook": job.notebook,
        "progress / result": common.say_plain(where)[:300],  # hints name the app's controls
        "elapsed (s)": round(job.elapsed),
        "submitted": common.human_time(job.created),
        "by": f"{job.user} ({job.source})",
        "open": f"/?job={job.id}",
    }


def recent(jobs: list[Job]) -> None:
    """Every queued or running build and the last few that ended, as lines with a link each."""
    ended = {j.id for j in [j for j in jobs if not j.active][:RECENT]}
    lines = []
    for job in jobs:
        if job.active or job.id in ended:
            row = _row(job)
            lines.append(
                f"- {row['state']} · **{job.model}**"
                + (f" v{job.version}" if job.version is not None else "")
                + f" · {common.escape_markdown(str(row['progress / result'])[:200])}"
                + f" · {row['elapsed (s)']} s · submitted {row['submitted']} · {row['by']} · [open](/?job={job.id})"
            )
        if len(lines) >= RECENT + 20:
            break
    st.markdown("\n".join(lines))


def job_table(states: list[str], model: str | None, refreshing: bool) -> None:
    everything = handoff.list_jobs(common.store_location(), model=model)
    jobs = [j for j in everything if j.state in states] if states else everything
    running = sum(1 for j in everything if j.active)
    if refreshing and not running:  # the last build ended: a full rerun stops the timer
        st.rerun(scope="app")
    if not everything:
        st.info("No builds yet. Start one on the Build page, or with `handoff build NOTEBOOK` in a terminal.")
        return
    if not jobs:
        st.info(f"No builds match these filters ({len(everything)} builds in all).")
        return
    counts = pd.Series([j.state for j in jobs]).value_counts()
    st.caption(
        " · ".join(f"{counts[s]} {s}" for s in STATES if s in counts)
        + (" · refreshing every 2 s while builds run" if running else "")
    )
    recent(jobs)
    shown = jobs[:PAGE_SIZE]
    st.dataframe(
        pd.DataFrame([_row(j) for j in shown]),
        hide_index=True,
        width="stretch",
        column_config={
            "open": st.column_config.LinkColumn("open", display_text="open build"),
            "version": st.column_config.NumberColumn("version", format="%d"),
        },
    )
    if len(jobs) > PAGE_SIZE:
        st.caption(f"the newest {PAGE_SIZE} of {len(jobs)} builds; filter by state or model to see older ones")


def filters() -> tuple[list[str], str | None]:
    models = table_for(common.store_location()).models()
    left, right = st.columns(2)
    states = left.multiselect("State", STATES, key="builds_state")
    model = right.selectbox("Model", ["(all models)", *models], key="builds_model")
    return states, (None if model == "(all models)" else model)


states, model = filters()
any_active = table_for(common.store_location()).active_count(model) > 0
# a fragment that reruns itself on a timer only while something can still change
st.fragment(job_table, run_every=2.0 if any_active else None)(states, model, any_active)
