"""One message table, two renderings: the library writes which option a hint is about, the CLI says
its flag, the package README the flag in code, the app the control that does the same."""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

import pytest

from handoff import checks
from handoff.check_config import resolve_config
from handoff.checks import CheckResult
from handoff.cli import _parser, main
from handoff.errors import OptionError
from handoff.messages import FACES, OPTIONS, keys_in, option, render, render_data
from handoff.record import BuildRecord, CheckReport, Inputs, NotebookRef, Outputs
from handoff.record_view import render_markdown, render_text, sections
from handoff.store import Store
from helpers import ROOT, local_path

LIBRARY = ROOT / "handoff"
USED = re.compile(r"\{\{?option:([a-z_]+)")
#: Literal flags that stay in library strings, and why (none of them is a hint to the user).
NOT_HINTS = {
    "messages.py": "the table itself",
    "package.py": "the package README is for people with a terminal (`mlflow models serve`, `--force`)",
    "environments.py": "uv's own flags, and the build environment's provenance (`--with six` is how it was given)",
}


def _library_strings() -> dict[str, list[str]]:
    """Every string constant of every library module but the CLI, docstrings left out."""
    found: dict[str, list[str]] = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found[str(path.relative_to(LIBRARY))] = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        ]
    return found


def test_every_option_the_library_names_is_in_the_table() -> None:
    used = {key for path in LIBRARY.rglob("*.py") for key in USED.findall(path.read_text())}
    assert used <= OPTIONS.keys(), f"not in the table: {used - OPTIONS.keys()}"
    hinted = {"gate", "tests", "reproduce", "verify_env", "allow_secrets", "model_var", "memory", "max_disk"}
    assert hinted | {"max_processes", "with", "force"} <= used  # the hints the issue found, and the rest
    with pytest.raises(KeyError, match="unknown option 'gates'"):
        option("gates")


def test_no_library_message_names_a_cli_flag_itself() -> None:
    flags = {o.flag for o in OPTIONS.values()}
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(map(re.escape, sorted(flags, key=len, reverse=True))) + r")(?![\w-])"
    )
    offenders = [
        f"{module}: {text!r}"
        for module, strings in _library_strings().items()
        if Path(module).name not in NOT_HINTS
        for text in strings
        if pattern.search(text)
    ]
    assert not offenders, "\n".join(offenders)


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_the_cli_rendering_is_a_real_flag_of_its_command(key: str) -> None:
    entry = OPTIONS[key]
    flags = {s for action in _subparser(entry.command)._actions for s in action.option_strings}
    assert entry.flag in flags, f"{entry.flag} is not an option of `handoff {entry.command}`"
    assert render(option(key), "cli") == entry.flag and render(option(key), "markdown") == f"`{entry.flag}`"


def test_each_face_says_the_option_its_own_way() -> None:
    text = "gate off (enable with {option:gate})"
    assert render(text, "cli") == "gate off (enable with --gate)"
    assert render(text, "markdown") == "gate off (enable with `--gate`)"
    assert render(text, "app") == (
        "gate off (enable with the **Gate** checkbox under **Checklist and time limits** on the Build page)"
    )
    assert render(text, "app_plain") == (
        "gate off (enable with the “Gate” checkbox under Checklist and time limits on the Build page)"
    )
    with_value = "or rebuild with {option:with=seaborn}"
    assert render(with_value, "cli") == "or rebuild with --with seaborn"
    assert "the **Add seaborn to the build environment and rebuild** button" in render(
        with_value, "app"
    ) and "--with" not in render(with_value, "app")
    # Markdown escaping applies to the message's own text, never to the control's emphasis
    escaped = render("a_b {option:model_var}", "app", escape=lambda s: s.replace("_", "\\_"))
    assert escaped.startswith("a\\_b the **Model to ship** picker")
    assert render("{option:from_the_future} stays", "app") == "{option:from_the_future} stays"
    assert keys_in("x {option:gate} y {option:with=six}") == ["gate", "with"]


