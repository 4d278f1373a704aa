"""What the app's pages share: the store and worker handles, cached tables, small renderers.

Per-user state lives in ``st.session_state`` and the URL; process-wide handles in
``st.cache_resource``; tables in ``st.cache_data`` with bounded entries. Heavy imports
(MLflow, papermill) happen inside functions so the first page renders fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from handoff.timefmt import human_time as human_time  # one rendering of times: every page and the CLI

SAMPLES = Path(__file__).resolve().parents[1] / "sample_notebooks"
STATUS_ICONS = {"passed": "✓ passed", "failed": "✗ FAILED", "warning": "! warning", "skipped": "– skipped"}


def store_location() -> str | None:
    """``HANDOFF_STORE`` (set by ``handoff app --store``), else the library's default (HANDOFF_HOME)."""
    return os.environ.get("HANDOFF_STORE") or None


def is_server(location: str | None) -> bool:
    return bool(location) and str(location).startswith(("http://", "https://"))


def store(location: str | None = None) -> Any:
    """The store as this browser session sees it: a server's store carries the session's login
    (``require_login``; never shared between sessions), an embedded one is one handle for all."""
    location = location if location is not None else store_location()
    if is_server(location):
        session_store = st.session_state.get(_LOGIN)
        if session_store is None or session_store.uri != location:
            st.stop()  # not logged in (require_login shows the form first): nothing is read
        return session_store
    return _shared_store(location)


@st.cache_resource
def _shared_store(location: str | None) -> Any:
    import handoff

    return handoff.open_store(location)


_LOGIN = "handoff_login"  # st.session_state key: this session's server Store (with its credentials)


