"""Kernel side: a model fitted on what transformers the notebook fitted apart produced (a scaler, an
imputer, an encoder kept in their own variables) ships with those transformers, as one Pipeline.

Data scientists often write ``X_train_s = scaler.fit_transform(X_train)`` and then
``clf.fit(X_train_s, y_train)``. ``clf`` alone takes scaled rows; served alone it would answer raw
rows wrongly, and checks run on raw rows would certify it. The evidence needed before composing is
deliberately narrow, so that a scaler fitted for a plot never gets glued to a model trained on raw rows:

1. the notebook's code fits the model on a variable or on ``T.transform(...)``/``T.fit_transform(...)``
   (its last ``fit`` by cell order, read from the cells' source);
2. the rows of that input are rows of ``T.transform(A)`` for a fitted transformer ``T`` (no ``predict``,
   not part of the model) and another 2-D variable ``A`` of the notebook, and ``T`` changes them.

Chains (an imputer, then a scaler, then PCA) are searched breadth first from the notebook's variables,
so steps written back into ``X_train`` (no variable holds the imputed rows any more) are found too. Rows
are compared as float32 bytes, so the same row transformed in another batch still matches.
"""

from __future__ import annotations

import ast
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from handoff.kernel_models import cell_ref, is_fitted, is_model, native_library, parts_of

#: Transform at most this many rows of a candidate raw input (larger inputs are not looked at).
MAX_ROWS = 200_000
#: Rows of the model's input compared, and the share of them that must be found in ``T(A)``.
PROBE_ROWS = 50
MATCH_SHARE = 0.9
#: Transformers chained before the model, at most, and the time spent looking for them (a slow
#: transformer, e.g. a KNNImputer over many rows, must not hold the build).
MAX_STEPS = 5
SEARCH_SECONDS = 20.0
_FITS = ("fit", "fit_transform", "fit_predict")
_TRANSFORMS = ("transform", "fit_transform")


@dataclass
class Composition:
    """The pipeline to ship, the transformers' variable names in order, why, and the notebook's
    variables that hold transformed rows (never a raw input for evaluation or the input example)."""

    model: Any
    steps: list[str]
    evidence: str
    transformed: set[str]


def compose(
    model: Any, name: str | None, namespace: dict[str, Any], cells: Iterable[tuple[int, ast.AST]]
) -> Composition | None:
    """The model ``name`` (``model``: what ships) preceded by the transformers it was fitted after, or
    ``None`` when the notebook's code and data do not show any (see the module docstring)."""
    if name is None or "sklearn" not in sys.modules or native_library(model) is not None:
        return None
    if not callable(getattr(model, "fit", None)):
        return None
    fitted = _last_fit(name, cells)
    if fitted is None:
        return None
    count, argument = fitted
    inside = parts_of(model)
    transformers = {
        key: value
        for key, value in namespace.items()
        if id(value) not in inside and value is not model and _is_transformer(value)
    }
    if not transformers:
        return None
    direct = _direct_call(argument, transformers, namespace)
    target = direct[1] if direct else argument.id if isinstance(argument, ast.Name) else None
    if target is None or target not in namespace:
        return None
    unused = {k: v for k, v in transformers.items() if direct is None or k != direct[0]}
    chain = _chain_to(namespace[target], unused, {k: v for k, v in namespace.items() if k != target})
    if direct is not None:
        applied = _apply(transformers[direct[0]], namespace[target])
        if applied is None:
            return None
        chain = (chain or _Chain(target, [], namespace[target], [])).then(direct[0], *applied)
    if chain is None or not _takes(model, chain.outputs[-1]):
        return None
    from sklearn.pipeline import Pipeline

    parts = [*((step, transformers[step]) for step in chain.steps), (name, model)]
    pipeline = Pipeline([(key.replace("__", "_"), part) for key, part in parts])  # "__" is Pipeline's separator
    rows = chain.source
    for step in chain.steps:
        rows = f"{step}.transform({rows})"
    evidence = f"{name} was fitted in {cell_ref(count)} on {ast.unparse(argument)}, rows of {rows}"
    return Composition(pipeline, chain.steps, evidence, _transformed(chain.steps, transformers, namespace))


