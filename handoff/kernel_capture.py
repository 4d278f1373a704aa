"""Kernel-side capture: the code inside the two cells handoff adds around the user's notebook.

``start()`` runs first (before the user's cells): it snapshots the loaded modules, records every
file opened with an audit hook, notes after each cell which fitted estimators appeared, and points
the notebook's own MLflow tracking at a build-local store. ``finish()`` runs last: it picks the
model (``kernel_models``), imports the notebook's MLflow run (``kernel_mlflow``), scores the model
on held-out data (``evaluation``), takes an input example, pins the environment, fingerprints the
data, and writes it all to a folder the parent reads.

It is imported inside the notebook's kernel, so at import time it loads only the standard
library: whatever the notebook imports later must show up as *the notebook's* import.
"""

from __future__ import annotations

import json
import math
import os
import platform
import site
import sys
import traceback
import types
from collections.abc import Iterator, Mapping
from dataclasses import replace
from numbers import Real
from pathlib import Path
from typing import Any

from handoff import evaluation, kernel_mlflow, kernel_preprocessing, notebook_api
from handoff.kernel_models import (
    Candidate,
    CaptureProblem,
    Choice,
    cell_ref,
    choose,
    is_fitted,
    is_model,
    model_files,
    model_input,
    named_columns,
    native_library,
    predict,
    type_name,
)

#: Variable names taken first as the input example, in this order.
PREFERRED_DATA_NAMES = ("X_train", "x_train", "X", "X_tr", "train_X", "features", "X_test", "x_test")
#: A numeric variable is a metric when one of its ``_``-separated name parts is one of these.
METRIC_NAME_PARTS = frozenset(
    {
        "accuracy",
        "acc",
        "f1",
        "precision",
        "recall",
        "auc",
        "rmse",
        "mse",
        "mae",
        "r2",
        "loss",
        "logloss",
        "mape",
        "rmsle",
        "medae",
        "kappa",
        "mcc",
        "score",
        "brier",
    }
)
METRIC_DICT_NAMES = ("metrics", "scores")
INPUT_EXAMPLE_ROWS = 5
IGNORED_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})

_state: dict[str, Any] = {
    "started": False,
    "recording": False,
    "reads": [],
    "writes": {},
    "modules": set(),
    "fitted": {},
    "workdir": None,
    "last_count": None,
    "installed": None,  # the installed distributions, being scanned ahead (``_Installed``)
    "ahead": set(),  # the notebook's modules a kernel server imported before forking this kernel
}


#: ``scan_installed`` in a child process of the kernel, on the kernel's import path (argv[1]), as JSON.
_SCAN = (
    "import json, os, sys\n"
    "os.nice(10)\n"  # behind the notebook, should its build start before this ends
    "sys.path[:] = json.loads(sys.argv[1])\n"
    "from handoff.worker_answers import scan_installed\n"
    "installed, owners = scan_installed()\n"
    "json.dump({'installed': installed, 'owners': owners}, sys.stdout)\n"
)


