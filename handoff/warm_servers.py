"""A sweep's warm servers: processes that import what a build's sandboxed processes need once per
sweep worker, then fork one for each point's build (``handoff.forkserver``).

* The check server (``python -m handoff.checks.runner --serve FD``) forks each point's check
  worker. A fresh worker imports MLflow and the scientific stack before it can serialize or check
  anything: about 2.5 CPU-seconds a build.
* The kernel server (``python -m handoff.kernel_server FD SPEC``) forks each point's kernel, with
  ipykernel and the notebook's own imports done (``handoff.kernel_server``): about 2 CPU-seconds a
  point for a notebook that imports scikit-learn.

A single build hides that work behind its notebook's run, but a sweep's parallel points share the
machine's cores and pay it in full. A process forked from a server that warmed up once starts as a
fresh one is after its warm-up: it holds nothing of an earlier point (each is forked from the
server, which runs nothing of a build), so a model that only loads where the notebook ran still
fails ``model.loads``.

A server runs in one sandbox for the whole sweep. Its points' temp dirs live in one folder
(``workdirs.keep_inside``) that this sandbox sees whole: points of one sweep share it as they
share the notebook and the user, and nothing outside the sweep is in it. Only a sweep worker turns
it on (``serve_sweep``): a process that builds other notebooks, or for other users, never forks
their processes from one parent. The other processes of the same sweep on this machine (the sweep
worker's forks, a Dask worker) ask it for its servers over a socket in that folder
(``join_sweep``) instead of warming up their own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from handoff import forkserver, sandbox, worker_answers
from handoff.forkserver import ForkedProcess
from handoff.workdirs import keep_inside, private_dir

_numbers = itertools.count(1)


@dataclass(frozen=True)
class ServerKey:
    """One server per kind of sandbox: its kind (``checks`` or ``kernel``), what it reads outside
    the sweep's folder, what it hides, and for a kernel its policy and the notebook's imports."""

    kind: str
    readable: tuple[Path, ...]
    hidden: tuple[Path, ...]
    policy: sandbox.Policy = field(default_factory=sandbox.Policy)
    imports: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "readable": [str(p) for p in self.readable],
                "hidden": [str(p) for p in self.hidden],
                "policy": asdict(self.policy),
                "imports": list(self.imports),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServerKey:
        raw = json.loads(text)
        policy = raw["policy"]
        return cls(
            raw["kind"],
            tuple(map(Path, raw["readable"])),
            tuple(map(Path, raw["hidden"])),
            sandbox.Policy(policy["allow_network"], tuple(policy["env"]), sandbox.Limits(**policy["limits"])),
            tuple(raw["imports"]),
        )


class WarmServer:
    """The sandboxed server of ``key``'s kind, its home and every child's folder inside ``root``."""

    def __init__(self, root: Path, key: ServerKey) -> None:
        self.root = root
        name = f"{key.kind}-server-{next(_numbers)}"
        self._log = open(root / f"{name}.log", "ab")  # noqa: SIM115 -- the server's output; closed in close()
        self._socket = root / f"{name}.sock"  # in the owner-only folder: no other user can connect
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self._socket))
        listener.listen(64)  # a connection made while the server still warms up waits here
        worker_answers.provide(root)
        env = sandbox.environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, root, key.policy)
        fd = listener.fileno()
        if key.kind == "kernel":
            serve = [sys.executable, "-m", "handoff.kernel_server", str(fd), json.dumps(key.imports)]
        else:
            serve = [sys.executable, "-m", "handoff.checks.runner", "--serve", str(fd)]
        command = sandbox.command(serve, root, key.policy, readable=key.readable, hidden=key.hidden)
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
        """Where ``spawn`` connects to ask it for a child."""
        return self._socket

    def stop(self) -> None:
        """Tell the server to end (its children end with it); ``close`` waits for it."""
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()

    def close(self) -> None:
        """Stop the server and wait for it to end."""
        self.stop()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill_tree(self._process.pid)
            self._process.wait()
        self._log.close()


def spawn(server: Path, folder: Path, log: IO[bytes]) -> tuple[ForkedProcess, IO[bytes]]:
    """A check worker forked by the server at ``server`` for one build, and its stdin (where its
    requests go): its cwd and home ``folder``, its output to ``log``. Raises ``OSError`` when the
    server is gone."""
    read, write = os.pipe()
    stdin = os.fdopen(write, "wb")
    try:
        return forkserver.spawn(server, {"cwd": str(folder)}, [read, log.fileno()], stdin), stdin
    except OSError:
        stdin.close()
        raise
    finally:
        os.close(read)


_BROKER = "servers.sock"  # in the sweep's folder: where its other processes ask for a server
_lock = threading.Lock()
_starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-warm-server")
_servers: dict[ServerKey, WarmServer] = {}
_root: Path | None = None
_shared = False  # this process asks another one's broker for its servers (join_sweep)
_abandoned: set[Path] = set()  # servers that did not answer in time: this process starts its own


@contextlib.contextmanager
def serve_sweep(root: Path | None = None) -> Iterator[Path]:
    """In this process (a sweep worker): make every temp dir in one folder (``root``, a new one by
    default; yielded), fork each build's check worker and kernel from one warm server per kind of
    sandbox, and serve those servers to the sweep's other processes (``join_sweep``). Everything is
    stopped and removed on exit."""
    global _root
    root = root or private_dir("pool")
    broker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    broker.bind(str(root / _BROKER))
    broker.listen(64)
    answering = threading.Thread(target=_answer, args=(broker,), name="handoff-server-broker", daemon=True)
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
        for server in servers:  # all told first: they end at once
            server.stop()
        for server in servers:
            server.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def join_sweep(root: Path) -> Iterator[None]:
    """In another process of the same sweep on this machine (a fork of the sweep worker, a Dask
    worker): temp dirs in the sweep's folder ``root``, check workers and kernels forked from the
    servers of the process that serves it (``serve_sweep``), which owns, restarts and stops them."""
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


def start_early(root: Path, keys: Iterable[ServerKey]) -> None:
    """Start the servers of ``keys`` (``build.warm_server_keys``) now, from this thread (which must
    live as long as the sweep), before ``serve_sweep(root)``: they warm up in their own processes
    while this one does, instead of beside the first points' kernels."""
    with _lock:
        for key in keys:
            _servers[key] = WarmServer(root, key)


