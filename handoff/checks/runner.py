"""The build's sandboxed worker: serializes the captured model and runs the artifact checks in a
fresh Python process, as production will load the model.

``python -m handoff.checks.runner`` imports MLflow and the scientific stack first (the parent
starts it while the notebook is still running, so this cost overlaps the notebook's), then reads
JSON requests on stdin, one per line: ``serialize`` (load the kernel's pickle, write the MLflow
model directory), ``predict`` (for ``reproducible``) or a checks request (load the saved model
once for every artifact check). Each answer is written as JSON to the file the request names.
Nothing of the notebook's state is here: a model that only loads where the notebook ran fails
``model.loads``. Everything the notebook produced is unpickled here, inside the sandbox.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff import forkserver


@dataclass
class ArtifactContext:
    """What an artifact check sees: the loaded model and its example, nothing of the notebook."""

    model_dir: Path
    model: Any
    load_error: str | None
    load_seconds: float
    input_example: Any
    signature: Any
    manifest: dict[str, Any]
    config: Any
    fidelity: dict[str, Any] | None = None


def _load(model_dir: Path) -> tuple[Any, str | None, float, Any, Any]:
    import mlflow.pyfunc
    from mlflow.models import Model

    started = time.perf_counter()
    try:
        model = mlflow.pyfunc.load_model(str(model_dir))
        error = None
    except Exception as exc:  # the failure is the finding
        model, error = None, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    example = signature = None
    try:
        meta = Model.load(str(model_dir))
        signature = meta.signature
        example = meta.load_input_example(str(model_dir))
    except Exception:  # a missing example is reported by model.predicts
        pass
    return model, error, seconds, example, signature


def _fidelity(path: str | None) -> dict[str, Any] | None:
    """The rows and predictions the kernel kept for ``model.fidelity`` (loaded here, never in the build's process)."""
    if not path or not Path(path).exists():
        return None
    import pickle

    with open(path, "rb") as handle:
        rows: dict[str, Any] = pickle.load(handle)
    return rows


def run_request(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the requested artifact checks; return their results as dicts."""
    from handoff import checks
    from handoff.check_config import CheckConfig

    model_dir = Path(request["model_dir"])
    model, error, seconds, example, signature = _load(model_dir)
    ctx = ArtifactContext(
        model_dir,
        model,
        error,
        seconds,
        example,
        signature,
        request.get("manifest", {}),
        CheckConfig.from_dict(request.get("config", {})),
        _fidelity(request.get("fidelity")),
    )
    results = []
    for check in checks.all_checks():
        if check.id not in request["checks"]:
            continue
        started = time.perf_counter()
        if model is None and check.id != "model.loads":
            outcome = checks.skipped("not run: the model did not load")
        else:
            try:
                outcome = check.run(ctx)
            except Exception as exc:  # a crashing check is a failed check, not a crashed checklist
                outcome = checks.failed(
                    f"the check itself raised {type(exc).__name__}: {exc}", traceback=traceback.format_exc()
                )
        results.append(checks.CheckResult.from_outcome(check, outcome, time.perf_counter() - started).to_dict())
    return results


class _NoTorch(importlib.abc.MetaPathFinder):
    """Refuses ``torch`` while skops is imported: skops lists scikit-learn's estimators with
    ``all_estimators()``, whose package walk imports ``sklearn.externals.array_api_compat.torch`` and
    with it PyTorch (seconds, when it is installed), for nothing a scikit-learn model needs. The walk
    ignores a package that fails to import, and no estimator lives there: the same list, so the same
    saved bytes. Removed right after, so a PyTorch model still imports torch when it is loaded."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not imported while the worker warms up")


def _warm_up() -> None:
    """Import what serializing and checking need while the notebook still runs (the parent starts
    this process first), without the paths that drag PyTorch in, and with what the installed
    packages answer taken from the file the parent left here (``handoff.worker_answers``) when
    there is one."""
    from handoff import worker_answers

    kept = worker_answers.read(Path(worker_answers.FILE_NAME), here=True)
    with worker_answers.answering(kept) if kept else contextlib.nullcontext():
        blocker = _NoTorch()
        sys.meta_path.insert(0, blocker)
        try:
            import cloudpickle  # noqa: F401
            import mlflow.pyfunc
            import mlflow.sklearn  # noqa: F401
            import numpy  # noqa: F401
            import pandas  # noqa: F401
            import sklearn  # noqa: F401
            import skops.io  # noqa: F401
        finally:
            sys.meta_path.remove(blocker)
        _rehearse()  # MLflow's module map is made here, at its first save


def _warm_up_behind() -> None:
    """``_warm_up`` on a thread of its own at a lower priority (on Linux a thread's nice value is its
    own): it runs beside the notebook's kernel, whose run is the build's critical path. The requests
    come after the run, when this worker is the critical path: the main thread serves them at normal
    priority, which a process that lowered its own priority could not take back."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
    _warm_up()


def _write_answers(path: Path) -> None:
    """``--worker-answers PATH``: what the installed packages answer, worked out in full for later workers."""
    from handoff import worker_answers

    blocker = _NoTorch()
    sys.meta_path.insert(0, blocker)
    try:
        worker_answers.write(path)
    finally:
        sys.meta_path.remove(blocker)


def _rehearse() -> None:
    """Save, load and predict with a tiny model once: MLflow's first ``save_model`` sets itself up
    (its module map, when not answered from the kept file: over a second), which the build's own
    serialize would otherwise wait for. A throwaway directory; nothing of it reaches the build (a
    failure here only skips the rehearsal)."""
    import tempfile
    import warnings

    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rows = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.1]])
    try:
        with tempfile.TemporaryDirectory(prefix="handoff-rehearsal-") as scratch, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression().fit(rows, [0, 1, 0, 1])
            path = str(Path(scratch) / "model")
            mlflow.sklearn.save_model(
                model,
                path,
                serialization_format="skops",
                skops_trusted_types=[],
                input_example=rows[:2],
                pip_requirements=["scikit-learn"],  # no inference: MLflow would run a subprocess for it
            )
            mlflow.pyfunc.load_model(path).predict(rows)
    except Exception:  # a rehearsal only: the real save reports its own errors
        pass


def main() -> int:
    if sys.argv[1:2] == ["--worker-answers"]:
        _write_answers(Path(sys.argv[2]))
        return 0
    if sys.argv[1:2] == ["--serve"]:
        return _serve(int(sys.argv[2]))
    warming = threading.Thread(target=_warm_up_behind, name="handoff-warm-up")
    warming.start()
    warming.join()
    import handoff.checks

    handoff.checks.all_checks()
    return _answer_requests()


def _answer_requests() -> int:
    """Answer the build's requests until it closes our stdin (it may need nothing at all)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "serialize" in request:
            answer: Any = serialize_request(request["serialize"])
        elif "predict" in request:
            answer = predict_request(request["predict"])
        else:
            answer = run_request(request)
        output = Path(request["output"])
        partial = output.with_name(output.name + ".part")
        partial.write_text(json.dumps(answer, default=str))
        partial.rename(output)  # the build polls for the name: never let it read half an answer
    return 0


def _serve(listener_fd: int) -> int:
    """``--serve FD``: a sweep's warm check server (``handoff.warm_servers``). It warms up once, then
    forks a worker for each connection on the listening socket ``FD`` (``handoff.forkserver``): the
    connection brings the worker's stdin and log and its folder; the worker is this process as it
    was before any build's request, like a fresh worker after its warm-up."""
    home = os.getcwd()  # on the import path (``-m``): each worker puts its own folder there instead
    _warm_up()
    import handoff.checks

    handoff.checks.all_checks()
    return forkserver.serve(listener_fd, 2, lambda request, fds: _become_worker(request, home, *fds))


def _become_worker(request: dict[str, str], home: str, stdin_fd: int, log_fd: int) -> int:
    """In the forked child (in a process group of its own, with a fresh NumPy seed): take the
    build's stdin, log and folder (``forkserver.settle``), then answer."""
    forkserver.settle(request["cwd"], home, stdin_fd, log_fd)
    return _answer_requests()


def serialize_request(request: dict[str, str]) -> dict[str, Any]:
    """Save the captured model as an MLflow model directory; the ``SavedModel`` or the error, as JSON."""
    from handoff.capture import read_capture
    from handoff.errors import BuildFailure
    from handoff.serialize import serialize

    capture_dir = Path(request["capture_dir"])
    try:
        saved = serialize(capture_dir, read_capture(capture_dir), Path(request["target"]))
    except BuildFailure as exc:
        return {"error": {"detail": exc.detail, "ename": exc.ename}}
    return saved.to_dict()


def predict_request(capture_dirs: list[str]) -> list[Any] | None:
    """Each captured model's predictions on the first capture's input example, as lists."""
    import numpy as np

    from handoff.kernel_models import predict
    from handoff.serialize import load_captured

    first, example = load_captured(Path(capture_dirs[0]))
    if example is None:
        return None
    models = [first, *(load_captured(Path(d))[0] for d in capture_dirs[1:])]
    return [np.asarray(predict(m, example)).tolist() for m in models]


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the results are written: skip the slow teardown of MLflow's imports