def _record(messages: dict[str, str], error: str | None = None) -> BuildRecord:
    results = tuple(
        CheckResult.from_outcome(checks.get(check_id), checks.skipped(message))
        for check_id, message in messages.items()
    )
    return BuildRecord(
        name="m",
        status="passed",
        inputs=Inputs(NotebookRef("m", "0" * 64)),
        outputs=Outputs(checks=CheckReport(results, {}, "2026-01-01T00:00:00+00:00", 0.1)),
    )


def test_a_record_rendered_for_each_face_shows_its_words() -> None:
    record = _record(
        {
            "metrics.no_regression": "gate off (enable with {option:gate})",
            "user.tests": "no user tests given ({option:tests})",
        }
    )
    text = render_text(sections(record))
    assert "gate off (enable with --gate)" in text and "no user tests given (--tests)" in text
    readme = render_markdown(sections(record))
    assert "gate off (enable with `--gate`)" in readme and "no user tests given (`--tests`)" in readme
    for face in FACES:
        shown = [render(cell, face) for s in sections(record) if s.table for row in s.table.rows for cell in row]
        assert not any("{option:" in cell for cell in shown), face
    app = [render(c, "app_plain") for s in sections(record) if s.table for row in s.table.rows for c in row]
    assert "no user tests given (the “Test files” upload under Checklist and time limits on the Build page)" in app


def test_old_records_with_literal_flags_still_render() -> None:
    old = _record(
        {"metrics.no_regression": "gate off (enable with --gate)", "user.tests": "no user tests given (--tests PATH)"}
    )
    stored = BuildRecord.from_dict(json.loads(json.dumps(old.to_dict())))
    text = render_text(sections(stored))
    assert "gate off (enable with --gate)" in text and "no user tests given (--tests PATH)" in text
    assert render("gate off (enable with --gate)", "app") == "gate off (enable with --gate)"


def test_errors_say_flags_on_the_cli_and_controls_in_the_app() -> None:
    error = OptionError("m version 2 failed its checklist; it is exported only with {option:force}")
    assert str(error) == "m version 2 failed its checklist; it is exported only with --force"
    assert error.render("app").endswith(
        "the **I understand this version failed its checklist** checkbox on the version's **Package** tab"
    )
    assert error.raw.endswith("{option:force}")


def test_json_is_rendered_for_the_cli() -> None:
    data = {"checks": [{"message": "gate off (enable with {option:gate})"}], "n": 1, "none": None}
    assert render_data(data) == {"checks": [{"message": "gate off (enable with --gate)"}], "n": 1, "none": None}


def test_the_cli_says_its_flags_in_text_and_json(iris_notebook: Path, store: Store, capsys) -> None:
    home = str(local_path(store.artifact_root).parent)
    assert main(["build", str(iris_notebook), "--store", home, "--json"]) == 0
    out = capsys.readouterr().out
    assert "{option:" not in out
    results = {r["id"]: r["message"] for r in json.loads(out)["outputs"]["checks"]["results"]}
    assert results["user.tests"] == "no user tests given (--tests)"
    assert results["metrics.no_regression"] == "gate off (enable with --gate)"
    assert main(["show", "iris", "1", "--store", home]) == 0
    shown = capsys.readouterr().out
    assert "gate off (enable with --gate)" in shown and "{option:" not in shown


def test_uploaded_test_files_are_written_by_the_library() -> None:
    config = resolve_config(cli={"test_files": {"test_model.py": b"def test_x():\n    assert True\n"}})
    (path,) = config.tests
    assert Path(path).name == "test_model.py" and Path(path).read_bytes().startswith(b"def test_x")
    with pytest.raises(OptionError, match=r"must be a \.py file"):
        resolve_config(cli={"test_files": {"notes.txt": b"x"}})
