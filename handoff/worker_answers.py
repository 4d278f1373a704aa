"""What a build's worker would work out from the installed packages at every start, worked out once
per environment.

* skops's trust lists, built when ``skops.io`` is imported: ``all_estimators()`` imports every
  scikit-learn module to find the estimator classes, and ``get_public_type_names`` looks up the
  module of every NumPy and SciPy ufunc (searching all loaded modules for each): about 1.5 s of CPU.
* MLflow's map from importable modules to their distributions, built at the first ``save_model``
  or ``load_model`` (``importlib_metadata.packages_distributions()`` reads the file list of every
  installed distribution, about 1.3 s of CPU) to warn when a model's requirements do not match.
* The installed distributions a kernel's capture pins (``scan_installed``: every distribution's
  metadata, about 0.5 s of CPU); a kernel uses them only while its own import path holds exactly
  the distributions they were read from (a notebook that installs a package gets a scan of its own).

They depend only on the installed packages, so they are kept in a file (``$XDG_CACHE_HOME/handoff``,
outside every sandbox) named after the Python it came from, checked against the installed
scikit-learn, skops, NumPy and SciPy and against the distributions on the import path
(``installed_state``: the name and modification time of each ``.dist-info``). A worker given the
file runs with those functions answering from it: the same answers, so the same trust lists, warnings and
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_NAME = "worker-answers.json"  # in the worker's own folder
PACKAGES = ("scikit-learn", "skops", "numpy", "scipy")
STALE_MARK = 120.0  # a writer that has not finished in this long is taken for dead
METADATA_SUFFIXES = (".dist-info", ".egg-info", "EGG-INFO")


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


def installed_state(paths: Iterable[str]) -> list[list[Any]]:
    """What the installed distributions' metadata depends on: each import path entry that holds
    any, with the name and modification time of every ``.dist-info``/``.egg-info`` entry in it (an
    install, removal or upgrade adds, removes or replaces one). Other files, such as a notebook's
    own outputs, do not count. JSON-shaped, so that a kept state compares equal."""
    state: list[list[Any]] = []
    for entry in paths:
        try:
            with os.scandir(entry or ".") as found:
                names = sorted([e.name, e.stat().st_mtime_ns] for e in found if e.name.endswith(METADATA_SUFFIXES))
        except OSError:
            continue
        if names:
            state.append([entry, names])
    return state


def scan_installed() -> tuple[dict[str, str], Mapping[str, list[str]]]:
    """The installed distributions (name to version) and which distribution provides each top-level
    module, as the standard library reads them (the environment a kernel's capture pins): every
    distribution's metadata read, about half a second of CPU."""
    dists = importlib.metadata.distributions()
    return {
        d.metadata["Name"]: d.version for d in dists if d.metadata["Name"]
    }, importlib.metadata.packages_distributions()


def read(path: Path, *, here: bool = False) -> dict[str, Any] | None:
    """The answers kept at ``path`` if they are whole and for the installed packages: the import
    path entries they were worked out on still hold the same distributions and, with ``here``,
    this process's import path holds no others (and it is the same Python)."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("versions") != versions():
        return None
    shapes = (("estimators", list), ("public", dict), ("site", list), ("distributions", dict), ("installed", dict))
    if not all(isinstance(kept.get(k), t) for k, t in shapes) or not isinstance(kept.get("owners"), dict):
        return None
    if here:  # this import path's state; it holds the recorded entries' state too
        same = kept.get("python") == _python() and installed_state(sys.path) == kept["site"]
    else:
        same = installed_state(entry for entry, _ in kept["site"]) == kept["site"]
    return kept if same else None


def _python() -> str:
    return str(Path(sys.executable).resolve())


def provide(folder: Path) -> bool:
    """Put the kept answers in a worker's (or a kernel's capture) ``folder``; without them, start
    writing them for the next build (unless another process is at it). Whether they were put there."""
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
    installed, owners = scan_installed()
    answers = {
        "versions": versions(),
        "python": _python(),
        "site": installed_state(sys.path[1:]),
        **noting.noted,
        "distributions": importlib_metadata.packages_distributions(),
        "installed": installed,
        "owners": owners,
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
