"""Inspect stage: bad input is refused before anything runs, with a message that says why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from handoff.errors import NotebookFormatError, ParameterError
from handoff.inspection import load_notebook, parse_params, parse_value, validate_params
from helpers import notebook


def test_not_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [\n  oops')
    with pytest.raises(NotebookFormatError, match=r"broken.ipynb is not a notebook: invalid JSON at line 2"):
        load_notebook(path)


def test_json_that_is_not_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "data.ipynb"
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(NotebookFormatError, match="JSON but not a Jupyter notebook"):
        load_notebook(path)


def test_binary_bytes_are_not_a_notebook() -> None:
    with pytest.raises(NotebookFormatError, match="not UTF-8"):
        load_notebook(b"\x89PNG\r\n\x1a\n\xff\xfe", name="picture.ipynb")


def test_invalid_notebook_structure() -> None:
    raw = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "bogus"}]})
    with pytest.raises(NotebookFormatError, match="not a valid notebook"):
        load_notebook(raw.encode(), name="x.ipynb")


DEEP = 100_000


@pytest.mark.parametrize(
    "raw",
    [
        "[" * DEEP + "]" * DEEP,  # the JSON decoder itself recurses
        '{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {"x": '
        + "[" * 900
        + "]" * 900
        + "}}",  # nbformat does
    ],
    ids=["decoder", "validator"],
)
def test_deeply_nested_json_is_bad_input_not_an_internal_error(raw: str) -> None:
    with pytest.raises(NotebookFormatError, match=r"deep\.ipynb is not a notebook: JSON nested too deeply"):
        load_notebook(raw.encode(), name="deep.ipynb")


def test_missing_file() -> None:
    with pytest.raises(NotebookFormatError, match="cannot read notebook"):
        load_notebook("/nonexistent/nb.ipynb")


def test_nbformat_v3_is_upgraded(tmp_path: Path) -> None:
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [
            {
                "cells": [{"cell_type": "code", "input": "x = 1", "language": "python", "outputs": [], "metadata": {}}],
                "metadata": {},
            }
        ],
    }
    source = load_notebook(json.dumps(v3).encode(), name="old.ipynb")
    assert source.notebook.nbformat == 4
    assert source.notebook.cells[0].source == "x = 1"
    assert source.upgraded_from == 3 and "upgraded to v4" in source.warnings[0]


def test_parameters_are_inferred_with_types_and_defaults(tmp_path: Path) -> None:
    nb = notebook(
        [
            (
                "parameters",
                "n = 3  # trees\nalpha = 0.5\nflag = True\nname = 'x'\nlayers = [1, 2]\n"
                "cfg = {'a': 1}\nratio: float = 1\nthing = None",
            ),
            "print(n)",
        ]
    )
    source = load_notebook(nbformat.writes(nb).encode(), name="p.ipynb")
    got = {p.name: (p.type, p.default) for p in source.parameters}
    assert got == {
        "n": ("int", 3),
        "alpha": ("float", 0.5),
        "flag": ("bool", True),
        "name": ("str", "x"),
        "layers": ("list", [1, 2]),
        "cfg": ("dict", {"a": 1}),
        "ratio": ("float", 1),
        "thing": ("any", None),
    }
    assert source.parameter_map["n"].help == "trees"


def test_no_parameters_cell_is_none_not_empty() -> None:
    source = load_notebook(nbformat.writes(notebook(["x = 1"])).encode(), name="n.ipynb")
    assert source.parameters is None
    assert validate_params(source, {}) == {}
    with pytest.raises(ParameterError, match="has no parameters cell"):
        validate_params(source, {"x": 2})


@pytest.fixture
def source():
    nb = notebook([("parameters", "n = 3\nalpha = 0.5\nflag = False\nname = 'a'\nlayers = [1]"), "pass"])
    return load_notebook(nbformat.writes(nb).encode(), name="p.ipynb")


def test_unknown_parameter_lists_the_valid_ones(source) -> None:
    with pytest.raises(
        ParameterError,
        match=r"unknown parameter nope; valid parameters: n \(int, default 3\), "
        r"alpha \(float, default 0.5\)",
    ):
        validate_params(source, {"nope": 1})


@pytest.mark.parametrize(
    "name, value",
    [
        ("n", "3"),
        ("n", 2.5),
        ("n", True),
        ("alpha", "x"),
        ("flag", 1),
        ("name", 5),
        ("layers", "a"),
        ("layers", [object()]),
    ],
)
def test_wrong_type_is_refused(source, name: str, value: object) -> None:
    with pytest.raises(ParameterError, match=f"parameter {name} expects"):
        validate_params(source, {name: value})


def test_valid_values_pass_and_ints_widen_to_float(source) -> None:
    assert validate_params(source, {"n": 5, "alpha": 1, "layers": (1, 2)}) == {"n": 5, "alpha": 1.0, "layers": [1, 2]}


@pytest.mark.parametrize("name", ["a; import os", "__import__('os')", "x y", "class", ""])
def test_unsafe_names_are_refused(source, name: str) -> None:
    with pytest.raises(ParameterError, match="invalid parameter name"):
        validate_params(source, {name: 1})


def test_command_line_values_are_parsed_by_type(source) -> None:
    specs = source.parameter_map
    assert parse_value(specs["n"], "7") == 7
    assert parse_value(specs["alpha"], "0.25") == 0.25
    assert parse_value(specs["flag"], "yes") is True and parse_value(specs["flag"], "false") is False
    assert parse_value(specs["name"], "0.5") == "0.5"
    assert parse_value(specs["layers"], "[3, 4]") == [3, 4]
    with pytest.raises(ParameterError, match="parameter n expects int, got 'seven'"):
        parse_value(specs["n"], "seven")
    with pytest.raises(ParameterError, match="expects bool"):
        parse_value(specs["flag"], "maybe")


def test_parse_params_parses_strings_by_type_and_keeps_typed_values(source) -> None:
    """One parser for the CLI (all strings) and the app (typed widgets, text for list/dict/any)."""
    cli = {"n": "7", "alpha": "0.25", "flag": "yes", "name": "0.5", "layers": "[3, 4]"}
    assert parse_params(source, cli) == {"n": 7, "alpha": 0.25, "flag": True, "name": "0.5", "layers": [3, 4]}
    widgets = {"n": 5, "alpha": 1, "flag": False, "name": "b", "layers": "[1, 2]"}
    assert parse_params(source, widgets) == {"n": 5, "alpha": 1.0, "flag": False, "name": "b", "layers": [1, 2]}
    assert parse_params(source, {}) == {}


def test_parse_params_can_drop_values_equal_to_the_defaults(source) -> None:
    form = {"n": 3, "alpha": 0.5, "flag": False, "name": "a", "layers": "[1]"}  # the form as pre-filled
    assert parse_params(source, form, drop_defaults=True) == {}
    assert parse_params(source, {**form, "n": 4, "layers": "[1, 2]"}, drop_defaults=True) == {"n": 4, "layers": [1, 2]}
    assert parse_params(source, form) == {"n": 3, "alpha": 0.5, "flag": False, "name": "a", "layers": [1]}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"nope": "1"}, "unknown parameter nope; valid parameters: n (int, default 3)"),
        ({"n": "seven"}, "parameter n expects int, got 'seven'"),
        ({"n": 2.5}, "parameter n expects int, got float 2.5"),
        ({"flag": 1}, "parameter flag expects bool"),
        ({"layers": "{'a': 1}"}, "parameter layers expects list"),
        ({"a; import os": "1"}, "invalid parameter name"),
    ],
)
def test_parse_params_refuses_unknown_names_and_wrong_types(source, raw: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        parse_params(source, raw)


def test_parse_params_without_a_parameters_cell() -> None:
    source = load_notebook(nbformat.writes(notebook(["x = 1"])).encode(), name="n.ipynb")
    assert parse_params(source, {}) == {}
    with pytest.raises(ParameterError, match="has no parameters cell"):
        parse_params(source, {"x": "2"})
