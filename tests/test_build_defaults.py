"""The default limits have one source, ``BuildOptions``: the CLI and the app's build form read them.

Each test swaps in other defaults, so a number written into the CLI or the app would show.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from handoff.build import BuildOptions
from handoff.cli import _parser
from handoff.store import Store
from helpers import ROOT, local_path

OTHER = dataclasses.replace(
    BuildOptions(),
    timeout=1234.0,
    cell_timeout=321.0,
    memory_gib=6.5,
    max_processes=77,
    max_disk_gib=9.0,
    max_cell_output_mb=7.0,
    max_output_mb=12.5,
)
CLI_FLAGS = {
    "timeout": "timeout",
    "cell_timeout": "cell_timeout",
    "memory": "memory_gib",
    "max_processes": "max_processes",
    "max_disk": "max_disk_gib",
    "max_cell_output": "max_cell_output_mb",
    "max_output": "max_output_mb",
}


@pytest.fixture
def other_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.import_module("handoff.build"), "BuildOptions", lambda: OTHER)


def test_cli_defaults_and_help_come_from_build_options(other_defaults: None) -> None:
    parser = _parser()
    args = parser.parse_args(["build", "nb.ipynb"])
    assert {flag: getattr(args, flag) for flag in CLI_FLAGS} == {
        flag: getattr(OTHER, field) for flag, field in CLI_FLAGS.items()
    }
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(commands.choices["build"].format_help().split())
    for shown in (
        "whole-run limit (default 1234)",
        "per-cell limit (default 321)",
        "memory limit (default 6.5)",
        "at once (default 77)",
        "work dir (default 9)",
        "marker (default 7)",
        "keeps (default 12.5)",
    ):
        assert shown in text


def test_app_build_form_is_prefilled_from_build_options(
    other_defaults: None, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_STORE", str(local_path(store.artifact_root).parent))
    app = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    app.run()
    app.radio[0].set_value("Use a sample notebook").run()
    app.selectbox[0].set_value("iris_classifier.ipynb").run()
    assert not app.exception
    numbers = {n.label: n.value for n in app.number_input}
    assert numbers["Whole-run limit (seconds)"] == 1234 and numbers["Per-cell limit (seconds)"] == 321
    assert numbers["Memory limit (GiB)"] == 6.5 and numbers["Output kept per cell (MB)"] == 7.0


def test_reading_the_defaults_never_shadows_the_build_function() -> None:
    """The CLI imports ``handoff.build`` (the module) for its parser, then calls ``handoff.build(...)``
    (the function): in a fresh process, where nothing bound the function first."""
    code = (
        "import handoff, handoff.cli\n"
        "handoff.cli._parser()\n"
        "from handoff.build import BuildOptions\n"
        "import handoff.build\n"
        "assert callable(handoff.build) and handoff.build.__module__ == 'handoff.build', handoff.build\n"
        "assert handoff.BuildOptions is BuildOptions\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
