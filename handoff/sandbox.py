"""The sandbox every build's untrusted code runs in: the notebook's kernel and the worker that loads
what the notebook produced (serialize, checks).

On Linux with bubblewrap (``bwrap``, unprivileged through user namespaces): the system read-only,
the build's work dir the only writable place, a private ``/tmp``, the store and well-known
credential files not mounted at all, a new PID namespace (every child dies with the build), no
network unless asked for, and an environment made from an allow-list (secrets only by name).
Where bubblewrap cannot run, the fallback is what the OS gives (the filtered environment,
rlimits, the process group killed) and the build says so: "sandbox: partial (...)". Never
silently unsandboxed. Limits on memory (rlimit), processes and disk use (a watchdog that kills
the sandbox and names the limit) apply in both modes.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from handoff.errors import OptionError

#: What bounds the threads of a notebook's numerical libraries (BLAS, OpenMP) and the processes
#: of joblib's ``n_jobs=-1``: each reads its variable when it starts.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "LOKY_MAX_CPU_COUNT",
)
#: Environment variables a sandboxed process gets from its parent (everything else is dropped).
ENV_ALLOWED = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_NUMERIC",
        "TZ",
        "TERM",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "VIRTUAL_ENV",
        "MPLBACKEND",
        "JPY_SESSION_NAME",
        "PYDEVD_DISABLE_FILE_VALIDATION",
        *THREAD_VARIABLES,
    }
)
#: Credential files and folders under the home directory that are hidden from the sandbox.
HIDDEN_HOME_ENTRIES = (
    ".aws",
    ".ssh",
    ".gnupg",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".azure",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".databrickscfg",
    ".mlflow",
    ".handoff",
)
GIB = 1024**3


@dataclass(frozen=True)
class Limits:
    """What one build may use; exceeding any fails the build with a message naming the limit.

    Attributes:
        memory: Bytes of data memory (heap and anonymous mappings) per process (``--memory``).
        processes: Processes and threads' owners alive at once in the sandbox (``--max-processes``).
        disk: Bytes the build's work dir may hold (``--max-disk``).
    """

    memory: int = 4 * GIB
    processes: int = 256
    disk: int = 5 * GIB

    def __post_init__(self) -> None:
        for name in ("memory", "processes", "disk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise OptionError(f"the {name} limit must be a positive whole number, got {value!r}")


@dataclass(frozen=True)
class Policy:
    """How a build is sandboxed (recorded with the version).

    Attributes:
        allow_network: Give the sandbox the host's network (off by default).
        env: Names of host environment variables passed in (e.g. a token the notebook needs);
            their values are never recorded.
        limits: Resource limits.
    """

    allow_network: bool = False
    env: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for name in self.env:
            if not name.isidentifier():
                raise OptionError(f"--env takes an environment variable name, got {name!r}")

    def describe(self) -> dict[str, object]:
        return {
            "kind": detect().kind,
            "network": "allowed" if self.allow_network else "off",
            "env_passed": [f"{name} passed" for name in self.env],
            "limits": {
                "memory_bytes": self.limits.memory,
                "processes": self.limits.processes,
                "disk_bytes": self.limits.disk,
            },
        }


@dataclass(frozen=True)
class Support:
    """What this machine gives: ``bubblewrap`` or ``partial``, and why."""

    kind: str
    detail: str

    @property
    def warning(self) -> str | None:
        return None if self.kind == "bubblewrap" else f"sandbox: partial ({self.detail})"


@functools.lru_cache(maxsize=1)
def detect() -> Support:
    """Whether bubblewrap works here (tried once per process: it needs user namespaces).

    ``HANDOFF_SANDBOX=partial`` turns it off (to debug a machine, or to measure its cost); the
    build then says so in its warnings, like any partial sandbox.
    """
    if os.environ.get("HANDOFF_SANDBOX") == "partial":
        return Support(
            "partial",
            "bubblewrap turned off by HANDOFF_SANDBOX=partial: environment filtered and "
            "rlimits set, but the store, your files and the network are reachable",
        )
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Support(
            "partial",
            "bubblewrap is not installed: environment filtered and rlimits set, but the "
            "store, your files and the network are reachable from the notebook",
        )
    try:
        done = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Support("partial", f"bubblewrap does not start ({exc})")
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return Support(
            "partial",
            f"bubblewrap cannot create namespaces here ({reason[0][:200]}): environment "
            "filtered and rlimits set, but the store and the network are reachable",
        )
    return Support(
        "bubblewrap", f"{bwrap}: read-only system, private /tmp, no store, PID namespace, network off by default"
    )


def environment(base: Mapping[str, str], workdir: Path, policy: Policy) -> dict[str, str]:
    """The sandbox's environment: the allow-list, the names passed with ``--env``, HOME = work dir."""
    env = {k: v for k, v in base.items() if k in ENV_ALLOWED or k.startswith("LC_")}
    for name in policy.env:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(HOME=str(workdir), TMPDIR="/tmp", MPLBACKEND=env.get("MPLBACKEND", "Agg"), PYTHONNOUSERSITE="1")
    return env


