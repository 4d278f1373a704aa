"""Every command's exit codes, on a real store (README "Exit codes"; ``handoff.errors.EXIT_*``).

0 ok; 1 the build or a check failed, verify / verify-store found a mismatch; 2 bad input or
refused; 3 the store cannot be opened or a version read from it is corrupt; 130 interrupted.
Each failing call also checks *why* it failed, so a typo that makes a usage error (2) cannot pass
for the refusal under test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

import handoff
from handoff import cli
from handoff.errors import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_STORE
from handoff.store import Store
from helpers import notebook

# one worker builds the module's shared fixture (not one per xdist worker)
pytestmark = pytest.mark.xdist_group("exit_codes")

SCORED = (
    "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "accuracy = float(score)"
)
TAMPERED = "version 1 of m was modified after it was recorded"
CANNOT_OPEN = "cannot open the store at"


@dataclass(frozen=True)
class Broken:
    """Stores that cannot be opened (no builds needed)."""

    folder: str  # a file where a store folder should be
    uri: str  # an SQLite database under that file


@dataclass(frozen=True)
class Shared:
    """A store with m v1 (passed, accuracy 0.8), v2 (failed its checklist) and v3 (passed, 0.9), each built
    by the CLI; ``build_codes`` is what those builds exited with."""

    store: Store
    home: str
    notebook: Path
    build_codes: tuple[int, ...]
    tmp: Path


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    path = tmp_path_factory.mktemp("exit-codes-broken") / "not-a-folder"
    path.write_text("")
    return Broken(str(path), f"sqlite:///{path}/mlflow.db")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, _store_template: Path) -> Shared:
    tmp = tmp_path_factory.mktemp("exit-codes")
    home = tmp / "store"
    shutil.copytree(_store_template, home)
    path = tmp / "m.ipynb"
    nbformat.write(notebook([("parameters", "score = 0.8"), SCORED]), path)
    codes = []
    for score, checks in (("0.8", []), ("0.5", ["--threshold", "accuracy>=0.7"]), ("0.9", [])):
        codes.append(
            cli.main(
                [
                    "build",
                    str(path),
                    "--name",
                    "m",
                    "--store",
                    str(home),
                    "-p",
                    "score",
                    score,
                    "--timeout",
                    "120",
                    "--cell-timeout",
                    "90",
                    "--json",
                    *checks,
                ]
            )
        )
    store = Store(home)
    assert [v.status for v in store.list_versions("m")] == ["passed", "failed", "passed"], codes
    return Shared(store, str(home), path, tuple(codes), tmp)


@contextmanager
def tampered(shared: Shared) -> Iterator[None]:
    """Version 1's model file changed on disk for the duration (restored after: the store is shared)."""
    record = shared.store.get_version("m", 1)
    assert record.run_id is not None
    local = shared.store.local_artifacts(record.run_id)
    assert local is not None
    model_file = next((local / "model").glob("model.*"))
    original = model_file.read_bytes()
    model_file.write_bytes(b"not the model that was recorded")
    try:
        yield
    finally:
        model_file.write_bytes(original)


@pytest.fixture
def expect(capsys: pytest.CaptureFixture) -> Callable[..., str]:
    """Run the CLI in-process; assert its exit code and, for a failure, what stderr says. Returns stdout."""

    def run(code: int, *argv: str, says: str = "") -> str:
        capsys.readouterr()
        try:
            got = cli.main(list(argv))
        except SystemExit as exc:  # argparse: --help, usage errors
            got = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert got == code, (argv, got, err[-2000:])
        assert says in err, (argv, err[-2000:])
        if code in (EXIT_INPUT, EXIT_STORE) and "usage:" not in err:  # one clear line (after build progress)
            assert err.strip().splitlines()[-1].startswith("handoff: error: "), err
        return out

    return run


def test_the_table() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STORE, EXIT_INTERRUPTED) == (0, 1, 2, 3, 130)
    assert handoff.InputError.exit_code == handoff.VersionNotFoundError.exit_code == EXIT_INPUT
    assert handoff.PromotionRefused.exit_code == EXIT_INPUT
    assert handoff.StoreError.exit_code == handoff.TamperedError.exit_code == EXIT_STORE
    assert handoff.BuildFailure.exit_code == EXIT_FAILED


