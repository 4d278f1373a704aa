"""The CLI contract: output shapes and exit codes (0 ok, 1 build failed, 2 bad input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.cli import main
from handoff.store import Store
from helpers import local_path


def _home(store: Store) -> str:
    return str(local_path(store.artifact_root).parent)


def test_build_json_then_list_and_show(iris_notebook: Path, store: Store, capsys: pytest.CaptureFixture) -> None:
    code = main(["build", str(iris_notebook), "--store", _home(store), "-p", "C", "0.5", "-p", "label", "x", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {
        "name",
        "version",
        "status",
        "inputs",
        "outputs",
        "metrics",
        "error",
        "timings",
        "schema_version",
    } <= out.keys()
    assert (out["name"], out["version"], out["status"], out["error"]) == ("iris", 1, "passed", None)
    assert out["inputs"]["parameters"] == {"C": 0.5, "label": "x"} and "accuracy" in out["metrics"]
    assert main(["list", "--store", _home(store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["name"], v["version"], v["status"]) for v in listed] == [("iris", 1, "passed")]
    assert main(["list", "iris", "--store", _home(store)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["MODEL", "VERSION", "STATUS"] and "accuracy=" in table
    assert main(["show", "iris", "1", "--store", _home(store), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["record"]["inputs"]["parameters"] == {"C": 0.5, "label": "x"}
    assert main(["show", "iris", "1", "--store", _home(store)]) == 0
    text = capsys.readouterr().out
    assert "iris version 1  [passed]" in text and "requirements: " in text and "scikit-learn==" in text


def test_failed_build_exits_1_with_one_line(write_notebook, store: Store, capsys: pytest.CaptureFixture) -> None:
    path = write_notebook(["x = 1", "x / 0"])
    assert main(["build", str(path), "--store", _home(store), "--json"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["status"] == "failed" and out["version"] is None and out["error"]["cell"] == 2
    assert captured.err.strip().splitlines()[-1] == (
        "handoff: error: a cell raised an error in execute stage, cell 2: ZeroDivisionError: division by zero"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["build", "{nb}", "-p", "nope", "1"], "unknown parameter nope; valid parameters: C (float, default 1.0)"),
        (["build", "{nb}", "-p", "C", "abc"], "parameter C expects float, got 'abc'"),
        (["build", "{bad}"], "is not a notebook: invalid JSON"),
        (["build", "{deep}"], "deep.ipynb is not a notebook: JSON nested too deeply"),
        (["build", "{nb}", "--timeout", "-1"], "timeout must be a positive number"),
        (["show", "iris", "3"], "no model named 'iris'"),
        (["show", "iris", "x"], "version must be a number"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    argv: list[str], message: str, iris_notebook: Path, tmp_path: Path, store: Store, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    deep = tmp_path / "deep.ipynb"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    args = [a.format(nb=iris_notebook, bad=bad, deep=deep) for a in argv] + ["--store", _home(store)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("handoff: error: ") and message in err[0]
    assert store.list_builds() == []


def test_usage_error_exits_2() -> None:
    done = subprocess.run([sys.executable, "-m", "handoff.cli", "build"], capture_output=True, text=True)
    assert done.returncode == 2 and "the following arguments are required: notebook" in done.stderr
    assert "Traceback" not in done.stderr


def test_handoff_home_is_the_default_store(
    iris_notebook: Path, store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HANDOFF_HOME", _home(store))
    assert main(["build", str(iris_notebook), "--json"]) == 0
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1]
    assert [v.version for v in store.list_versions("iris")] == [1]


def test_app_command_has_deliberate_server_settings() -> None:
    from handoff.cli import MAX_UPLOAD_MB, app_command

    command = app_command(8600)
    settings = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app/server.py")
    assert settings["--server.address"] == "localhost" and settings["--server.port"] == "8600"
    assert settings["--server.enableXsrfProtection"] == "true"
    assert settings["--server.maxUploadSize"] == str(MAX_UPLOAD_MB)
    assert settings["--browser.gatherUsageStats"] == "false"


def test_secrets_fail_the_build_unless_allowed_with_a_recorded_reason(
    write_notebook, store: Store, capsys: pytest.CaptureFixture
) -> None:
    from helpers import TRAIN_IRIS

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz3Kq8mQ4t"
    path = write_notebook(
        [
            TRAIN_IRIS,
            "import json, os\n"
            f"os.environ['AWS_SECRET_ACCESS_KEY'] = '{secret[:20]}' + '{secret[20:]}'\n"
            "print(json.dumps(dict(os.environ)))",
        ]
    )
    assert main(["build", str(path), "--store", _home(store), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    check = next(r for r in out["outputs"]["checks"]["results"] if r["id"] == "notebook.secrets")
    assert out["status"] == "failed" and check["status"] == "failed" and "cell 2" in check["message"]
    assert secret not in json.dumps(out["outputs"]["checks"])
    assert main(["build", str(path), "--store", _home(store), "--json", "--allow-secrets", "test fixture"]) == 0
    out = json.loads(capsys.readouterr().out)
    check = next(r for r in out["outputs"]["checks"]["results"] if r["id"] == "notebook.secrets")
    assert out["status"] == "passed" and check["status"] == "passed" and check["details"]["allowed"] == "test fixture"
    assert main(["show", out["name"], str(out["version"]), "--store", _home(store), "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)["record"]["outputs"]["checks"]
    assert recorded["config"]["allow_secrets"] == "test fixture"
