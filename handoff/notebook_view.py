"""A notebook as plain display blocks, for UIs that must show outputs without executing them.

Outputs become text, images and errors only: JavaScript and raw HTML from outputs are never passed
on (an HTML table is shown through its ``text/plain`` form), so a viewer cannot run the notebook's
code in the reader's browser.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import nbformat

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Block:
    """One thing to display.

    Attributes:
        kind: ``markdown``, ``code``, ``text``, ``image`` or ``error``.
        content: Text for every kind but ``image``, whose content is the PNG/JPEG bytes.
        cell: 1-based position of the cell it belongs to.
        execution_count: For ``code`` blocks.
    """

    kind: str
    content: Any
    cell: int
    execution_count: int | None = None


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def blocks(nb: nbformat.NotebookNode) -> list[Block]:
    """The cells and their outputs, in order, as display blocks."""
    out: list[Block] = []
    for position, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "markdown":
            out.append(Block("markdown", cell.source, position))
            continue
        if cell.cell_type != "code":
            continue
        out.append(Block("code", cell.source, position, cell.get("execution_count")))
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                out.append(Block("text", _ANSI.sub("", _text(output.get("text", ""))), position))
            elif kind == "error":
                trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
                out.append(
                    Block("error", f"{output.get('ename')}: {output.get('evalue')}\n\n{trace}".strip(), position)
                )
            elif kind in ("execute_result", "display_data"):
                data = output.get("data", {})
                image = next((m for m in ("image/png", "image/jpeg") if m in data), None)
                if image:
                    out.append(Block("image", base64.b64decode(_text(data[image])), position))
                elif "text/plain" in data:
                    out.append(Block("text", _text(data["text/plain"]), position))
    return out
