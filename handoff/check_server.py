"""A sweep's warm check server: the build's sandboxed worker (``handoff.checks.runner``) started
once per sweep worker, and forked for each point's build.

A fresh worker imports MLflow and the scientific stack before it can serialize or check anything:
about 2.5 CPU-seconds a build. A single build hides them behind its notebook's run, but a sweep's
parallel points share the machine's cores and pay them in full. A worker forked from a server that
warmed up once starts as a fresh worker is after its warm-up: it holds nothing of an earlier point
(each is forked from the server, never from a worker), so a model that only loads where the
notebook ran still fails ``model.loads``.

The server runs in one sandbox for the whole sweep. Its points' temp dirs live in one folder
(``workdirs.keep_inside``) that this sandbox sees whole: points of one sweep share it as they
share the notebook and the user, and nothing outside the sweep is in it. Only a sweep worker turns
it on (``serve_checkers``): a process that builds other notebooks, or for other users, never forks
their workers from one parent. The other processes of the same sweep on this machine (the sweep
worker's forks, a Dask worker) ask it for its servers over a socket in that folder
(``use_checkers``) instead of warming up their own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from handoff import sandbox, worker_answers
from handoff.workdirs import keep_inside, private_dir

_numbers = itertools.count(1)


class ForkedWorker:
    """A worker the server forked, as the build sees it: ``poll`` and ``wait`` like a
    ``subprocess.Popen``, and ``kill`` (its process group, by the server)."""

    def __init__(self, connection: socket.socket, stdin: IO[bytes]) -> None:
        self._connection = connection
        self.stdin = stdin
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._connection], [], [], 0)[0]:
            try:
                said = self._connection.recv(64)
            except OSError:
                said = b""
            try:
                self.returncode = int(said)
            except ValueError:  # no exit code: the server is gone, and its sandbox took its workers with it
                self.returncode = -signal.SIGKILL
            self._connection.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("the check worker", timeout or 0.0)
            select.select([self._connection], [], [], left)
        return code

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._connection.sendall(b"kill\n")


class CheckServer:
    """The sandboxed server (``python -m handoff.checks.runner --serve FD``) for workers that read
    ``readable`` and must not see ``hidden``, its home and every worker's folder inside ``root``."""

    def __init__(self, root: Path, readable: tuple[Path, ...], hidden: tuple[Path, ...]) -> None:
        self.root = root
        name = f"check-server-{next(_numbers)}"
        self._log = open(root / f"{name}.log", "ab")  # noqa: SIM115 -- the server's output; closed in close()
        self._socket = root / f"{name}.sock"  # in the owner-only folder: no other user can connect
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self._socket))
        listener.listen(64)  # a connection made while the server still warms up waits here
        worker_answers.provide(root)
        policy = sandbox.Policy()
        env = sandbox.environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, root, policy)
        fd = listener.fileno()
        command = sandbox.command(
            [sys.executable, "-m", "handoff.checks.runner", "--serve", str(fd)],
            root,
            policy,
            readable=readable,
            hidden=hidden,
        )
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # its end tells the server that this process is gone
            stdout=self._log,
            stderr=self._log,
            cwd=root,
            env=env,
            start_new_session=True,
            pass_fds=(fd,),
        )
        # the server's copy is the only one: if it dies, a connection fails instead of waiting for it
        listener.close()

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def address(self) -> Path:
        """Where ``spawn`` connects to ask it for a worker."""
        return self._socket

    def close(self) -> None:
        """Stop the server; the workers it forked end with it."""
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill_tree(self._process.pid)
            self._process.wait()
        self._log.close()


