"""Build speed (issue 15, part C): the store opened while the kernel runs, and, in a warm process, the
next build's kernel and worker started ahead. Behaviour only (no timing assertions): a kernel started
ahead is fresh and used once, only under its own policy, never outlives the process; a bad store
still fails the build before anything is recorded; the record and package keep their content."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import handoff
from handoff import sandbox, worker_answers
from handoff.errors import StoreError
from handoff.events import BuildEvent
from handoff.execution import keep_kernel_ready
from handoff.store import Store
from helpers import ROOT, TRAIN_IRIS, build
from team import SERVICES

sys.path.insert(0, str(ROOT / "benchmarks"))
from build_content import content  # benchmarks/ is not a package

#: Prints what an earlier build left in the kernel (nothing, in a fresh one), then leaves something.
LEFTOVER = "print('leftover:', globals().get('leftover', 'none'))\nleftover = 'from an earlier build'"
STAGES = ("inspect", "execute", "capture", "serialize", "check", "record", "package", "total")


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a killed process gets a few seconds to go), but the team
    servers this pytest worker may have started for other tests (``tests/team.py``)."""
    services = {p for pid in SERVICES for p in (pid, *sandbox.descendants(pid))}
    pids = [p for p in pids if p not in services]
    for _ in range(100):
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            break
        time.sleep(0.1)
    return alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.fixture
def warm() -> Iterator[None]:
    """This process keeps a kernel ready for its next build (as the app or a sweep would)."""
    keep_kernel_ready()
    try:
        yield
    finally:
        keep_kernel_ready(False)
    assert _alive(sandbox.descendants(os.getpid())) == []  # the ready kernel and worker were discarded


def _printed(result: handoff.BuildResult) -> str:
    assert result.notebook is not None
    return "".join(o.get("text", "") for c in result.notebook.cells for o in c.get("outputs", []))


def test_a_kernel_started_ahead_is_fresh_and_serves_one_build(
    write_notebook: Callable[..., Path], store: Store, warm: None
) -> None:
    path = write_notebook([LEFTOVER, TRAIN_IRIS])
    first = build(path, store)
    second = build(path, store)
    third = build(path, store)
    assert first.ok and second.ok and third.ok
    assert "kernel_prestarted" not in first.timings  # nothing was ready for the first build
    assert "kernel_prestarted" in second.timings and "kernel_prestarted" in third.timings
    for result in (first, second, third):  # never the kernel of an earlier build
        assert "leftover: none" in _printed(result)
    assert (second.version, third.version) == (2, 3)


#: Installs a distribution mid-run, as ``pip install --target`` would: a ``.dist-info`` folder in the
#: work dir, put on the import path.
INSTALL_FAKE = (
    "import os, sys\n"
    "sys.path.insert(0, os.getcwd())\n"
    "folder = 'handofffake-1.2.3.dist-info'\n"
    "os.makedirs(folder)\n"
    "open(os.path.join(folder, 'METADATA'), 'w').write('Metadata-Version: 2.1\\nName: handofffake\\nVersion: 1.2.3\\n')"
)


def test_packages_scanned_ahead_are_scanned_again_when_the_notebook_installs_one(
    write_notebook: Callable[..., Path], store: Store, warm: None
) -> None:
    plain = write_notebook(["x = 1", TRAIN_IRIS], name="plain.ipynb")
    installs = write_notebook(["x = 1", INSTALL_FAKE, TRAIN_IRIS], name="installs.ipynb")
    first, second, third = build(plain, store), build(plain, store), build(installs, store)
    assert first.ok and second.ok and third.ok, (first.error, second.error, third.error)
    assert "kernel_prestarted" in second.timings and "kernel_prestarted" in third.timings
    installed = [
        store.get_version(r.name, r.version).build.outputs.environment.installed for r in (first, second, third)
    ]
    assert installed[0] == installed[1] and installed[0]["scikit-learn"] and "handofffake" not in installed[1]
    assert installed[2] == {**installed[1], "handofffake": "1.2.3"}
    counts = [[c.execution_count for c in r.notebook.cells if c.cell_type == "code"] for r in (first, second)]
    assert counts[0] == counts[1]  # the kernel's own scan ahead ran silently: no cell numbers taken


