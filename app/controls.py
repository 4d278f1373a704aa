"""The Build page's controls for what only the CLI could do: user tests (``--tests``), the secrets
waiver (``--allow-secrets``), the disk and process limits (``--max-disk``, ``--max-processes``) and
the model picker (``--model-var``). Their labels are the ones ``handoff.messages`` names in hints.

Everything they produce is plain data in the build request (uploads are bytes; the library writes
them where the build can read them), so a request can be resubmitted or run in another process.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

import common
from handoff.messages import OPTIONS

TESTS_LABEL = (
    f"{OPTIONS['tests'].control} (pytest, run against the saved model with the fixtures "
    "`model`, `input_example`, `manifest`: the user.tests check)"
)
SECRETS_LABEL = f"{OPTIONS['allow_secrets'].control}: the reason (kept with the version; notebook.secrets then passes)"
PICKER_LABEL = OPTIONS["model_var"].control
REBUILD_LABEL = "Rebuild with this model"


def test_uploads(key: str = "tests_upload") -> dict[str, bytes]:
    """The pytest files for ``user.tests``, as name to bytes."""
    uploads = st.file_uploader(TESTS_LABEL, type=["py"], accept_multiple_files=True, key=key)
    return {f.name: f.getvalue() for f in uploads or []}


def checklist_extras() -> dict[str, Any]:
    """Inside the form's "Checklist and time limits": the checklist settings the CLI has as flags."""
    files = test_uploads()
    reason = st.text_input(SECRETS_LABEL, key="allow_secrets")
    return {"test_files": files or None, "allow_secrets": reason.strip() or None}


def sandbox_extras(limits: Any) -> dict[str, Any]:
    """Inside the form's "Sandbox": the limits the CLI has as ``--max-disk`` and ``--max-processes``."""
    disk = st.number_input(OPTIONS["max_disk"].control, min_value=0.1, value=float(limits.max_disk_gib), step=1.0)
    processes = st.number_input(OPTIONS["max_processes"].control, min_value=1, value=int(limits.max_processes), step=16)
    return {"max_disk_gib": float(disk), "max_processes": int(processes)}


def rebuild(job: Any, **changes: Any) -> None:
    """Build the job's request again with ``changes`` (e.g. ``model_var``): a new job, shown at once."""
    import handoff
    from handoff.errors import HandoffError

    try:
        again = handoff.resubmit(job, store=common.store(), **changes)
    except HandoffError as exc:
        st.error(f"Cannot build: {exc.render('app')}")
        return
    st.query_params["job"] = again.id
    st.rerun()


def picker_choices(result: Any) -> list[tuple[str, str]]:
    """(variable, label) of every candidate the picker offers: models held by a notebook variable,
    the one shipped first. Several are needed, or one after a failed build."""
    model = result.model
    if model is None:
        return []
    chosen = model.variable
    choices = [
        (
            c.name,
            f"{c.name} · {c.type.rsplit('.', 1)[-1]}"
            + (f" · cell {c.cell}" if c.cell else "")
            + (f" · part of {c.part_of}" if c.part_of else "")
            + (" · shipped" if c.name == chosen else ""),
        )
        for c in model.candidates
        if c.kind == "variable" and c.name.isidentifier()
    ]
    choices.sort(key=lambda c: c[0] != chosen)
    return choices if len(choices) > 1 or (choices and not result.ok) else []


def model_picker(job: Any, result: Any) -> None:
    """Below a build's result: choose another of its recorded candidates and rebuild with it."""
    choices = picker_choices(result)
    if not choices:
        return
    labels = dict(choices)
    st.subheader("Choose the model")
    st.caption(
        "The build considered several models. Pick the one to ship and build again with the same "
        "notebook, parameters and settings."
    )
    picked = st.selectbox(PICKER_LABEL, list(labels), format_func=labels.__getitem__, key="model_picker")
    if st.button(REBUILD_LABEL, key="rebuild_with_model"):
        rebuild(job, model_var=picked)
