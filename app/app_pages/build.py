"""Build page: pick or upload a notebook, set its parameters, build in the background, see the result."""

from __future__ import annotations

from typing import Any

import streamlit as st

import common
import controls
from handoff.errors import HandoffError
from handoff.inspection import NotebookParameter, NotebookSource, load_notebook, parse_params
from handoff.jobs import DONE, RUNNING
from handoff.missing_modules import missing_module, package_for
from handoff.record_view import sections

st.title("Build a model version")
jobs = common.jobs()
job = jobs.get(st.query_params.get("job"))


def parameter_widget(param: NotebookParameter, notebook_sha: str) -> Any:
    """A widget for one parameter, pre-filled with its default; returns the raw widget value."""
    label = f"{param.name} ({param.type})"
    help_ = param.help or None
    key = f"param_{notebook_sha[:12]}_{param.name}"  # another notebook must not inherit these values
    if param.type == "bool":
        return st.checkbox(label, value=bool(param.default), help=help_, key=key)
    if param.type == "int":
        return st.number_input(label, value=int(param.default), step=1, help=help_, key=key)
    if param.type == "float":
        return st.number_input(label, value=float(param.default), step=None, format="%g", help=help_, key=key)
    if param.type == "str":
        return st.text_input(label, value=str(param.default), help=help_, key=key)
    return st.text_input(label, value=param.default_source, help=(help_ or "") + " (a Python/JSON literal)", key=key)


def chosen_notebook() -> tuple[NotebookSource | None, dict[str, bytes]]:
    """The notebook to build (uploaded or a sample) and any uploaded data files."""
    mode = st.radio("Notebook", ["Upload a notebook", "Use a sample notebook"], horizontal=True)
    limit = st.get_option("server.maxUploadSize")
    if mode == "Use a sample notebook":
        sample = st.selectbox("Sample notebook", common.samples())
        return (load_notebook(common.SAMPLES / sample) if sample else None), {}
    upload = st.file_uploader(f"Notebook (.ipynb, up to {limit} MB)", type=["ipynb"], key="notebook_upload")
    data = st.file_uploader(
        "Data files it reads (optional; placed beside the notebook, so `pd.read_csv('data.csv')` works). "
        "A `requirements.txt` here makes the build environment the notebook runs in.",
        accept_multiple_files=True,
        key="data_upload",
    )
    files = {f.name: f.getvalue() for f in data or []}
    if upload is None:
        st.info("Upload a notebook to start, or pick a sample notebook.")
        return None, files
    return load_notebook(upload.getvalue(), name=upload.name), files


def build_form(source: NotebookSource, files: dict[str, bytes]) -> None:
    from handoff.build import BuildOptions
    from handoff.check_config import resolve_config
    from handoff.checks import check_ids
    from handoff.store import model_name_from

    if source.parameters is None:
        st.info(
            "This notebook has no parameters cell (a code cell tagged `parameters`): "
            "it will run with the values written in it."
        )
    limits = BuildOptions()  # the defaults, as the CLI's
    with st.form("build_form"):
        raw: dict[str, Any] = {}
        if source.parameters:
            st.subheader("Parameters")
            columns = st.columns(2)
            for index, param in enumerate(source.parameters):
                with columns[index % 2]:
                    raw[param.name] = parameter_widget(param, source.sha256)
        name = st.text_input("Model name", value=model_name_from(source.name))
        with st.expander("Checklist and time limits"):
            thresholds = st.text_area("Thresholds, one per line", placeholder="accuracy >= 0.9\nrmse <= 55")
            gate = st.checkbox("Gate: no metric may be worse than the champion's")
            skip = st.multiselect("Skip checks", check_ids())
            reproduce = st.checkbox("Check reproducibility (runs the notebook a second time)")
            verify_env = st.checkbox(
                "Check the package installs from its own requirements.txt (env.rebuilds: a new virtualenv)"
            )
            extras = controls.checklist_extras()
            timeout = st.number_input("Whole-run limit (seconds)", min_value=5, value=int(limits.timeout), step=60)
            cell_timeout = st.number_input(
                "Per-cell limit (seconds)", min_value=5, value=int(limits.cell_timeout), step=30
            )
        with st.expander("Sandbox (the notebook is untrusted code)"):
            allow_network = st.checkbox("Allow network access (recorded with the version)")
            memory = st.number_input("Memory limit (GiB)", min_value=0.25, value=limits.memory_gib, step=0.5)
            max_output = st.number_input(
                "Output kept per cell (MB)", min_value=0.1, value=limits.max_cell_output_mb, step=1.0
            )
            sandbox_limits = controls.sandbox_extras(limits)
        submitted = st.form_submit_button("Build", type="primary")
    if not submitted:
        return
    settings = {
        "thresholds": [t for t in thresholds.splitlines() if t.strip()],
        "gate": gate or None,
        "skip": skip,
        "reproduce": reproduce or None,
        "verify_env": verify_env or None,
        **extras,
    }
    try:
        params = parse_params(source, raw, drop_defaults=True)
        resolve_config(
            cli={k: v for k, v in settings.items() if k != "test_files"}, notebook_metadata=source.notebook.metadata
        )
    except HandoffError as exc:
        st.error(f"Cannot build: {exc.render('app')}")
        return
    import handoff

    job = jobs.submit(
        f"{name} (from {source.name}.ipynb)",
        handoff.build,
        notebook=source,
        params=params,
        name=name,
        store=common.store(common.store_location()),
        checks=settings,
        files=files,
        timeout=float(timeout),
        cell_timeout=float(cell_timeout),
        allow_network=allow_network,
        memory_gib=float(memory),
        max_cell_output_mb=float(max_output),
        **sandbox_limits,
    )
    st.query_params["job"] = job.id
    st.rerun()