@dataclass
class _Chain:
    """``steps`` (transformer names) applied in turn to the variable ``source``: the last output as it
    came (``value``, the next step's input) and each output as compared (``outputs``)."""

    source: str
    steps: list[str]
    value: Any
    outputs: list[_Rows]

    def then(self, step: str, value: Any, rows: _Rows) -> _Chain:
        return _Chain(self.source, [*self.steps, step], value, [*self.outputs, rows])


def _is_transformer(value: Any) -> bool:
    try:
        return callable(getattr(value, "transform", None)) and not is_model(value) and is_fitted(value)
    except Exception:  # exotic objects may raise on attribute access
        return False


def _last_fit(name: str, cells: Iterable[tuple[int, ast.AST]]) -> tuple[int, ast.expr] | None:
    """The first argument of the last ``name.fit(X, ...)`` (or ``name = Est().fit(X, ...)``) the notebook ran."""
    last: tuple[tuple[int, int, int], int, ast.expr] | None = None
    for count, tree in cells:
        for node in ast.walk(tree):
            call = _fit_of(node, name)
            if call is not None and call.args:
                where = (count, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
                if last is None or where > last[0]:
                    last = (where, count, call.args[0])
    return (last[1], last[2]) if last is not None else None


def _fit_of(node: ast.AST, name: str) -> ast.Call | None:
    """``node`` as a call that fits ``name``: ``name.fit(...)`` or ``name = <anything>.fit(...)``."""
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
        func = node.value.func
        named = any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        return node.value if named and isinstance(func, ast.Attribute) and func.attr in _FITS else None
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _FITS:
            return node if isinstance(func.value, ast.Name) and func.value.id == name else None
    return None


def _direct_call(argument: ast.expr, transformers: dict[str, Any], namespace: dict[str, Any]) -> tuple[str, str] | None:
    """``(T, A)`` of ``model.fit(T.transform(A), ...)``: the code itself names the transformer and its input."""
    if (
        isinstance(argument, ast.Call)
        and isinstance(argument.func, ast.Attribute)
        and argument.func.attr in _TRANSFORMS
        and isinstance(argument.func.value, ast.Name)
        and argument.func.value.id in transformers
        and argument.args
        and isinstance(argument.args[0], ast.Name)
        and argument.args[0].id in namespace
    ):
        return argument.func.value.id, argument.args[0].id
    return None


def _chain_to(target: Any, transformers: dict[str, Any], namespace: dict[str, Any]) -> _Chain | None:
    """The shortest chain of transformers that, applied to a variable of ``namespace``, gives rows of
    which ``target``'s are (at the same length, from the smallest variable: X_train before the X it was
    split from). Breadth first, so ``X = imputer.fit_transform(X); X = scaler.fit_transform(X)``, where
    no variable holds the imputed rows any more, is found too."""
    probe = _probe(target)
    if probe is None:
        return None
    frontier = [_Chain(name, [], value, []) for name, value in namespace.items() if _is_2d(value)]
    deadline = time.monotonic() + SEARCH_SECONDS
    for _ in range(MAX_STEPS):
        found: list[_Chain] = []
        following: list[_Chain] = []
        for chain in frontier:
            for name, transformer in transformers.items():
                if name in chain.steps or not _fits_input(transformer, chain.value) or time.monotonic() > deadline:
                    continue
                applied = _apply(transformer, chain.value)
                if applied is None:
                    continue
                (found if applied[1].holds(probe) else following).append(chain.then(name, *applied))
        if found:
            return min(found, key=lambda c: c.outputs[-1].count)
        frontier = following
    return None


@dataclass
class _Rows:
    """A transform's output as compared: its width, its row count and each row's hash, sorted."""

    width: int
    count: int
    keys: Any

    def holds(self, probe: tuple[int, Any]) -> bool:
        """Most of the probed rows (``_probe``) are rows of this output."""
        import numpy as np

        width, keys = probe
        if width != self.width:
            return False
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return int((self.keys[at] == keys).sum()) >= MATCH_SHARE * len(keys)


def _probe(value: Any) -> tuple[int, Any] | None:
    """The width and row hashes of ``value``'s first rows, or ``None`` for anything not numeric 2-D data."""
    dense = _dense(value, PROBE_ROWS)
    return None if dense is None else (dense.shape[1], _row_keys(dense))


def _row_keys(dense: Any) -> Any:
    """A 64-bit hash of each row's float32 bits (a multiply-add over the row, wrapping), in chunks
    so that a wide output never needs a copy eight times its size."""
    import numpy as np

    width = dense.shape[1]
    multipliers = np.random.default_rng(0).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)
    words = dense.view(np.uint32)
    keys = np.empty(len(dense), dtype=np.uint64)
    step = max(1, 2**22 // max(width, 1))
    with np.errstate(over="ignore"):
        for start in range(0, len(dense), step):
            keys[start : start + step] = (words[start : start + step].astype(np.uint64) * multipliers).sum(axis=1)
    return keys


def _apply(transformer: Any, value: Any) -> tuple[Any, _Rows] | None:
    """``transformer.transform(value)`` as it comes and as compared, or ``None`` when it fails or
    changes nothing (an identity is no evidence)."""
    import numpy as np

    try:
        output = transformer.transform(value)
    except Exception:  # not this transformer's input
        return None
    dense = _dense(output, MAX_ROWS)
    if dense is None or _same(dense, value):
        return None
    return output, _Rows(dense.shape[1], dense.shape[0], np.sort(_row_keys(dense)))


def _is_2d(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and len(shape) == 2 and 0 < shape[0] <= MAX_ROWS


def _fits_input(transformer: Any, value: Any) -> bool:
    width = getattr(transformer, "n_features_in_", None)
    columns = getattr(transformer, "feature_names_in_", None)
    if width is not None and value.shape[1] != width:
        return False
    return columns is None or list(getattr(value, "columns", [])) == list(columns)


def _dense(value: Any, rows: int) -> Any:
    """The first ``rows`` rows as a 2-D float32 NumPy array, or ``None`` for anything that is not
    numeric 2-D data."""
    import numpy as np

    shape = getattr(value, "shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[0] == 0:
        return None
    try:
        head = value.iloc[:rows] if hasattr(value, "iloc") else value[:rows]
        if hasattr(head, "toarray"):  # a SciPy sparse matrix
            head = head.toarray()
        array = np.asarray(head, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(array.astype(np.float32))


def _same(output: Any, value: Any) -> bool:
    """The transform left the first rows as they were."""
    import numpy as np

    raw = _dense(value, PROBE_ROWS)
    head = output[:PROBE_ROWS]
    return raw is not None and raw.shape == head.shape and bool(np.array_equal(raw, head, equal_nan=True))


def _takes(model: Any, output: Any) -> bool:
    width = getattr(model, "n_features_in_", None)
    return width is None or width == output.width


def _transformed(steps: list[str], transformers: dict[str, Any], namespace: dict[str, Any]) -> set[str]:
    """The variables holding rows that the chain's steps made from any variable (``X_test_scaled`` as
    well as the ``X_train_scaled`` the model was fitted on): transformed data, never a raw input."""
    found: set[str] = set()
    probes = {name: probe for name, value in namespace.items() if (probe := _probe(value)) is not None}
    for source, value in namespace.items():
        for step in steps:
            if not _is_2d(value) or not _fits_input(transformers[step], value):
                break
            applied = _apply(transformers[step], value)
            if applied is None:
                break
            value = applied[0]
            found |= {name for name, probe in probes.items() if name != source and applied[1].holds(probe)}
    return found
