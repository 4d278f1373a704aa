"""``file://`` URIs <-> local paths, in one place.

MLflow hands back artifact locations as URIs; the store keeps its artifacts on this machine for an
embedded store and reads them in place. Paths with spaces or ``%`` are percent-encoded in a URI,
so a URI must never be turned into a path (or back) by string slicing. Stdlib only: the kernel
side imports this too.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse


def local_path(uri: str) -> Path | None:
    """The local path a ``file:`` URI names; ``None`` for any other URI (or another host's file).

    Accepts ``file:///p`` and ``file:/p`` (both occur in MLflow) and ``file://localhost/p``;
    percent-escapes are decoded (``%20`` -> space, ``%25`` -> ``%``).
    """
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def file_uri(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URI of a path (made absolute), percent-encoded as MLflow expects."""
    return Path(path).absolute().as_uri()


def sqlite_uri(path: str | os.PathLike[str]) -> str:
    """The ``sqlite:///`` URI of a database file.

    SQLAlchemy percent-decodes the path and cuts it at ``?`` (its query), so those two are escaped;
    anything else (spaces included) is kept as is, because MLflow also reads the path undecoded
    (it creates the parent folder from it).
    """
    return "sqlite:///" + str(Path(path).absolute()).replace("%", "%25").replace("?", "%3F")


def sqlite_path(uri: str) -> Path | None:
    """The database file a ``sqlite:///`` URI names (as SQLAlchemy reads it); ``None`` for other URIs."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri.removeprefix("sqlite:///").split("?", 1)[0]))
