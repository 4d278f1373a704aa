"""Execute stage, through real kernels: every way a notebook can go wrong names its cell,
keeps the partial notebook, and creates no version."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import nbformat

from handoff.events import BuildEvent
from handoff.store import Store
from helpers import TRAIN_IRIS, build


def _assert_failed_without_version(result, store: Store, stage: str, cell: int | None, kind: str) -> None:
    assert result.status == "failed" and result.version is None
    assert result.error.stage == stage and result.error.cell == cell and result.error.type == kind
    assert store.list_models() == []
    builds = store.list_builds()
    assert [b["status"] for b in builds] == ["failed"] and builds[0]["error"] == result.error.message


def _kept_notebook(store: Store, result) -> nbformat.NotebookNode:
    return nbformat.reads(store.read_artifact(result.run_id, "notebook/executed.ipynb").decode(), as_version=4)


def test_failing_cell_is_named_and_partial_notebook_kept(write_notebook, store: Store) -> None:
    path = write_notebook([("md", "# title"), "x = 41", "x += 1\nraise ValueError(f'bad {x}')", "never = True"])
    result = build(path, store)
    _assert_failed_without_version(result, store, "execute", 3, "CellExecutionFailure")
    assert result.error.message == "a cell raised an error in execute stage, cell 3: ValueError: bad 42"
    kept = _kept_notebook(store, result)
    assert [c.source for c in kept.cells] == [
        "# title",
        "x = 41",
        "x += 1\nraise ValueError(f'bad {x}')",
        "never = True",
    ]  # no handoff cells, no papermill banners
    assert kept.cells[2].outputs[0].ename == "ValueError"
    assert kept.cells[3].execution_count is None


def test_sys_exit_zero_is_a_failure_naming_the_cell(write_notebook, store: Store) -> None:
    path = write_notebook(["x = 1", "import sys\nsys.exit(0)", TRAIN_IRIS])
    result = build(path, store)
    _assert_failed_without_version(result, store, "execute", 2, "EarlyExitFailure")
    assert "sys.exit(0)" in result.error.message


def test_raise_system_exit_with_code(write_notebook, store: Store) -> None:
    result = build(write_notebook(["raise SystemExit(3)", TRAIN_IRIS]), store)
    _assert_failed_without_version(result, store, "execute", 1, "EarlyExitFailure")


def test_kernel_death_names_the_cell(write_notebook, store: Store) -> None:
    path = write_notebook(["x = 1", "import os\nos._exit(1)", TRAIN_IRIS])
    result = build(path, store)
    _assert_failed_without_version(result, store, "execute", 2, "KernelDiedFailure")
    assert "kernel died" in result.error.message


def test_endless_loop_hits_the_cell_limit_and_is_killed(write_notebook, store: Store) -> None:
    path = write_notebook(["x = 1", "while True:\n    pass", TRAIN_IRIS])
    started = time.monotonic()
    result = build(path, store, cell_timeout=3, timeout=60)
    _assert_failed_without_version(result, store, "execute", 2, "BuildTimeoutFailure")
    assert "per-cell limit of 3s" in result.error.message
    assert time.monotonic() - started < 45  # the kernel was killed, not waited for


def test_whole_run_limit_is_separate_from_the_cell_limit(write_notebook, store: Store) -> None:
    path = write_notebook(["import time\ntime.sleep(2)", "time.sleep(2)", "time.sleep(30)"])
    result = build(path, store, cell_timeout=20, timeout=10)
    assert result.error.type == "BuildTimeoutFailure" and result.error.cell == 3
    assert "whole-run limit of 10s" in result.error.message


def test_no_kernelspec_and_unknown_kernel_run_on_the_default_kernel(write_notebook, store: Store) -> None:
    for kernel, phrase in ((None, "names no kernel"), ("no-such-kernel-xyz", "'no-such-kernel-xyz' is not installed")):
        result = build(write_notebook([TRAIN_IRIS], name=f"k{kernel}.ipynb", kernel=kernel), store, name="k")
        assert result.ok, result.error
        assert any(phrase in w for w in result.warnings)


def test_relative_data_paths_work_beside_the_notebook(tmp_path: Path, write_notebook, store: Store) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.csv").write_text("a,b,y\n1,2,0\n2,1,1\n3,3,0\n4,1,1\n")
    path = write_notebook(
        [
            "import pandas as pd\nfrom sklearn.tree import DecisionTreeClassifier\n"
            "df = pd.read_csv('data/train.csv')\nX = df[['a', 'b']]\n"
            "model = DecisionTreeClassifier(random_state=0).fit(X, df['y'])\n"
            "open('written-by-notebook.txt', 'w').write('scratch')",
        ],
        directory=project,
    )
    result = build(path, store)
    assert result.ok, result.error
    assert [f.path for f in result.record.outputs.data.files] == ["data/train.csv"]
    assert not (project / "written-by-notebook.txt").exists()  # writes stay in the build's own dir


def test_progress_events_cover_every_code_cell_in_order(write_notebook, store: Store) -> None:
    events: list[BuildEvent] = []
    path = write_notebook([("md", "intro"), ("parameters", "C = 1.0"), "x = 1", TRAIN_IRIS])
    result = build(path, store, on_event=events.append, params={"C": 0.5})
    assert result.ok, result.error
    cells = [(e.done, e.total, e.cell) for e in events if e.stage == "execute" and e.cell]
    assert cells == [(1, 3, 2), (2, 3, 3), (3, 3, 4)]
    stages = [e.stage for e in events]
    assert stages.index("inspect") < stages.index("execute") < stages.index("serialize") < stages.index("record")
    assert all(a.elapsed <= b.elapsed for a, b in itertools.pairwise(events))


def test_uploaded_file_names_cannot_leave_the_build_dir(iris_notebook) -> None:
    import pytest

    from handoff.errors import OptionError
    from handoff.execution import make_workdir
    from handoff.inspection import load_notebook

    source = load_notebook(iris_notebook.read_bytes(), name="iris.ipynb")
    for bad in ("../evil.csv", "/etc/evil.csv"):
        with pytest.raises(OptionError, match="leaves the build directory"):
            make_workdir(source, {bad: b"x"})
    workdir = make_workdir(source, {"data/train.csv": b"a,b\n"})
    try:
        assert (workdir / "data" / "train.csv").read_bytes() == b"a,b\n"
    finally:
        import shutil

        shutil.rmtree(workdir)
