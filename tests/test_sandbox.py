"""The sandbox, probed as a hostile or careless notebook would act (issue: untrusted notebooks).

Every probe runs on the real path: a real kernel in bubblewrap, a real store, the build's worker.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

from handoff import sandbox
from handoff.messages import render
from handoff.store import Store
from helpers import TRAIN_IRIS, build

if os.environ.get("HANDOFF_REQUIRE_SANDBOX"):  # CI: a missing sandbox is a failure, not a skip
    assert sandbox.detect().kind == "bubblewrap", sandbox.detect().detail
pytestmark = pytest.mark.skipif(
    sandbox.detect().kind != "bubblewrap", reason="these probes need bubblewrap (installed by make / .ci/run)"
)

CANARY = "canary-4f1d9c2e-secret-value"


def _outputs(result) -> str:
    """Every output's text, streams joined (a print may arrive in several chunks)."""
    return "".join(
        o.get("text", "") or json.dumps(o.get("data", {})) for c in result.notebook.cells for o in c.get("outputs", [])
    )


def _listener() -> tuple[socket.socket, list[bytes]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    received: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            received.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    return server, received


def test_a_hostile_notebook_reaches_no_secret_store_network_or_parent(
    write_notebook, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("HANDOFF_HOME", str(store.local_paths()[0]))
    monkeypatch.setenv("PASSED_TOKEN", "token-value-7731")
    server, received = _listener()
    store_dir = store.local_paths()[0]
    path = write_notebook(
        [
            ("parameters", f"store_dir = {str(store_dir)!r}\nport = {server.getsockname()[1]}"),
            "import json, os\nprint(json.dumps(dict(os.environ)))",
            "print('STORE', os.listdir(store_dir), os.path.exists(os.path.join(store_dir, 'mlflow.db')))",
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', port), timeout=3).sendall(b'leak')\n"
            "    print('NET connected')\nexcept OSError as exc:\n    print('NET refused', type(exc).__name__)",
            "import subprocess\nsleeper = subprocess.Popen(['sleep', '777.25'], start_new_session=True)",
            "os.kill(os.getppid(), 9)\nprint('PARENT', os.getppid())",
            "print('TOKEN', os.environ.get('PASSED_TOKEN') == 'token-value-7731')",
            TRAIN_IRIS,
        ]
    )
    result = build(path, store, env=("PASSED_TOKEN",))
    server.close()
    assert result.ok, result.error  # the test process (the API's caller) survived os.kill(getppid)
    text = _outputs(result)
    assert CANARY not in text and "AWS_SECRET_ACCESS_KEY" not in text and "HANDOFF_HOME" not in text
    assert "STORE [] False" in text
    assert "NET refused" in text and received == []
    assert "TOKEN True" in text  # passed by name with --env ...
    record = store.read_artifact(result.run_id, "handoff/record.json").decode()
    assert "token-value-7731" not in record and "PASSED_TOKEN passed" in record  # ... and only its name recorded
    assert json.loads(record)["inputs"]["sandbox"]["network"] == "off"
    package = next((store.local_artifacts(result.run_id) / "package").glob("*.zip")).read_bytes()
    assert CANARY.encode() not in package
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == "sleep 777.25"]
    assert leftovers == [], "a child of the notebook outlived the build"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_allow_network_opens_it_and_is_recorded(write_notebook, store: Store) -> None:
    server, received = _listener()
    path = write_notebook(
        [
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=5).sendall(b'hi')",
            TRAIN_IRIS,
        ]
    )
    result = build(path, store, allow_network=True)
    server.close()
    assert result.ok, result.error
    assert received == [b"hi"]
    record = json.loads(store.read_artifact(result.run_id, "handoff/record.json"))
    assert record["inputs"]["sandbox"]["network"] == "allowed" and record["inputs"]["options"]["allow_network"] is True


