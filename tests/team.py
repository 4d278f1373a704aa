"""Real team-mode servers for the tests: a PostgreSQL cluster and `handoff server` on 127.0.0.1.

PostgreSQL refuses to run as root, and CI runs as root: the cluster is then made and run as
Debian's ``postgres`` account (``runuser``). Tests that use these are marked
``xdist_group("team")`` so one pytest worker runs them all against one cluster and one server.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from handoff.credentials import Credentials
from handoff.server import add_user
from helpers import ROOT, free_port

HANDOFF = [sys.executable, "-m", "handoff.cli"]
ADMIN_PASSWORD = "admin-password-for-tests"
USERS = {  # name: (role, password); two builders for the concurrency test
    "vera": ("viewer", "vera-password-1234"),
    "bob": ("builder", "bob-password-12345"),
    "bea": ("builder", "bea-password-12345"),
    "rita": ("releaser", "rita-password-1234"),
}
LOGS = ROOT / "test-artifacts" / "team"
SERVICES: set[int] = set()  # pids of the servers started here (not a test's leftovers: test_build_speed)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """Root runs PostgreSQL's programs as the ``postgres`` account; anyone else as themselves."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """A running cluster on 127.0.0.1 with trust auth for its superuser ``handoff`` (tests only)."""

    port: int
    data: Path

    def uri(self, db: str) -> str:
        return f"postgresql://handoff@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "handoff", "-d", "postgres",
             "-qc", f"CREATE DATABASE {name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.uri(name)


@contextmanager
def postgres() -> Iterator[Postgres]:
    """Start a throwaway cluster in a new folder of /tmp (made and run by ``postgres`` when we are root;
    pytest's own temporary folders are private to us)."""
    base = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "handoff", "--no-sync"]),
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield Postgres(port, data)
    finally:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class TeamServer:
    """A `handoff server start` process with the users of ``USERS``; ``env(user)`` runs a CLI as one."""

    db: str
    artifacts: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()  # more `handoff server start` options (e.g. --no-auth)
    users: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(USERS))

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, user: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDOFF_USER", "HANDOFF_PASSWORD", "MLFLOW_"))}
        env["HANDOFF_STORE"] = self.uri
        if user == "admin":
            env.update(HANDOFF_USER="admin", HANDOFF_PASSWORD=ADMIN_PASSWORD)
        elif user is not None:
            env.update(HANDOFF_USER=user, HANDOFF_PASSWORD=self.users[user][1])
        return env | extra

    def handoff(self, *args: str, user: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the ``handoff`` CLI against this server as ``user``."""
        return subprocess.run([*HANDOFF, *args], env=self.env(user), capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        cmd = [*HANDOFF, "server", "start", "--db", self.db, "--artifacts", str(self.artifacts)]
        cmd += ["--port", str(self.port), *self.options]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        SERVICES.add(self.proc.pid)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"handoff server start exited with {self.proc.returncode}: see {self.log}")
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).read()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"the team server did not answer within 90 s: see {self.log}")

    def stop(self) -> None:
        """SIGTERM, as an operator's Ctrl-C or systemd would; the server stops its workers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None


@contextmanager
def team_server(cluster: Postgres, db_name: str, base: Path, *, users: bool = True) -> Iterator[TeamServer]:
    """`handoff server init` + `start` on a new database, and (``users``) the users of ``USERS``."""
    db = cluster.create_db(db_name)
    server = TeamServer(db, base / f"{db_name}-artifacts", free_port(), LOGS / f"{db_name}.log")
    init = subprocess.run(
        [*HANDOFF, "server", "init", "--db", db, "--artifacts", str(server.artifacts)],
        env=server.env(HANDOFF_ADMIN_PASSWORD=ADMIN_PASSWORD), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        raise RuntimeError(f"handoff server init failed: {init.stderr}")
    server.start()
    try:
        admin = Credentials("admin", ADMIN_PASSWORD)
        for number, (name, (role, password)) in enumerate(server.users.items() if users else ()):
            if number == 0:  # the CLI's path once; the others through the API, without a CLI's start-up
                env = server.env("admin", HANDOFF_NEW_PASSWORD=password)
                add = [*HANDOFF, "server", "add-user", name, "--role", role]
                subprocess.run(add, env=env, check=True, capture_output=True)
            else:
                add_user(server.uri, name, role, password, admin=admin)
        yield server
    finally:
        server.stop()
