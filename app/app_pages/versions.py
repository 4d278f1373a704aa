"""Versions page: find a version among many (search, filters by status, alias and metric range,
sort, pages of 50), open one, compare several, archive one; the trend of each model's primary metric,
failed versions marked.

Built for stores of thousands of versions: the listing is read once per change of the store (cached
under its revision, never older than it), one model's versions only when a model is chosen; filtering
and sorting work on the listed records, and only the 50 rows shown become a table. A trend draws a
model's latest ``MAX_POINTS`` versions, not all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

import common
from handoff.comparison import primary_metric
from handoff.store import MetricRange, VersionRecord, filter_versions

PAGE_SIZE = 50
MAX_PARAMS, MAX_METRICS, MAX_TRENDS = 8, 4, 6
MAX_POINTS = 200  # of a trend: the latest versions (a chart's points all go to the browser)
FIXED = ("model", "version", "status", "alias", "created", "notebook", "author", "duration")
STATUS_COLORS = {"passed": "#4c78a8", "failed": "#e4572e"}
STATUS_SHAPES = {"passed": "circle", "failed": "cross"}
ANY = "any"


def _turn_to(page: int) -> None:
    """Show another page; the ticked rows were rows of the old one, so they are cleared."""
    st.session_state["versions_page"] = page
    st.session_state.pop("versions_table", None)


def _first_page() -> None:
    """A new search, filter or sort starts from the first page."""
    _turn_to(0)


def _new_metric() -> None:
    """Another metric: the old one's bounds mean nothing for it."""
    st.session_state.pop("versions_min", None)
    st.session_state.pop("versions_max", None)
    _first_page()


def _differing_params(versions: list[VersionRecord]) -> list[str]:
    """The parameters whose value is not the same in every version of a model (a missing one counts)."""
    by_model: dict[str, list[dict[str, str]]] = {}
    for v in versions:
        by_model.setdefault(v.name, []).append(v.params)
    names: dict[str, None] = {}
    for params in by_model.values():
        for key in dict.fromkeys(k for p in params for k in p):
            if key not in names:
                first = params[0].get(key)
                if any(p.get(key) != first for p in params):
                    names[key] = None
    return list(names)


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _column(name: str, params: dict[str, str], versions: list[VersionRecord]) -> Callable[[VersionRecord], Any]:
    """The value a version shows in column ``name`` (``None``: none), as it sorts: parameters are
    stored as text, and sort as numbers when every one given is a number."""
    if name in params:
        param = params[name]
        given = [v.params[param] for v in versions if param in v.params]
        if all(_number(t) is not None for t in given):
            return lambda v: _number(v.params.get(param))
        return lambda v: v.params.get(param)
    fixed: dict[str, Callable[[VersionRecord], Any]] = {
        "model": lambda v: v.name,
        "version": lambda v: v.version,
        "status": lambda v: v.status,
        "alias": lambda v: ", ".join(v.aliases),
        "created": lambda v: v.created,
        "notebook": lambda v: v.notebook,
        "author": lambda v: v.author,
        "duration": lambda v: v.duration,
    }
    return fixed.get(name) or (lambda v: v.metrics.get(name))


def _sorted(versions: list[VersionRecord], by: str, descending: bool, params: dict[str, str]) -> list[VersionRecord]:
    """Sorted by one column, versions without a value last; ties stay newest first."""
    newest = sorted(versions, key=lambda v: (v.created or "", v.version), reverse=True)
    value = _column(by, params, versions)
    known = [v for v in newest if value(v) is not None]
    known.sort(key=value, reverse=descending)  # stable, reversed or not: ties keep their order
    return known + [v for v in newest if value(v) is None]


def _trend(versions: list[VersionRecord], model: str) -> tuple[str, bool, list[dict[str, Any]], int] | None:
    """(metric, greater is better, points, versions in all) of a model's primary metric over its versions
    not archived: the latest ``MAX_POINTS`` of them."""
    kept = sorted((v for v in versions if v.name == model and not v.archived), key=lambda v: v.version)
    reported = [v for v in kept if v.metrics]
    primary = primary_metric(reported[-1].metrics) if reported else None
    if primary is None:
        return None
    metric, up = primary
    points = [
        {"version": v.version, "value": v.metrics[metric], "status": v.status} for v in kept if metric in v.metrics
    ]
    return metric, up, points[-MAX_POINTS:], len(points)