def spawn(server: Path, folder: Path, log: IO[bytes]) -> ForkedWorker:
    """A worker forked by the server at ``server`` for one build: its cwd and home ``folder``, its
    output to ``log``, its requests on the returned worker's ``stdin``. Raises ``OSError`` when the
    server is gone."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    read, write = os.pipe()
    try:
        connection.connect(str(server))
        socket.send_fds(connection, [json.dumps({"cwd": str(folder)}).encode()], [read, log.fileno()])
    except OSError:
        connection.close()
        os.close(write)
        raise
    finally:
        os.close(read)
    return ForkedWorker(connection, os.fdopen(write, "wb"))


_Key = tuple[tuple[Path, ...], tuple[Path, ...]]
_BROKER = "servers.sock"  # in the sweep's folder: where its other processes ask for a server
_lock = threading.Lock()
_starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-check-server")
_servers: dict[_Key, CheckServer] = {}
_root: Path | None = None
_shared = False  # this process asks another one's broker for its servers (use_checkers)


@contextlib.contextmanager
def serve_checkers(root: Path | None = None) -> Iterator[Path]:
    """In this process (a sweep worker): make every temp dir in one folder (``root``, a new one by
    default; yielded), fork each build's check worker from one warm server per kind of sandbox, and
    serve those servers to the sweep's other processes (``use_checkers``). Everything is stopped
    and removed on exit."""
    global _root
    root = root or private_dir("pool")
    broker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    broker.bind(str(root / _BROKER))
    broker.listen(64)
    answering = threading.Thread(target=_answer, args=(broker,), name="handoff-check-broker", daemon=True)
    answering.start()
    keep_inside(root)
    with _lock:
        _root = root
    try:
        yield root
    finally:
        keep_inside(None)
        with contextlib.suppress(OSError):
            broker.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept
        answering.join(timeout=10)
        broker.close()
        with _lock:
            servers = list(_servers.values())
            _servers.clear()
            _root = None
        for server in servers:
            server.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def use_checkers(root: Path) -> Iterator[None]:
    """In another process of the same sweep on this machine (a fork of the sweep worker, a Dask
    worker): temp dirs in the sweep's folder ``root``, check workers forked from the servers of the
    process that serves it (``serve_checkers``), which owns, restarts and stops them."""
    global _root, _shared
    keep_inside(root)
    with _lock:
        _root, _shared = root, True
    try:
        yield
    finally:
        keep_inside(None)
        with _lock:
            _root, _shared = None, False


def start_early(root: Path, readable: Iterable[Path], hidden: Iterable[Path]) -> None:
    """Start the server for workers that read ``readable`` and must not see ``hidden`` now, from this
    thread (which must live as long as the sweep), before ``serve_checkers(root)``: it warms up in
    its own process while this one does, instead of beside the first points' kernels."""
    key = _key(root.resolve(), readable, hidden)
    with _lock:
        _servers[key] = CheckServer(root, *key)


def server_for(writable: Iterable[Path], readable: Iterable[Path], hidden: Iterable[Path]) -> Path | None:
    """The address of the warm server for a worker that writes ``writable`` and reads ``readable``,
    hidden from ``hidden``: started on first use, and again if it died. ``None`` outside
    ``serve_checkers``/``use_checkers``, when the worker writes outside the sweep's folder (what it
    reads there needs no key), or when the serving process does not answer."""
    with _lock:
        root, shared = _root, _shared
    if root is None:
        return None
    inside = root.resolve()
    if not all(Path(p).resolve().is_relative_to(inside) for p in writable):
        return None
    key = _key(inside, readable, hidden)
    return _ask(root / _BROKER, key) if shared else _server(key)


def _key(inside: Path, readable: Iterable[Path], hidden: Iterable[Path]) -> _Key:
    """One server per kind of sandbox: what it reads outside the sweep's folder, and what it hides."""
    return tuple(Path(p) for p in readable if not Path(p).resolve().is_relative_to(inside)), tuple(map(Path, hidden))


def _server(key: _Key) -> Path | None:
    with _lock:
        if _root is None:
            return None
        server = _servers.get(key)
        if server is None or not server.running:
            if server is not None:
                server.close()
            # on a thread that lives as long as this process: bubblewrap dies with the thread that started it
            server = _servers[key] = _starter.submit(CheckServer, _root, *key).result()
        return server.address


def _answer(broker: socket.socket) -> None:
    """The serving process's side of ``use_checkers``: a key in, the address of its server out."""
    while True:
        try:
            connection, _ = broker.accept()
        except OSError:  # shut down: the sweep is over
            return
        with connection, contextlib.suppress(Exception):  # a bad request: the asker builds with a fresh worker
            readable, hidden = json.loads(connection.makefile("rb").readline())
            address = _server((tuple(map(Path, readable)), tuple(map(Path, hidden))))
            connection.sendall(json.dumps(address and str(address)).encode() + b"\n")


def _ask(broker: Path, key: _Key) -> Path | None:
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(broker))
        connection.sendall(json.dumps([[str(p) for p in part] for part in key]).encode() + b"\n")
        address = json.loads(connection.makefile("rb").readline())
        return Path(address) if address else None
    return None
