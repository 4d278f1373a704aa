"""Kernel-side capture: the code inside the two cells handoff adds around the user's notebook.

``start()`` runs first (before the user's cells): it snapshots the loaded modules, records every
file opened for reading with an audit hook, and notes after each cell which fitted estimators
appeared. ``finish()`` runs last: it picks the model and metrics, takes an input example,
pins the environment, fingerprints the data, and writes it all to a folder the parent reads.

It is imported inside the notebook's kernel, so at import time it loads only the standard
library: whatever the notebook imports later must show up as *the notebook's* import.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import site
import sys
import traceback
import types
from numbers import Real
from pathlib import Path
from typing import Any

from handoff import notebook_api

#: Variable names taken first, in this order, when several fitted models are in the namespace.
PREFERRED_MODEL_NAMES = (
    "model", "pipeline", "pipe", "clf", "classifier", "regressor", "reg", "estimator",
    "best_model", "final_model",
)
#: Variable names taken first as the input example, in this order.
PREFERRED_DATA_NAMES = ("X_train", "x_train", "X", "X_tr", "train_X", "features", "X_test", "x_test")
#: A numeric variable is a metric when one of its ``_``-separated name parts is one of these.
METRIC_NAME_PARTS = frozenset({
    "accuracy", "acc", "f1", "precision", "recall", "auc", "rmse", "mse", "mae", "r2", "loss",
    "logloss", "mape", "rmsle", "medae", "kappa", "mcc", "score", "brier",
})
METRIC_DICT_NAMES = ("metrics", "scores")
INPUT_EXAMPLE_ROWS = 5
IGNORED_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})

_state: dict[str, Any] = {"started": False, "recording": False, "reads": [], "modules": set(),
                          "fitted": {}, "cell": 0}


def start() -> None:
    """Begin recording: loaded modules, file reads, and when each fitted model appeared."""
    if _state["started"]:
        return
    _state.update(started=True, recording=True, modules=set(sys.modules), cell=0)
    sys.addaudithook(_audit)
    shell = _shell()
    if shell is not None:
        shell.events.register("post_run_cell", _after_cell)


def finish(out_dir: str, model_var: str | None = None) -> None:
    """Capture everything the build needs into ``out_dir``; never raises (errors go in the report)."""
    _state["recording"] = False
    imported_modules = set(sys.modules) - _state["modules"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"ok": False, "error": None, "warnings": []}
    try:
        namespace = _user_namespace()
        _after_cell()
        report["metrics"], report["metrics_source"] = _metrics(namespace)
        model, report["model"] = _choose_model(namespace, model_var)
        report["model"]["task"] = _task(model)
        modules = _dump_model(model, out / "model.pkl")
        report["input_example"] = _input_example(model, namespace, out / "input_example.pkl")
        if report["input_example"] is None:
            report["warnings"].append(
                "no input example: no 2-D variable in the notebook matches the model's input features")
        report["environment"] = _environment(imported_modules, modules)
        report["data_files"] = _data_files(str(out.parent))
        report["ok"] = True
    except _CaptureProblem as problem:
        report["error"] = {"ename": "CaptureError", "detail": str(problem)}
    except Exception as exc:  # the report must be written whatever the notebook left behind
        report["error"] = {"ename": type(exc).__name__, "detail": f"{type(exc).__name__}: {exc}",
                           "traceback": traceback.format_exc()}
    (out / "capture.json").write_text(json.dumps(report, indent=2, default=str))


class _CaptureProblem(Exception):
    """A capture failure with a message meant for the user."""


def _shell() -> Any:
    try:
        return get_ipython()  # type: ignore[name-defined]  # noqa: F821 (an IPython builtin)
    except NameError:
        return None


def _user_namespace() -> dict[str, Any]:
    shell = _shell()
    namespace = shell.user_ns if shell is not None else vars(sys.modules["__main__"])
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and name not in IGNORED_NAMES
            and not isinstance(value, (types.ModuleType, type, types.FunctionType))}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _state["recording"]:
        return
    path, mode, flags = args
    if not isinstance(path, (str, bytes)):
        return
    reading = (not any(c in mode for c in "wax+")) if isinstance(mode, str) else (flags & 3) == os.O_RDONLY
    if reading:
        _state["reads"].append(os.path.abspath(os.fsdecode(path)))


def _after_cell(*_: Any) -> None:
    """Note the cell in which each fitted model (by variable and object identity) first appeared."""
    _state["cell"] += 1
    seen = _state["fitted"]
    for name, value in _user_namespace().items():
        if _is_model(value) and _is_fitted(value):
            if name not in seen or seen[name][0] != id(value):
                seen[name] = (id(value), _state["cell"])


def _is_model(value: Any) -> bool:
    try:
        return callable(getattr(value, "fit", None)) and callable(getattr(value, "predict", None))
    except Exception:  # exotic objects (lazy proxies) may raise on attribute access
        return False


def _is_fitted(value: Any) -> bool:
    if "sklearn" in sys.modules:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
        try:
            check_is_fitted(value)
            return True
        except (NotFittedError, TypeError, AttributeError, ValueError):
            return False
    return any(k.endswith("_") and not k.startswith("_") for k in getattr(value, "__dict__", {}))


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _choose_model(namespace: dict[str, Any], model_var: str | None) -> tuple[Any, dict[str, Any]]:
    """Apply the documented rule: log_model() > --model-var > preferred name > last fitted."""
    fitted = {name: value for name, value in namespace.items() if _is_model(value) and _is_fitted(value)}
    cells = {name: cell for name, (_, cell) in _state["fitted"].items()}
    candidates = [{"name": n, "type": _type_name(v), "cell": cells.get(n)} for n, v in fitted.items()]
    info: dict[str, Any] = {"candidates": candidates}
    if notebook_api.logged["model_set"]:
        model = notebook_api.logged["model"]
        names = [n for n, v in namespace.items() if v is model]
        return model, {**info, "source": "log_model", "variable": names[0] if names else None,
                       "type": _type_name(model), "rule": "handoff.log_model() was called"}
    if model_var:
        if model_var not in namespace:
            raise _CaptureProblem(f"--model-var {model_var!r}: no such variable in the notebook "
                                  f"(fitted models seen: {', '.join(fitted) or 'none'})")
        model = namespace[model_var]
        if not _is_model(model):
            raise _CaptureProblem(f"--model-var {model_var!r} is a {_type_name(model)}, which has no fit/predict")
        return model, {**info, "source": "model_var", "variable": model_var, "type": _type_name(model),
                       "rule": "named with --model-var"}
    if not fitted:
        raise _CaptureProblem(
            "no fitted model found: the notebook left no fitted estimator (an object with fit() and "
            "predict()) in its variables; call handoff.log_model(model) or name it with --model-var")
    for name in PREFERRED_MODEL_NAMES:
        if name in fitted:
            return fitted[name], {**info, "source": "auto", "variable": name, "type": _type_name(fitted[name]),
                                  "rule": f"preferred variable name {name!r}"}
    order = list(fitted)
    name = max(order, key=lambda n: (cells.get(n) or 0, order.index(n)))
    return fitted[name], {**info, "source": "auto", "variable": name, "type": _type_name(fitted[name]),
                          "rule": "the most recently fitted model"}


def _task(model: Any) -> str | None:
    """classification / regression / clustering / ..., as scikit-learn classifies the estimator."""
    if "sklearn" not in sys.modules:
        return None
    from sklearn import base

    for name in ("classifier", "regressor", "clusterer", "outlier_detector"):
        check = getattr(base, f"is_{name}", None)
        try:
            if check is not None and check(model):
                return {"classifier": "classification", "regressor": "regression", "clusterer": "clustering",
                        "outlier_detector": "outlier detection"}[name]
        except Exception:  # third-party estimators may not implement tags
            continue
    return None


def _as_metric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _metrics(namespace: dict[str, Any]) -> tuple[dict[str, float], str]:
    """Explicit log_metric() calls win; otherwise a ``metrics``/``scores`` dict and metric-named numbers."""
    if notebook_api.logged["metrics"]:
        return dict(notebook_api.logged["metrics"]), "log_metric"
    found: dict[str, float] = {}
    for name, value in namespace.items():
        parts = set(name.lower().split("_"))
        if parts & METRIC_NAME_PARTS and (number := _as_metric(value)) is not None:
            found[name] = number
    for dict_name in METRIC_DICT_NAMES:
        table = namespace.get(dict_name)
        if isinstance(table, dict):
            found.update({str(k): n for k, v in table.items() if (n := _as_metric(v)) is not None})
    return found, ("namespace" if found else "none")


class _ModuleRecorder:
    """Wraps cloudpickle so that every object's defining module is noted while pickling."""

    def __init__(self) -> None:
        import cloudpickle

        modules: set[str] = set()

        class Pickler(cloudpickle.CloudPickler):
            def persistent_id(self, obj: Any) -> None:
                if isinstance(obj, types.ModuleType):
                    modules.add(obj.__name__)
                else:
                    kind = obj if isinstance(obj, type) else type(obj)
                    modules.add(getattr(kind, "__module__", None) or "builtins")
                return None

        self.pickler_class = Pickler
        self.modules = modules