class _Installed:
    """The installed distributions (``worker_answers.scan_installed``) without scanning beside the
    notebook: taken from the environment's kept answers the build left in the capture folder when
    they hold for this kernel's import path, else (a kernel started ahead of its build, while it
    waits) scanned by a child process (a thread would take the notebook's GIL if its build starts
    at once). The answer holds while no distribution was added, removed or replaced since, which
    ``installed_state`` tells; otherwise, or if the child failed, ``read`` scans here."""

    def __init__(self, kept: Path, ahead: bool) -> None:
        import subprocess

        from handoff import worker_answers

        self._state = worker_answers.installed_state(sys.path)
        self._found = worker_answers.read(kept, here=True)
        self._child: subprocess.Popen[str] | None = None
        if self._found is None and ahead:
            self._child = subprocess.Popen(
                [sys.executable, "-c", _SCAN, json.dumps(sys.path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    def read(self) -> tuple[dict[str, str], Mapping[str, list[str]]]:
        import subprocess

        from handoff import worker_answers

        if self._child is not None:
            try:
                out, _ = self._child.communicate(timeout=120)
                self._found = json.loads(out) if self._child.returncode == 0 else None
            except (subprocess.TimeoutExpired, ValueError):
                self._child.kill()
            self._child = None
        if self._found is None or self._state != worker_answers.installed_state(sys.path):
            return worker_answers.scan_installed()
        return self._found["installed"], self._found["owners"]


def prepare(capture_dir: str) -> None:
    """Have the installed distributions ready (``_Installed``): a kernel started ahead of its build
    calls this while it waits. (A kernel started for its build reads them in ``finish``: beside
    the notebook, even in a child process, a scan took CPU from the notebook's run.)"""
    from handoff.worker_answers import FILE_NAME

    if _state["installed"] is None:
        _state["installed"] = _Installed(Path(capture_dir) / FILE_NAME, ahead=True)


def imported_ahead(modules: set[str]) -> None:
    """The kernel server (``handoff.kernel_server``) imported these for the notebook before it forked
    this kernel: loaded by the notebook, as in a fresh kernel, not before it ran."""
    _state["ahead"] = set(modules)


def start() -> None:
    """Begin recording (loaded modules, file reads and writes, when each fitted model appeared) and
    send the notebook's own MLflow tracking to the build-local store."""
    if _state["started"]:
        return
    _state.update(started=True, recording=True, modules=set(sys.modules) - _state["ahead"], workdir=Path.cwd())
    kernel_mlflow.point_tracking_at(_state["workdir"])
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
        workdir = _state["workdir"] or out.parent
        run, logged_models, run_warnings = kernel_mlflow.export_run(workdir, out)
        files, file_warnings = model_files(
            workdir, {out.name, kernel_mlflow.DB_NAME, kernel_mlflow.ARTIFACTS_DIR}, _state["writes"]
        )
        report["warnings"] += run_warnings + file_warnings
        report["notebook_run"] = run
        choice, candidates = _choose_model(namespace, model_var, logged_models, files, run_warnings + file_warnings)
        choice, inputs, bare = _with_preprocessing(choice, namespace)
        model = choice.model
        report["warnings"] += choice.warnings
        report["model"] = {
            "source": choice.source,
            "variable": _variable_of(choice.candidate),
            "type": type_name(model),
            "rule": choice.rule,
            "packaged": choice.packaged,
            "count": choice.candidate.count,
            "candidates": candidates,
            "task": _task(model),
        }
        modules = _dump_model(model, out / "model.pkl")
        report["input_example"], example = _input_example(model, inputs, out / "input_example.pkl")
        if report["input_example"] is None:
            report["warnings"].append(
                "no input example: no 2-D variable in the notebook matches the model's input features"
            )
        computed, report["evaluation"] = _evaluate(
            model, choice.reference, inputs, report["model"]["task"], example, out / "fidelity.pkl", bare
        )
        report["metrics"], report["metric_sources"], report["metrics_source"] = _metrics(
            namespace, run, computed, report["evaluation"]
        )
        report["environment"] = _environment(imported_modules, modules, out)
        report["data_files"] = _data_files(str(workdir))
        report["ok"] = True
    except CaptureProblem as problem:
        report["error"] = {"ename": "CaptureError", "detail": str(problem)}
    except Exception as exc:  # the report must be written whatever the notebook left behind
        report["error"] = {
            "ename": type(exc).__name__,
            "detail": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    (out / "capture.json").write_text(json.dumps(report, indent=2, default=str))


def _variable_of(candidate: Candidate) -> str | None:
    """The notebook variable holding the chosen model, if it is held by one."""
    in_namespace = candidate.kind in ("variable", "log_model") and candidate.name.isidentifier()
    return candidate.name if in_namespace else None


def _shell() -> Any:
    try:
        return get_ipython()  # type: ignore[name-defined]  # an IPython builtin, defined in the kernel
    except NameError:
        return None


def _count() -> int | None:
    """The execution count of the cell running now: the last finished cell's, plus one (IPython
    versions differ in when they increment ``shell.execution_count``)."""
    return _state["last_count"] + 1 if _state["last_count"] is not None else None


def _user_namespace() -> dict[str, Any]:
    shell = _shell()
    namespace = shell.user_ns if shell is not None else vars(sys.modules["__main__"])
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in IGNORED_NAMES
        and not isinstance(value, (types.ModuleType, type, types.FunctionType))
    }


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _state["recording"]:
        return
    path, mode, flags = args
    if not isinstance(path, (str, bytes)):
        return
    reading = (not any(c in mode for c in "wax+")) if isinstance(mode, str) else (flags & 3) == os.O_RDONLY
    if reading:
        _state["reads"].append(os.path.abspath(os.fsdecode(path)))
    else:
        _state["writes"][os.path.abspath(os.fsdecode(path))] = _count()


def _after_cell(result: Any = None) -> None:
    """Note the cell (execution count) in which each fitted model (by variable and identity) appeared."""
    count = getattr(result, "execution_count", None)
    if count is not None:
        _state["last_count"] = count
    seen = _state["fitted"]
    for name, value in _user_namespace().items():
        if is_model(value) and is_fitted(value) and (name not in seen or seen[name][0] != id(value)):
            seen[name] = (id(value), count)


def _choose_model(
    namespace: dict[str, Any],
    model_var: str | None,
    logged_models: list[Candidate],
    files: list[Candidate],
    skipped: list[str],
) -> tuple[Choice, list[dict[str, Any]]]:
    """The model to ship (``kernel_models.choose``) and every candidate considered, as dicts."""
    cells = {name: count for name, (_, count) in _state["fitted"].items()}
    variables = [
        Candidate(name, "variable", value, cells.get(name))
        for name, value in namespace.items()
        if is_model(value) and is_fitted(value)
    ]
    logged = (
        Candidate("handoff.log_model()", "log_model", notebook_api.logged["model"])
        if notebook_api.logged["model_set"]
        else None
    )
    try:
        choice = choose(variables, logged, model_var, namespace, logged_models, files)
    except CaptureProblem as problem:
        raise CaptureProblem(str(problem) or _nothing_found(namespace, skipped)) from None
    considered = [*logged_models, *files, *variables]
    if logged is not None and all(c.obj is not logged.obj for c in considered):
        considered.insert(0, logged)
    return choice, [c.to_dict() for c in considered]


def _with_preprocessing(
    choice: Choice, namespace: dict[str, Any]
) -> tuple[Choice, dict[str, Any], tuple[Any, dict[str, Any]] | None]:
    """The choice with the transformers it was fitted after (``kernel_preprocessing``); the variables
    that may be its raw input (not those holding transformed rows, which the pipeline would transform
    twice); and the bare model with the variables it may score (the held-out rows, transformed)."""
    if choice.reference is not choice.model:  # an explicitly named part: shipped alone, as asked (with a warning)
        return choice, namespace, None
    composed = kernel_preprocessing.compose(choice.model, _variable_of(choice.candidate), namespace, _cell_trees())
    if composed is None:
        return choice, namespace, None
    bare = choice.model
    steps = ", ".join(composed.steps)
    choice = replace(
        choice,
        model=composed.model,
        reference=composed.model,
        packaged=" → ".join([*composed.steps, choice.packaged]),
        rule=f"{choice.rule}; shipped after {steps}, fitted apart: {composed.evidence}",
    )
    raw = {k: v for k, v in namespace.items() if k not in composed.transformed}
    scored = {k: v for k, v in namespace.items() if k in composed.transformed or len(getattr(v, "shape", ())) != 2}
    return choice, raw, (bare, scored)


def _nothing_found(namespace: dict[str, Any], skipped: list[str]) -> str:
    """The "No model found" message, with what was seen instead and what to do."""
    seen = [
        f"a model fitted inside function `{name}()` in {cell_ref(count)} was never returned or saved"
        for name, count in _fits_in_functions()
    ]
    seen += [
        f"{name} ({type(value).__name__}) is not fitted"
        for name, value in namespace.items()
        if is_model(value) and not is_fitted(value)
    ]
    seen += skipped
    return (
        "no fitted model found: the notebook left no fitted estimator (an object with fit() and predict()) "
        "in its variables, in a model file or in an MLflow run"
        + (f"; seen instead: {'; '.join(seen)}" if seen else "")
        + "; return the model to a variable, save it (joblib.dump), or call handoff.log_model(model)"
    )


def _cell_trees() -> Iterator[tuple[int, Any]]:
    """``(execution count, AST)`` of every cell that ran (``In[n]`` is cell n's source)."""
    import ast

    shell = _shell()
    for count, source in enumerate(shell.user_ns.get("In", []) if shell is not None else []):
        try:
            yield count, ast.parse(source)
        except SyntaxError:
            continue


def _fits_in_functions() -> list[tuple[str, int]]:
    """Functions defined in the notebook that call ``.fit(...)``: a model trained and dropped there."""
    import ast

    found = []
    for count, tree in _cell_trees():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "fit"
                for call in ast.walk(node)
            ):
                found.append((node.name, count))
    return found


def _split_pairs() -> list[tuple[str, str]]:
    """``(X_test, y_test)`` names from ``a, b, c, d = train_test_split(X, y, ...)`` in the notebook."""
    import ast

    pairs: list[tuple[str, str]] = []
    for _, tree in _cell_trees():
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.targets[0], (ast.Tuple, ast.List))
            ):
                continue
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            targets = node.targets[0].elts
            names = [t.id for t in targets if isinstance(t, ast.Name)]  # plain names only
            if called == "train_test_split" and len(names) == len(targets) == 4:
                pairs.append((names[1], names[3]))
    return pairs


