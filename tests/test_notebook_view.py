"""Notebook display blocks: text, images and errors only; never JavaScript or raw HTML."""

from __future__ import annotations

import base64

import nbformat

from handoff.notebook_view import blocks
from helpers import notebook

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def test_outputs_become_safe_blocks() -> None:
    nb = notebook([("md", "# Title"), "print('hi')", "df", "plot()", "1/0"])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[2].outputs = [
        nbformat.v4.new_output(
            "execute_result",
            data={"text/html": "<table><script>alert(1)</script></table>", "text/plain": "   a\n0  1"},
            execution_count=1,
        )
    ]
    nb.cells[3].outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/png": PNG, "application/javascript": "alert(2)", "text/plain": "<Figure>"}
        )
    ]
    nb.cells[4].outputs = [
        nbformat.v4.new_output(
            "error",
            ename="ZeroDivisionError",
            evalue="division by zero",
            traceback=["\x1b[31mTraceback\x1b[0m", "ZeroDivisionError"],
        )
    ]
    got = [(b.kind, b.cell) for b in blocks(nb)]
    assert got == [
        ("markdown", 1),
        ("code", 2),
        ("text", 2),
        ("code", 3),
        ("text", 3),
        ("code", 4),
        ("image", 4),
        ("code", 5),
        ("error", 5),
    ]
    by_kind = {b.kind + str(b.cell): b.content for b in blocks(nb)}
    assert by_kind["text3"] == "   a\n0  1" and by_kind["image4"].startswith(b"\x89PNG")
    assert by_kind["error5"].startswith("ZeroDivisionError: division by zero") and "\x1b" not in by_kind["error5"]
    assert not any("alert" in str(b.content) for b in blocks(nb))
