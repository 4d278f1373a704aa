"""Team mode: one MLflow tracking server on PostgreSQL, with MLflow's own basic-auth app.

handoff adds no server and no user database: ``init`` makes MLflow's tracking, registry and auth
tables on one PostgreSQL database, the ``admin`` account and three MLflow roles; ``start`` runs a
real ``mlflow server --app-name basic-auth`` with proxied artifacts; users are MLflow users given
one of the roles. A role is a set of MLflow role permissions on every experiment and registered
model (``*``), so a model made later is covered too (``docs/roles.md``):

- viewer: READ everywhere.
- builder: READ everywhere, EDIT on the ``handoff`` build experiment and on every registered model
  (runs and versions can be recorded).
- releaser: EDIT on every experiment (the ``handoff-audit`` history included), MANAGE on every
  registered model: may also promote and roll back. A promotion writes its audit entry before it
  moves the alias, so a user who may not write the audit history moves nothing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handoff.credentials import Credentials, acting_as
from handoff.errors import OptionError, PermissionDeniedError, StoreError
from handoff.store import AUDIT_EXPERIMENT, EXPERIMENT, ROLES

ADMIN = "admin"
WORKSPACE = "default"  # MLflow's workspace when workspaces are off: where its roles live
PROXIED_ARTIFACTS = "mlflow-artifacts:/"
ROLE_HELP: dict[str, str] = {
    "viewer": "may list, show, compare and export",
    "builder": "may also build and record versions",
    "releaser": "may also promote and roll back",
}


def _grants(role: str, builds_experiment: str) -> list[tuple[str, str, str]]:
    """(resource type, pattern, MLflow permission) of each role."""
    return {
        "viewer": [("experiment", "*", "READ"), ("registered_model", "*", "READ")],
        "builder": [
            ("experiment", "*", "READ"),
            ("experiment", builds_experiment, "EDIT"),
            ("registered_model", "*", "EDIT"),
        ],
        "releaser": [("experiment", "*", "EDIT"), ("registered_model", "*", "MANAGE")],
    }[role]


def check_db_uri(db: str) -> str:
    if urlsplit(db).scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise OptionError(f"--db takes a PostgreSQL URI (postgresql://USER@HOST:PORT/DB), got {db!r}")
    return db.replace("postgres://", "postgresql://", 1)


def _artifacts_destination(artifacts: str) -> str:
    if "://" in artifacts:
        return artifacts
    path = Path(artifacts).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def init(db: str, artifacts: str, *, admin_password: str | None = None) -> str | None:
    """Create the tables, the ``admin`` account and the roles (idempotent).

    Returns the admin password when this call generated it (show it once), else ``None``: the
    password comes from ``admin_password`` (``HANDOFF_ADMIN_PASSWORD``), or the admin existed.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore as AuthStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    db = check_db_uri(db)
    _artifacts_destination(artifacts)
    try:
        tracking = TrackingStore(db, PROXIED_ARTIFACTS)  # makes (or migrates) tracking + registry tables
        experiments = {}
        for name in (EXPERIMENT, AUDIT_EXPERIMENT):
            found = tracking.get_experiment_by_name(name)
            experiments[name] = found.experiment_id if found else tracking.create_experiment(name)
        auth = AuthStore()
        auth.init_db(db)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise StoreError(f"cannot set up the server's database {safe_uri(db)}: {type(exc).__name__}: {first}") from exc
    generated = None
    if not auth.has_user(ADMIN):
        password = admin_password or secrets.token_urlsafe(18)
        generated = None if admin_password else password
        try:
            auth.create_user(ADMIN, password, is_admin=True)
        except MlflowException as exc:  # MLflow's password rules (e.g. at least 12 characters)
            raise OptionError(f"HANDOFF_ADMIN_PASSWORD: {exc.message}") from None
    existing = {r.name: r for r in auth.list_roles([WORKSPACE])}
    for role, description in ROLE_HELP.items():
        if role in existing:
            continue
        made = auth.create_role(role, WORKSPACE, description=f"handoff {role}: {description}")
        for resource_type, pattern, permission in _grants(role, experiments[EXPERIMENT]):
            auth.add_role_permission(made.id, resource_type, pattern, permission)
    return generated