def _task(model: Any) -> str | None:
    """classification / regression / clustering / ..., as scikit-learn classifies the estimator; for
    another library's model (a Booster, a statsmodels results object), from its objective or family."""
    native = _native_task(model)
    if native is not None or native_library(model) is not None:
        return native
    if "sklearn" not in sys.modules:
        return None
    from sklearn import base

    for name in ("classifier", "regressor", "clusterer", "outlier_detector"):
        check = getattr(base, f"is_{name}", None)
        try:
            if check is not None and check(model):
                return {
                    "classifier": "classification",
                    "regressor": "regression",
                    "clusterer": "clustering",
                    "outlier_detector": "outlier detection",
                }[name]
        except Exception:  # third-party estimators may not implement tags
            continue
    return None


#: Objective / model-family name prefixes that mean classification, and those that mean regression.
_CLASSIFYING = ("binary", "multi", "multiclass", "cross_entropy", "logit", "probit", "mnlogit", "binomial")
_REGRESSING = ("reg:", "regression", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie", "ols", "wls")


def _native_task(model: Any) -> str | None:
    """The task of a Booster (its objective) or a statsmodels results object (its model's family)."""
    library = native_library(model)
    try:
        if library == "xgboost":
            objective = str(json.loads(model.save_config())["learner"]["objective"]["name"])
        elif library == "lightgbm":
            objective = str(model.params.get("objective") or model.dump_model(num_iteration=0).get("objective", ""))
        elif library == "statsmodels":
            inner = model.model
            family = getattr(inner, "family", None)
            objective = type(family if family is not None else inner).__name__
        else:
            return None
    except Exception:  # an unusual configuration: the task stays unknown
        return None
    objective = objective.lower()
    if objective.startswith(_CLASSIFYING):
        return evaluation.CLASSIFICATION
    if objective.startswith(_REGRESSING) or objective in ("gaussian", "gls", "glsar"):
        return evaluation.REGRESSION
    return None


def _as_metric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _metrics(
    namespace: dict[str, Any], run: dict[str, Any] | None, computed: dict[str, float], evaluation: dict[str, Any] | None
) -> tuple[dict[str, float], dict[str, str], str]:
    """The version's metrics, where each came from, and the main source.

    What the notebook reported wins, in this order (the first that has any is taken whole):
    ``handoff.log_metric()``, its MLflow run, a ``metrics``/``scores`` dict and metric-named
    variables. Metrics handoff computed on held-out data are added under their own names and
    never overwrite a reported one.
    """
    reported: dict[str, float] = {}
    if notebook_api.logged["metrics"]:
        reported, source, label = dict(notebook_api.logged["metrics"]), "log_metric", "handoff.log_metric()"
    elif run and (numbers := {k: n for k, v in run["metrics"].items() if (n := _as_metric(v)) is not None}):
        reported, source, label = numbers, "mlflow", f"the notebook's MLflow run {run['run_name']!r}"
    else:
        for name, value in namespace.items():
            if set(name.lower().split("_")) & METRIC_NAME_PARTS and (number := _as_metric(value)) is not None:
                reported[name] = number
        for dict_name in METRIC_DICT_NAMES:
            table = namespace.get(dict_name)
            if isinstance(table, dict):
                reported.update({str(k): n for k, v in table.items() if (n := _as_metric(v)) is not None})
        source, label = "namespace", "a notebook variable"
    sources = {name: label for name in reported}
    metrics = dict(reported)
    for name, value in computed.items():
        if name not in metrics:
            metrics[name] = value
            sources[name] = (
                f"computed by handoff on {evaluation['source']} ({evaluation['rows']} rows)"
                if evaluation
                else "computed by handoff"
            )
    return metrics, sources, source if reported else ("computed" if metrics else "none")


def _evaluate(
    model: Any,
    reference: Any,
    namespace: dict[str, Any],
    declared_task: str | None,
    example: Any,
    path: Path,
    bare: tuple[Any, dict[str, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Score ``model`` on the held-out rows the notebook left, and keep the notebook's model's
    (``reference``) predictions on them, or on the input example, in ``path`` for ``model.fidelity``.
    ``bare``: the model shipped behind transformers and the variables holding transformed rows; when
    the held-out rows exist only transformed, it scores them (the pipeline would transform them twice)
    and fidelity runs on the input example."""
    for x_name, y_name, X, y, expected in _held_out(reference, namespace):
        shipped = expected if model is reference else _predict(model, X)
        computed, info = _score(model, x_name, y_name, X, y, shipped, declared_task)
        cap = evaluation.FIDELITY_ROWS
        _keep_predictions(
            path,
            info,
            reference,
            model_input(reference, evaluation.head(X, cap)),
            evaluation.head(expected, cap),
            evaluation.head(y, cap),
        )
        return computed, info
    computed, scored = {}, None
    if bare is not None:
        for x_name, y_name, X, y, expected in _held_out(bare[0], bare[1]):
            computed, scored = _score(bare[0], x_name, y_name, X, y, expected, declared_task)
            break
    expected = _predict(reference, example) if example is not None else None
    if expected is None:
        return computed, scored
    info = {"source": "the input example", "rows": evaluation.rows(example), "task": None, "metrics": []}
    _keep_predictions(path, info, reference, model_input(reference, example), expected, None)
    return computed, scored or info


def _held_out(model: Any, namespace: dict[str, Any]) -> Iterator[tuple[str, str, Any, Any, Any]]:
    """``(X name, y name, X, y, the model's predictions on X)`` for each held-out pair the model takes."""
    for x_name, y_name in evaluation.candidate_pairs(namespace, _split_pairs()):
        X, y = named_columns(model, namespace[x_name]), namespace[y_name]
        n = evaluation.rows(X)
        if not n or evaluation.rows(y) != n or len(getattr(X, "shape", ())) != 2:
            continue
        expected = _predict(model, X)
        if expected is not None:  # else not this model's input: try the next pair
            yield x_name, y_name, X, y, expected


def _score(
    model: Any, x_name: str, y_name: str, X: Any, y: Any, shipped: Any, declared_task: str | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """The standard metrics of ``shipped`` (the model's answers on ``X``) against ``y``, and what they
    were computed on."""
    task = evaluation.task_of(model, y, declared_task)
    proba = None
    if shipped is not None and task == evaluation.CLASSIFICATION and callable(getattr(model, "predict_proba", None)):
        try:
            proba = model.predict_proba(X)
        except Exception:  # some classifiers only have it for some settings
            proba = None
    computed = (
        evaluation.answer_metrics(task, y, shipped, proba, getattr(model, "classes_", None))
        if task and shipped is not None
        else {}
    )
    if not computed:  # scores or probabilities, not one answer per row: no label metrics to agree on
        task = None
    return computed, {
        "source": f"{x_name}/{y_name}",
        "rows": evaluation.rows(X),
        "task": task,
        "metrics": sorted(computed),
    }


def _keep_predictions(path: Path, info: dict[str, Any], reference: Any, X: Any, expected: Any, y: Any) -> None:
    """Write the fidelity rows; a model that answers differently twice in a row is marked so."""
    import pickle

    again = _predict(reference, evaluation.head(X, 100))
    same = again is not None and not evaluation.compare_predictions(evaluation.head(expected, 100), again)[0]
    with open(path, "wb") as handle:
        pickle.dump({**info, "X": X, "y": y, "predictions": expected, "deterministic": same}, handle, protocol=5)


def _predict(model: Any, X: Any) -> Any:
    """``model.predict(X)``, or ``None`` when the model does not take ``X`` (shape, columns, dtype)."""
    try:
        predictions = predict(model, X)
    except Exception:
        return None
    return predictions if evaluation.rows(predictions) == evaluation.rows(X) else None


class _ModuleRecorder:
    """Wraps cloudpickle so that every object's defining module is noted while pickling."""

    def __init__(self) -> None:
        import cloudpickle

        modules: set[str] = set()

        class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]  # cloudpickle is untyped (Any)
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
        raise CaptureProblem(f"the model ({type_name(model)}) cannot be pickled: {type(exc).__name__}: {exc}") from exc
    return recorder.modules


def _input_example(model: Any, namespace: dict[str, Any], path: Path) -> tuple[dict[str, Any] | None, Any]:
    """A few rows of a variable shaped like the model's training input.

    Candidates are 2-D variables whose width is the model's ``n_features_in_`` (and whose columns
    are its ``feature_names_in_``, when it has them: a DataFrame holding them among others gives just
    those, as ``model.fit(train[features], ...)`` took them); a model that declares neither (e.g. a
    pipeline starting with a custom transformer) takes the first 2-D variable it can predict on.
    Exact matches first, then preferred names (``X_train``, ``X``, ...), then the longest.
    """
    import pickle

    n_features = getattr(model, "n_features_in_", None)
    names = getattr(model, "feature_names_in_", None)
    matches = []
    for name, whole in namespace.items():
        value = named_columns(model, whole)
        shape = getattr(value, "shape", None)
        if not isinstance(shape, tuple) or len(shape) != 2 or shape[0] == 0:
            continue
        if n_features is not None and shape[1] != n_features:
            continue
        if names is not None and list(getattr(value, "columns", [])) != list(names):
            continue
        matches.append((name, value, value is not whole))
    rank = {n: i for i, n in enumerate(PREFERRED_DATA_NAMES)}
    for name, value, selected in sorted(matches, key=lambda m: (m[2], rank.get(m[0], len(rank)), -m[1].shape[0])):
        example = value.head(INPUT_EXAMPLE_ROWS) if hasattr(value, "head") else value[:INPUT_EXAMPLE_ROWS]
        if n_features is None and not _predicts_on(model, example):
            continue
        example = model_input(model, example)
        with open(path, "wb") as handle:
            pickle.dump(example, handle, protocol=5)
        variable = f"{name}[{value.shape[1]} columns]" if selected else name
        return {"variable": variable, "rows": int(example.shape[0]), "type": type_name(value)}, example
    return None, None


def _predicts_on(model: Any, example: Any) -> bool:
    try:
        return bool(len(predict(model, example)) == example.shape[0])
    except Exception:  # the wrong shape or dtype: not the training input
        return False


def _distributions_of(modules: set[str], owners: Mapping[str, list[str]], versions: dict[str, str]) -> dict[str, str]:
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

    names: set[str] = set()
    for _, tree in _cell_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return names


def _environment(loaded_modules: set[str], model_modules: set[str], out: Path) -> dict[str, Any]:
    """Python version and exact package versions, from one pass over the installed distributions
    (or the environment's kept answers in ``out``, while they hold)."""
    from handoff.worker_answers import FILE_NAME

    installed, owners = (_state["installed"] or _Installed(out / FILE_NAME, ahead=False)).read()
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
