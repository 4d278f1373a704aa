"""Helpers shared by the tests (notebook builders, a build with short limits)."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat

import handoff
from handoff import uris
from handoff.store import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_notebooks"

Cell = str | tuple[str, str]


def notebook(cells: Sequence[Cell], kernel: str | None = "python3") -> nbformat.NotebookNode:
    """A v4 notebook from cell sources; ``("parameters", src)`` tags a cell, ``("md", src)`` is markdown."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if isinstance(cell, tuple) and cell[0] == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        elif isinstance(cell, tuple):
            code = nbformat.v4.new_code_cell(cell[1])
            code.metadata["tags"] = [cell[0]]
            nb.cells.append(code)
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell))
    if kernel:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    return nb


TRAIN_IRIS = (
    "from sklearn.datasets import load_iris\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    "model = LogisticRegression(max_iter=300).fit(X, y)\n"
    "accuracy = float(model.score(X, y))"
)


def build(path: Path | bytes, store: Store, **kwargs: object) -> handoff.BuildResult:
    """handoff.build with short default limits, so a broken test cannot hang the suite."""
    kwargs.setdefault("timeout", 120)
    kwargs.setdefault("cell_timeout", 90)
    result = handoff.build(path, store=store, **kwargs)  # type: ignore[arg-type]
    if not result.ok:  # shown by pytest when the test fails: why this build failed
        failures = [f"{r.id}: {r.message}" for r in (result.checks.failures if result.checks else [])]
        print(f"build {result.name} failed: {result.error}; failed checks: {failures}; warnings: {result.warnings}")
    return result


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a child that a test sends Ctrl-C's SIGINT to: the signal at its default, as in
    a terminal's foreground job, even when the test run itself was started in the background (a
    non-interactive shell's ``&`` ignores SIGINT, a Python child inherits that and never sees Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` artifact URI (the tests only see local stores)."""
    path = uris.local_path(uri)
    assert path is not None, f"not a local file URI: {uri}"
    return path


def predict_in_fresh_process(model_dir: Path) -> list:
    """Load an MLflow model with pyfunc in a new interpreter (none of the notebook's state) and predict
    on its stored input example; returns the predictions."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, mlflow.pyfunc\n"
        "from mlflow.models import Model\n"
        "path = sys.argv[1]\n"
        "model = mlflow.pyfunc.load_model(path)\n"
        "example = Model.load(path).load_input_example(path)\n"
        "print(json.dumps([x.item() if hasattr(x, 'item') else x for x in model.predict(example)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now, picked below the
    ephemeral range. The kernel hands out ephemeral ports to every bind to port 0 and every outgoing
    connection (a Jupyter kernel takes five), so a port picked there and freed can be taken by another
    test before the server we start binds it; below the range only another ``free_port`` competes."""
    import random
    import socket

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    pick = random.SystemRandom()  # not the seeded ``random``: two workers must not draw the same ports
    while True:
        port = pick.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def survivors(pids: Sequence[int], seconds: float = 10.0) -> list[int]:
    """Those of ``pids`` still running (not zombies) after up to ``seconds``: killed processes take a
    moment to go."""

    def alive(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return False
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"

    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if alive(p)]
