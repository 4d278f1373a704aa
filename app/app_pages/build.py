"""Build page: pick or upload a notebook, set its parameters, build in a worker process, see the result.

A build is a job (``handoff.submit``): its row in the job table is what this page reads, so a second
tab, a page refresh or an app restart finds it again by ``?job=ID`` (the Builds page lists them all).
Sweep mode builds the notebook once per point of a parameter grid (``sweep_view``, ``?sweep=ID``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

import common
import controls
import handoff
import sweep_view
from handoff.errors import HandoffError
from handoff.inspection import NotebookParameter, NotebookSource, load_notebook, parse_params
from handoff.jobs import CANCELLED, INTERRUPTED, QUEUED, Job, JobNotFoundError
from handoff.missing_modules import missing_module, package_for
from handoff.record_view import sections

st.title("Build a model version")


def find_job(job_id: str | None) -> Job | None:
    if not job_id:
        return None
    try:
        return handoff.get_job(job_id, store=common.store())
    except JobNotFoundError:
        return None


job = find_job(st.query_params.get("job"))


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
        refused = common.missing_role("builder", "build")
        if refused:
            st.warning(refused)
        submitted = st.form_submit_button("Build", type="primary", disabled=refused is not None)
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
    try:
        job = handoff.submit(
            source,
            params,
            name,
            store=common.store(),
            checks=settings,
            files=files,
            source="app",
            user=common.current_user(),
            timeout=float(timeout),
            cell_timeout=float(cell_timeout),
            allow_network=allow_network,
            memory_gib=float(memory),
            max_cell_output_mb=float(max_output),
            **sandbox_limits,
        )
    except HandoffError as exc:
        st.error(f"Cannot build: {exc.render('app')}")
        return
    st.query_params["job"] = job.id
    st.rerun()


def progress_view(job: Job) -> None:
    """Where a queued or running job is, read from its row."""
    if job.state == QUEUED:
        st.progress(0.0, text=f"Queued: {job.message or 'waiting for a free build slot'}")
    elif job.stage == "execute" and job.cells_total:
        st.progress(min((job.cells_done or 0) / job.cells_total, 1.0), text=job.progress)
        if job.cells_done:
            st.code(job.message or " ", language="python")
    else:
        st.progress(0.9 if job.stage in ("check", "record", "package") else 0.02, text=job.progress)
    if job.cancel_requested_by:
        st.warning(f"Cancel requested by {job.cancel_requested_by}: stopping the kernel…")
    st.caption(
        f"Stage **{job.stage or job.state}** · elapsed {job.elapsed:.0f} s · by {job.user} ({job.source}) · "
        "you can leave this page: the build goes on in its own process, and the Builds page finds it again."
    )


@st.fragment(run_every=1.0)
def live_progress(job_id: str) -> None:
    current = find_job(job_id)
    if current is None or not current.active:
        st.rerun(scope="app")
        return
    if not current.cancel_requested_by:
        st.button("Cancel this build", key=f"cancel_{job_id}", on_click=cancel_job, args=(job_id,))
    progress_view(current)


def cancel_job(job_id: str) -> None:
    """Before the rerun the click causes: ask the job's worker to stop (it kills the kernel)."""
    handoff.cancel(job_id, by=common.current_user(), store=common.store())


def add_package_and_rebuild(job: Job, result: Any) -> None:
    """For a build that failed at an import: a button that adds the package and builds again (a new job)."""
    error = result.error if result is not None else None
    module = missing_module(error.ename, error.traceback or "") if error else None
    if module is None:
        return
    package = package_for(module)
    if st.button(f"Add {package} to the build environment and rebuild", type="primary"):
        controls.rebuild(job, with_packages=(*job.request.get("options", {}).get("with_packages", ()), package))


def ended_job(job: Job) -> None:
    """A finished job: its result rebuilt from the store (or the job's own copy), for every end state."""
    if job.state == CANCELLED:
        st.warning(f"Build {common.say(job.message or 'cancelled')}.")
    elif job.state == INTERRUPTED:
        st.error(f"Build {common.say(job.message or 'interrupted')}.")
    if job.state in (CANCELLED, INTERRUPTED) and st.button("Build it again (same notebook and settings)"):
        controls.rebuild(job)
    result = handoff.result_of(job, store=common.store())
    if result is None:
        if job.state not in (CANCELLED, INTERRUPTED):
            st.error(f"Cannot build: {common.say(job.error or job.message or 'it ended without a result')}")
        return
    show_result(result, job)
    add_package_and_rebuild(job, result)


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
        controls.model_picker(job, result)
    common.metrics_row(result.metrics)
    common.render_sections(sections(result.record))


sweep_id = st.query_params.get("sweep")
if sweep_id and job is None:
    sweep_view.sweep_page(sweep_id)
    if st.button("Start another build or sweep"):
        del st.query_params["sweep"]
        st.rerun()
elif job is not None:
    st.markdown(f"**{job.label}** · job `{job.id}`")
    if job.active:
        live_progress(job.id)
    else:
        ended_job(job)
    if st.button("Start another build"):
        del st.query_params["job"]
        st.rerun()
else:
    if st.query_params.get("job"):
        st.warning(
            "There is no build job with that id in this store; the Builds page lists every build, and "
            "the Versions page every recorded version."
        )
    try:
        notebook, data_files = chosen_notebook()
        if notebook is not None:
            st.caption(f"{len(notebook.notebook.cells)} cells · sha256 {notebook.sha256[:16]}…")
            for warning in notebook.warnings:
                st.warning(warning)
            mode = st.radio("Mode", ["Single build", "Sweep"], horizontal=True, key="build_mode")
            if mode == "Sweep":
                sweep_view.sweep_form(notebook, data_files)
            else:
                build_form(notebook, data_files)
    except HandoffError as exc:
        st.error(f"Cannot use this file: {exc.render('app')}")