def require_login() -> None:
    """With a server store, this browser session logs in before any page: the credentials are checked
    against the server and kept in this session's state only; the sidebar shows who, with Log out."""
    location = store_location()
    if not is_server(location):
        return
    session_store = st.session_state.get(_LOGIN)
    if session_store is not None:
        with st.sidebar:
            st.caption(f"Logged in as **{session_store.user}** ({st.session_state.get(_LOGIN + '_role')})")
            if st.button("Log out", key="logout"):
                st.session_state.pop(_LOGIN, None)
                st.rerun()
        return
    from handoff.credentials import Credentials
    from handoff.errors import HandoffError
    from handoff.store import Store

    st.title("Log in")
    st.caption(f"to the team store at {location}")
    with st.form("login"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        candidate = Store(location, credentials=Credentials(username.strip(), password))
        try:
            role = candidate.login()
        except HandoffError as exc:  # wrong password, or the server does not answer
            st.error(str(exc))
        else:
            st.session_state[_LOGIN] = candidate
            st.session_state[_LOGIN + "_role"] = role or "no roles on this server"
            st.rerun()
    st.stop()


def missing_role(role: str, action: str) -> str | None:
    """Why this session's login may not ``action`` (its role is below ``role``), or ``None``: buttons
    say so before a click instead of failing after one (the server refuses it anyway)."""
    if not is_server(store_location()):
        return None
    from handoff.errors import PermissionDeniedError

    try:
        store().require_role(role, action)
    except PermissionDeniedError as exc:
        return str(exc)
    return None


def viewer() -> str | None:
    """Part of every cache key of what a server store shows: one user's reads are never served to
    another (``None`` for an embedded store, which has no logins)."""
    return str(store().user) if is_server(store_location()) else None


def current_user() -> str:
    """Who is acting: the session's login on a server store, else the OS user running the app."""
    from handoff.jobs import current_user as os_user

    return store().user if is_server(store_location()) else os_user()


def revision(location: str | None) -> tuple[int, ...] | None:
    """What the tables below are cached under: it changes with every write to the store, so a version
    recorded by another process (the CLI, a worker) shows on the next rerun (``None``: a server's
    store, read every time)."""
    from handoff.store import store_revision

    return store_revision(store(location))


def _list_models(location: str | None, revision: tuple[int, ...] | None) -> list[str]:
    return list(store(location).list_models())


def _list_versions(
    location: str | None, model: str | None, include_archived: bool, revision: tuple[int, ...] | None
) -> list[Any]:
    return list(store(location).list_versions(model, include_archived=include_archived))


# Keyed on the store's revision, so never older than the store; bounded, since each write leaves the
# old revision's entries behind (10,000 listed versions pickle to about 3.5 MB).
_cached_models = st.cache_data(max_entries=16, show_spinner=False)(_list_models)
_cached_versions = st.cache_data(max_entries=8, show_spinner=False)(_list_versions)


def models(location: str | None) -> list[str]:
    """The names of the store's models, sorted."""
    key = revision(location)
    return (_cached_models if key is not None else _list_models)(location, key)


def versions(location: str | None, model: str | None = None, include_archived: bool = False) -> list[Any]:
    """The versions of one model (or of every model) as listed (``handoff.VersionRecord``: nothing read
    but the listing, nothing verified), read again only when the store changed; archived ones only when
    asked (the Versions page's "Show archived"), so other pages never offer them. An unknown model has
    none."""
    from handoff.errors import VersionNotFoundError

    key = revision(location)
    try:
        return (_cached_versions if key is not None else _list_versions)(location, model, include_archived, key)
    except VersionNotFoundError:
        return []


def human_duration(seconds: float | None) -> str:
    """ "42 s", "3 min 5 s", "1 h 2 min"."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@st.cache_data(max_entries=64, ttl=5, show_spinner=False)  # short: every read re-verifies the digests
def _version_details(location: str | None, model: str, version: int, revision: Any, viewer: str | None) -> Any:
    return store(location).get_version(model, version)


def version_details(location: str | None, model: str, version: int) -> Any:
    """The version with its build record (``handoff.VersionRecord``), verified; read again when the
    store changed (an alias moved, the version was archived) and at least every few seconds."""
    return _version_details(location, model, version, revision(location), viewer())


@st.cache_data(max_entries=8, show_spinner="Packing…")
def package_bytes(
    location: str | None, model: str, version: int, force: bool, viewer: str | None
) -> tuple[str, bytes, str]:
    """(file name, zip bytes, sha256) of a version's deterministic package (``viewer``: ``viewer()``)."""
    import tempfile

    import handoff

    with tempfile.TemporaryDirectory(prefix="handoff-app-") as tmp:
        result = handoff.export(model, version, tmp, store=store(location), force=force)
        return result.path.name, result.path.read_bytes(), result.sha256


def samples() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.ipynb"))


def metrics_row(metrics: dict[str, float]) -> None:
    if not metrics:
        return
    columns = st.columns(min(len(metrics), 6))
    for column, (name, value) in zip(columns * 10, metrics.items(), strict=False):  # 6 per row
        column.metric(name, f"{value:.4g}")


def escape_markdown(text: str) -> str:
    """Literal text in Markdown: no emphasis, links or HTML from a notebook's strings."""
    return "".join(f"\\{c}" if c in "\\`*_[]<>|~$" else c for c in text)


def say(text: str, escape: bool = True) -> str:
    """A library message as Markdown for the app: option hints naming the app's controls ("the
    **Gate** checkbox ...") instead of CLI flags (``handoff.messages``); the rest escaped, unless
    ``escape`` is off for the library's own sentences whose `code` spans should stay code."""
    from handoff.messages import render

    return render(text, "app", escape=escape_markdown if escape else None)


def say_plain(text: str) -> str:
    """A library message for a table cell (no Markdown there): hints name the app's controls."""
    from handoff.messages import render

    return render(text, "app_plain")


FAILED_ROW_STYLE = "background-color: rgba(255, 43, 43, 0.16); font-weight: 600"


def _highlight_failed(row: pd.Series) -> list[str]:
    failed = any(str(v) in ("FAILED", STATUS_ICONS["failed"]) for v in row.values)
    return [FAILED_ROW_STYLE if failed else ""] * len(row)


def render_sections(parts: list[Any], error: bool = False) -> None:
    """A build record's sections (``handoff.record_view``): a heading each, its lines, its table.

    The build's error is each page's own box on top, so its section is left out (``error=True``
    draws it): one failure, shown once. FAILED rows of a table are highlighted.
    """
    from handoff.record_view import ERROR_SECTION

    for section in parts:
        if section.title == ERROR_SECTION and not error:
            continue
        st.subheader(section.title)
        for label, value in section.lines:
            st.markdown(f"**{escape_markdown(label)}:** {say(value)}")
        if section.table is not None:
            frame = pd.DataFrame(
                [[say_plain(c) for c in row] for row in section.table.rows], columns=list(section.table.columns)
            )
            # A static table, not st.dataframe: its text wraps, so every row and whole messages stay readable.
            st.table(frame.style.apply(_highlight_failed, axis=1).hide(axis="index"))


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


GOOD, BAD = "background-color: #d9f2d9", "background-color: #f8d7d7"


def evidence_table(evidence: Any) -> None:
    """A promotion's (or roll-back's) metrics against the champion: values, change, better/worse shaded."""
    new = evidence.version if hasattr(evidence, "version") else evidence.target
    rows, shades = [], []
    for m in evidence.metrics:
        change = ""
        if m.absolute is not None:
            rel = f" ({m.relative:+.1%})" if m.relative is not None else ""
            change = f"{m.absolute:+.4g}{rel} " + {True: "better", False: "worse", None: "same"}[m.better]
        arrow = "↑" if m.greater_is_better else "↓"
        rows.append(
            {
                "metric": escape_markdown(m.metric) + f" ({arrow})" + (" · primary" if m.primary else ""),
                f"champion v{evidence.current}": "–" if m.current is None else f"{m.current:.4g}",
                f"v{new}": "–" if m.candidate is None else f"{m.candidate:.4g}",
                "change": change or "–",
            }
        )
        shade = {True: GOOD, False: BAD}.get(m.better, "")
        shades.append(["", "", shade, shade])
    if not rows:
        st.caption("No metrics to compare.")
        return
    frame = pd.DataFrame(rows)
    styles = pd.DataFrame(shades, index=frame.index, columns=frame.columns)
    st.table(frame.style.apply(lambda _: styles, axis=None), hide_index=True)


def _rollback_reason(model: str, current: int | None) -> str:
    if current is None:
        return f"Nothing to roll back: {model} has no champion yet."
    return f"Nothing to roll back to: v{current} is the only champion {model} has had (no earlier champion)."


def alias_controls(location: str | None, model: str, version: int, status: str, key: str) -> None:
    """Promote / roll back, each behind a confirmation that shows the evidence first: the metrics
    against the current champion (better/worse shaded) and the candidate's failed checks; promoting a
    version worse on the primary metric needs a second, explicit confirmation. A button that cannot
    act is disabled and says why, instead of failing after the confirm."""
    import handoff
    from handoff.errors import HandoffError

    pending, outcome = f"confirm_{key}", f"outcome_{key}"
    reason_key, worse_key = f"{key}_reason", f"{key}_worse_ok"
    champion = store(location).alias_version(model)
    back = handoff.rollback_preview(model, store=store(location), evidence=False)
    blocked = missing_role("releaser", "promote")
    if blocked:
        pass
    elif status != "passed":
        blocked = "A version that failed its checklist can never be promoted."
    elif champion is not None and champion.version == version:
        blocked = f"v{version} is already the champion of {model}."
    else:
        blocked = None
    left, right = st.columns(2)
    if left.button(f"Promote v{version} to champion", key=f"{key}_promote", disabled=blocked is not None, help=blocked):
        st.session_state[pending] = ("promote", version)
    no_rollback = missing_role("releaser", "roll back") or (
        None if back.allowed else _rollback_reason(model, back.current)
    )
    if right.button("Roll back champion", key=f"{key}_rollback", disabled=no_rollback is not None, help=no_rollback):
        st.session_state[pending] = ("rollback", version)
    if blocked:
        left.caption(blocked)
    if no_rollback:
        right.caption(no_rollback)
    if outcome in st.session_state:  # the result of the last Confirm, shown once the question is gone
        kind, message = st.session_state.pop(outcome)
        (st.success if kind == "success" else st.error)(message)
    action, asked_for = st.session_state.get(pending) or (None, None)
    if not action or asked_for != version:  # nothing asked, or asked for a version no longer selected
        st.session_state.pop(pending, None)
        return

    def finish() -> None:
        for name in (pending, reason_key, worse_key):  # the next move starts with an empty form
            st.session_state.pop(name, None)

    try:
        evidence: Any = (
            handoff.promotion_preview(model, version, store=store(location))
            if action == "promote"
            else handoff.rollback_preview(model, store=store(location))
        )
    except HandoffError as exc:
        finish()
        st.error(str(exc))
        return
    if not evidence.allowed:  # the champion moved since the buttons were drawn (another tab, the CLI)
        finish()
        st.error(evidence.refused)
        return
    worse = action == "promote" and evidence.worse
    with st.container(border=True):
        if evidence.current is not None:
            st.markdown(
                f"**v{version if action == 'promote' else evidence.target}** against the current champion "
                f"**v{evidence.current}**"
            )
            evidence_table(evidence)
        if action == "promote":
            for check in evidence.concerns:
                st.markdown(f"{STATUS_ICONS.get(check.status, check.status)} `{check.id}`: {say(check.message)}")
            if worse:
                st.error(f"{evidence.worse_message}.")
        if action == "promote" and evidence.current is not None:
            question = f"Move **champion** of {model} from v{evidence.current} to v{version}?"
        elif action == "promote":
            question = f"Make v{version} the first **champion** of {model}?"
        else:
            question = f"Move **champion** of {model} back from v{evidence.current} to v{evidence.target}?"
        st.warning(question)
        reason = st.text_input("Reason (kept in the history)", key=reason_key)
        insist = st.checkbox("I want to promote a worse version", key=worse_key) if worse else False
        confirm, cancel = st.columns(2)
        if confirm.button("Confirm", type="primary", key=f"{key}_confirm", disabled=worse and not insist):
            finish()
            try:
                if action == "promote":
                    move = handoff.promote(
                        model, version, store=store(location), reason=reason or None, allow_worse=insist
                    )
                else:
                    move = handoff.rollback(model, store=store(location), reason=reason or None)
                _version_details.clear()  # a server's store has no revision to key it on
                entry = move.entry
                message = f"champion of {model}: {move.move} ({entry['kind']} by {entry['by']})"
                st.session_state[outcome] = ("success", message)
            except HandoffError as exc:
                st.session_state[outcome] = ("error", str(exc))
            st.rerun()  # without the question, the reason and these buttons, which were drawn before the click
        if cancel.button("Cancel", key=f"{key}_cancel"):
            finish()
            st.rerun()


def history_table(location: str | None, model: str) -> None:
    """Every alias move of the model, newest first: when (human), from and to (``none`` → v2), who, why."""
    import handoff
    from handoff.lifecycle import history_rows

    entries = handoff.history(model, store=store(location))
    if not entries:
        st.caption("No alias has been moved yet.")
        return
    st.dataframe(pd.DataFrame(history_rows(entries[::-1])), hide_index=True, width="stretch")