def _dump_model(model: Any, path: Path) -> set[str]:
    """Pickle the model with cloudpickle (classes defined in the notebook travel by value)."""
    recorder = _ModuleRecorder()
    try:
        with open(path, "wb") as handle:
            recorder.pickler_class(handle, protocol=5).dump(model)
    except Exception as exc:
        raise _CaptureProblem(f"the model ({_type_name(model)}) cannot be pickled: {type(exc).__name__}: {exc}") from exc
    return recorder.modules


def _input_example(model: Any, namespace: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """A few rows of a variable shaped like the model's training input.

    Candidates are 2-D variables whose width is the model's ``n_features_in_`` (and whose columns
    are its ``feature_names_in_``, when it has them); a model that declares neither (e.g. a
    pipeline starting with a custom transformer) takes the first 2-D variable it can predict on.
    Preferred names (``X_train``, ``X``, ...) come first, then the longest.
    """
    import pickle

    n_features = getattr(model, "n_features_in_", None)
    names = getattr(model, "feature_names_in_", None)
    matches = []
    for name, value in namespace.items():
        shape = getattr(value, "shape", None)
        if not isinstance(shape, tuple) or len(shape) != 2 or shape[0] == 0:
            continue
        if n_features is not None and shape[1] != n_features:
            continue
        if names is not None and list(getattr(value, "columns", [])) != list(names):
            continue
        matches.append(name)
    rank = {n: i for i, n in enumerate(PREFERRED_DATA_NAMES)}
    for name in sorted(matches, key=lambda n: (rank.get(n, len(rank)), -namespace[n].shape[0])):
        value = namespace[name]
        example = value.head(INPUT_EXAMPLE_ROWS) if hasattr(value, "head") else value[:INPUT_EXAMPLE_ROWS]
        if n_features is None and not _predicts_on(model, example):
            continue
        with open(path, "wb") as handle:
            pickle.dump(example, handle, protocol=5)
        return {"variable": name, "rows": int(example.shape[0]), "type": _type_name(value)}
    return None


def _predicts_on(model: Any, example: Any) -> bool:
    try:
        return len(model.predict(example)) == example.shape[0]
    except Exception:  # the wrong shape or dtype: not the training input
        return False


def _distributions_of(modules: set[str], owners: dict[str, list[str]], versions: dict[str, str]) -> dict[str, str]:
    """Map module names to the installed distributions that provide them, with exact versions."""
    tops = {m.split(".")[0] for m in modules}
    tops -= set(sys.stdlib_module_names) | {"__main__", "builtins", "handoff", "__mp_main__"}
    pinned: dict[str, str] = {}
    for top in sorted(t for t in tops if not t.startswith("_")):
        for dist in owners.get(top, []):
            if dist in versions:
                pinned[dist] = versions[dist]
    return pinned


def _direct_imports() -> set[str]:
    """Top-level modules named in the import statements of the cells that ran."""
    import ast

    shell = _shell()
    names: set[str] = set()
    for source in (shell.user_ns.get("In", []) if shell is not None else []):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return names


def _environment(loaded_modules: set[str], model_modules: set[str]) -> dict[str, Any]:
    """Python version and exact package versions, from one pass over the installed distributions."""
    installed = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}
    owners = importlib.metadata.packages_distributions()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "imported": _distributions_of(_direct_imports(), owners, installed),
        "loaded": _distributions_of(loaded_modules, owners, installed),
        "model_packages": _distributions_of(model_modules, owners, installed),
        "installed": dict(sorted(installed.items(), key=lambda kv: kv[0].lower())),
    }


def _library_roots() -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    return sorted(roots)


def _data_files(workdir: str) -> list[dict[str, Any]]:
    from handoff.fingerprint import fingerprint

    return fingerprint(_state["reads"], workdir, _library_roots())