def test_a_kernel_pins_the_installed_packages_from_the_kept_answers_while_they_hold(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel started for its build takes the installed distributions from the environment's kept
    answers (a probe only the kept file holds is pinned) instead of scanning them, and scans when
    the notebook installs one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = worker_answers.cache_file()
    assert cache is not None
    assert not worker_answers.provide(tmp_path)  # none yet: written by a detached process
    deadline = time.monotonic() + 120
    while worker_answers.read(cache) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    kept = json.loads(cache.read_text())
    cache.write_text(json.dumps({**kept, "installed": {**kept["installed"], "handoff-probe": "0.1"}}))
    plain = write_notebook(["x = 1", TRAIN_IRIS], name="plain.ipynb")
    installs = write_notebook(["x = 1", INSTALL_FAKE, TRAIN_IRIS], name="installs.ipynb")
    results = [build(plain, store), build(installs, store)]
    assert all(r.ok for r in results), [r.error for r in results]
    assert all("kernel_prestarted" not in r.timings for r in results)  # kernels of their own
    answered, scanned = (store.get_version(r.name, r.version).build.outputs.environment.installed for r in results)
    assert answered["handoff-probe"] == "0.1" and answered["scikit-learn"]
    assert "handoff-probe" not in scanned and scanned["handofffake"] == "1.2.3"
    assert {k: v for k, v in answered.items() if k != "handoff-probe"} == {
        k: v for k, v in scanned.items() if k != "handofffake"
    }


def test_the_scan_of_installed_packages_is_redone_only_when_a_distribution_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handoff.worker_answers import installed_state

    monkeypatch.syspath_prepend(str(tmp_path))
    before = installed_state(sys.path)
    (tmp_path / "data.csv").write_text("a,b\n")  # the notebook's own files do not count
    assert installed_state(sys.path) == before
    (tmp_path / "extra-1.0.dist-info").mkdir()  # an install
    installed = installed_state(sys.path)
    assert installed != before
    (tmp_path / "extra-1.0.dist-info").rename(tmp_path / "extra-1.1.dist-info")  # an upgrade
    assert installed_state(sys.path) not in (before, installed)


def test_a_kernel_started_under_another_policy_is_not_used(
    write_notebook: Callable[..., Path], store: Store, warm: None
) -> None:
    path = write_notebook([LEFTOVER, TRAIN_IRIS])
    assert build(path, store, memory_gib=3).ok
    other = build(path, store, memory_gib=2)  # ready under 3 GiB: discarded, a kernel of its own
    assert other.ok and "kernel_prestarted" not in other.timings
    assert other.record.inputs.sandbox.limits["memory_bytes"] == 2 * sandbox.GIB
    same = build(path, store, memory_gib=2)
    assert same.ok and "kernel_prestarted" in same.timings


def test_nothing_is_started_ahead_unless_asked(write_notebook: Callable[..., Path], store: Store) -> None:
    path = write_notebook([TRAIN_IRIS])
    assert build(path, store).ok
    assert "kernel_prestarted" not in build(path, store).timings
    assert _alive(sandbox.descendants(os.getpid())) == []  # no kernel or worker survives a build


def test_no_kernel_started_ahead_survives_the_interpreter(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path
) -> None:
    path = write_notebook([TRAIN_IRIS])
    script = (
        "import os, sys, time\n"
        "import handoff\n"
        "from handoff import sandbox\n"
        "from handoff.execution import keep_kernel_ready\n"
        "keep_kernel_ready()\n"
        "assert handoff.build(sys.argv[1], store=sys.argv[2], timeout=120).ok\n"
        "for _ in range(600):  # until the next build's kernel and worker are up\n"
        "    pids = sandbox.descendants(os.getpid())\n"
        "    if len(pids) >= 2: break\n"
        "    time.sleep(0.1)\n"
        "print(' '.join(map(str, pids)))\n"
    )
    printed = subprocess.check_output(
        [sys.executable, "-c", script, path, store.local_paths()[0]], text=True, timeout=300
    )
    pids = [int(p) for p in printed.split()]
    assert len(pids) >= 2  # a kernel and a worker were waiting at exit
    assert _alive(pids) == []


def test_a_store_that_cannot_open_fails_the_build_kills_the_kernel_and_records_nothing(
    write_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    home = tmp_path / "broken-store"
    home.mkdir()
    (home / "mlflow.db").write_bytes(b"this is not a database" * 100)
    before = (home / "mlflow.db").read_bytes()
    path = write_notebook(["import time\ntime.sleep(60)", "after = 1", TRAIN_IRIS])
    events: list[BuildEvent] = []
    with pytest.raises(StoreError, match="cannot open the store"):
        handoff.build(path, store=home, timeout=120, on_event=events.append)
    started = {e.cell for e in events if e.stage == "execute" and e.cell is not None}
    assert 3 not in started  # the kernel was killed in the sleeping cell: the next one never ran
    assert _alive(sandbox.descendants(os.getpid())) == []
    assert (home / "mlflow.db").read_bytes() == before
    assert not (home / "artifacts").exists() or not any((home / "artifacts").iterdir())


def test_timings_hold_every_stage_and_the_overlapped_parts(iris_notebook: Path, store: Store) -> None:
    result = build(iris_notebook, store)
    assert result.ok
    for stage in (*STAGES, "kernel_start", "store_open"):
        assert stage in result.timings, stage
    stored = store.read_record(result.run_id or "")
    assert set(STAGES[:-3]) <= set(stored.timings)  # the stored record: the stages before record
    listed = next(v for v in store.list_versions(result.name) if v.version == result.version)
    parts = sum(v for k, v in stored.timings.items() if k not in ("kernel_start", "store_open", "total"))
    assert listed.duration == pytest.approx(parts, abs=0.01)  # overlapped parts are not added twice


def test_a_build_with_a_kernel_started_ahead_records_the_same_content(
    iris_notebook: Path, store: Store, warm: None, tmp_path: Path
) -> None:
    cold = build(iris_notebook, store)
    ahead = build(iris_notebook, store)
    assert cold.version is not None and ahead.version is not None
    assert "kernel_prestarted" in ahead.timings and "kernel_prestarted" not in cold.timings
    found = [
        content(r.record.to_dict(), handoff.export(r.name, r.version, tmp_path / str(r.version), store=store).path)
        for r in (cold, ahead)
    ]
    assert found[0]["record"]["lineage"] == {"champion": None}
    assert "model/model.skops" in found[0]["package"]
    assert found[0] == found[1]
