"""Inspect stage: read and validate the notebook, find its parameters, check the given values.

Everything here happens before a kernel starts, so bad input fails in milliseconds with a message
that names the problem, and nothing is recorded.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from papermill.translators import PythonTranslator

from handoff.errors import NotebookFormatError, ParameterError

PARAMETER_TYPES = ("int", "float", "bool", "str", "list", "dict", "any")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class NotebookParameter:
    """One variable of the notebook's papermill ``parameters`` cell.

    Attributes:
        name: The variable name.
        type: One of ``PARAMETER_TYPES``: from the annotation, else from the default's literal.
        default: The default value as a Python object (``None`` when it is not a literal).
        default_source: The default exactly as written in the cell.
        help: The trailing comment, if any.
    """

    name: str
    type: str
    default: Any
    default_source: str
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "default_source": self.default_source,
            "help": self.help,
        }


@dataclass(frozen=True)
class NotebookSource:
    """A validated notebook and where it came from.

    Attributes:
        notebook: The nbformat v4 notebook.
        raw: The bytes exactly as given (what ``sha256`` digests).
        sha256: Digest of ``raw``.
        name: A label for messages and the default model name (the file stem).
        path: The file it was read from, or ``None`` for uploaded bytes.
        parameters: The parameters cell's variables, or ``None`` when there is no such cell.
        upgraded_from: The nbformat major version it was upgraded from, if it was.
    """

    notebook: nbformat.NotebookNode
    raw: bytes
    sha256: str
    name: str
    path: Path | None
    parameters: tuple[NotebookParameter, ...] | None
    upgraded_from: int | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def parameter_map(self) -> dict[str, NotebookParameter]:
        return {p.name: p for p in self.parameters or ()}


def load_notebook(source: str | Path | bytes, name: str | None = None) -> NotebookSource:
    """Read and validate a notebook from a path or raw bytes; upgrade nbformat v3 to v4.

    Raises:
        NotebookFormatError: the file is missing, not JSON, not a notebook, or invalid.
    """
    path: Path | None = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise NotebookFormatError(f"cannot read notebook {label}: {exc.strerror or exc}") from exc
        name = name or path.stem
    else:
        raw = bytes(source)
        label = name or "the uploaded file"
        name = Path(name).stem if name else "notebook"
    nb, upgraded_from = _parse(raw, label)
    warnings = (f"notebook was nbformat v{upgraded_from}; upgraded to v4",) if upgraded_from else ()
    return NotebookSource(
        notebook=nb,
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        name=name,
        path=path,
        parameters=find_parameters(nb),
        upgraded_from=upgraded_from,
        warnings=warnings,
    )


def _parse(raw: bytes, label: str) -> tuple[nbformat.NotebookNode, int | None]:
    # json, nbformat and jsonschema all recurse per nesting level: a hostile upload nested deeper than
    # Python's recursion limit must be bad input, not an internal error
    try:
        return _parse_nested(raw, label)
    except RecursionError as exc:
        raise NotebookFormatError(f"{label} is not a notebook: JSON nested too deeply") from exc


def _parse_nested(raw: bytes, label: str) -> tuple[nbformat.NotebookNode, int | None]:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise NotebookFormatError(f"{label} is not a notebook: it is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise NotebookFormatError(
            f"{label} is not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from exc
    if not isinstance(data, dict) or "nbformat" not in data or not ({"cells", "worksheets"} & data.keys()):
        raise NotebookFormatError(f"{label} is JSON but not a Jupyter notebook (no 'nbformat' and 'cells')")
    major = data.get("nbformat")
    if major not in (3, 4):
        raise NotebookFormatError(f"{label}: unsupported nbformat version {major!r} (3 and 4 are supported)")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validator.normalize(nb)
        nbformat.validate(nb)
    except RecursionError:
        raise
    except Exception as exc:  # nbformat raises several unrelated types for invalid documents
        detail = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise NotebookFormatError(f"{label} is not a valid notebook: {detail}") from exc
    return nb, (3 if major == 3 else None)


def parameters_cell_index(nb: nbformat.NotebookNode) -> int | None:
    """Index of the first cell tagged ``parameters`` (papermill's convention), or ``None``."""
    for index, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def find_parameters(nb: nbformat.NotebookNode) -> tuple[NotebookParameter, ...] | None:
    """Infer the parameters (name, type, default) of the ``parameters`` cell; ``None`` if absent."""
    index = parameters_cell_index(nb)
    if index is None:
        return None
    found = []
    for param in PythonTranslator.inspect(nb.cells[index]):
        default = _literal(param.default)
        annotated = _annotation_type(param.inferred_type_name)
        found.append(
            NotebookParameter(
                name=param.name,
                type=annotated or _type_of(default),
                default=default,
                default_source=param.default,
                help=param.help or "",
            )
        )
    return tuple(found)


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _annotation_type(annotation: str) -> str | None:
    base = re.split(r"[\[|]", (annotation or "").strip())[0].strip().lower()
    return {
        "int": "int",
        "float": "float",
        "bool": "bool",
        "str": "str",
        "list": "list",
        "tuple": "list",
        "dict": "dict",
    }.get(base)


def _type_of(value: Any) -> str:
    for kind, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        ((list, tuple), "list"),
        (dict, "dict"),
    ):
        if isinstance(value, kind):
            return name
    return "any"


