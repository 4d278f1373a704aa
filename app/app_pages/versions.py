"""Versions page: find a version among many (search, filters, sort, pages of 50), open one, compare
several, archive one; the trend of each model's primary metric, failed versions marked."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

import common
from handoff.comparison import primary_metric

PAGE_SIZE = 50
MAX_PARAMS, MAX_METRICS, MAX_TRENDS = 8, 4, 6
FIXED = ("model", "version", "status", "alias", "created", "notebook", "author", "duration")
STATUS_COLORS = {"passed": "#4c78a8", "failed": "#e4572e"}
STATUS_SHAPES = {"passed": "circle", "failed": "cross"}


def _turn_to(page: int) -> None:
    """Show another page; the ticked rows were rows of the old one, so they are cleared."""
    st.session_state["versions_page"] = page
    st.session_state.pop("versions_table", None)


def _first_page() -> None:
    """A new search, filter or sort starts from the first page."""
    _turn_to(0)


def _differing_params(rows: list[dict[str, Any]]) -> list[str]:
    """The parameters whose value is not the same in every version of a model (a missing one counts)."""
    by_model: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r["params"])
    names: dict[str, None] = {}
    for params in by_model.values():
        for key in dict.fromkeys(k for p in params for k in p):
            if len({p.get(key) for p in params}) > 1:
                names[key] = None
    return list(names)


def _matches(row: dict[str, Any], needle: str) -> bool:
    """The search box: model, notebook, author, or a parameter's ``name=value``, case-insensitive."""
    haystack = [row["model"], row["notebook"] or "", row["author"] or ""]
    haystack += [f"{k}={v}" for k, v in row["params"].items()]
    return any(needle in h.lower() for h in haystack)


def _sortable(values: pd.Series) -> pd.Series:
    """Parameters are stored as text: sort them as numbers when every one is a number."""
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().sum() == values.notna().sum() else values


def _trend(rows: list[dict[str, Any]], model: str) -> tuple[str, bool, pd.DataFrame] | None:
    """(metric, greater is better, points) of a model's primary metric over its versions not archived."""
    versions = sorted((r for r in rows if r["model"] == model and not r["archived"]), key=lambda r: r["version"])
    reported = [r for r in versions if r["metrics"]]
    primary = primary_metric(reported[-1]["metrics"]) if reported else None
    if primary is None:
        return None
    metric, up = primary
    points = pd.DataFrame(
        [
            {"version": r["version"], "value": r["metrics"][metric], "status": r["status"]}
            for r in versions
            if metric in r["metrics"]
        ]
    )
    return metric, up, points


def _trend_chart(model: str, metric: str, up: bool, points: pd.DataFrame) -> None:
    import altair as alt

    title = f"{metric} ({'↑' if up else '↓'} better)"
    x = alt.X("version:O", title="version")
    y = alt.Y("value:Q", title=title, scale=alt.Scale(zero=False))  # from 0, 0.97 → 0.95 looks flat
    line = alt.Chart(points).mark_line(color="#9aa5b1").encode(x=x, y=y)
    status = list(STATUS_COLORS)
    dots = (
        alt.Chart(points)
        .mark_point(filled=True, size=90)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=status, range=[STATUS_COLORS[s] for s in status]),
                legend=alt.Legend(title="status"),
            ),
            shape=alt.Shape("status:N", scale=alt.Scale(domain=status, range=[STATUS_SHAPES[s] for s in status])),
            tooltip=["version", alt.Tooltip("value:Q", title=metric), "status"],
        )
    )
    st.altair_chart((line + dots).properties(title=f"{model}: {title}", height=240), width="stretch")


def _archive_controls(location: str | None, row: dict[str, Any]) -> None:
    """Archive / Unarchive of the one selected version, behind a confirmation; refused for the champion."""
    import handoff
    from handoff.errors import HandoffError

    model, version = row["model"], row["version"]
    verb = "Unarchive" if row["archived"] else "Archive"
    champion = "champion" in row["aliases"].split(", ")
    if verb == "Archive" and champion:
        why = f"v{version} is the champion: promote another version (or roll back) before archiving it."
        st.button(f"Archive v{version}", disabled=True, help=why, key="archive_disabled")
        st.caption(why)
    elif st.button(f"{verb} v{version}", key="archive_start"):
        st.session_state["archive_pending"] = (model, version, verb)
    pending = st.session_state.get("archive_pending")
    if pending != (model, version, verb):
        return
    if verb == "Archive":
        st.warning(
            f"Archive **{model} v{version}**? It is hidden from lists and from Compare, never deleted: "
            "“Show archived” lists it again, and it can be unarchived."
        )
    else:
        st.warning(f"Unarchive **{model} v{version}**? It is listed everywhere again.")
    reason = st.text_input("Reason (kept in the history)", key="archive_reason")
    confirm, cancel = st.columns(2)
    if confirm.button(f"Confirm {verb.lower()}", type="primary", key="archive_confirm"):
        st.session_state.pop("archive_pending", None)
        st.session_state.pop("archive_reason", None)
        act = handoff.archive if verb == "Archive" else handoff.unarchive
        try:
            entry = act(model, version, store=common.store(location), reason=reason or None)
            st.session_state["archive_outcome"] = ("success", f"{model} v{version} {entry['kind']}d by {entry['by']}")
        except HandoffError as exc:
            st.session_state["archive_outcome"] = ("error", str(exc))
        common.version_rows.clear()
        st.rerun()
    if cancel.button("Cancel", key="archive_cancel"):
        st.session_state.pop("archive_pending", None)
        st.rerun()


