"""Output limits: cap what a notebook prints, per cell and in total, while it runs.

Without a cap a cell printing 100 MB makes a 100 MB executed notebook and well over 1 GB of memory
in the building process: nbclient keeps every output message as a ``NotebookNode`` and papermill
re-serializes the whole notebook after each cell. Cutting after the run is too late for memory, so
the cut happens where outputs arrive, in nbclient's ``output()``: up to the limit outputs are kept
as usual (the head); past it stream text only updates a bounded tail buffer, rich outputs are
counted and dropped, and when the cell ends one marker line and the tail are appended. Error
outputs are always kept (they say why a build failed). A cap is not a failure: the build goes on,
and each cut is reported so the build can warn, naming the cell.

The papermill engine ``handoff`` (registered on import) runs notebooks with this client;
``papermill.execute_notebook(..., engine_name=ENGINE_NAME, output_budget=OutputBudget(limits))``.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import math
import weakref
from dataclasses import dataclass
from typing import Any

import nbformat
import papermill.execute
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output, output_from_msg
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.iorw import papermill_io
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

from handoff.errors import OptionError

ENGINE_NAME = "handoff"
MB = 1_000_000
#: The most stream text kept after the marker (the last lines are usually the interesting ones).
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class OutputLimits:
    """How much output the executed notebook keeps.

    Attributes:
        cell_bytes: Per cell, in bytes of output text (UTF-8; base64 for images).
        total_bytes: For the whole notebook.
    """

    cell_bytes: int = 5 * MB
    total_bytes: int = 50 * MB

    @classmethod
    def from_mb(cls, cell_mb: float, total_mb: float) -> OutputLimits:
        """Limits given in MB (10**6 bytes), as the CLI and ``BuildOptions`` take them."""
        for name, value in (("max_cell_output_mb", cell_mb), ("max_output_mb", total_mb)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise OptionError(f"{name} must be a positive number of MB, got {value!r}")
        return cls(cell_bytes=int(cell_mb * MB), total_bytes=int(total_mb * MB))


@dataclass(frozen=True)
class OutputCut:
    """One cell whose outputs were cut.

    Attributes:
        cell_index: The cell's index in the executed notebook.
        cut_bytes: Output left out (stream text and dropped rich outputs).
        dropped_outputs: Rich outputs (images, tables, results) left out whole.
        scope: ``per-cell`` or ``total``: the limit that applied.
        limit_bytes: That limit.
    """

    cell_index: int
    cut_bytes: int
    dropped_outputs: int
    scope: str
    limit_bytes: int

    def describe(self) -> str:
        """``9.3 MB of output cut by handoff (per-cell limit 5 MB)``."""
        rich = (
            f"; {self.dropped_outputs} image{'s' * (self.dropped_outputs != 1)} or other rich outputs dropped"
            if self.dropped_outputs
            else ""
        )
        return (
            f"{_human(self.cut_bytes)} of output cut by handoff ({self.scope} limit {_human(self.limit_bytes)}{rich})"
        )

    def marker(self) -> str:
        return f"… {self.describe()} …\n"


class OutputBudget:
    """What one run has kept so far, and the cuts it made; shared by the client and its caller."""

    def __init__(self, limits: OutputLimits | None = None) -> None:
        self.limits = limits or OutputLimits()
        self.used = 0
        self.cuts: list[OutputCut] = []

    def open_cell(self, cell_index: int) -> _CellOutputs:
        remaining = max(0, self.limits.total_bytes - self.used)
        if remaining < self.limits.cell_bytes:
            return _CellOutputs(cell_index, remaining, "total", self.limits.total_bytes)
        return _CellOutputs(cell_index, self.limits.cell_bytes, "per-cell", self.limits.cell_bytes)

    def close_cell(self, state: _CellOutputs, outputs: list[NotebookNode]) -> None:
        """Append the marker, the tail and any late error to ``outputs``; count what was kept."""
        self.used += state.used
        if not state.overflow:
            return
        tail = state.final_tail()
        cut = OutputCut(
            state.cell_index, state.overflow_bytes - state.tail_size, state.dropped, state.scope, state.limit_bytes
        )
        outputs.append(new_output("stream", name="stderr", text=cut.marker()))
        for name, chunks in itertools.groupby(tail, key=lambda chunk: chunk[0]):
            outputs.append(new_output("stream", name=name, text="".join(text for _, text in chunks)))
        outputs.extend(state.late)
        self.used += state.tail_size
        self.cuts.append(cut)


class _CellOutputs:
    """One cell's output accounting: the head kept in the cell, a bounded tail, what was dropped."""

    def __init__(self, cell_index: int, limit: int, scope: str, limit_bytes: int) -> None:
        self.cell_index, self.scope, self.limit_bytes = cell_index, scope, limit_bytes
        self.tail_budget = min(limit // 4, TAIL_BYTES)
        self.head_budget = limit - self.tail_budget
        self.late: list[NotebookNode] = []  # error outputs that arrive after the cut
        self.reset()

    def reset(self) -> None:
        """The cell's outputs were cleared (``clear_output``): nothing counts any more."""
        self.used = 0
        self.overflow = False
        self.overflow_bytes = 0  # arrived after the cut: kept in the tail or dropped
        self.dropped = 0
        self.tail: collections.deque[tuple[str, str]] = collections.deque()
        self.tail_size = 0
        self.mid_line = False  # the tail starts inside a line (its start was cut off)

    def fits(self, size: int) -> bool:
        return not self.overflow and self.used + size <= self.head_budget

    def push_tail(self, name: str, text: str) -> None:
        """Keep the last ``tail_budget`` bytes; memory stays under about twice that plus one message."""
        size = _size(text)
        self.overflow_bytes += size
        if self.tail_budget <= 0 or not text:
            return
        self.tail.append((name, text))
        self.tail_size += size
        while len(self.tail) > 1 and self.tail_size - _size(self.tail[0][1]) >= self.tail_budget:
            dropped = self.tail.popleft()[1]
            self.tail_size -= _size(dropped)
            self.mid_line = not dropped.endswith("\n")
        if self.tail_size > 2 * self.tail_budget:
            self._trim_first(self.tail_size - self.tail_budget)

    def final_tail(self) -> list[tuple[str, str]]:
        """The tail, exactly within budget and starting at a line boundary."""
        if self.tail and self.tail_size > self.tail_budget:
            self._trim_first(self.tail_size - self.tail_budget)
        while self.tail and self.mid_line:  # drop the rest of the line whose start was cut off
            text = self.tail[0][1]
            newline = text.find("\n")
            if newline < 0:
                self.tail_size -= _size(self.tail.popleft()[1])
            else:
                self._trim_first(_size(text[: newline + 1]))
        return list(self.tail)

    def _trim_first(self, excess: int) -> None:
        name, text = self.tail[0]
        kept = _drop_bytes(text, excess)
        self.tail[0] = (name, kept)
        self.tail_size -= _size(text) - _size(kept)
        if len(kept) < len(text):
            self.mid_line = text[len(text) - len(kept) - 1] != "\n"


class CappedNotebookClient(PapermillNotebookClient):  # type: ignore[misc]  # papermill is untyped (Any)
    """papermill's client with output limits applied as messages arrive."""

    clear_before_next_output: bool  # nbclient's, set in its reset_execution_trackers()

    def __init__(self, nb_man: Any, km: Any = None, output_budget: OutputBudget | None = None, **kw: Any) -> None:
        super().__init__(nb_man, km=km, **kw)
        self.output_budget = output_budget or OutputBudget()
        self._cell: _CellOutputs | None = None

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, execution_count: int | None = None, store_history: bool = True
    ) -> NotebookNode:
        self._cell = self.output_budget.open_cell(cell_index)
        try:
            executed: NotebookNode = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            return executed
        finally:  # also on an error or a timeout: the partly executed notebook is kept too
            state, self._cell = self._cell, None
            self.output_budget.close_cell(state, cell.get("outputs", []))

    execute_cell = run_sync(async_execute_cell)

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        state = self._cell
        if state is None or self.output_hook_stack[msg["parent_header"].get("msg_id")]:
            return self._kept(outs, msg, display_id, cell_index)  # e.g. an Output widget's messages
        if self.clear_before_next_output:  # a clear_output(wait=True) takes effect now
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
            state.reset()
        msg_type, content = msg["msg_type"], msg["content"]
        if msg_type == "error":
            if not state.overflow:
                return self._kept(outs, msg, display_id, cell_index)
            out: NotebookNode = output_from_msg(msg)
            state.late.append(out)
            return out
        if msg_type == "stream":
            text = content.get("text", "")
            size = _size(text)
            if state.fits(size):
                state.used += size
                return self._kept(outs, msg, display_id, cell_index)
            if not state.overflow:
                head = _head(text, state.head_budget - state.used)
                if head:
                    state.used += _size(head)
                    outs.append(new_output("stream", name=content.get("name", "stdout"), text=head))
                    text = text[len(head) :]
                state.overflow = True
            state.push_tail(content.get("name", "stdout"), text)
            return None
        size = _data_size(content)
        if state.fits(size):
            state.used += size
            return self._kept(outs, msg, display_id, cell_index)
        state.overflow = True
        state.overflow_bytes += size
        state.dropped += 1
        return None

    def _kept(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        """nbclient's own handling of the output message: kept in the cell as usual."""
        out: NotebookNode | None = super().output(outs, msg, display_id, cell_index)
        return out

    def clear_output(self, outs: list[NotebookNode], msg: dict[str, Any], cell_index: int) -> None:
        super().clear_output(outs, msg, cell_index)
        if self._cell is not None and not outs:
            self._cell.reset()


class CappedEngine(NBClientEngine):  # type: ignore[misc]  # papermill is untyped (Any)
    """papermill's nbclient engine, running ``CappedNotebookClient``."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        output_budget: OutputBudget | None = None,
        **kwargs: Any,
    ) -> Any:
        # The same argument handling as NBClientEngine's, which names its client class inline.
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        nb_man.save = functools.partial(_save_unsplit, nb_man)
        key = id(nb_man.nb)
        _RUN_HERE[key] = weakref.ref(nb_man.nb, lambda _, key=key: _RUN_HERE.pop(key, None))  # type: ignore[misc]
        client = CappedNotebookClient(nb_man, output_budget=output_budget, **final_kwargs)
        client.owns_km = True  # a kernel started ahead (``km=``) is this run's alone: shut it down like its own
        return client.execute()


#: Notebooks this engine ran (by id, with a weak reference to tell a reused id apart).
_RUN_HERE: dict[int, weakref.ReferenceType[NotebookNode]] = {}
_papermill_write_ipynb = papermill.execute.write_ipynb


def _save_unsplit(nb_man: Any, **_: Any) -> None:
    """papermill's save after each cell, with each output text as one JSON string, not one per line.

    For short lines the split form is 2.5x bigger on disk, and json's indenting encoder holds about
    20x the text in memory while writing it: +1 GB and 20 s for a notebook at the 50 MB total
    limit in 8-byte lines, against +0.1 GB and 0.2 s unsplit.
    """
    if nb_man.output_path:
        papermill_io.write(nbformat.writes(nb_man.nb, split_lines=False), nb_man.output_path)
    nb_man.last_save_time = nb_man.now()


def _write_ipynb(nb: NotebookNode, path: str) -> None:
    """papermill.execute's final writes (after the engine returns): unsplit for notebooks run here."""
    ref = _RUN_HERE.get(id(nb))
    if ref is not None and ref() is nb:
        papermill_io.write(nbformat.writes(nb, split_lines=False), path)
    else:
        _papermill_write_ipynb(nb, path)


papermill_engines.register(ENGINE_NAME, CappedEngine)
papermill.execute.write_ipynb = _write_ipynb  # other engines: unchanged


def _size(text: str) -> int:
    """Size in UTF-8 bytes; ``isascii`` is O(1) on CPython, so the common case costs nothing."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _data_size(content: dict[str, Any]) -> int:
    return sum(
        _size(v) if isinstance(v, str) else len(json.dumps(v, default=str))
        for v in (content.get("data") or {}).values()
    )


def _head(text: str, room: int) -> str:
    """The longest start of ``text`` within ``room`` bytes, ending at a line break when there is one."""
    if room <= 0:
        return ""
    head = text[:room] if text.isascii() else text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    newline = head.rfind("\n")
    return head[: newline + 1] if newline >= 0 else head


def _drop_bytes(text: str, count: int) -> str:
    """``text`` without its first ``count`` bytes (and no broken character)."""
    if text.isascii():
        return text[count:]
    return text.encode("utf-8", "surrogatepass")[count:].decode("utf-8", "ignore")


def _human(size: int) -> str:
    if size >= MB:
        return f"{size / MB:.1f} MB" if size % MB else f"{size // MB} MB"
    if size >= 1000:
        return f"{size / 1000:.1f} KB"
    return f"{size} bytes"
