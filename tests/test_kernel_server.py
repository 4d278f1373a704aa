"""A sweep's kernel server (``handoff.kernel_server``): each point's kernel is forked with the
notebook's imports done, as fresh as a new kernel, and recorded as one; a dead or hung forked kernel
fails its build as any kernel does, and nothing outlives the sweep."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from handoff import execution
from handoff.kernel_server import notebook_imports
from handoff.store import Store
from handoff.warm_servers import serve_sweep
from helpers import TRAIN_IRIS, build, notebook, survivors

PROBE = (
    "import sys\n"
    "ahead = float('sklearn.linear_model' in sys.modules)  # imported before the notebook ran\n"
    "import numpy as np\n"
    "import sklearn\n"
    "draw = float(np.random.rand())\n"
    "seen = float(getattr(sklearn, 'handoff_mark', -1))  # left by an earlier point's kernel?\n"
    "sklearn.handoff_mark = mark"
)


def test_notebook_imports_are_its_installed_modules_not_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("")
    nb = notebook(
        [
            "%matplotlib inline\nimport numpy as np\nfrom sklearn.linear_model import Ridge",
            "import helpers\nfrom .local import thing",
            "import no_such_package_anywhere\n!pip list\nimport json, numpy",
            ("md", "import pandas"),
        ]
    )
    assert notebook_imports(nb, tmp_path) == ("numpy", "sklearn.linear_model", "json")
    assert "helpers" in notebook_imports(nb, None)  # no folder: nothing it could shadow


def _kernel_servers() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[1:3] == ["-m", "handoff.kernel_server"]:
                found.append(process)
        except psutil.Error:
            continue
    return [p for p in found if p.ppid() not in {s.pid for s in found}]


def test_points_kernels_are_forked_with_the_imports_done_and_share_nothing(
    store: Store, write_notebook: Callable[..., Path]
) -> None:
    report = "metrics = {'accuracy': accuracy, 'ahead': ahead, 'draw': draw, 'seen': seen}"
    path = write_notebook([("parameters", "mark = 0"), PROBE, TRAIN_IRIS, report])
    cold = build(path, store, params={"mark": 9})
    assert cold.ok and cold.metrics["ahead"] == 0.0  # outside a sweep: a fresh kernel
    with serve_sweep():
        first = build(path, store, params={"mark": 1})
        servers = _kernel_servers()
        second = build(path, store, params={"mark": 2})
        assert _kernel_servers() == servers and len(servers) == 1  # one server, both kernels forked from it
        tree = [p.pid for s in servers for p in (s, *s.children(recursive=True))]
    assert first.ok and second.ok, (first.error, second.error)
    assert first.metrics["ahead"] == second.metrics["ahead"] == 1.0
    assert second.metrics["seen"] == -1.0  # the first point's module state is not in the second's kernel
    assert first.metrics["draw"] != second.metrics["draw"]  # each fork draws its own NumPy seed
    # recorded as a fresh kernel's build: the modules the server imported are the notebook's
    loaded = [r.record.outputs.environment.loaded for r in (cold, first, second)]
    assert "scikit-learn" in loaded[0] and loaded[0] == loaded[1] == loaded[2]
    assert not survivors(tree)


def test_a_forked_kernel_that_dies_or_hangs_fails_its_build_at_the_cell(
    store: Store, write_notebook: Callable[..., Path]
) -> None:
    dies = write_notebook(["import sklearn", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", TRAIN_IRIS])
    hangs = write_notebook(["import sklearn", "import time\ntime.sleep(300)", TRAIN_IRIS], name="hangs.ipynb")
    with serve_sweep():
        died = build(dies, store)
        hung = build(hangs, store, cell_timeout=5)
        tree = [p.pid for s in _kernel_servers() for p in (s, *s.children(recursive=True))]
        kernels = [p for s in _kernel_servers() for p in s.children()]
        assert kernels == []  # the kernels are gone, the server stays for the next point
    assert not died.ok and died.error is not None and died.error.stage == "execute" and died.error.cell == 2
    assert died.error.ename == "DeadKernelError", died.error.message
    assert not hung.ok and hung.error is not None and hung.error.cell == 2
    assert "per-cell limit of 5s" in hung.error.message, hung.error.message
    assert not survivors(tree)


def test_a_kernel_server_whose_imports_hang_does_not_hold_the_build(
    store: Store, write_notebook: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_notebook(["import sklearn", TRAIN_IRIS])
    # a module that hangs when the server imports it (its folder is the server's first import path)
    monkeypatch.setattr(execution, "_imports", lambda source: ("hangs_on_import",))
    with serve_sweep() as root:
        (root / "hangs_on_import.py").write_text("import time\ntime.sleep(600)\n")
        result = build(path, store, start_timeout=10)
        again = build(path, store, start_timeout=10)  # not waited for again: a fresh kernel at once
        assert [p.pid for s in _kernel_servers() for p in s.children()] == []  # nothing forked: it still imports
    assert result.ok and again.ok, (result.error, again.error)
    assert again.timings["kernel_start"] < 10 <= result.timings["kernel_start"]
