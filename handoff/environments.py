"""The build environment: a virtualenv made from the notebook's own requirements.

When a build has requirements (a ``requirements.txt`` or a ``pyproject.toml`` with
``[project] dependencies`` beside the notebook or uploaded with it, ``--requirements FILE``,
``--with PKG``, or ``%pip install`` cells), its kernel runs on the Python of a virtualenv made from
them with ``uv``, instead of handoff's own environment. The requirements are resolved first
(``uv pip compile``, preferring the versions handoff itself runs with); the env is cached under
``HANDOFF_HOME/envs/<key>`` (``$HANDOFF_ENVS`` overrides the folder), keyed by the Python, handoff's
source folder and the resolved pins, so a second build with the same requirements reuses it.

Only wheels are installed (``--no-build``): building a source distribution runs its code, and uv
runs outside the sandbox. An env is made in a temporary folder beside the cache and renamed into place when complete (a
failed install leaves nothing in the cache), under a lock file (two builds wanting the same env
make it once). It holds the resolved requirements, what handoff's kernel-side capture needs
(``ipykernel``, ``cloudpickle``, ``numpy``) and handoff's own package, linked into its
site-packages (handoff's other dependencies are not installed: the notebook sees only what it asked
for).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat

from handoff.errors import BuildFailure, OptionError

#: What handoff's kernel-side capture imports in the kernel (besides the standard library).
KERNEL_PACKAGES = ("ipykernel", "cloudpickle", "numpy")
#: The marker written last into a complete env (an env without it is never used).
MARKER = "handoff-env.json"
#: How handoff makes an env; part of the cache key, so a change makes new envs instead of reusing old ones.
ENV_LAYOUT = 2
REQUIREMENTS_FILE = "requirements.txt"
PYPROJECT_FILE = "pyproject.toml"
#: Seconds one ``uv`` call may take (a resolve or an install).
UV_TIMEOUT = 1800.0
#: How long a resolution is reused for the same requirements (unpinned ones pick up new releases after).
RESOLVE_TTL = 24 * 3600.0

_PIP_LINE = re.compile(r"^\s*[!%]\s*(?:(?:\S*python[\d.]*|\{sys\.executable\})\s+-m\s+)?pip3?\s+install\b(?P<args>.*)$")
#: pip install options followed by a value (skipped with it).
_PIP_VALUE_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint", "-t", "--target"}
)


class EnvironmentFailure(BuildFailure):
    kind = "the build environment could not be made"


@dataclass(frozen=True)
class EnvironmentSpec:
    """What the build environment is made from.

    Attributes:
        requirements: Requirement lines (PEP 508, or pip's ``-r``-free requirement syntax), in order.
        sources: Where they came from, for messages and the record (``requirements.txt beside the
            notebook``, ``--with six``, ``%pip install in cell 3``).
    """

    requirements: tuple[str, ...]
    sources: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.requirements)


@dataclass(frozen=True)
class ReadyEnvironment:
    """A ready build environment.

    Attributes:
        path: The virtualenv's folder (in the cache).
        python: Its interpreter.
        key: The cache key (Python, handoff's source, the resolved pins).
        pins: The resolved requirements it was made from (``name==version``).
        created: Whether this build made it (``False``: reused from the cache).
        seconds: Time spent resolving and (when created) installing.
    """

    path: Path
    python: Path
    key: str
    pins: tuple[str, ...]
    created: bool
    seconds: float


def envs_dir() -> Path:
    """Where build environments are cached: ``$HANDOFF_ENVS``, else ``HANDOFF_HOME/envs``."""
    from handoff.store import default_home

    return Path(os.environ.get("HANDOFF_ENVS") or default_home() / "envs").expanduser()


def uv_binary() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


# --- where requirements come from --------------------------------------------------------------


def read_requirements_file(path: Path) -> tuple[str, ...]:
    """Requirement lines of a ``requirements.txt`` or of a ``pyproject.toml``'s ``[project] dependencies``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"cannot read the requirements file {path}: {exc}") from exc
    return parse_requirements(text, path.name)


def parse_requirements(text: str, name: str) -> tuple[str, ...]:
    if name.endswith(".toml"):
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise OptionError(f"{name} is not valid TOML: {exc}") from exc
        deps = project.get("dependencies", []) if isinstance(project, dict) else []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise OptionError(f"{name}: [project] dependencies must be a list of strings")
        return tuple(d.strip() for d in deps if d.strip())
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r", "-c", "--requirement", "--constraint")):
            raise OptionError(f"{name}: nested requirement files ({line!r}) are not supported; list the packages")
        lines.append(line)
    return tuple(lines)


def _pyproject_has_dependencies(text: str) -> bool:
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(project, dict) and bool(project.get("dependencies"))


def pip_installs(notebook: nbformat.NotebookNode) -> list[tuple[int, tuple[str, ...]]]:
    """``(cell position, packages)`` of every ``%pip install`` / ``!pip install`` line in code cells."""
    found = []
    for position, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if match := _PIP_LINE.match(line):
                packages = _pip_packages(match.group("args"))
                if packages:
                    found.append((position, packages))
    return found


def _pip_packages(args: str) -> tuple[str, ...]:
    try:
        words = shlex.split(args.split(" #", 1)[0])
    except ValueError:
        words = args.split()
    packages, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in _PIP_VALUE_OPTIONS or word in ("-r", "--requirement"):
            skip = True
        elif not word.startswith("-") and not word.startswith(("{", "$")):
            packages.append(word)
    return tuple(packages)


def without_pip_installs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy in which each ``pip install`` line is a comment (its packages are in the build env)."""
    import copy

    nb = copy.deepcopy(notebook)
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(_PIP_LINE.match(line) for line in cell.source.splitlines()):
            continue
        cell.source = "\n".join(
            f"# handoff: installed in the build environment: {line.strip()}" if _PIP_LINE.match(line) else line
            for line in cell.source.splitlines()
        )
    return nb


def find_spec(
    notebook: nbformat.NotebookNode,
    notebook_dir: Path | None,
    files: Mapping[str, bytes],
    requirements_file: str | Path | None,
    with_packages: Iterable[str],
) -> tuple[EnvironmentSpec, list[str]]:
    """The build's requirements (possibly empty) and warnings about ``pip install`` cells.

    ``--requirements FILE`` replaces the files found beside the notebook; ``--with`` and the
    ``pip install`` cells add to whichever file is used.
    """
    requirements: list[str] = []
    sources: list[str] = []
    if requirements_file is not None:
        requirements += read_requirements_file(Path(requirements_file))
        sources.append(f"--requirements {requirements_file}")
    elif REQUIREMENTS_FILE in files or PYPROJECT_FILE in files:
        name = REQUIREMENTS_FILE if REQUIREMENTS_FILE in files else PYPROJECT_FILE
        text = files[name].decode("utf-8", errors="replace")
        if name == REQUIREMENTS_FILE or _pyproject_has_dependencies(text):
            requirements += parse_requirements(text, name)
            sources.append(f"{name} uploaded with the notebook")
    elif notebook_dir is not None:
        for name in (REQUIREMENTS_FILE, PYPROJECT_FILE):
            path = notebook_dir / name
            if path.is_file() and (name == REQUIREMENTS_FILE or _pyproject_has_dependencies(path.read_text())):
                requirements += read_requirements_file(path)
                sources.append(f"{name} beside the notebook")
                break
    for package in with_packages:
        if not package.strip():
            raise OptionError("--with takes a package name, got an empty one")
        requirements.append(package.strip())
        sources.append(f"--with {package.strip()}")
    warnings = []
    for position, packages in pip_installs(notebook):
        requirements += packages
        sources.append(f"pip install in cell {position}")
        warnings.append(
            f"cell {position} runs `pip install {' '.join(packages)}`: handoff installed "
            f"{', '.join(packages)} into the build environment instead, and skipped the line"
        )
    return EnvironmentSpec(tuple(dict.fromkeys(requirements)), tuple(sources)), warnings


# --- making the env -----------------------------------------------------------------------------


def _uv(args: list[str], what: str, timeout: float = UV_TIMEOUT) -> str:
    """Run uv; a failure raises ``EnvironmentFailure`` with uv's own reason on one line."""
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    try:
        done = subprocess.run(
            [uv_binary(), *args], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentFailure("environment", f"{what} took longer than {timeout:g}s", ename="Timeout") from None
    except OSError as exc:
        raise EnvironmentFailure("environment", f"{what}: uv does not run ({exc})", ename=type(exc).__name__) from exc
    if done.returncode != 0:
        raise EnvironmentFailure("environment", f"{what}: {uv_reason(done.stderr)}", ename="UvError")
    return done.stdout


def uv_reason(stderr: str) -> str:
    """uv's error as one line: ``error: No solution found ...`` and its ``cause:`` lines joined."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Resolved", "Prepared", "Using ", "warning:"))]
    parts: list[str] = []
    for line in lines:  # a new part at each label; uv wraps long ones over several lines
        if (head := re.match(r"^(error|cause|hint|Caused by|[\u00d7\u2570\u2500\u25b6]+)\s*:?\s*", line)) or not parts:
            parts.append(line[head.end() :] if head else line)
        else:
            parts[-1] += f" {line}"
    text = ": ".join(part.rstrip(":") for part in parts if part)
    return re.sub(r"\s+", " ", text).strip()[:1000] or "uv failed without a message"


def _own_versions() -> str:
    """handoff's own environment as ``name==version`` lines: uv prefers these versions when it may,
    so a build env's numpy or scikit-learn matches the one that loads the model afterwards."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "handoff":
            pins[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(pins.values())) + "\n"


def resolve(spec: EnvironmentSpec, python: str, workdir: Path) -> tuple[str, ...]:
    """The requirements resolved to exact pins (with handoff's kernel-side packages)."""
    given = workdir / "requirements.in"
    given.write_text("\n".join([*spec.requirements, *KERNEL_PACKAGES]) + "\n")
    pinned = workdir / "requirements.lock"
    pinned.write_text(_own_versions())  # an existing output file: uv prefers its versions
    _uv(
        [
            "pip",
            "compile",
            str(given),
            "-o",
            str(pinned),
            "--python",
            python,
            "--no-header",
            "--no-annotate",
            "--no-build",
            "-q",
        ],
        "resolving the requirements",
    )
    return tuple(
        line.strip() for line in pinned.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def env_key(python_version: str, pins: Iterable[str]) -> str:
    import handoff

    digest = hashlib.sha256()
    for part in (
        f"layout {ENV_LAYOUT}",
        f"python {python_version}",
        f"handoff {Path(handoff.__file__).resolve().parent}",
        *sorted(pins),
    ):
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()[:20]


def prepare(
    spec: EnvironmentSpec,
    announce: Callable[[str], None],
    *,
    cache: Path | None = None,
    python: str | None = None,
) -> ReadyEnvironment:
    """The build environment for ``spec``: from the cache, or made now (announced through ``announce``).

    Raises:
        EnvironmentFailure: uv cannot resolve or install the requirements (uv's reason, one line).
    """
    started = time.monotonic()
    python = python or sys.executable
    cache = cache or envs_dir()
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    version = ".".join(str(v) for v in sys.version_info[:3])
    known = _resolved(cache, spec, version)
    if known is not None and (cache / known / MARKER).exists():
        pins = tuple(json.loads((cache / known / MARKER).read_text())["pins"])
    else:
        announce(f"resolving {len(spec.requirements)} requirements ({', '.join(spec.sources)})")
        with tempfile.TemporaryDirectory(prefix=".resolve-", dir=cache) as scratch:
            pins = resolve(spec, python, Path(scratch))
    key = env_key(version, pins)
    target = cache / key
    if (target / MARKER).exists():
        announce(f"reusing the build environment {key} ({len(pins)} packages)")
        _remember(cache, spec, version, key)
        return ReadyEnvironment(target, _python_of(target), key, pins, False, time.monotonic() - started)
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build making the same env: wait for it
        created = not (target / MARKER).exists()
        if created:
            announce(f"creating the build environment: installing {len(pins)} packages")
            _create(target, python, pins, spec)
    _remember(cache, spec, version, key)
    return ReadyEnvironment(target, _python_of(target), key, pins, created, time.monotonic() - started)


def _request_key(spec: EnvironmentSpec, python_version: str) -> str:
    """What a resolution depends on: the requirements, the Python, handoff and its own installed
    versions (uv prefers them), as a digest."""
    import handoff

    digest = hashlib.sha256()
    for part in (
        f"python {python_version}",
        f"handoff {Path(handoff.__file__).resolve().parent}",
        *spec.requirements,
        *KERNEL_PACKAGES,
        *_installed_names(),
    ):
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()[:20]


def _installed_names() -> list[str]:
    """handoff's own environment as its ``*.dist-info`` folder names (name and version): a cheap
    fingerprint of what ``_own_versions`` would list."""
    names: set[str] = set()
    for entry in sys.path:
        try:
            names.update(n for n in os.listdir(entry or ".") if n.endswith(".dist-info"))
        except OSError:
            continue
    return sorted(names)


def _resolved(cache: Path, spec: EnvironmentSpec, python_version: str) -> str | None:
    """The env a recent resolution of the same requirements led to, if any."""
    index = cache / "resolved" / _request_key(spec, python_version)
    try:
        if time.time() - index.stat().st_mtime < RESOLVE_TTL:
            return index.read_text().strip() or None
    except OSError:
        pass
    return None


def _remember(cache: Path, spec: EnvironmentSpec, python_version: str, key: str) -> None:
    index = cache / "resolved" / _request_key(spec, python_version)
    if index.exists() and index.read_text().strip() == key:
        return
    index.parent.mkdir(exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{index.name}.", dir=index.parent)
    with os.fdopen(handle, "w") as out:
        out.write(key)
    os.replace(partial, index)


def _python_of(env: Path) -> Path:
    return env / "bin" / "python"


def _create(
    target: Path, python: str, pins: tuple[str, ...], spec: EnvironmentSpec, *, for_kernel: bool = True
) -> None:
    """Make the env in a temporary folder beside ``target`` and rename it into place when complete
    (``for_kernel``: with handoff's package linked in and bytecode compiled, for a read-only kernel)."""
    import handoff

    shutil.rmtree(target, ignore_errors=True)  # a folder without the marker: not ours to keep
    building = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=target.parent))
    try:
        _uv(["venv", "--relocatable", "-q", "--python", python, str(building)], "creating the virtualenv")
        (building / "requirements.lock").write_text("\n".join(pins) + "\n")
        _uv(
            # bytecode now: the kernel sees the env read-only and would compile every module at each start
            [
                "pip",
                "install",
                "-q",
                *(["--compile-bytecode"] if for_kernel else []),
                "--no-build",
                "--python",
                str(_python_of(building)),
                "-r",
                str(building / "requirements.lock"),
            ],
            "installing the requirements",
        )
        # handoff's own package (not its dependencies): the kernel-side capture imports it
        if for_kernel:
            site = _site_packages(building)
            (site / "handoff").symlink_to(Path(handoff.__file__).resolve().parent, target_is_directory=True)
        (building / MARKER).write_text(
            json.dumps({"requirements": list(spec.requirements), "sources": list(spec.sources), "pins": list(pins)})
        )
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _site_packages(env: Path) -> Path:
    found = sorted((env / "lib").glob("python*/site-packages"))
    if not found:
        raise EnvironmentFailure("environment", f"the virtualenv {env} has no site-packages folder")
    return found[0]


# --- env.rebuilds: the package's own requirements.txt, alone ------------------------------------

#: Loads the model with MLflow's pyfunc and predicts its stored input example; prints the row count.
PROBE = """
import sys
import mlflow.pyfunc
from mlflow.models import Model

model_dir = sys.argv[1]
example = Model.load(model_dir).load_input_example(model_dir)
if example is None:
    sys.exit("the model has no stored input example")
print(len(mlflow.pyfunc.load_model(model_dir).predict(example)))
"""


@dataclass(frozen=True)
class Rebuilt:
    """What ``rebuild_and_predict`` found: whether the model predicted there, and one line saying so."""

    ok: bool
    message: str
    key: str = ""
    created: bool = False
    seconds: float = 0.0


def rebuild_and_predict(
    model_dir: Path,
    *,
    hidden: Iterable[Path] = (),
    cache: Path | None = None,
    timeout: float = 600.0,
    python: str | None = None,
) -> Rebuilt:
    """Install only ``model_dir/requirements.txt`` into a fresh virtualenv (uv, cached by those pins)
    and load the model and predict its input example there, in the sandbox: proof that an engineer
    can install the package from what it declares."""
    from handoff import sandbox
    from handoff.workdirs import private_dir

    started = time.monotonic()
    requirements = model_dir / "requirements.txt"
    if not requirements.is_file():
        return Rebuilt(False, "the model has no requirements.txt to rebuild its environment from")
    pins = parse_requirements(requirements.read_text(), requirements.name)
    cache = cache or envs_dir()
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = "package-" + env_key(".".join(str(v) for v in sys.version_info[:3]), pins)
    target = cache / key
    created = False
    try:
        if not (target / MARKER).exists():
            with open(cache / f"{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (target / MARKER).exists():
                    _create(
                        target,
                        python or sys.executable,
                        pins,
                        EnvironmentSpec(pins, ("the package",)),
                        for_kernel=False,
                    )
                    created = True
    except EnvironmentFailure as exc:
        return Rebuilt(
            False, f"its requirements do not install: {exc.detail}", key, created, time.monotonic() - started
        )
    workdir = private_dir("check")
    policy = sandbox.Policy()
    try:
        command = sandbox.command(
            [str(_python_of(target)), "-c", PROBE, str(model_dir)],
            workdir,
            policy,
            readable=(model_dir, target),
            hidden=tuple(hidden),
        )
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={k: v for k, v in sandbox.environment(os.environ, workdir, policy).items() if k != "PYTHONPATH"},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Rebuilt(False, f"loading and predicting took longer than {timeout:g}s", key, created)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return Rebuilt(
            False, f"in a new env from its requirements.txt: {lines[-1] if lines else 'failed'}", key, created, seconds
        )
    return Rebuilt(
        True,
        f"loads and predicts {done.stdout.strip()} example rows in a new env from its {len(pins)} requirements",
        key,
        created,
        seconds,
    )