@st.fragment(run_every=1.0)
def live_progress(job_id: str) -> None:
    job = jobs.get(job_id)
    if job is None or job.state != RUNNING:
        st.rerun(scope="app")
        return
    event = job.last_event
    if event is None:
        st.progress(0.0, text="Starting…")
    elif event.stage == "execute" and event.total:
        st.progress(
            min((event.done or 0) / event.total, 1.0),
            text=f"Running cell {event.cell} ({event.done} of {event.total} code cells)",
        )
        st.code(event.message or " ", language="python")
    else:
        st.progress(
            1.0 if event.stage in ("check", "record", "package") else 0.05, text=f"{event.stage}: {event.message}"
        )
    st.caption(
        f"Stage **{event.stage if event else 'queued'}** · elapsed {job.elapsed:.0f} s · "
        "you can leave this page: the build goes on, and this link brings you back."
    )


def add_package_and_rebuild(job: Any) -> None:
    """For a build that failed at an import: a button that adds the package and builds again."""
    error = job.result.error
    module = missing_module(error.ename, error.traceback or "") if error else None
    if module is None:
        return
    package = package_for(module)
    if st.button(f"Add {package} to the build environment and rebuild", type="primary"):
        request = dict(job.request)
        request["with_packages"] = (*request.get("with_packages", ()), package)
        import handoff

        again = jobs.submit(job.label, handoff.build, **request)
        st.query_params["job"] = again.id
        st.rerun()


def show_result(result: Any, job: Any = None) -> None:
    error = result.error
    if result.ok:
        st.success(f"**{result.name} version {result.version}** passed in {result.timings.get('total', 0):.1f} s.")
    elif result.version is not None:
        st.error(
            f"**{result.name} version {result.version}** failed its checklist: "
            f"{common.say(error.message, escape=False)}. "
            "It is recorded (to inspect and compare) and can never be promoted."
        )
    else:
        st.error(
            f"Build failed: {common.say(error.message, escape=False)}. No version was created; the partly executed "
            "notebook is kept with the failed build."
        )
    if error and error.cell and result.notebook is not None:
        st.markdown(f"**Failing cell {error.cell}:**")
        st.code(result.notebook.cells[error.cell - 1].source, language="python")
        if error.traceback:
            st.code(error.traceback[-4000:], language=None)
    if result.version is not None and st.button("Open this version", type="primary"):
        st.switch_page(
            "app_pages/version_detail.py", query_params={"model": result.name, "version": str(result.version)}
        )
    if job is not None:
        controls.model_picker(job)
    common.metrics_row(result.metrics)
    common.render_sections(sections(result.record))


if job is not None:
    st.markdown(f"**{job.label}**")
    if job.state == RUNNING:
        live_progress(job.id)
    elif job.state == DONE:
        common.version_rows.clear()
        show_result(job.result, job)
        add_package_and_rebuild(job)
    else:
        st.error(f"Cannot build: {job.error}")
    if st.button("Start another build"):
        del st.query_params["job"]
        st.rerun()
else:
    if st.query_params.get("job"):
        st.warning(
            "That build is not known to this server (it may have restarted); its result, if any, "
            "is on the Versions page."
        )
    try:
        notebook, data_files = chosen_notebook()
        if notebook is not None:
            st.caption(f"{len(notebook.notebook.cells)} cells · sha256 {notebook.sha256[:16]}…")
            for warning in notebook.warnings:
                st.warning(warning)
            build_form(notebook, data_files)
    except HandoffError as exc:
        st.error(f"Cannot use this file: {exc.render('app')}")
