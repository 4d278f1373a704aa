"""Private temporary directories for builds, and the sweep that removes those a killed build left.

A build's temp dirs hold the executed notebook and the model's pickle, so they are owner-only
(0700: no other user can list or open anything inside, whatever the files' own modes). Each name
carries the owner's PID (``handoff-build-<pid>-xxxx``): a build killed with ``kill -9`` never runs
its cleanup, so every new build first removes the dirs whose owner is gone (or that are older than
``STALE_AFTER``, in case the PID has since been reused).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

KINDS = ("build", "stage", "check", "tests", "pool")
STALE_AFTER = 24 * 3600.0  # seconds; no build runs this long (the default whole-run limit is 1 h)
_NAME = re.compile(rf"^handoff-(?:{'|'.join(KINDS)})-(\d+)-")


_root: Path | None = None  # where this process's dirs are made, when not the system's temp dir


def private_dir(kind: str) -> Path:
    """A new owner-only temp dir ``handoff-<kind>-<pid>-…``, after sweeping stale ones (inside the
    folder ``keep_inside`` set, when one is)."""
    if kind not in KINDS:
        raise ValueError(f"unknown temp dir kind {kind!r}; one of {', '.join(KINDS)}")
    sweep_stale()
    path = Path(tempfile.mkdtemp(prefix=f"handoff-{kind}-{os.getpid()}-", dir=_root))
    os.chmod(path, 0o700)  # mkdtemp's mode already; stated here because the safety depends on it
    return path


def keep_inside(root: Path | None) -> None:
    """Make this process's later temp dirs inside ``root`` (``None``: the system's temp dir again).
    A sweep worker keeps its points' dirs in one folder, which the sweep's warm servers
    (``handoff.warm_servers``) can see whole."""
    global _root
    _root = root


def sweep_stale(root: Path | None = None, max_age: float = STALE_AFTER) -> list[Path]:
    """Remove this user's handoff temp dirs whose owner process is gone or that are older than
    ``max_age`` seconds; returns what was removed. Never touches this process's own dirs."""
    root = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or pid == os.getpid():
            continue
        if _alive(pid) and now - info.st_mtime < max_age:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)  # another build may be sweeping it too
        removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True
