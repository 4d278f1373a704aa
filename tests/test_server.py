"""`handoff server`: init, start, users and roles against a real PostgreSQL and `mlflow server`."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from helpers import free_port
from team import ADMIN_PASSWORD, HANDOFF, Postgres, TeamServer

pytestmark = pytest.mark.xdist_group("team")


def _server_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HANDOFF, "server", *args], env=env, capture_output=True, text=True, timeout=180)


def test_users_have_the_roles_they_were_given(team: TeamServer) -> None:
    roles = {u["name"]: u["role"] for u in json.loads(team.handoff("server", "users", "--json", user="admin").stdout)}
    assert roles == {"admin": "admin", "vera": "viewer", "bob": "builder", "bea": "builder", "rita": "releaser"}


def test_user_management_errors_are_clear(team: TeamServer) -> None:
    taken = subprocess.run(
        [*HANDOFF, "server", "add-user", "vera", "--role", "builder"],
        env=team.env("admin", HANDOFF_NEW_PASSWORD="another-long-password"), capture_output=True, text=True,
    )  # fmt: skip
    assert taken.returncode == 2 and "cannot create user 'vera'" in taken.stderr, taken.stderr
    short = subprocess.run(
        [*HANDOFF, "server", "add-user", "newbie", "--role", "viewer"],
        env=team.env("admin", HANDOFF_NEW_PASSWORD="short"), capture_output=True, text=True,
    )  # fmt: skip
    assert short.returncode == 2 and "at least 12 characters" in short.stderr, short.stderr
    for args in (("users",), ("add-user", "sneaky", "--role", "releaser")):
        env = team.env("rita", HANDOFF_NEW_PASSWORD="sneaky-password-123")
        refused = subprocess.run([*HANDOFF, "server", *args], env=env, capture_output=True, text=True)
        assert refused.returncode == 2, refused.stderr
        assert "'rita' is not an admin" in refused.stderr and "Traceback" not in refused.stderr
    names = {u["name"] for u in json.loads(team.handoff("server", "users", "--json", user="admin").stdout)}
    assert "newbie" not in names and "sneaky" not in names


def test_init_generates_a_password_once_and_is_idempotent(pg_cluster: Postgres, tmp_path: Path) -> None:
    db = pg_cluster.create_db("initonce")
    env = {
        k: v for k, v in TeamServer(db, tmp_path, 0, tmp_path / "log").env().items() if k != "HANDOFF_ADMIN_PASSWORD"
    }
    first = _server_cli("init", "--db", db, "--artifacts", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    found = re.search(r"admin password \(shown once, keep it\): (\S+)", first.stdout)
    assert found is not None, first.stdout
    password = found.group(1)
    assert len(password) >= 16 and password != "password1234"  # never MLflow's old default
    second = _server_cli("init", "--db", db, "--artifacts", str(tmp_path / "a"), env=env)
    assert second.returncode == 0 and "admin password" not in second.stdout, second.stdout
    short = _server_cli(
        "init", "--db", pg_cluster.create_db("initshort"), "--artifacts", str(tmp_path / "b"),
        env=env | {"HANDOFF_ADMIN_PASSWORD": "short"},
    )  # fmt: skip
    assert short.returncode == 2 and "HANDOFF_ADMIN_PASSWORD" in short.stderr, short.stderr

    server = TeamServer(db, tmp_path / "a", free_port(), tmp_path / "server.log")
    server.start()
    try:
        env = server.env() | {"HANDOFF_USER": "admin", "HANDOFF_PASSWORD": password}
        listed = subprocess.run([*HANDOFF, "server", "users", "--json"], env=env, capture_output=True, text=True)
        assert json.loads(listed.stdout) == [{"name": "admin", "role": "admin"}], listed.stderr
        roles = subprocess.run(  # each role once, after two inits
            ["curl", "-s", "-u", f"admin:{password}", f"{server.uri}/api/3.0/mlflow/roles/list?workspace=default"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert sorted(r["name"] for r in json.loads(roles.stdout)["roles"]) == ["builder", "releaser", "viewer"]
    finally:
        server.stop()


def test_start_refuses_what_it_cannot_serve_safely(pg_cluster: Postgres, tmp_path: Path) -> None:
    env = TeamServer("", tmp_path, 0, tmp_path / "log").env()
    db = pg_cluster.create_db("notinit")
    open_to_all = _server_cli(
        "start", "--db", db, "--artifacts", str(tmp_path), "--no-auth", "--host", "0.0.0.0", env=env
    )
    assert open_to_all.returncode == 2 and "without login" in open_to_all.stderr, open_to_all.stderr
    uninitialized = _server_cli("start", "--db", db, "--artifacts", str(tmp_path), "--port", str(free_port()), env=env)
    assert uninitialized.returncode == 3 and "handoff server init" in uninitialized.stderr, uninitialized.stderr
    not_postgres = _server_cli("init", "--db", "sqlite:///x.db", "--artifacts", str(tmp_path), env=env)
    assert not_postgres.returncode == 2 and "PostgreSQL" in not_postgres.stderr


def test_sigterm_stops_the_server_and_everything_it_started(pg_cluster: Postgres, tmp_path: Path) -> None:
    """A loopback server without logins (reads need no credentials); SIGTERM leaves no process behind."""
    db = pg_cluster.create_db("sigterm")
    env = TeamServer(db, tmp_path, 0, tmp_path / "log").env(HANDOFF_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert _server_cli("init", "--db", db, "--artifacts", str(tmp_path / "a"), env=env).returncode == 0
    server = TeamServer(db, tmp_path / "a", free_port(), tmp_path / "server.log", options=("--no-auth",))
    server.start()
    assert server.proc is not None
    proc = server.proc
    listed = subprocess.run([*HANDOFF, "list", "--store", server.uri], env=server.env(), capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr  # no credentials needed without logins
    family = psutil.Process(proc.pid).children(recursive=True)
    assert family, "the server runs in child processes"
    server.stop()
    assert proc.returncode == 0
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    with socket.socket() as sock:
        # SO_REUSEADDR lets the bind ignore the closed connections' TIME_WAIT entries but
        # still fails while any process listens on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))  # nothing listens on the port any more
        sock.listen()
