"""Data fingerprint: which files a notebook read, with size and sha256.

The kernel records every file opened for reading (an audit hook installed by the first cell
handoff adds); this module decides which of those are *data* and digests them. Code and library
files are left out, except datasets bundled inside packages (scikit-learn's ``load_iris`` reads a
CSV from site-packages: that is training data, and a changed copy must show up).
Runs inside the kernel, so it imports only the standard library.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CODE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyc",
        ".pyo",
        ".pyd",
        ".pyi",
        ".so",
        ".dylib",
        ".dll",
        ".pth",
        ".ipynb",
        ".typed",
    }
)
SYSTEM_ROOTS = ("/proc", "/sys", "/dev", "/etc", "/usr/lib", "/usr/share", "/usr/local/lib")
DATASET_DIR_NAMES = frozenset({"datasets", "data", "sample_data"})
DATASET_SUFFIXES = frozenset(
    {
        ".csv",
        ".gz",
        ".tsv",
        ".txt",
        ".json",
        ".parquet",
        ".npz",
        ".npy",
        ".arff",
        ".bz2",
        ".xz",
        ".zip",
        ".xlsx",
        ".feather",
        ".pkl",
        ".joblib",
    }
)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks so large data files cost no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_data_file(path: str, workdir: str, library_roots: Iterable[str]) -> bool:
    """True when ``path`` (absolute) is a data file rather than code, config or library internals."""
    p = Path(path)
    if p.suffix.lower() in CODE_SUFFIXES or not p.is_file():
        return False
    if _is_under(path, workdir):
        return not any(part.startswith(".") for part in Path(os.path.relpath(path, workdir)).parts)
    for root in library_roots:
        if _is_under(path, root):
            parts = set(Path(os.path.relpath(path, root)).parts)
            return bool(parts & DATASET_DIR_NAMES) and p.suffix.lower() in DATASET_SUFFIXES
    if any(_is_under(path, root) for root in SYSTEM_ROOTS):
        return False
    home = os.path.expanduser("~")
    if _is_under(path, home):
        return not any(part.startswith(".") for part in Path(os.path.relpath(path, home)).parts)
    return True


def display_path(path: str, workdir: str, library_roots: Iterable[str]) -> str:
    """How a data file is named in the fingerprint: relative to the build dir or to its package."""
    if _is_under(path, workdir):
        return os.path.relpath(path, workdir)
    for root in library_roots:
        if _is_under(path, root):
            return "<site-packages>/" + os.path.relpath(path, root)
    return path


def fingerprint(paths: Iterable[str], workdir: str, library_roots: Iterable[str]) -> list[dict[str, Any]]:
    """Describe each distinct data file read: ``{"path", "size", "sha256"}``, sorted by path."""
    roots = sorted({str(r) for r in library_roots if r}, key=len, reverse=True)
    seen: dict[str, dict[str, Any]] = {}
    for raw in paths:
        path = os.path.abspath(raw)
        if path in seen or not is_data_file(path, workdir, roots):
            continue
        seen[path] = {
            "path": display_path(path, workdir, roots),
            "size": os.path.getsize(path),
            "sha256": sha256_file(path),
        }
    return sorted(seen.values(), key=lambda entry: entry["path"])


def combined_digest(files: list[dict[str, Any]]) -> str:
    """One sha256 for the whole fingerprint, so two builds' data can be compared at a glance."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda e: e["path"]):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def _is_under(path: str, root: str) -> bool:
    root = root.rstrip(os.sep)
    return bool(root) and (path == root or path.startswith(root + os.sep))