_shared_cores: dict[str, str] = {}  # what share_cores set in this process (and may set again)


def share_cores(processes: int) -> int:
    """Bound the threads of every notebook this process starts from now on to its share of the
    cores it may run on when ``processes`` builds run on them at once (a sweep's workers): without
    it, two points that each use every core (BLAS, ``n_jobs=-1``) fight over them. One build alone
    is left as it is, and so is a bound the user set in this process's environment. Returns the
    share."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // max(1, processes))
    for name in THREAD_VARIABLES:
        if name in os.environ and os.environ[name] != _shared_cores.get(name):
            continue  # the user's own bound
        if processes > 1:
            os.environ[name] = _shared_cores[name] = str(share)
        else:  # an earlier sweep's share, in a process that outlives it (a Dask worker)
            os.environ.pop(name, None)
            _shared_cores.pop(name, None)
    return share


def python_paths(executable: str) -> list[Path]:
    """Where a Python's code lives (prefixes, import path): kept readable even under ``/tmp``."""
    import sys

    import handoff

    # handoff itself: an editable install is found through a finder hook, not through sys.path
    paths = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(executable).resolve().parent.parent,
        Path(handoff.__file__).resolve().parent.parent,
    }
    paths.update(Path(p).resolve() for p in sys.path if p and Path(p).is_dir())  # "." too: bwrap needs absolute
    return sorted(paths, key=lambda p: len(p.parts))


def command(
    cmd: list[str],
    workdir: Path,
    policy: Policy,
    *,
    readable: Iterable[Path] = (),
    writable: Iterable[Path] = (),
    hidden: Iterable[Path] = (),
) -> list[str]:
    """``cmd`` wrapped in the sandbox: rlimits always, bubblewrap's namespaces where it works.

    ``workdir`` (and ``writable``) are the only places it may write; ``readable`` are host paths it
    needs under its private ``/tmp`` (the notebook's own folder, the kernel's connection file);
    ``hidden`` are paths it must not see (the store). Python's own files are always readable.
    """
    limits = (
        ["prlimit", f"--data={policy.limits.memory}", f"--fsize={policy.limits.disk}", "--core=0", "--"]
        if shutil.which("prlimit")
        else []
    )
    if detect().kind != "bubblewrap":
        return [*limits, *cmd]
    args = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    if not policy.allow_network:
        args.append("--unshare-net")
    home = Path.home()
    concealed = [*hidden, *(home / entry for entry in HIDDEN_HOME_ENTRIES)]
    # a readable path inside a hidden one (a build env cached under HANDOFF_HOME) is mounted after
    # the hiding, so only it shows through
    inside = [p for p in readable if any(p.is_relative_to(h) for h in concealed)]
    for path in [*python_paths(cmd[0]), *readable]:
        if path.exists() and path != Path("/") and path not in inside:
            args += ["--ro-bind", str(path), str(path)]
    for path in (workdir, *writable):
        args += ["--bind", str(path), str(path)]
    for path in concealed:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    for path in inside:
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    # in a PID namespace the kernel's parent is pid 1: ipykernel would take that for its parent
    # (``JPY_PARENT_PID``, set by jupyter_client after our environment is made) having exited
    args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", str(workdir), "--"]
    return [*limits, *args, *cmd]


class Watchdog:
    """Kills the sandbox when it holds too many processes or its work dir grows past the disk limit.

    Polls (a fork bomb or a disk filler is stopped within a fraction of a second); the reason is
    kept in ``exceeded`` so the build's failure names the limit.
    """

    def __init__(self, pid: int, workdir: Path, limits: Limits, interval: float = 0.2) -> None:
        self.pid, self.workdir, self.limits, self.interval = pid, workdir, limits, interval
        self.exceeded: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"handoff-watchdog-{pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(self.interval):
            rounds += 1
            count = len(descendants(self.pid))
            if count > self.limits.processes:
                self._kill(
                    f"the notebook started more than {self.limits.processes} processes "
                    "(process limit, {option:max_processes})"
                )
                return
            if rounds % 5 == 0 and (used := disk_usage(self.workdir)) > self.limits.disk:
                self._kill(
                    f"the build's work dir grew to {used / GIB:.1f} GiB, over the disk limit of "
                    f"{self.limits.disk / GIB:.1f} GiB ({{option:max_disk}})"
                )
                return

    def _kill(self, reason: str) -> None:
        self.exceeded = reason
        kill_tree(self.pid)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc; empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group and every descendant (the fallback's cleanup; with
    bubblewrap, killing ``pid`` already ends its PID namespace)."""
    targets = [pid, *descendants(pid)]
    try:
        if os.getpgid(pid) == pid != os.getpgrp():  # only a group of its own: never our caller's
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for target in targets:
        try:
            os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def disk_usage(path: Path) -> int:
    """Bytes held by regular files under ``path`` (links to the user's files are not followed)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return total
