"""One table of the options a hint can point at, rendered per face: CLI flags or the app's controls.

The library never writes a CLI flag into a user-facing message: it writes a token naming the
option, ``{option:gate}`` (or ``{option:with=six}`` when the hint carries a value), and the edge
renders it: the CLI (text and ``--json``) and the package's README with the flag (``--gate``), the
app with the control that does the same ("the **Gate** checkbox under Checklist and time limits").
Records keep the tokens, which read well enough raw; records written before the table (with
literal flags) have no tokens and render unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Face = Literal["cli", "markdown", "app", "app_plain"]
FACES: tuple[Face, ...] = ("cli", "markdown", "app", "app_plain")

#: ``{option:KEY}`` or ``{option:KEY=VALUE}``.
TOKEN = re.compile(r"\{option:([a-z_]+)(?:=([^{}]*))?\}")

CHECKLIST = "under **Checklist and time limits** on the Build page"
SANDBOX = "under **Sandbox** on the Build page"


@dataclass(frozen=True)
class Option:
    """One option a hint can name, with its two renderings.

    Attributes:
        key: The token's name (``{option:KEY}``).
        flag: The CLI flag (a real flag of ``command``'s parser; the tests hold it to that).
        command: The ``handoff`` command that has the flag.
        control: The app control's label, or the start of it (the tests find it on ``page``).
        kind: What the control is (``checkbox``, ``field``, ``upload``, ``picker``, ``button``).
        where: Where the control is, after its name.
        page: The app page (file stem in ``app/app_pages``) that draws the control.
        value_text: How the app says a token that carries a value (``{value}`` is replaced), when
            that differs from naming the control.
    """

    key: str
    flag: str
    command: str
    control: str
    kind: str
    where: str
    page: str = "build"
    value_text: str = ""

    def cli(self, value: str | None) -> str:
        return f"{self.flag} {value}" if value else self.flag

    def app(self, value: str | None, markup: bool = True) -> str:
        if value and self.value_text:
            text = self.value_text.format(value=value)
            return text if markup else re.sub(r"\*\*(.+?)\*\*", r"“\1”", text)
        if markup:
            return f"the **{self.control}** {self.kind} {self.where}"
        return f"the “{self.control}” {self.kind} {self.where.replace('**', '')}"


OPTIONS: dict[str, Option] = {
    o.key: o
    for o in (
        Option("gate", "--gate", "build", "Gate", "checkbox", CHECKLIST),
        Option("tests", "--tests", "build", "Test files", "upload", CHECKLIST),
        Option("reproduce", "--reproduce", "build", "Check reproducibility", "checkbox", CHECKLIST),
        Option("verify_env", "--verify-env", "build", "Check the package installs", "checkbox", CHECKLIST),
        Option("allow_secrets", "--allow-secrets", "build", "Allow likely secrets", "field", CHECKLIST),
        Option("skip", "--skip", "build", "Skip checks", "list", CHECKLIST),
        Option(
            "model_var",
            "--model-var",
            "build",
            "Model to ship",
            "picker",
            "under the build's result (then “Rebuild with this model”)",
        ),
        Option("memory", "--memory", "build", "Memory limit (GiB)", "field", SANDBOX),
        Option("max_disk", "--max-disk", "build", "Disk limit (GiB)", "field", SANDBOX),
        Option("max_processes", "--max-processes", "build", "Process limit", "field", SANDBOX),
        Option(
            "with",
            "--with",
            "build",
            "Data files it reads",
            "upload",
            "on the Build page (a `requirements.txt` there makes the build environment)",
            value_text="the **Add {value} to the build environment and rebuild** button below",
        ),
        Option(
            "force",
            "--force",
            "export",
            "I understand this version failed its checklist",
            "checkbox",
            "on the version's **Package** tab",
            page="version_detail",
        ),
    )
}


def option(key: str, value: str | None = None) -> str:
    """The token for ``key`` (an unknown key fails here, at the library's side, not at a face)."""
    if key not in OPTIONS:
        raise KeyError(f"unknown option {key!r}; known: {', '.join(OPTIONS)}")
    return "{option:" + key + (f"={value}" if value else "") + "}"


def keys_in(text: str) -> list[str]:
    """The option keys a message's tokens name."""
    return [m.group(1) for m in TOKEN.finditer(text)]


def render(text: str, face: Face, escape: Callable[[str], str] | None = None) -> str:
    """``text`` with its tokens as ``face`` says them; ``escape`` (for Markdown) applies to the rest only.

    An unknown key is left as it is (a record from a newer handoff still renders).
    """
    out: list[str] = []
    last = 0
    for match in TOKEN.finditer(text):
        literal = text[last : match.start()]
        out.append(escape(literal) if escape else literal)
        out.append(_one(match, face))
        last = match.end()
    rest = text[last:]
    out.append(escape(rest) if escape else rest)
    return "".join(out)


def _one(match: re.Match[str], face: Face) -> str:
    found = OPTIONS.get(match.group(1))
    if found is None:
        return match.group(0)
    value = match.group(2)
    if face == "cli":
        return found.cli(value)
    if face == "markdown":
        return f"`{found.cli(value)}`"
    return found.app(value, markup=face == "app")


def render_data(data: Any, face: Face = "cli") -> Any:
    """Every string in a JSON-like value rendered (what ``--json`` prints)."""
    if isinstance(data, str):
        return render(data, face) if "{option:" in data else data
    if isinstance(data, dict):
        return {k: render_data(v, face) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [render_data(v, face) for v in data]
    return data