def check_name(name: str) -> None:
    """Parameter names become Python assignments: only plain identifiers are allowed."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"invalid parameter name {name!r}: names must be Python identifiers")


def validate_params(source: NotebookSource, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check given values against the parameters cell; return the values to inject.

    Raises:
        ParameterError: an unsafe name, an unknown name, or a value of the wrong type.
    """
    for name in given:
        check_name(name)
    if not given:
        return {}
    specs = source.parameter_map
    if source.parameters is None:
        raise ParameterError(
            f"{source.name} has no parameters cell (a cell tagged 'parameters'), so it takes no "
            f"parameters; got {', '.join(sorted(given))}"
        )
    unknown = sorted(set(given) - specs.keys())
    if unknown:
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid parameters: {describe(source.parameters)}"
        )
    return {name: _check_value(specs[name], value) for name, value in given.items()}


def describe(parameters: tuple[NotebookParameter, ...] | None) -> str:
    """``alpha (float, default 0.5), n (int, default 3)``: for error messages."""
    if not parameters:
        return "none"
    return ", ".join(f"{p.name} ({p.type}, default {p.default_source})" for p in parameters)


def _check_value(spec: NotebookParameter, value: Any) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, (list, tuple)),
        "dict": isinstance(value, dict),
        "any": _is_plain_data(value),
    }[spec.type]
    if not ok or not _is_plain_data(value):
        raise ParameterError(f"parameter {spec.name} expects {spec.type}, got {type(value).__name__} {value!r}")
    return float(value) if spec.type == "float" else list(value) if spec.type == "list" else value


def _is_plain_data(value: Any) -> bool:
    """Only literal data may be injected: JSON-like values that ``repr`` turns back into themselves."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


def parse_value(spec: NotebookParameter | None, text: str) -> Any:
    """Turn a command-line string into a value of the parameter's type (``-p alpha 0.5``).

    Raises:
        ParameterError: the text is not a valid value of that type.
    """
    kind = spec.type if spec else "any"
    name = spec.name if spec else "?"
    try:
        if kind == "str":
            return text
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        value = _literal_or_json(text)
        if kind in ("list", "dict") and not isinstance(value, (list, tuple) if kind == "list" else dict):
            raise ValueError(text)
        return value
    except (ValueError, SyntaxError) as exc:
        raise ParameterError(f"parameter {name} expects {kind}, got {text!r}") from exc


def parse_params(source: NotebookSource, raw: Mapping[str, Any], *, drop_defaults: bool = False) -> dict[str, Any]:
    """The values to inject from what a user entered, the one parser the CLI and the app share.

    A string is parsed by its parameter's type (``-p n 3``, or the app's text box for a list, dict
    or untyped parameter); an already typed value (a number or check box widget) is kept as is.
    ``drop_defaults`` leaves out values equal to the notebook's own default (the app's form shows
    every parameter, so only the changed ones are recorded as given).

    Raises:
        ParameterError: an unsafe or unknown name, or a value that is not of the parameter's type.
    """
    specs = source.parameter_map
    parsed = {
        name: parse_value(specs[name], value) if isinstance(value, str) and name in specs else value
        for name, value in raw.items()
    }
    if drop_defaults:
        parsed = {name: value for name, value in parsed.items() if name not in specs or value != specs[name].default}
    return validate_params(source, parsed)


def _literal_or_json(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