def _trend_chart(model: str, metric: str, up: bool, points: list[dict[str, Any]]) -> None:
    """A line through the versions' values with a dot each, coloured and shaped by status. The Vega-Lite
    spec is written here rather than with Altair, whose validation costs more than the page's data."""
    title = f"{metric} ({'↑' if up else '↓'} better)"
    x = {"field": "version", "type": "ordinal", "title": "version"}
    y = {"field": "value", "type": "quantitative", "title": title, "scale": {"zero": False}}  # 0.97 → 0.95 not flat
    status = list(STATUS_COLORS)
    spec = {
        "title": f"{model}: {title}",
        "height": 240,
        "datasets": {"points": points},
        "data": {"name": "points"},
        "layer": [
            {"mark": {"type": "line", "color": "#9aa5b1"}, "encoding": {"x": x, "y": y}},
            {
                "mark": {"type": "point", "filled": True, "size": 90},
                "encoding": {
                    "x": x,
                    "y": y,
                    "color": {
                        "field": "status",
                        "type": "nominal",
                        "scale": {"domain": status, "range": [STATUS_COLORS[s] for s in status]},
                        "legend": {"title": "status"},
                    },
                    "shape": {
                        "field": "status",
                        "type": "nominal",
                        "scale": {"domain": status, "range": [STATUS_SHAPES[s] for s in status]},
                    },
                    "tooltip": [
                        {"field": "version", "type": "ordinal"},
                        {"field": "value", "type": "quantitative", "title": metric},
                        {"field": "status", "type": "nominal"},
                    ],
                },
            },
        ],
    }
    st.vega_lite_chart(spec, width="stretch")


def _archive_controls(location: str | None, picked: VersionRecord) -> None:
    """Archive / Unarchive of the one selected version, behind a confirmation; refused for the champion."""
    import handoff
    from handoff.errors import HandoffError

    model, version = picked.name, picked.version
    verb = "Unarchive" if picked.archived else "Archive"
    champion = "champion" in picked.aliases
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
        st.rerun()  # the store changed: the listing is read again
    if cancel.button("Cancel", key="archive_cancel"):
        st.session_state.pop("archive_pending", None)
        st.rerun()


st.title("Versions")
location = common.store_location()
show_archived = st.toggle(
    "Show archived", key="versions_archived", on_change=_first_page, help="Archived versions are hidden, never deleted."
)
models = common.models(location)
asked = st.query_params.get("model")
chosen = st.selectbox(
    "Model",
    ["All models", *models],
    index=(models.index(asked) + 1) if asked in models else 0,
    on_change=_first_page,
)
in_model = common.versions(location, None if chosen == "All models" else chosen, show_archived)
if chosen == "All models" and not in_model:
    st.info("No versions yet: build a notebook on the Build page.")
    st.stop()
params = _differing_params(in_model)[:MAX_PARAMS]
every_metric = list(dict.fromkeys(k for v in in_model for k in v.metrics))
metric_names = every_metric[:MAX_METRICS]
labels = {p: (f"param {p}" if p in FIXED or p in every_metric else p) for p in params}

search_col, status_col, alias_col = st.columns([3, 1, 1])
search = search_col.text_input(
    "Search",
    placeholder="model, notebook, parameter (e.g. C=0.5), author",
    key="versions_search",
    on_change=_first_page,
)
status = status_col.selectbox("Status", [ANY, "passed", "failed"], key="versions_status", on_change=_first_page)
aliases = sorted({a for v in in_model for a in v.aliases})
alias = alias_col.selectbox("Alias", [ANY, *aliases], key="versions_alias", on_change=_first_page)
metric_col, low_col, high_col = st.columns([3, 1, 1])
metric = metric_col.selectbox(
    "Metric",
    [ANY, *every_metric],
    key="versions_metric",
    on_change=_new_metric,
    help="Keep the versions whose value of this metric lies between Min and Max (both included).",
)
values = [x for v in in_model if (x := v.metrics.get(metric)) is not None] if metric != ANY else []
low, high = (
    column.number_input(
        label,
        value=None,
        step=0.01,
        format="%.4g",
        key=f"versions_{label.lower()}",
        on_change=_first_page,
        disabled=metric == ANY,
        placeholder=f"{extreme(values):.4g}" if values else "no bound",  # the values there are, as a hint
    )
    for column, label, extreme in ((low_col, "Min", min), (high_col, "Max", max))
)
sort_col, order_col = st.columns([3, 2])
if metric != ANY and metric not in metric_names:  # the filtered metric is a column too
    metric_names.append(metric)