def safe_uri(db: str) -> str:
    """The URI without its password (for messages)."""
    parts = urlsplit(db)
    if parts.password is None:
        return db
    return db.replace(f":{parts.password}@", ":***@", 1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_command(
    db: str, artifacts: str, *, host: str = "127.0.0.1", port: int = 5000, auth: bool = True, workers: int = 2
) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and environment ``start`` runs."""
    db = check_db_uri(db)
    if not auth and not is_loopback(host):
        raise OptionError(f"refusing to serve {host} without login: --no-auth only binds a loopback address")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", db,
        "--registry-store-uri", db,
        "--serve-artifacts", "--artifacts-destination", _artifacts_destination(artifacts),
        "--default-artifact-root", PROXIED_ARTIFACTS,
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = dict(os.environ)
    if auth:
        cmd += ["--app-name", "basic-auth"]
        env["MLFLOW_AUTH_CONFIG_PATH"] = _auth_config(db)
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))  # CSRF key of the auth app's forms
    if not is_loopback(host):
        cmd += ["--allowed-hosts", "*"]
    return cmd, env


def _auth_config(db: str) -> str:
    """MLflow's basic-auth settings: users and roles in the same PostgreSQL database; no access without a role."""
    folder = Path(tempfile.mkdtemp(prefix="handoff-server-"))
    path = folder / "basic_auth.ini"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the DB URI may hold a password
    with os.fdopen(fd, "w") as f:
        f.write(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {db.replace('%', '%%')}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # a password check costs ~0.4 s of CPU (a deliberately slow hash); a checked login is
            # trusted for 30 s per worker (a changed password or deleted user applies within 30 s)
            "auth_cache_ttl_seconds = 30\n"
        )
    return str(path)


def start(db: str, artifacts: str, *, host: str = "127.0.0.1", port: int = 5000, auth: bool = True) -> int:
    """Run the server until SIGTERM or Ctrl-C (forwarded to its whole process group); its exit code."""
    if auth:
        _require_initialized(db)
    cmd, env = server_command(db, artifacts, host=host, port=port, auth=auth)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what the server's workers left behind
    except ProcessLookupError:
        pass
    config = env.get("MLFLOW_AUTH_CONFIG_PATH")
    if config:
        Path(config).unlink(missing_ok=True)
        Path(config).parent.rmdir()
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def _require_initialized(db: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(check_db_uri(db))
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise StoreError(f"cannot reach the server's database {safe_uri(db)}: {first}") from exc
    finally:
        engine.dispose()
    if not {"users", "roles", "experiments"} <= tables:
        raise StoreError(f"the database {safe_uri(db)} is not set up: run `handoff server init --db ...` first")


# -- users (through the running server, as its admin) ---------------------------------------


def _call(store: str, admin: Credentials, endpoint: str, method: str, **kwargs: Any) -> Mapping[str, Any]:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    from handoff.store import translate_server_error

    with acting_as(admin), _admin_only(store, admin), translate_server_error(store):
        response = http_request(get_default_host_creds(store), endpoint, method, max_retries=0, **kwargs)
        if response.status_code >= 400:
            from mlflow.exceptions import MlflowException
            from mlflow.protos import databricks_pb2

            code = _error_codes().get(response.status_code, databricks_pb2.INTERNAL_ERROR)
            raise MlflowException(f"{response.text[:300]}", error_code=code)
        result: Mapping[str, Any] = response.json() if response.content else {}
        return result


@contextmanager
def _admin_only(store: str, admin: Credentials) -> Iterator[None]:
    try:
        yield
    except PermissionDeniedError:
        raise PermissionDeniedError(
            f"{admin.username!r} is not an admin of {store}: managing users needs the admin account"
        ) from None


def _error_codes() -> dict[int, int]:
    from mlflow.protos import databricks_pb2 as pb

    return {
        400: pb.INVALID_PARAMETER_VALUE,
        401: pb.UNAUTHENTICATED,
        403: pb.PERMISSION_DENIED,
        404: pb.RESOURCE_DOES_NOT_EXIST,
    }


def _role_ids(store: str, admin: Credentials) -> dict[str, int]:
    roles = _call(store, admin, "/api/3.0/mlflow/roles/list", "GET", params={"workspace": WORKSPACE})
    return {r["name"]: int(r["id"]) for r in roles.get("roles", []) if r["name"] in ROLES}


def _json_message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text


def add_user(store: str, name: str, role: str, password: str, *, admin: Credentials) -> None:
    """Create an MLflow user on the server and give it a handoff role (only one role at a time)."""
    from mlflow.exceptions import MlflowException

    if role not in ROLES:
        raise OptionError(f"--role takes one of {', '.join(ROLES)}, got {role!r}")
    ids = _role_ids(store, admin)
    if role not in ids:
        raise StoreError(f"the server at {store} has no handoff roles: run `handoff server init` against its database")
    try:
        _call(store, admin, "/api/2.0/mlflow/users/create", "POST", json={"username": name, "password": password})
    except MlflowException as exc:  # MLflow's rules: a taken name, a password under 12 characters
        raise OptionError(f"cannot create user {name!r}: {_json_message(exc.message)}") from None
    _call(store, admin, "/api/3.0/mlflow/roles/assign", "POST", json={"username": name, "role_id": ids[role]})


def list_users(store: str, *, admin: Credentials) -> list[dict[str, Any]]:
    """Every user of the server with its handoff role (``admin`` for admins, ``none`` without one)."""
    users = _call(store, admin, "/api/2.0/mlflow/users/list", "GET").get("users", [])
    result = []
    for user in users:
        name = user["username"]
        roles = _call(store, admin, "/api/3.0/mlflow/users/roles/list", "GET", params={"username": name})
        names = [r["name"] for r in roles.get("roles", []) if r["name"] in ROLES]
        role = "admin" if user.get("is_admin") else (names[0] if names else "none")
        result.append({"name": name, "role": role})
    return sorted(result, key=lambda u: u["name"])
