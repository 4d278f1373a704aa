"""A cold ``handoff`` read command imports no MLflow (``--help`` not even the build machinery or
pydantic) and prints exactly what it printed when every read went through MLflow's client."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_store_reads import varied_store

# one worker builds the module's shared fixture (not one per xdist worker)
pytestmark = pytest.mark.xdist_group("cli_cold")

#: Runs the CLI like the console script, then fails (exit 99) if a module it must not need was imported.
COLD = """
import sys
forbidden = sys.argv[1].split(",")
from handoff.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
loaded = [m for m in forbidden if m in sys.modules]
if loaded:
    sys.stderr.write(f"imported: {loaded}\\n")
    sys.exit(99)
sys.exit(code)
"""
#: The same command with every read through MLflow's client: what the CLI printed before.
THROUGH_CLIENT = """
import sys
import handoff.store
handoff.store.Store.__init__.__kwdefaults__["direct_reads"] = False
from handoff.cli import main
sys.exit(main(sys.argv[1:]))
"""
NO_MLFLOW = ("mlflow", "sqlalchemy", "pandas")


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=240, cwd=cwd)


def _same_as_through_the_client(home: Path, tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    argv = [*command, "--store", str(home)]
    cold = _run(COLD, ",".join(NO_MLFLOW), *argv, cwd=tmp_path)
    assert cold.returncode != 99, cold.stderr[-2000:]
    before = _run(THROUGH_CLIENT, *argv, cwd=tmp_path)

    def steady(text: str) -> str:  # an export says how long it took
        return re.sub(r"\d+\.\d\ds\)", "-s)", text)

    assert (cold.returncode, steady(cold.stdout), cold.stderr) == (
        before.returncode,
        steady(before.stdout),
        before.stderr,
    )
    return cold


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return varied_store(tmp_path_factory.mktemp("cold"), tmp_path_factory.getbasetemp())


@pytest.mark.parametrize(
    "command, code",
    [
        ("list", 0),
        ("versions --archived", 0),
        ("list iris --json", 0),
        ("list --status failed --sort version --desc", 0),
        ("show iris 1", 0),
        ("show iris 2 --json", 0),
        ("history iris", 0),
        ("history iris --json", 0),
        ("compare iris 1 2", 0),
        ("compare iris 1 4 5 --json", 0),
        ("show iris 9", 2),
        ("show nope 1", 2),
        ("history nope", 2),
        ("show other 2", 3),  # tampered: refused
    ],
)
def test_read_commands_import_no_mlflow_and_print_what_they_did(
    home: Path, tmp_path: Path, command: str, code: int
) -> None:
    done = _same_as_through_the_client(home, tmp_path, *command.split())
    assert done.returncode == code and (done.stdout if code == 0 else done.stderr.startswith("handoff: error: "))


def test_export_of_a_stored_package_imports_no_mlflow(home: Path, tmp_path: Path) -> None:
    done = _same_as_through_the_client(home, tmp_path, "export", "iris", "1", "-o", str(tmp_path / "pkg.zip"))
    assert done.returncode == 0 and (tmp_path / "pkg.zip").is_file()
    assert done.stdout.splitlines()[0] == str(tmp_path / "pkg.zip")


def test_help_imports_neither_mlflow_nor_the_build_machinery(tmp_path: Path) -> None:
    heavy = ",".join((*NO_MLFLOW, "pydantic", "handoff.build", "handoff.record", "papermill", "nbformat"))
    for argv in (["--help"], ["list", "--help"], ["show", "--help"]):
        done = _run(COLD, heavy, *argv, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "usage: handoff" in done.stdout
    build = _run(COLD, "mlflow", "build", "--help", cwd=tmp_path)  # build's own options come with its defaults
    assert build.returncode == 0 and "whole-run limit (default" in build.stdout


def test_the_console_script_exits_at_once_with_everything_printed(tmp_path: Path) -> None:
    """``handoff`` (``cli.run``) skips the interpreter's teardown: its output must still arrive whole
    through a pipe, and its exit code must be ``main``'s."""
    script = Path(sys.executable).with_name("handoff")
    env = {"HANDOFF_HOME": str(tmp_path / "home"), "PATH": f"{script.parent}:/usr/bin:/bin"}
    done = subprocess.run([str(script), "doctor"], capture_output=True, text=True, env=env)
    reference = subprocess.run(
        [sys.executable, "-c", "import sys; from handoff.cli import main; sys.exit(main(['doctor']))"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, reference.stdout) and "sandbox:" in done.stdout
    missing = subprocess.run([str(script), "show", "nosuch", "1"], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("handoff: error: no model named 'nosuch'")
    closed = subprocess.run(f"{script} doctor | head -c 1", shell=True, capture_output=True, text=True, env=env)
    assert closed.returncode == 0 and "Traceback" not in closed.stderr and "Exception" not in closed.stderr