sort_options = [*FIXED, *labels.values(), *metric_names]
sort_by = sort_col.selectbox(
    "Sort by", sort_options, index=sort_options.index("created"), key="versions_sort", on_change=_first_page
)
descending = order_col.toggle("Descending", value=True, key="versions_desc", on_change=_first_page)

ranged = None
if metric != ANY:
    if low is not None and high is not None and low > high:
        st.warning(f"Min {low:g} is above Max {high:g}: no version can match, so the range is not applied.")
    else:
        ranged = MetricRange(metric, low, high)
found = filter_versions(
    in_model,
    status=None if status == ANY else status,
    alias=None if alias == ANY else alias,
    search=search or None,
    metric_range=ranged,
)
found = _sorted(found, sort_by, descending, {label: p for p, label in labels.items()})

pages = max(1, math.ceil(len(found) / PAGE_SIZE))
current = min(max(int(st.session_state.get("versions_page", 0)), 0), pages - 1)
st.session_state["versions_page"] = current
start = current * PAGE_SIZE
shown = found[start : start + PAGE_SIZE]
frame = pd.DataFrame(
    [
        {
            "model": v.name,
            "version": v.version,
            "status": common.STATUS_ICONS.get(v.status, v.status) + (" · archived" if v.archived else ""),
            "alias": ", ".join(v.aliases),
            "created": common.human_time(v.created),
            "notebook": v.notebook,
            "author": v.author,
            "duration": common.human_duration(v.duration),
            **{labels[p]: v.params.get(p) for p in params},
            **{m: v.metrics.get(m) for m in metric_names},
        }
        for v in shown
    ],
    columns=[*FIXED, *labels.values(), *metric_names],
)
if not found:
    st.caption(f"No version matches (of {len(in_model)}).")
else:
    where = f"{start + 1}–{start + len(shown)} of {len(found)}" + (
        f" (of {len(in_model)})" if len(found) != len(in_model) else ""
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

picked = [shown[i] for i in (selection.selection.rows if selection else []) if i < len(shown)]
if "archive_outcome" in st.session_state:
    kind, message = st.session_state.pop("archive_outcome")
    (st.success if kind == "success" else st.error)(message)
left, right = st.columns(2)
if len(picked) == 1 and left.button(f"Open {picked[0].name} v{picked[0].version}", type="primary"):
    st.switch_page(
        "app_pages/version_detail.py", query_params={"model": picked[0].name, "version": str(picked[0].version)}
    )
if len(picked) >= 2:
    if len({p.name for p in picked}) == 1 and right.button(f"Compare {len(picked)} versions", type="primary"):
        st.switch_page(
            "app_pages/compare.py",
            query_params={
                "model": picked[0].name,
                "versions": ",".join(str(p.version) for p in sorted(picked, key=lambda p: p.version)),
            },
        )
    elif len({p.name for p in picked}) > 1:
        right.caption("Pick versions of one model to compare them.")
if len(picked) == 1:
    _archive_controls(location, picked[0])

trend_models = [chosen] if chosen != "All models" else models[:MAX_TRENDS]
trends = [(m, t) for m in trend_models if (t := _trend(in_model, m)) is not None]
if trends:
    st.subheader("Trend")
    st.caption("Each model's primary metric (the first its notebook reported) by version; ✗ marks a failed version.")
    for model_name, (trend_metric, up, points, total) in trends:
        _trend_chart(model_name, trend_metric, up, points)
        if total > len(points):
            st.caption(f"{model_name}: the latest {len(points)} of its {total} versions.")
    if chosen == "All models" and len(models) > MAX_TRENDS:
        st.caption(f"Trends of the first {MAX_TRENDS} models; choose a model to see another's.")

if chosen != "All models":
    st.subheader(f"Alias history of {chosen}")
    common.history_table(location, chosen)