def test_build(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    assert shared.build_codes == (EXIT_OK, EXIT_FAILED, EXIT_OK)  # passed; failed its checklist; passed
    good, home = str(shared.notebook), shared.home
    expect(EXIT_INPUT, "build", good, "--store", home, "-p", "nope", "1", says="unknown parameter nope")
    expect(EXIT_INPUT, "build", good, "--store", home, "--timeout", "-1", says="timeout must be a positive number")
    expect(EXIT_INPUT, "build", str(shared.tmp / "missing.ipynb"), "--store", home, says="cannot read notebook")
    expect(EXIT_INPUT, "build", says="the following arguments are required: notebook")
    expect(EXIT_STORE, "build", good, "--store", broken.folder, says=CANNOT_OPEN)
    expect(EXIT_STORE, "build", good, "--store", broken.uri, says=CANNOT_OPEN)


def test_list(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    assert "m  " in expect(EXIT_OK, "list", "--store", shared.home)
    expect(EXIT_OK, "list", "m", "--store", shared.home, "--json")
    expect(EXIT_INPUT, "list", "nope", "--store", shared.home, says="no model named 'nope'")
    expect(EXIT_INPUT, "list", "--bogus", says="unrecognized arguments: --bogus")
    expect(EXIT_STORE, "list", "--store", broken.folder, says=CANNOT_OPEN)
    expect(EXIT_STORE, "list", "--store", broken.uri, says=CANNOT_OPEN)
    garbage = shared.tmp / "garbage"
    garbage.mkdir(exist_ok=True)
    (garbage / "mlflow.db").write_bytes(b"this is not an SQLite database" * 100)
    expect(EXIT_STORE, "list", "--store", str(garbage), says="file is not a database")


def test_show(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    expect(EXIT_OK, "show", "m", "1", "--store", shared.home)
    expect(EXIT_INPUT, "show", "m", "9", "--store", shared.home, says="model 'm' has no version 9 (latest is 3)")
    expect(EXIT_INPUT, "show", "m", "x", "--store", shared.home, says="version must be a number")
    expect(EXIT_STORE, "show", "m", "1", "--store", broken.folder, says=CANNOT_OPEN)
    with tampered(shared):
        expect(EXIT_STORE, "show", "m", "1", "--store", shared.home, says=TAMPERED)


def test_check(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    expect(EXIT_OK, "check", "m", "1", "--store", shared.home)
    expect(
        EXIT_FAILED,
        "check",
        "m",
        "1",
        "--threshold",
        "accuracy>=0.9",
        "--store",
        shared.home,
        says="blocking checks failed: metrics.thresholds",
    )
    expect(
        EXIT_INPUT,
        "check",
        "m",
        "1",
        "--threshold",
        "accuracy => 0.9",
        "--store",
        shared.home,
        says="malformed threshold",
    )
    expect(EXIT_INPUT, "check", "m", "9", "--store", shared.home, says="has no version 9")
    expect(EXIT_STORE, "check", "m", "1", "--store", broken.folder, says=CANNOT_OPEN)
    with tampered(shared):
        expect(EXIT_STORE, "check", "m", "1", "--store", shared.home, says=TAMPERED)


def test_export(shared: Shared, broken: Broken, tmp_path: Path, expect: Callable[..., str]) -> None:
    expect(EXIT_OK, "export", "m", "1", "-o", str(tmp_path), "--store", shared.home)
    expect(
        EXIT_OK,
        "export",
        "m",
        "2",
        "-o",
        str(tmp_path),
        "--force",
        "--store",
        shared.home,
        says="FAILED its checklist (exported with --force)",
    )
    expect(
        EXIT_INPUT,
        "export",
        "m",
        "2",
        "-o",
        str(tmp_path / "refused"),
        "--store",
        shared.home,
        says="m version 2 failed its checklist; it is exported only with --force",
    )
    expect(EXIT_INPUT, "export", "m", "9", "--store", shared.home, says="has no version 9")
    expect(EXIT_STORE, "export", "m", "1", "--store", broken.folder, says=CANNOT_OPEN)
    with tampered(shared):
        expect(EXIT_STORE, "export", "m", "1", "-o", str(tmp_path / "tampered"), "--store", shared.home, says=TAMPERED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-v1.zip", "m-v2.zip"]


def test_compare(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    expect(EXIT_OK, "compare", "m", "1", "3", "--store", shared.home)
    expect(EXIT_INPUT, "compare", "m", "1", "--store", shared.home, says="at least two different versions")
    expect(EXIT_INPUT, "compare", "m", "1", "9", "--store", shared.home, says="has no version 9")
    expect(EXIT_STORE, "compare", "m", "1", "3", "--store", broken.folder, says=CANNOT_OPEN)
    with tampered(shared):
        expect(EXIT_STORE, "compare", "m", "1", "3", "--store", shared.home, says=TAMPERED)


def test_promote_rollback_history(shared: Shared, broken: Broken, expect: Callable[..., str]) -> None:
    home = shared.home
    expect(EXIT_INPUT, "promote", "m", "2", "--store", home, says="failed its checklist and can never be promoted")
    expect(EXIT_INPUT, "rollback", "m", "--store", home, says="no earlier version to roll back to")
    expect(EXIT_OK, "promote", "m", "1", "--store", home)
    expect(EXIT_INPUT, "promote", "m", "1", "--store", home, says="is already 'champion'")
    expect(EXIT_OK, "promote", "m", "3", "--store", home)
    expect(EXIT_OK, "rollback", "m", "--store", home)
    expect(EXIT_INPUT, "rollback", "m", "--store", home, says="no earlier version to roll back to")
    expect(EXIT_INPUT, "promote", "m", "9", "--store", home, says="has no version 9")
    expect(EXIT_INPUT, "promote", "m", "3", "--alias", "v1", "--store", home, says="reserved")
    with tampered(shared):
        expect(EXIT_STORE, "promote", "m", "1", "--alias", "staging", "--store", home, says=TAMPERED)
    assert "rollback" in expect(EXIT_OK, "history", "m", "--store", home)
    expect(EXIT_INPUT, "history", "nope", "--store", home, says="no model named 'nope'")
    for argv in (["promote", "m", "1"], ["rollback", "m"], ["history", "m"]):
        expect(EXIT_STORE, *argv, "--store", broken.folder, says=CANNOT_OPEN)


def test_verify_and_verify_store(shared: Shared, broken: Broken, tmp_path: Path, expect: Callable[..., str]) -> None:
    expect(EXIT_OK, "export", "m", "1", "-o", str(tmp_path), "--store", shared.home)
    package = tmp_path / "m-v1.zip"
    expect(EXIT_OK, "verify", str(package))
    expect(EXIT_OK, "verify", str(package), "--store", shared.home)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    assert "NOT intact" in expect(EXIT_FAILED, "verify", str(cut))
    expect(EXIT_INPUT, "verify", str(tmp_path / "missing.zip"), says="no such file")
    expect(EXIT_INPUT, "verify", says="the following arguments are required: package")
    expect(EXIT_STORE, "verify", str(package), "--store", broken.folder, says=CANNOT_OPEN)
    expect(EXIT_OK, "verify-store", "--store", shared.home)
    expect(EXIT_INPUT, "verify-store", "extra", "--store", shared.home, says="unrecognized arguments: extra")
    expect(EXIT_STORE, "verify-store", "--store", broken.folder, says=CANNOT_OPEN)
    with tampered(shared):
        assert "m v1: modified after it was recorded" in expect(EXIT_FAILED, "verify-store", "--store", shared.home)
        expect(EXIT_STORE, "verify", str(package), "--store", shared.home, says=TAMPERED)  # the store is corrupt


def test_doctor(broken: Broken, tmp_path: Path, expect: Callable[..., str]) -> None:
    assert "sandbox: " in expect(EXIT_OK, "doctor", "--store", str(tmp_path / "store"))
    expect(EXIT_INPUT, "doctor", "--bogus", says="unrecognized arguments: --bogus")
    expect(EXIT_STORE, "doctor", "--store", broken.folder, says=CANNOT_OPEN)


def test_app(broken: Broken, tmp_path: Path, expect: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exec(*args: Any) -> None:
        raise AssertionError("the test must not start the app")

    monkeypatch.setattr(cli.os, "execve", no_exec)
    assert "--no-token" in expect(EXIT_OK, "app", "--help")
    expect(EXIT_INPUT, "app", "--port", "abc", says="invalid int value: 'abc'")
    expect(EXIT_STORE, "app", "--store", broken.folder, says=CANNOT_OPEN)
    monkeypatch.setattr(cli, "APP", tmp_path / "missing" / "server.py")
    expect(EXIT_INPUT, "app", says="the app is not installed beside the package")


def test_interrupted_and_internal_errors(
    tmp_path: Path, expect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(handoff, "history", interrupted)
    expect(EXIT_INTERRUPTED, "history", "m", "--store", str(tmp_path), says="handoff: interrupted")
    monkeypatch.setattr(handoff, "history", bug)
    expect(EXIT_FAILED, "history", "m", "--store", str(tmp_path), says="internal error: RuntimeError: a bug")


def test_the_console_script_exits_with_the_code(broken: Broken) -> None:
    """What the shell sees: the entry point passes main's code on (store errors need no MLflow import)."""
    done = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "list", "--store", broken.folder],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_STORE, done.stderr
    assert done.stderr.strip() == f"handoff: error: {CANNOT_OPEN} {broken.folder}: a file is in the way of its folder"
