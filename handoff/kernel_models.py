"""Kernel side: every fitted model the notebook produced, and the rule that picks the one to ship.

Runs inside the notebook's kernel after its last cell (called by ``kernel_capture``), so whatever
it loads (a pickle the notebook wrote, a model it logged to MLflow) is loaded where the notebook's
own code already ran, never in handoff's process. Claims, strongest first:

1. ``handoff.log_model(obj)``;
2. ``--model-var NAME``;
3. a model the notebook logged with ``mlflow.<flavor>.log_model`` (its newest);
4. a model file the notebook wrote in its working directory (its newest; sniffed by content);
5. a fitted estimator left in the notebook's variables: the *outermost* one (never a part of
   another fitted candidate, decided by object identity), then a preferred name, then the newest.

Cell references in messages are written as ``⟨count:N⟩`` (the kernel knows execution counts, not
notebook positions); the parent replaces them with the cell's position in the notebook.
"""

from __future__ import annotations

import os
import sys
import types
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Variable names taken first, in this order, when several unrelated fitted models are in the namespace.
PREFERRED_MODEL_NAMES = (
    "model",
    "pipeline",
    "pipe",
    "clf",
    "classifier",
    "regressor",
    "reg",
    "estimator",
    "best_model",
    "final_model",
)
#: Model files larger than this are skipped (with a warning), never loaded.
MAX_MODEL_FILE_BYTES = 1 << 30
#: Stop sniffing the working directory after this many files.
MAX_FILES_SCANNED = 5_000
#: Objects of these top-level packages are data, not containers of estimators: not walked.
_OPAQUE_PACKAGES = frozenset({"numpy", "pandas", "scipy", "polars", "pyarrow"})
_MAX_CHILDREN = 10_000
_MAX_WALK = 200_000
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), range)


class CaptureProblem(Exception):
    """A capture failure with a message meant for the user."""


def cell_ref(count: int | None) -> str:
    return f"⟨count:{count}⟩" if count is not None else "an unknown cell"


def type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


#: Fitted models of other libraries that have ``predict`` but no scikit-learn ``fit``, by the class (or a
#: base class) they are instances of. Recognised by name: the core never imports these libraries.
NATIVE_MODEL_CLASSES = {
    "xgboost.core.Booster": "xgboost",
    "lightgbm.basic.Booster": "lightgbm",
    "statsmodels.base.wrapper.ResultsWrapper": "statsmodels",
    "statsmodels.base.model.Results": "statsmodels",
    "torch.nn.modules.module.Module": "torch",
}
#: statsmodels' unfitted models have ``fit`` and ``predict`` too: their results object is the model.
_STATSMODELS_MODEL = "statsmodels.base.model.Model"


def _class_paths(value: Any) -> list[str]:
    try:
        return [f"{k.__module__}.{k.__qualname__}" for k in type(value).__mro__]
    except Exception:
        return []


def native_library(value: Any) -> str | None:
    """``xgboost``, ``lightgbm``, ``statsmodels`` or ``torch`` for a fitted model of that library that is
    not a scikit-learn-style estimator (a Booster, a results object, a network), else ``None``."""
    return next((NATIVE_MODEL_CLASSES[p] for p in _class_paths(value) if p in NATIVE_MODEL_CLASSES), None)


def is_model(value: Any) -> bool:
    """An estimator (``fit`` and ``predict``) or another library's fitted model (``native_library``)."""
    try:
        if native_library(value) is not None:
            return True
        return callable(getattr(value, "fit", None)) and callable(getattr(value, "predict", None))
    except Exception:  # exotic objects (lazy proxies) may raise on attribute access
        return False


