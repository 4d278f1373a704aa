"""A warm server that forks a child per request: both ends of the sockets a sweep's warm servers use
(the check server, ``handoff.checks.runner``; the kernel server, ``handoff.kernel_server``).

A server imports what its children need once, then forks one child per connection on its listening
socket. The connection brings the child's request (JSON) and file descriptors; the child says it
started (the kernel tells the caller its pid, as the caller sees it, even across the sandbox's PID
namespace), and the server writes the child's exit code back when it ends, kills its process group
when the connection says ``kill``, and ends, killing its children, when its own stdin closes (the
process that started it is gone)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from handoff.forks import fork

_STARTED = b"started\n"
_UCRED = struct.Struct("3i")  # pid, uid, gid


class ForkedProcess:
    """A child the server forked, as its caller sees it: ``poll`` and ``wait`` like a
    ``subprocess.Popen``, ``kill`` (its process group, by the server) and ``pid``, as seen here.

    The server says two things on the connection: the child's start (sent by the child: the kernel
    adds its pid, translated to this process's namespace), then its exit code."""

    def __init__(self, connection: socket.socket, stdin: IO[bytes] | None = None) -> None:
        self._connection = connection
        self.stdin = stdin  # the child's stdin, when the caller gave it one
        self.stdout = self.stderr = None  # as a ``Popen`` whose output goes elsewhere
        self._pid: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.started()

    def started(self, timeout: float | None = None) -> int:
        """The child's pid here, once it started (a server still warming up forks it after);
        ``ProcessLookupError`` if it never started, ``TimeoutError`` if not within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pid is None and self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self._connection.close()  # the server's child, should it come, finds no one
                raise TimeoutError(f"the server did not start a process in {timeout:g} s")
            if select.select([self._connection], [], [], left)[0]:
                self._receive(block=True)
        if self._pid is None:
            raise ProcessLookupError("the forked process never started")
        return self._pid

    def _receive(self, *, block: bool) -> None:
        if not block and not select.select([self._connection], [], [], 0)[0]:
            return
        try:
            said, ancillary, _, _ = self._connection.recvmsg(64, socket.CMSG_SPACE(_UCRED.size))
        except OSError:
            said, ancillary = b"", []
        if said.startswith(_STARTED) and self._pid is None:
            self._pid = next(
                (
                    _UCRED.unpack(data[: _UCRED.size])[0]
                    for level, kind, data in ancillary
                    if kind == socket.SCM_CREDENTIALS
                ),
                -1,
            )
            said = said[len(_STARTED) :]
            if not said:
                return
        try:
            self.returncode = int(said)
        except ValueError:  # no exit code: the server is gone, and its sandbox took its children with it
            self.returncode = -signal.SIGKILL
        self._connection.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._receive(block=False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("the forked process", timeout or 0.0)
            select.select([self._connection], [], [], left)
        return code

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._connection.sendall(b"kill\n")


def spawn(server: Path, request: dict[str, Any], fds: Sequence[int], stdin: IO[bytes] | None = None) -> ForkedProcess:
    """A child forked by the server at ``server`` for ``request``, handed ``fds`` (a connection made
    while the server still warms up waits for it; ``stdin``: the caller's end of the child's
    stdin). Raises ``OSError`` when the server is gone."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the child's pid, as seen here
        connection.connect(str(server))
        socket.send_fds(connection, [json.dumps(request).encode()], list(fds))
    except OSError:
        connection.close()
        raise
    return ForkedProcess(connection, stdin)


def serve(listener_fd: int, fds: int, become: Callable[[dict[str, Any], list[int]], int]) -> int:
    """The server's loop on the listening socket ``listener_fd``: for each connection that brings a
    request and ``fds`` file descriptors, fork a child that runs ``become(request, fds)`` in a
    process group of its own and exits with what it returns (see the module docstring)."""
    listener = socket.socket(fileno=listener_fd)
    children: dict[int, socket.socket] = {}
    ended, wakeup = os.pipe()  # a child's end (SIGCHLD) wakes the loop: its exit code goes back at once
    os.set_blocking(wakeup, False)
    signal.set_wakeup_fd(wakeup)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ, "connection")
    events.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
    events.register(ended, selectors.EVENT_READ, "ended")
    try:
        while True:
            for key, _ in events.select():
                if key.data == "connection":
                    _fork_child(listener, events, children, (ended, wakeup), fds, become)
                elif key.data == "parent":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return 0
                elif key.data == "ended":
                    os.read(ended, 4096)
                else:
                    connection = key.fileobj
                    assert isinstance(connection, socket.socket)
                    with contextlib.suppress(OSError):
                        said = connection.recv(64)
                        if said.startswith(b"kill"):
                            os.killpg(key.data, signal.SIGKILL)
                        elif not said:  # the caller went away; its child ends as its inputs end
                            events.unregister(connection)
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                connection = children.pop(pid)
                with contextlib.suppress(KeyError, ValueError):
                    events.unregister(connection)
                with contextlib.suppress(OSError):
                    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                connection.close()
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def settle(folder: str, home: str, stdin_fd: int, log_fd: int) -> None:
    """In a forked child: take the caller's stdin and log (closing the handed descriptors), and its
    ``folder`` as cwd, home and first import path entry, where the server had ``home`` (the folder
    ``python -m`` put there), as a fresh process started in ``folder`` has them."""
    sys.path[:] = [folder if entry == home else entry for entry in sys.path]
    os.dup2(stdin_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(stdin_fd)
    os.close(log_fd)
    os.chdir(folder)
    os.environ["HOME"] = folder


def _fork_child(
    listener: socket.socket,
    events: selectors.BaseSelector,
    children: dict[int, socket.socket],
    pipe: tuple[int, int],
    fds: int,
    become: Callable[[dict[str, Any], list[int]], int],
) -> None:
    """Accept one connection and fork its child (``pipe``: the server's own, closed in the child)."""
    connection, _ = listener.accept()
    message, received, _, _ = socket.recv_fds(connection, 65536, fds)
    if len(received) != fds:  # not a caller's request: nothing to start
        for fd in received:
            os.close(fd)
        connection.close()
        return

    def child() -> int:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setpgid(0, 0)  # a kill takes what it starts too
        connection.sendall(_STARTED)  # the kernel adds this process's pid, as the caller sees it
        for fd in pipe:
            os.close(fd)
        listener.close()
        events.close()
        for other in (connection, *children.values()):
            other.close()
        if "numpy" in sys.modules:  # a fresh process draws its global seed anew; a fork would share one
            sys.modules["numpy"].random.seed()
        return become(json.loads(message), received)

    pid = fork(child, failed=70)
    with contextlib.suppress(OSError):  # as the child does: a kill that comes at once finds its group
        os.setpgid(pid, pid)
    for fd in received:
        os.close(fd)
    children[pid] = connection
    events.register(connection, selectors.EVENT_READ, pid)
