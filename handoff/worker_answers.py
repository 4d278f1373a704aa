"""What a build's worker would work out from the installed packages at every start, worked out once
per environment.

* skops's trust lists, built when ``skops.io`` is imported: ``all_estimators()`` imports every
  scikit-learn module to find the estimator classes, and ``get_public_type_names`` looks up the
  module of every NumPy and SciPy ufunc (searching all loaded modules for each): about 1.5 s of CPU.
* MLflow's map from importable modules to their distributions, built at the first ``save_model``
  or ``load_model`` (``importlib_metadata.packages_distributions()`` reads the file list of every
  installed distribution, about 1.3 s of CPU) to warn when a model's requirements do not match.

They depend only on the installed packages, so they are kept in a file (``$XDG_CACHE_HOME/handoff``,
outside every sandbox) named after the Python it came from, checked against the installed
scikit-learn, skops, NumPy and SciPy and against the modification times of the import path's
folders (installing or removing a package changes its folder's). A worker given the file runs
with those functions answering from it: the same answers, so the same trust lists, warnings and
saved bytes (a call the file does not hold goes to the real function). Without the file the worker
works them out as before, and a detached process (``python -m handoff.checks.runner
--worker-answers FILE``: handoff's own code, no notebook data, started with the worker's
environment so that it sees the same import path) writes the file for the next build.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_NAME = "worker-answers.json"  # in the worker's own folder
PACKAGES = ("scikit-learn", "skops", "numpy", "scipy")
STALE_MARK = 120.0  # a writer that has not finished in this long is taken for dead


def versions() -> dict[str, str] | None:
    """The installed versions of what skops's lists come from (``None`` if one is missing)."""
    try:
        return {name: importlib.metadata.version(name) for name in PACKAGES}
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_file(python: str = sys.executable) -> Path | None:
    """Where this Python's answers are kept (``None``: one of ``PACKAGES`` is not installed)."""
    found = versions()
    if found is None:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "handoff"
    key = hashlib.sha256(json.dumps([str(Path(python).resolve()), found], sort_keys=True).encode()).hexdigest()
    return root / f"worker-answers-{key[:16]}.json"


def site(paths: list[str]) -> dict[str, int]:
    """The import path's folders with their modification times (what a change of packages moves)."""
    return {p: os.stat(p).st_mtime_ns for p in paths if os.path.isdir(p)}


def read(path: Path) -> dict[str, Any] | None:
    """The answers kept at ``path`` if they are whole and for the installed packages."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("versions") != versions():
        return None
    if not all(isinstance(kept.get(k), t) for k, t in (("estimators", list), ("public", dict), ("site", dict))):
        return None
    if site(list(kept["site"])) != kept["site"] or not isinstance(kept.get("distributions"), dict):
        return None
    return kept


def provide(folder: Path) -> bool:
    """Put the kept answers in a worker's ``folder``; without them, start writing them for the next
    worker (unless another process is at it). Whether the worker gets them."""
    path = cache_file()
    if path is None:
        return False
    kept = read(path)
    if kept is not None:
        (folder / FILE_NAME).write_text(json.dumps(kept))
        return True
    _start_writer(path)
    return False


def _start_writer(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mark = path.with_name(path.name + ".writing")
    try:
        if time.time() - mark.stat().st_mtime < STALE_MARK:
            return
        mark.unlink()
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:  # another build started it just now
        return
    from handoff import sandbox

    subprocess.Popen(  # detached: it outlives a CLI build that ends first
        [sys.executable, "-m", "handoff.checks.runner", "--worker-answers", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=path.parent,  # like the worker's own folder: no packages in it
        env=sandbox.environment(
            {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, path.parent, sandbox.Policy()
        ),
        start_new_session=True,
    )


def _public_key(module: Any, oftype: type) -> str:
    return f"{module.__name__}:{oftype.__module__}.{oftype.__qualname__}"


def write(path: Path) -> None:
    """Import skops the slow way, noting the two functions' answers, and MLflow's module map, and keep
    them at ``path`` atomically; drop the writing mark. Only in a process of its own, started as
    the worker is (``sys.path[0]`` is its folder), before skops is imported."""
    import importlib_metadata

    noting = _Hook(None)
    sys.meta_path.insert(0, noting)
    try:
        import skops.io  # noqa: F401
    finally:
        sys.meta_path.remove(noting)
    answers = {
        "versions": versions(),
        "site": site(sys.path[1:]),
        **noting.noted,
        "distributions": importlib_metadata.packages_distributions(),
    }
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(answers))
    partial.rename(path)
    path.with_name(path.name + ".writing").unlink(missing_ok=True)


TRUST_MODULE = "skops.io._trusted_types"  # where skops works the lists out, once, at import


@contextmanager
def answering(kept: dict[str, Any]) -> Iterator[None]:
    """While inside, an import of skops's trust-list module runs with ``all_estimators()`` and
    ``get_public_type_names`` answering from ``kept``: stand-in classes named as the estimators
    (skops only reads each class's module and name) instead of importing every scikit-learn
    module, and the noted type names (skops calls them nowhere else); and
    ``importlib_metadata.packages_distributions()`` answers with the kept map (MLflow calls it
    once, at its first save or load of a model)."""
    import importlib_metadata

    real_distributions = importlib_metadata.packages_distributions
    hook = _Hook(kept)
    sys.meta_path.insert(0, hook)
    importlib_metadata.packages_distributions = lambda: {k: list(v) for k, v in kept["distributions"].items()}
    try:
        yield
    finally:
        sys.meta_path.remove(hook)
        importlib_metadata.packages_distributions = real_distributions


class _Hook(importlib.abc.MetaPathFinder):
    """Runs ``TRUST_MODULE`` with the two functions answering from ``kept``, or, without it,
    noting what the real ones answer (``noted``)."""

    def __init__(self, kept: dict[str, Any] | None) -> None:
        self.kept = kept
        self.noted: dict[str, Any] = {"estimators": [], "public": {}}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != TRUST_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            with self._patched():
                run(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's loader only
        return spec

    @contextmanager
    def _patched(self) -> Iterator[None]:
        import sklearn.utils

        utils = sys.modules["skops.io._utils"]  # imported by the package before this module
        real_estimators: Callable[..., Any] = sklearn.utils.all_estimators
        real_public: Callable[[Any, type], list[str]] = utils.get_public_type_names
        kept, noted = self.kept, self.noted

        def estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
            if kept is not None:
                return [(name.rpartition(".")[2], _stand_in(name)) for name in kept["estimators"]]
            found: list[tuple[str, type]] = real_estimators(*args, **kwargs)
            noted["estimators"] = [utils.get_type_name(c) for _, c in found]
            return found

        def public(module: Any, oftype: type) -> list[str]:
            key = _public_key(module, oftype)
            if kept is not None and key in kept["public"]:
                return list(kept["public"][key])
            noted["public"][key] = answer = real_public(module, oftype)
            return answer

        sklearn.utils.all_estimators = estimators
        utils.get_public_type_names = public  # type: ignore[attr-defined]
        try:
            yield
        finally:
            sklearn.utils.all_estimators = real_estimators
            utils.get_public_type_names = real_public  # type: ignore[attr-defined]


def _stand_in(name: str) -> type:
    module, _, short = name.rpartition(".")
    return type(short, (), {"__module__": module})