st.title("Versions")
location = common.store_location()
show_archived = st.toggle(
    "Show archived", key="versions_archived", on_change=_first_page, help="Archived versions are hidden, never deleted."
)
rows = common.version_rows(location, show_archived)
if not rows:
    st.info("No versions yet: build a notebook on the Build page.")
    st.stop()

models = sorted({r["model"] for r in rows})
chosen = st.selectbox(
    "Model",
    ["All models", *models],
    index=(models.index(st.query_params["model"]) + 1) if st.query_params.get("model") in models else 0,
    on_change=_first_page,
)
in_model = [r for r in rows if chosen == "All models" or r["model"] == chosen]
params = _differing_params(in_model)[:MAX_PARAMS]
metric_names = list(dict.fromkeys(k for r in in_model for k in r["metrics"]))[:MAX_METRICS]
labels = {p: (f"param {p}" if p in FIXED or p in metric_names else p) for p in params}

search_col, status_col, alias_col = st.columns([3, 1, 1])
search = search_col.text_input(
    "Search",
    placeholder="model, notebook, parameter (e.g. C=0.5), author",
    key="versions_search",
    on_change=_first_page,
)
status = status_col.selectbox("Status", ["any", "passed", "failed"], key="versions_status", on_change=_first_page)
aliases = sorted({a for r in in_model for a in r["aliases"].split(", ") if a})
alias = alias_col.selectbox("Alias", ["any", *aliases], key="versions_alias", on_change=_first_page)
sort_col, order_col = st.columns([3, 2])
sort_options = [*FIXED, *labels.values(), *metric_names]
sort_by = sort_col.selectbox(
    "Sort by", sort_options, index=sort_options.index("created"), key="versions_sort", on_change=_first_page
)
descending = order_col.toggle("Descending", value=True, key="versions_desc", on_change=_first_page)

needle = search.strip().lower()
found = [
    r
    for r in in_model
    if (status == "any" or r["status"] == status)
    and (alias == "any" or alias in r["aliases"].split(", "))
    and (not needle or _matches(r, needle))
]
table = pd.DataFrame(
    [
        {
            "model": r["model"],
            "version": r["version"],
            "status": r["status"],
            "alias": r["aliases"],
            "created": r["created"],
            "notebook": r["notebook"],
            "author": r["author"],
            "duration": r["duration"],
            **{labels[p]: r["params"].get(p) for p in params},
            **{m: r["metrics"].get(m) for m in metric_names},
            "archived": r["archived"],
        }
        for r in found
    ],
    columns=[*FIXED, *labels.values(), *metric_names, "archived"],
)
if sort_by in table.columns and len(table):  # stable: ties stay newest first
    key = _sortable if sort_by in labels.values() else None
    table = table.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last", key=key)

pages = max(1, math.ceil(len(table) / PAGE_SIZE))
current = min(max(int(st.session_state.get("versions_page", 0)), 0), pages - 1)
st.session_state["versions_page"] = current
start = current * PAGE_SIZE
shown = table.iloc[start : start + PAGE_SIZE]
frame = shown.drop(columns="archived").assign(
    status=[
        common.STATUS_ICONS.get(s, s) + (" · archived" if a else "")
        for s, a in zip(shown["status"], shown["archived"], strict=True)
    ],
    created=[common.human_time(c) for c in shown["created"]],
    duration=[common.human_duration(None if pd.isna(d) else float(d)) for d in shown["duration"]],
)
if not len(table):
    st.caption(f"No version matches (of {len(in_model)}).")
else:
    where = f"{start + 1}–{start + len(shown)} of {len(table)}" + (
        f" (of {len(in_model)})" if found != in_model else ""
    )
    st.caption(f"Versions {where}. Select one row to open or archive it, or several of one model to compare them.")
selection = st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="multi-row",
    key="versions_table",
    column_config={"version": st.column_config.NumberColumn(format="%d")},
)
if pages > 1:
    back, where_col, forward = st.columns([1, 2, 1])
    back.button("← Previous", disabled=current == 0, key="versions_prev", on_click=_turn_to, args=(current - 1,))
    where_col.caption(f"Page {current + 1} of {pages}")
    forward.button("Next →", disabled=current >= pages - 1, key="versions_next", on_click=_turn_to, args=(current + 1,))

by_key = {(r["model"], r["version"]): r for r in found}
picked_rows = [i for i in (selection.selection.rows if selection else []) if i < len(shown)]
picked = [by_key[(shown.iloc[i]["model"], int(shown.iloc[i]["version"]))] for i in picked_rows]
if "archive_outcome" in st.session_state:
    kind, message = st.session_state.pop("archive_outcome")
    (st.success if kind == "success" else st.error)(message)
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
if len(picked) == 1:
    _archive_controls(location, picked[0])

trend_models = [chosen] if chosen != "All models" else models[:MAX_TRENDS]
trends = [(m, t) for m in trend_models if (t := _trend(rows, m)) is not None]
if trends:
    st.subheader("Trend")
    st.caption("Each model's primary metric (the first its notebook reported) by version; ✗ marks a failed version.")
    for model_name, (metric, up, points) in trends:
        _trend_chart(model_name, metric, up, points)
    if chosen == "All models" and len(models) > MAX_TRENDS:
        st.caption(f"Trends of the first {MAX_TRENDS} models; choose a model to see another's.")

if chosen != "All models":
    st.subheader(f"Alias history of {chosen}")
    common.history_table(location, chosen)