def key_for(
    root: Path,
    kind: str,
    readable: Iterable[Path],
    hidden: Iterable[Path],
    policy: sandbox.Policy | None = None,
    imports: Iterable[str] = (),
) -> ServerKey:
    """The key of the server of ``kind`` for processes that read ``readable`` (what is in the sweep's
    folder ``root`` needs no key) and must not see ``hidden``."""
    inside = root.resolve()
    outside = tuple(Path(p) for p in readable if not Path(p).resolve().is_relative_to(inside))
    return ServerKey(kind, outside, tuple(map(Path, hidden)), policy or sandbox.Policy(), tuple(imports))


def server_for(
    kind: str,
    writable: Iterable[Path],
    readable: Iterable[Path],
    hidden: Iterable[Path],
    policy: sandbox.Policy | None = None,
    imports: Iterable[str] = (),
) -> Path | None:
    """The address of the warm server of ``kind`` for a process that writes ``writable`` and reads
    ``readable``, hidden from ``hidden``: started on first use, and again if it died. ``None``
    outside ``serve_sweep``/``join_sweep``, when the process writes outside the sweep's folder, or
    when the serving process does not answer."""
    with _lock:
        root, shared = _root, _shared
    if root is None:
        return None
    if not all(Path(p).resolve().is_relative_to(root.resolve()) for p in writable):
        return None
    key = key_for(root, kind, readable, hidden, policy, imports)
    address = _ask(root / _BROKER, key) if shared else _server(key)
    return None if address in _abandoned else address


def abandon(address: Path) -> None:
    """The server at ``address`` did not start a process in time (its imports hang): this process
    starts its own from now on instead of waiting for it again."""
    with _lock:
        _abandoned.add(address)


def gone(address: Path) -> None:
    """The server at ``address`` refused a connection: it died, though its sandbox may not have
    exited yet. The serving process forgets it, so ``server_for`` starts a new one at once; any
    other process starts its own processes from now on (``abandon``)."""
    with _lock:
        closing = [_servers.pop(key) for key in [k for k, s in _servers.items() if s.address == address]]
        if not closing:
            _abandoned.add(address)
    for server in closing:
        server.close()


def _server(key: ServerKey) -> Path | None:
    with _lock:
        if _root is None:
            return None
        server = _servers.get(key)
        if server is None or not server.running:
            if server is not None:
                server.close()
            # on a thread that lives as long as this process: bubblewrap dies with the thread that started it
            server = _servers[key] = _starter.submit(WarmServer, _root, key).result()
        return server.address


def _answer(broker: socket.socket) -> None:
    """The serving process's side of ``join_sweep``: a key in, the address of its server out."""
    while True:
        try:
            connection, _ = broker.accept()
        except OSError:  # shut down: the sweep is over
            return
        with connection, contextlib.suppress(Exception):  # a bad request: the asker starts a fresh process
            address = _server(ServerKey.from_json(connection.makefile("rb").readline().decode()))
            connection.sendall(json.dumps(address and str(address)).encode() + b"\n")


def _ask(broker: Path, key: ServerKey) -> Path | None:
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(broker))
        connection.sendall(key.to_json().encode() + b"\n")
        address = json.loads(connection.makefile("rb").readline())
        return Path(address) if address else None
    return None
