"""One root cause, one failure: checks that need a stage the build never finished are skipped, the
root-cause check keeps the failure, and the error is shown once, on top (real kernels, real store)."""

from __future__ import annotations

from handoff.checks import FAILED, SKIPPED, WARNED
from handoff.cli import main
from handoff.record_view import ERROR_SECTION, render_text, sections
from handoff.store import Store
from helpers import TRAIN_IRIS, build, local_path

# A model whose pickle loads as the number 0: captured in the kernel, but nothing the worker can save.
UNSAVEABLE = (
    "import numpy as np\n"
    "class Odd:\n"
    "    def fit(self, X, y):\n        self.coef_ = 1\n        return self\n"
    "    def predict(self, X):\n        return np.zeros(len(X))\n"
    "    def __reduce__(self):\n        return (int, ())\n"
    "model = Odd().fit(None, None)\n"
    "accuracy = 0.5"
)


def _statuses(result) -> dict[str, tuple[str, str]]:
    return {r.id: (r.status, r.message) for r in result.checks.results}


def test_a_cell_error_is_one_failure_and_the_rest_is_skipped(write_notebook, store: Store, capsys) -> None:
    path = write_notebook([("parameters", "C = 1.0"), "import numpy as np", "x = 1 / 0", TRAIN_IRIS])
    result = build(path, store)
    assert result.status == "failed" and result.error.stage == "execute" and result.error.cell == 3
    statuses = _statuses(result)
    failed = {k: m for k, (s, m) in statuses.items() if s == FAILED}
    assert failed == {"notebook.executed": result.error.message}  # the root cause, and nothing else
    assert not [k for k, (s, _) in statuses.items() if s == WARNED]
    for check in ("model.found", "env.pinned", "metrics.present", "data.fingerprinted", "model.loads", "user.tests"):
        assert statuses[check] == (SKIPPED, "skipped: build failed at cell 3"), check
    # the notebook as given is still looked at: its checks do not need the build to have finished
    assert statuses["notebook.hygiene"][0] == "passed" and statuses["notebook.secrets"][0] == "passed"

    parts = sections(result.record)
    assert parts[0].title == ERROR_SECTION and parts[0].lines == (("error", result.error.message),)
    assert all(section.title != "Problems" or ("error", result.error.message) not in section.lines for section in parts)
    text = render_text(parts)
    assert text.startswith("Error\n") and text.count("division by zero") == 2  # on top, and its root-cause check

    home = str(local_path(store.artifact_root).parent)
    capsys.readouterr()
    assert main(["build", str(path), "--store", home]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "Error" and "skipped: build failed at cell 3" in out
    assert out.count("division by zero") == 3  # on top, the root-cause check, the traceback: not once per check


def test_a_capture_failure_fails_model_found_only(write_notebook, store: Store) -> None:
    # a parameter changed: papermill injects a cell, which is not one of the notebook's code cells
    path = write_notebook([("parameters", "n = 1"), "import numpy as np", "x = np.arange(n)", "total = int(x.sum())"])
    result = build(path, store, params={"n": 3})
    assert result.status == "failed" and result.error.stage == "capture" and result.version is None
    statuses = _statuses(result)
    assert statuses["notebook.executed"] == ("passed", "all 4 code cells ran in order without error")
    assert [k for k, (s, _) in statuses.items() if s in (FAILED, WARNED)] == ["model.found"]
    assert statuses["model.found"][1] == result.error.message and "no fitted model found" in result.error.message
    for check in ("metrics.present", "metrics.thresholds", "data.fingerprinted", "env.pinned", "model.predicts"):
        assert statuses[check] == (SKIPPED, "skipped: build failed in stage capture"), check


def test_a_serialize_failure_fails_model_loads_only(write_notebook, store: Store) -> None:
    path = write_notebook([UNSAVEABLE])
    result = build(path, store, checks={"thresholds": ["accuracy >= 0.4"]})
    assert result.status == "failed" and result.error.stage == "serialize"
    statuses = _statuses(result)
    assert [k for k, (s, _) in statuses.items() if s == FAILED] == ["model.loads"]
    assert statuses["model.loads"][1] == result.error.message
    # a warning of its own (this notebook reads no data file), never the build's error again
    assert all(result.error.detail not in m for k, (s, m) in statuses.items() if k != "model.loads")
    assert statuses["model.found"][0] == "passed"  # capture finished: what it found is still judged
    assert statuses["metrics.thresholds"][0] == "passed"
    for check in ("env.pinned", "model.size", "model.portable", "model.predicts", "user.tests"):
        assert statuses[check] == (SKIPPED, "skipped: build failed in stage serialize"), check