def is_fitted(value: Any) -> bool:
    library = native_library(value)
    if library == "torch":  # a network is a model once it has weights (a loss function has none)
        try:
            return any(True for _ in value.parameters())
        except Exception:
            return False
    if library is not None:  # boosters and statsmodels results exist only once trained
        return True
    if _STATSMODELS_MODEL in _class_paths(value):
        return False
    if callable(getattr(type(value), "is_fitted", None)) and type(value).__module__.startswith("catboost"):
        try:
            return bool(value.is_fitted())
        except Exception:
            return False
    if "sklearn" in sys.modules:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(value)
            return True
        except (NotFittedError, TypeError, AttributeError, ValueError):
            return False
    return any(k.endswith("_") and not k.startswith("_") for k in getattr(value, "__dict__", {}))


def named_columns(model: Any, value: Any) -> Any:
    """``value`` as a model that knows its columns by name takes it: a DataFrame holding the model's
    ``feature_names_in_`` among other columns gives just those, in the model's order (the notebook
    fitted on ``train[features]``); anything else is returned as it is."""
    names = getattr(model, "feature_names_in_", None)
    columns = getattr(value, "columns", None)
    if names is None or columns is None or len(columns) <= len(names) or not set(names) <= set(columns):
        return value
    try:
        return value[list(names)]
    except Exception:  # a frame-like object without pandas' column selection
        return value


def model_input(model: Any, X: Any) -> Any:
    """``X`` as the saved model takes it: a PyTorch network gets a NumPy array of its weights' dtype
    (its MLflow signature is taken from such an example); every other model takes ``X`` as it is."""
    if native_library(model) != "torch":
        return X
    import numpy as np

    if hasattr(X, "detach"):  # a tensor
        X = X.detach().cpu().numpy()
    weights = next(iter(model.parameters()), None)
    dtype = str(weights.dtype).removeprefix("torch.") if weights is not None else "float32"
    return np.asarray(X, dtype=dtype)


def predict(model: Any, X: Any) -> Any:
    """The model's answers for ``X``, as its MLflow pyfunc gives them: ``model.predict(X)``; an XGBoost
    Booster predicts on a ``DMatrix``; a PyTorch network is called in eval mode without gradients."""
    library = native_library(model)
    if library == "xgboost":
        import xgboost

        return model.predict(xgboost.DMatrix(X))
    if library == "torch":
        import torch

        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model(torch.from_numpy(model_input(model, X)))
        finally:
            model.train(training)
        return output.detach().cpu().numpy()
    return model.predict(X)


@dataclass
class Candidate:
    """One fitted model the notebook produced.

    Attributes:
        name: The variable, file (``model.joblib``) or MLflow model name.
        kind: ``log_model``, ``variable``, ``mlflow`` or ``file``.
        obj: The object itself.
        count: Execution count of the cell that made it (``None`` when unknown).
        part_of: For a variable that is a part of another candidate: ``outer.path.to.it``.
        note: Where it came from, for people (``written in cell 4``).
    """

    name: str
    kind: str
    obj: Any = field(repr=False)
    count: int | None = None
    part_of: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": type_name(self.obj),
            "count": self.count,
            "part_of": self.part_of,
            "note": self.note,
        }


@dataclass
class Choice:
    """The model to ship, why, and the notebook's model the shipped artifact must reproduce (the
    enclosing model when an explicit choice named a part of it; else the shipped model itself)."""

    candidate: Candidate
    model: Any
    source: str
    rule: str
    packaged: str
    reference: Any
    warnings: list[str] = field(default_factory=list)


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for i, (key, value) in enumerate(obj.items()):
            if i >= _MAX_CHILDREN:
                return
            yield f"[{key!r}]", value
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj[:_MAX_CHILDREN]):
            yield f"[{i}]", value
    elif (
        not isinstance(obj, (types.ModuleType, type, types.FunctionType, types.MethodType))
        and type(obj).__module__.split(".")[0] not in _OPAQUE_PACKAGES
    ):
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            yield from ((f".{k}", v) for k, v in list(attrs.items()))


