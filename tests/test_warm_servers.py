"""A sweep's warm servers (``handoff.warm_servers``), here the check server: each build's check
worker is forked from it, as fresh as a new worker; a hung worker is killed; nothing outlives the
sweep worker. (The kernel server: ``test_kernel_server.py``.)"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cloudpickle
import psutil
import pytest

from handoff import warm_servers
from handoff.check_config import resolve_config
from handoff.checklist import ArtifactChecker
from handoff.warm_servers import serve_sweep
from handoff.workdirs import private_dir
from helpers import survivors

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker cannot import this test module


def _capture(name: str, predict: object, leak: bool = False) -> Path:
    """A capture dir (as the kernel writes it) whose model's ``predict`` is ``predict``; with ``leak``,
    unpickling it sets ``json.handoff_leak`` in the worker that loads it."""
    folder = private_dir("build") / name
    folder.mkdir()
    attributes: dict[str, object] = {"predict": predict}
    if leak:
        attributes["setter"] = type("Leak", (), {"__reduce__": lambda self: (setattr, (json, "handoff_leak", True))})()
    model = type("Probe", (), attributes)()
    (folder / "model.pkl").write_bytes(cloudpickle.dumps(model))
    (folder / "input_example.pkl").write_bytes(pickle.dumps([[0.0]]))
    return folder


def _leaked(self: object, rows: list) -> list:
    return [hasattr(json, "handoff_leak")] * len(rows)


def _hang(self: object, rows: list) -> list:
    import time

    time.sleep(300)
    return []


def _command_line(process: psutil.Process) -> list[str]:
    """Its command line; empty for a process that is gone or a zombie (another test's, not reaped yet)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _servers() -> list[psutil.Process]:
    """This process's check servers (the Python inside the sandbox, not bubblewrap or prlimit, nor
    the workers it forked, whose command line is the server's)."""
    serving = [
        p
        for p in psutil.Process().children(recursive=True)
        if _command_line(p)[1:4] == ["-m", "handoff.checks.runner", "--serve"]
    ]
    return [p for p in serving if p.ppid() not in {s.pid for s in serving}]


def test_every_worker_is_forked_fresh_from_one_warm_server() -> None:
    with serve_sweep() as root:
        leaky, probe = _capture("leaky", _leaked, leak=True), _capture("probe", _leaked)
        assert leaky.is_relative_to(root)  # the sweep's temp dirs live in its folder, which the server sees
        first = ArtifactChecker()
        try:
            assert first.predict([leaky]) == [[True]]  # unpickling set it in this worker
            assert first.predict([probe]) == [[True]]  # and it stays in this worker
            second = ArtifactChecker()
            try:
                assert second.predict([probe]) == [[False]]  # forked from the server, which never loads a model
            finally:
                second.close()
        finally:
            first.close()
        servers = _servers()
        assert len(servers) == 1, servers  # both workers came from one server
    assert not root.exists()
    assert not survivors([servers[0].pid], seconds=10)


def test_a_forked_worker_checks_a_saved_model_as_a_fresh_worker_does(tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    ids = ["model.loads", "model.predicts", "model.deterministic"]

    def check(model_dir: Path) -> list[tuple[str, str]]:
        mlflow.sklearn.save_model(
            LogisticRegression(max_iter=300).fit(X, y),
            str(model_dir),
            input_example=X[:3],
            pip_requirements=["scikit-learn"],
        )
        checker = ArtifactChecker(readable=(model_dir,))
        try:
            results = checker.start_run(model_dir, ids, resolve_config(), {})()
        finally:
            checker.close()
        return [(r.id, r.status) for r in results]

    fresh = check(tmp_path / "model")
    with serve_sweep():
        forked = check(private_dir("build") / "model")
        assert len(_servers()) == 1
    assert forked == fresh
    assert {status for _, status in forked} == {"passed"}, forked


def test_a_worker_that_does_not_answer_is_killed_and_the_server_serves_on() -> None:
    with serve_sweep():
        hung = _capture("hung", _hang)
        checker = ArtifactChecker()
        try:
            with pytest.raises(RuntimeError, match=r"did not answer within 3s"):
                checker.request({"predict": [str(hung)]}, timeout=3)
            (server,) = _servers()
            deadline = time.monotonic() + 10
            while server.children() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.children() == []  # the hung worker (its process group) is gone
        finally:
            checker.close()
        again = ArtifactChecker()
        try:
            assert again.predict([_capture("probe", _leaked)]) == [[False]]
        finally:
            again.close()
        assert [p.pid for p in _servers()] == [server.pid]


def test_a_dead_servers_workers_fail_at_once_and_the_next_worker_gets_a_new_server() -> None:
    with serve_sweep():
        probe = _capture("probe", _leaked)
        checker = ArtifactChecker()
        try:
            assert checker.predict([probe]) == [[False]]  # the server is up
            (server,) = _servers()
            orphan = ArtifactChecker()
            # its sandbox (bubblewrap) is held for 2 s: the server is dead before the sandbox exits,
            # as it can be on a busy machine, and the next worker must not take that for a live one
            sandbox = [p for p in server.parents() if _command_line(p)[:1] == ["bwrap"]]
            for process in sandbox:
                process.suspend()
            threading.Timer(2, lambda: [p.resume() for p in sandbox]).start()
            server.kill()
            started = time.monotonic()
            with pytest.raises(RuntimeError, match=r"the check process failed \(exit -9\)"):
                orphan.predict([probe])
            assert time.monotonic() - started < 30  # told, not left waiting for the answer's timeout
            orphan.close()
        finally:
            checker.close()
        again = ArtifactChecker()
        try:
            assert again.predict([probe]) == [[False]]
        finally:
            again.close()
        assert [p.pid for p in _servers()] not in ([], [server.pid])


def test_nothing_outlives_a_sweep_worker_killed_with_sigkill(tmp_path: Path) -> None:
    """The server reads its parent's end of a pipe: a parent gone without cleanup ends it, and it
    takes its workers with it."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from handoff.warm_servers import serve_sweep
        from handoff.checklist import ArtifactChecker
        with serve_sweep() as root:
            checker = ArtifactChecker()
            print(root, flush=True)
            time.sleep(600)
        """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        root = Path(parent.stdout.readline().strip())
        deadline = time.monotonic() + 60
        tree: list[int] = []
        while time.monotonic() < deadline:  # the server warms up, then forks the checker's worker
            below = psutil.Process(parent.pid).children(recursive=True)
            tree = [p.pid for p in below]
            if sum(_command_line(p)[1:4] == ["-m", "handoff.checks.runner", "--serve"] for p in below) == 2:
                break  # the server and the worker it forked
            time.sleep(0.2)
        else:
            raise AssertionError(f"no forked worker under {parent.pid}: {tree}")
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not survivors(tree, seconds=15)
    from handoff.workdirs import sweep_stale

    sweep_stale()  # the next build's sweep of stale dirs removes what it left (another test's build may be first)
    assert not root.exists()


def test_the_server_is_only_used_for_folders_inside_the_sweep() -> None:
    with serve_sweep() as root:
        assert warm_servers.server_for("checks", [Path("/")], (), ()) is None
        assert warm_servers.server_for("checks", [root / "x"], (root / "y",), ()) is not None
    assert warm_servers.server_for("checks", [Path("/tmp")], (), ()) is None  # outside serve_sweep


def _ask_as_another_process(root: Path, readable: tuple[Path, ...]) -> str | None:
    """``server_for`` in a forked process that uses ``root``'s servers (as a sweep worker's fork does)."""
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def ask() -> None:
        with warm_servers.join_sweep(root):
            answer = warm_servers.server_for("checks", [root / "x"], readable, ())
        answers.put(answer and str(answer))

    process = context.Process(target=ask)
    process.start()
    process.join(60)
    return answers.get(timeout=5)


def test_the_sweeps_other_processes_are_served_the_same_server_or_none() -> None:
    with serve_sweep() as root:
        mine = warm_servers.server_for("checks", [root / "x"], (), ())
        assert mine is not None and _ask_as_another_process(root, ()) == str(mine)
        other = _ask_as_another_process(root, (Path("/etc"),))  # another kind of sandbox: another server
        assert other is not None and other != str(mine)
        deadline = time.monotonic() + 30
        while len(_servers()) < 2 and time.monotonic() < deadline:  # the new one may still be starting
            time.sleep(0.1)
        assert len(_servers()) == 2
    assert _ask_as_another_process(root, ()) is None  # nobody serves it: the build starts a fresh worker
