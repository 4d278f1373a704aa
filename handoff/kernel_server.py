"""A sweep's kernel server: ``python -m handoff.kernel_server FD IMPORTS``, in the sweep's sandbox
(``handoff.warm_servers``), forks each point's kernel with ipykernel and the notebook's imports done.

A fresh kernel pays ipykernel's start and then the notebook's imports (scikit-learn alone is about
1.5 CPU-seconds): a sweep's parallel points pay both in full on shared cores. The server imports
them once; each kernel is forked from it before it runs anything, so no point sees another's state.
The imports are the notebook's own top-level modules (``notebook_imports``): importing one here
does nothing the notebook would not do at its first cell, and ``kernel_capture`` keeps them out of
the modules a kernel had before the notebook ran, so a version's environment lists them as a fresh
kernel's build does.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat

from handoff import forkserver
from handoff.forks import exit_now


def notebook_imports(notebook: nbformat.NotebookNode, folder: Path | None) -> tuple[str, ...]:
    """The modules the notebook's code cells import (absolute imports, in order), without those its
    own ``folder`` could shadow (a ``utils.py`` beside it must not be an installed ``utils``)."""
    names: dict[str, None] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics, shell lines: only what parses
            tree = ast.parse("\n".join(line for line in cell.source.splitlines() if _plain_python(line)) or "pass")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names[node.module] = None
    return tuple(name for name in names if _installed(name.partition(".")[0], folder))


def _plain_python(line: str) -> bool:
    try:
        ast.parse(line.strip())
    except SyntaxError:
        return False
    return True


def _installed(top: str, folder: Path | None) -> bool:
    if folder is not None and ((folder / f"{top}.py").exists() or (folder / top).is_dir()):
        return False
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _warm_up(imports: list[str]) -> None:
    """ipykernel first, then the notebook's modules (those that fail to import fail in its run)."""
    import ipykernel.ipkernel
    import ipykernel.kernelapp
    import ipykernel.zmqshell  # noqa: F401

    from handoff import kernel_capture

    before = set(sys.modules)
    for name in imports:
        try:
            importlib.import_module(name)
        except Exception:  # the notebook's own import says why, in its cell
            continue
    kernel_capture.imported_ahead(set(sys.modules) - before)


def _become_kernel(request: dict[str, Any], fds: list[int], home: str, threads: str | None) -> int:
    """In the forked child: the kernel of one point, as ``python -m ipykernel_launcher -f FILE``
    would start in its work dir, with its environment, its output to the log. The numerical
    libraries read their thread bound (``threads``) when the server imported them: a point's other
    bound (``sandbox.share_cores``) is set on them here."""
    (log,) = fds
    forkserver.settle(request["cwd"], home, os.open(os.devnull, os.O_RDONLY), log)
    os.environ.clear()
    os.environ.update(request["env"])
    bound = os.environ.get("OMP_NUM_THREADS", "")
    if bound != (threads or "") and bound.isdigit():
        with contextlib.suppress(ImportError):  # scikit-learn's dependency: without it, no such library
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

            threadpool_limits(int(bound))
    connection_file = Path(request["connection_file"])
    connection_file.write_text(json.dumps(request["connection"]))
    connection_file.chmod(0o600)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", str(connection_file), *request["arguments"]])  # type: ignore[no-untyped-call]
    app.start()  # type: ignore[no-untyped-call]
    return 0


def main(argv: list[str]) -> int:
    listener_fd, imports = int(argv[0]), json.loads(argv[1])
    home = os.getcwd()  # on the import path (``-m``): each kernel puts its work dir there instead
    threads = os.environ.get("OMP_NUM_THREADS")
    _warm_up(imports)
    return forkserver.serve(listener_fd, 1, lambda request, fds: _become_kernel(request, fds, home, threads))


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))  # its kernels are gone: a sweep's end waits for this exit