def parts_of(root: Any) -> dict[int, str]:
    """``id -> attribute path`` of every object reachable from ``root`` (pipeline steps, a search's
    best estimator, ensemble members, wrapped estimators, ...), walking containers and attributes."""
    found: dict[int, str] = {}
    stack = [(root, "")]
    seen = {id(root)}
    while stack and len(seen) < _MAX_WALK:
        obj, path = stack.pop()
        for key, child in _children(obj):
            if isinstance(child, _LEAVES) or id(child) in seen:
                continue
            seen.add(id(child))
            found[id(child)] = path + key
            stack.append((child, path + key))
    return found


def mark_parts(candidates: list[Candidate]) -> None:
    """Set ``part_of`` on every variable candidate contained in another candidate (by identity)."""
    variables = [c for c in candidates if c.kind == "variable"]
    for outer in variables:
        inside = parts_of(outer.obj)
        for inner in variables:
            if inner is not outer and inner.part_of is None and id(inner.obj) in inside:
                inner.part_of = f"{outer.name}{inside[id(inner.obj)]}"


def deployable(model: Any) -> tuple[Any, str]:
    """A hyper-parameter search ships its refit ``best_estimator_`` (the same predictions, without
    the search machinery); anything else ships as it is."""
    best = getattr(model, "best_estimator_", None) if hasattr(model, "cv_results_") else None
    return (best, ".best_estimator_") if best is not None and is_model(best) else (model, "")


def _enclosing(chosen: Candidate, variables: list[Candidate], how: str) -> tuple[Candidate | None, list[str]]:
    """The candidate an explicitly chosen part belongs to, and the warning that says so."""
    if chosen.part_of is None or (chosen.part_of.count(".") == 1 and chosen.part_of.endswith(".best_estimator_")):
        return None, []  # a search's refit best estimator is what the search itself would ship
    name = chosen.part_of.split(".")[0].split("[")[0]
    return next((v for v in variables if v.name == name), None), [
        f"{how} names {chosen.name!r}, which is a part of {name!r} ({chosen.part_of}): the package holds "
        f"that part alone, without the rest of {name!r}"
    ]


def choose(
    variables: list[Candidate],
    logged: Candidate | None,
    model_var: str | None,
    namespace: dict[str, Any],
    mlflow_models: list[Candidate],
    files: list[Candidate],
) -> Choice:
    """Apply the documented rule (module docstring) to the candidates."""
    mark_parts([*([logged] if logged else []), *variables])
    if logged is not None:
        twin = next((v for v in variables if v.obj is logged.obj), None)
        if twin is not None:
            logged.name, logged.count, logged.part_of = twin.name, twin.count, twin.part_of
        return _pick(
            logged, "log_model", "handoff.log_model() was called", *_enclosing(logged, variables, "handoff.log_model()")
        )
    if model_var:
        if model_var not in namespace:
            seen = ", ".join(c.name for c in variables) or "none"
            raise CaptureProblem(
                f"{model_var!r}: no such variable in the notebook (the model variable chosen with "
                f"{{option:model_var}}; fitted models seen: {seen})"
            )
        chosen = next((v for v in variables if v.name == model_var), None)
        if chosen is None:
            value = namespace[model_var]
            if not is_model(value) and not callable(getattr(value, "predict", None)):
                raise CaptureProblem(
                    f"the model variable {model_var!r} ({{option:model_var}}) is a {type_name(value)}, "
                    "which has no predict"
                )
            chosen = Candidate(model_var, "variable", value)
        return _pick(
            chosen,
            "model_var",
            "named with {option:model_var}",
            *_enclosing(chosen, variables, "{option:model_var}"),
        )
    if mlflow_models:
        chosen = mlflow_models[-1]
        return _pick(chosen, "mlflow", f"the model the notebook logged with MLflow ({chosen.note})")
    if files:
        chosen = max(files, key=lambda c: c.count or 0)
        return _pick(chosen, "file", f"the model file the notebook saved ({chosen.note}); files win over variables")
    outermost = [v for v in variables if v.part_of is None] or variables
    if not outermost:
        raise CaptureProblem("")  # the caller explains what was seen instead
    for name in PREFERRED_MODEL_NAMES:
        chosen = next((v for v in outermost if v.name == name), None)
        if chosen is not None:
            return _pick(chosen, "auto", f"preferred variable name {name!r} (outermost fitted model)")
    order = [v.name for v in outermost]
    chosen = max(outermost, key=lambda v: (v.count or 0, order.index(v.name)))
    rule = "the most recently fitted model"
    inner = [v.name for v in variables if v.part_of]
    return _pick(chosen, "auto", rule + (f"; not {', '.join(inner)}: part of another model" if inner else ""))