def test_a_pickle_payload_runs_only_inside_the_sandboxed_worker(tmp_path: Path, write_notebook, store: Store) -> None:
    marker = tmp_path / "payload-ran"
    path = write_notebook(
        [
            "import numpy as np\n"
            "class Evil:\n"
            "    def fit(self, X, y):\n        self.coef_ = 1\n        return self\n"
            "    def predict(self, X):\n        return np.zeros(len(X))\n"
            "    def __reduce__(self):\n"
            f"        return (exec, (\"import os, sys; print('PAYLOAD-RAN', file=sys.stderr); "
            f"open({str(marker)!r}, 'w').write(str(os.getpid()))\",))\n"
            "model = Evil().fit(None, None)"
        ]
    )
    result = build(path, store)
    assert result.status == "failed" and result.error.stage == "serialize"  # it unpickles to None: no model
    assert not marker.exists(), "the payload ran outside the sandbox (in this process or with host /tmp)"
    log = store.read_artifact(result.run_id, "logs/checks.log").decode()
    assert "PAYLOAD-RAN" in log  # it did run: in the worker, whose /tmp is private


@pytest.mark.parametrize(
    "cell, limits, expected",
    [
        ("x = bytearray(3 * 1024**3)", {"memory_gib": 1.0}, "memory limit of 1 GiB (--memory)"),
        (
            "import subprocess, time\nkids = [subprocess.Popen(['sleep', '30']) for _ in range(40)]\ntime.sleep(20)",
            {"max_processes": 10},
            "more than 10 processes (process limit, --max-processes)",
        ),
        (
            "import time\n"
            "for i in range(8):\n    open(f'blob{i}', 'wb').write(os.urandom(8 * 1024**2))\n"
            "time.sleep(20)",
            {"max_disk_gib": 0.03},
            "over the disk limit of 0.0 GiB (--max-disk)",
        ),
    ],
    ids=["memory", "processes", "disk"],
)
def test_limits_fail_the_build_naming_the_limit(
    cell: str, limits: dict, expected: str, write_notebook, store: Store
) -> None:
    path = write_notebook([("md", "# limits"), "import os", cell, TRAIN_IRIS])
    result = build(path, store, **limits)
    assert result.status == "failed" and result.version is None
    assert result.error.type == "LimitExceededFailure" and result.error.cell == 3
    assert expected in render(result.error.message, "cli")  # the hint names the CLI flag there


def test_the_environment_is_an_allow_list(tmp_path: Path) -> None:
    env = sandbox.environment(
        {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "LC_TIME": "C", "HANDOFF_HOME": "/h"}, tmp_path, sandbox.Policy()
    )
    assert env["PATH"] == "/bin" and env["LC_TIME"] == "C" and env["HOME"] == str(tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "HANDOFF_HOME" not in env


def test_bad_sandbox_options_are_refused() -> None:
    from handoff.errors import OptionError

    with pytest.raises(OptionError, match="environment variable name"):
        sandbox.Policy(env=("NOT A NAME",))
    with pytest.raises(OptionError, match="processes limit"):
        sandbox.Limits(processes=0)


def test_a_relative_import_path_in_the_building_process_still_sandboxes(monkeypatch, tmp_path):
    """A script run with "." on sys.path (python some/bench.py with sys.path.insert(0, ".")) once
    made bubblewrap bind a relative path, and the kernel died before it started."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(".")
    paths = sandbox.python_paths(sys.executable)
    assert all(p.is_absolute() for p in paths), paths
    assert tmp_path.resolve() in paths


def test_points_at_once_share_the_cores_and_a_users_own_bound_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in sandbox.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's own
    monkeypatch.setattr(sandbox.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert sandbox.share_cores(3) == 2
    assert {name: os.environ.get(name) for name in sandbox.THREAD_VARIABLES} == {
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "3",
        "NUMEXPR_NUM_THREADS": "2",
        "VECLIB_MAXIMUM_THREADS": "2",
        "LOKY_MAX_CPU_COUNT": "2",
    }
    assert sandbox.share_cores(16) == 1 and os.environ["OMP_NUM_THREADS"] == "1"  # never below one
    sandbox.share_cores(1)  # a later build alone, in the same process: every core again, as before
    assert {name: os.environ.get(name) for name in sandbox.THREAD_VARIABLES if name in os.environ} == {
        "MKL_NUM_THREADS": "3"
    }
