"""Build temp dirs: owner-only, named by their owner's PID, and swept once that owner is gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from handoff.workdirs import STALE_AFTER, private_dir, sweep_stale
from helpers import ROOT, TRAIN_IRIS


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_private_dir_is_owner_only_and_named_by_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    path = private_dir("build")
    assert path.parent == tmp_path and path.name.startswith(f"handoff-build-{os.getpid()}-")
    assert path.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_read_inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path.chmod(0o755)  # only the build dir itself may stand in the way
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    path = private_dir("stage")
    secret = path / "model.pkl"
    secret.write_bytes(b"pickle")
    secret.chmod(0o644)  # world-readable on its own: the dir must still keep it private
    probe = (
        "import os, sys\nos.setgid(65534); os.setuid(65534)\n"
        "for attempt in (lambda: open(sys.argv[1], 'rb').read(), lambda: os.listdir(sys.argv[2])):\n"
        "    try:\n        attempt(); print('readable')\n    except PermissionError:\n        print('denied')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(secret), str(path)], capture_output=True, text=True)
    assert done.stdout.split() == ["denied", "denied"], done.stderr


def test_sweep_removes_dead_owners_and_old_dirs_only(tmp_path: Path) -> None:
    dead = tmp_path / f"handoff-build-{_dead_pid()}-abc"
    live_old = tmp_path / f"handoff-check-{os.getppid()}-abc"  # a live PID, but older than any build runs
    live = tmp_path / f"handoff-stage-{os.getppid()}-abc"
    mine_old = tmp_path / f"handoff-build-{os.getpid()}-abc"  # this process's own: in use, whatever its age
    foreign = tmp_path / "handoff-read-abc"  # not a kind this module names
    for path in (dead, live_old, live, mine_old, foreign):
        (path / "sub").mkdir(parents=True)
    old = time.time() - STALE_AFTER - 60
    for path in (live_old, mine_old, foreign):
        os.utime(path, (old, old))
    assert sorted(sweep_stale(tmp_path)) == sorted([dead, live_old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, mine_old, foreign))


@pytest.mark.kernel
def test_kill_9_mid_build_leaves_nothing_after_the_next_build(
    tmp_path: Path, write_notebook: Callable[..., Path], request: pytest.FixtureRequest
) -> None:
    # a short TMPDIR of its own: the kernel's IPC socket lives in the work dir, and unix socket paths
    # are limited to 107 bytes (pytest's tmp_path is too long)
    temp = Path(tempfile.mkdtemp(prefix="hk-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(temp, ignore_errors=True))
    env = {**os.environ, "TMPDIR": str(temp)}
    store = str(tmp_path / "store")
    log = (tmp_path / "killed-build.log").open("wb")
    slow = write_notebook([TRAIN_IRIS, "open('started', 'w').close()\nimport time\ntime.sleep(300)"], name="slow.ipynb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff.cli", "build", str(slow), "--store", store],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(temp.glob(f"handoff-build-{proc.pid}-*/started")):  # the sleeping cell is running
            assert proc.poll() is None, f"the build exited early with {proc.returncode}"
            assert time.monotonic() < deadline, (tmp_path / "killed-build.log").read_text()[-3000:]
            time.sleep(0.2)
        left = {p.name.split("-")[1] for p in temp.glob(f"handoff-*-{proc.pid}-*")}
        assert left == {"build", "stage", "check"}  # what a kill -9 leaves behind
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned kernel and check process
        except ProcessLookupError:
            pass
    quick = write_notebook([TRAIN_IRIS], name="quick.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "build", str(quick), "--store", store],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert list(temp.glob(f"handoff-*-{proc.pid}-*")) == []