def _pick(
    candidate: Candidate, source: str, rule: str, outer: Candidate | None = None, warnings: list[str] | None = None
) -> Choice:
    model, suffix = deployable(candidate.obj)
    label = candidate.name if candidate.kind != "file" else f"file {candidate.name}"
    reference = deployable(outer.obj)[0] if outer is not None else model
    return Choice(candidate, model, source, rule, label + suffix, reference, warnings or [])


# --- model files --------------------------------------------------------------------------------


def _sniff(path: Path) -> str | None:
    """``pickle``, ``joblib`` (compressed) or ``skops`` by the file's first bytes, else ``None``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                return "skops" if "schema.json" in archive.namelist() else None
        except (zipfile.BadZipFile, OSError):
            return None
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x04\x22\x4d\x18", b"ZF")) or (
        len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA)
    ):
        return "joblib"
    return None


def _new_files(workdir: Path, skip: set[str]) -> Iterator[Path]:
    """Regular files the build created in ``workdir`` (links to the user's folder are not new)."""
    scanned = 0
    for root, dirs, names in os.walk(workdir):
        dirs[:] = sorted(
            d for d in dirs if not (Path(root) == workdir and d in skip) and not os.path.islink(os.path.join(root, d))
        )
        for name in sorted(names):
            path = Path(root, name)
            if (Path(root) == workdir and name in skip) or path.is_symlink() or not path.is_file():
                continue
            scanned += 1
            if scanned > MAX_FILES_SCANNED:
                return
            yield path


def _load_file(path: Path, fmt: str) -> Any:
    if fmt == "skops":
        import skops.io

        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    import joblib  # reads plain pickles, cloudpickles and joblib files alike

    return joblib.load(path)


def model_files(workdir: Path, skip: set[str], written: dict[str, int]) -> tuple[list[Candidate], list[str]]:
    """Fitted models in files the notebook wrote, and a warning per model-looking file skipped."""
    found, warnings = [], []
    for path in _new_files(workdir, skip):
        fmt = _sniff(path)
        if fmt is None:
            continue
        rel = path.relative_to(workdir).as_posix()
        count = written.get(str(path))
        where = f"written in {cell_ref(count)}" if count is not None else "written by the notebook"
        size = path.stat().st_size
        if size > MAX_MODEL_FILE_BYTES:
            warnings.append(
                f"model file {rel} skipped: {size / 2**20:.0f} MiB is over the "
                f"{MAX_MODEL_FILE_BYTES / 2**20:.0f} MiB limit for loading it"
            )
            continue
        try:
            obj = _load_file(path, fmt)
        except Exception as exc:  # a broken or hostile pickle is a finding, not a crash
            warnings.append(f"model file {rel} skipped: it does not load ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if not is_model(obj):
            warnings.append(f"file {rel} skipped: it holds a {type_name(obj)}, not a model")
        elif not is_fitted(obj):
            warnings.append(f"model file {rel} skipped: the {type_name(obj)} in it is not fitted")
        else:
            found.append(Candidate(rel, "file", obj, count, note=f"from file {rel} ({fmt}) {where}"))
    return found, warnings
