"""What a build's worker works out from the installed packages, worked out once per environment
(handoff.worker_answers): the trust lists a worker's skops builds and the module map its MLflow
builds with the kept file are those they work out themselves, a change of packages makes the file
stale, and the file is written by a detached process the first time a worker starts without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handoff import worker_answers

#: Prints every trust list skops built at import and MLflow's module map after a save, as JSON (run in
#: a fresh interpreter, started as the worker is).
PRINT_ANSWERS = """
import contextlib, json, sys, tempfile
from pathlib import Path
from handoff import worker_answers
kept = worker_answers.read(Path(sys.argv[1])) if len(sys.argv) > 1 else None
assert len(sys.argv) == 1 or kept is not None, "the kept file was refused"
with worker_answers.answering(kept) if kept else contextlib.nullcontext():
    import skops.io
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression
    with tempfile.TemporaryDirectory() as scratch:
        model = LinearRegression().fit([[0], [1]], [0, 1])
        mlflow.sklearn.save_model(model, scratch + "/m", pip_requirements=["scikit-learn"])
from skops.io import _trusted_types
from mlflow.utils import requirements_utils
print(json.dumps({k: v for k, v in vars(_trusted_types).items() if k.endswith("_NAMES")}, sort_keys=True))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("sklearn."))))
print(json.dumps(requirements_utils._MODULES_TO_PACKAGES, sort_keys=True))
"""


#: Answers of the right shape, for this environment's versions, holding nothing.
BLANK = {
    "versions": worker_answers.versions(),
    "python": str(Path(sys.executable).resolve()),
    "site": [],
    "estimators": [],
    "public": {},
    "distributions": {},
    "installed": {},
    "owners": {},
}


def _answers(folder: Path, *args: str) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONNOUSERSITE": "1"}
    script = folder / "print_answers.py"
    script.write_text(PRINT_ANSWERS)
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True, timeout=120, env=env
    ).stdout.splitlines()
    return json.loads(out[0]), json.loads(out[1]), json.loads(out[2])


def test_the_kept_answers_are_what_skops_and_mlflow_work_out(tmp_path: Path) -> None:
    kept = tmp_path / "answers.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONNOUSERSITE": "1"}
    subprocess.run(
        [sys.executable, "-m", "handoff.checks.runner", "--worker-answers", str(kept)],
        check=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    noted = json.loads(kept.read_text())
    assert noted["versions"] == worker_answers.versions() and len(noted["estimators"]) > 100
    assert "sklearn.ensemble._forest.RandomForestClassifier" in noted["estimators"] and noted["public"]
    assert noted["distributions"]["sklearn"] == ["scikit-learn"] and noted["installed"]["scikit-learn"]
    assert str(Path(sys.prefix)) in "".join(entry for entry, _ in noted["site"]) and noted["owners"]["sklearn"]
    probe = {**noted, "distributions": {**noted["distributions"], "handoff_probe": ["handoff-probe"]}}
    kept.write_text(json.dumps(probe))  # an answer only the file holds: seen only if the file is used
    (worked_out, walked, mapped), (answered, imported, replayed) = _answers(tmp_path), _answers(tmp_path, str(kept))
    assert answered == worked_out and len(answered["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100
    assert len(imported) < len(walked) - 100  # without the walk through every scikit-learn module
    assert mapped["skops"] == ["skops"] and replayed == {**mapped, "handoff_probe": ["handoff-probe"]}


def test_a_change_of_installed_packages_makes_the_kept_answers_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_dir, other = tmp_path / "site-packages", tmp_path / "other"
    (site_dir / "a-1.0.dist-info").mkdir(parents=True)
    (other / "b-1.0.dist-info").mkdir(parents=True)
    answers = {**BLANK, "site": worker_answers.installed_state([str(site_dir)])}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    assert worker_answers.read(path) is not None
    monkeypatch.syspath_prepend(str(other))  # this process sees another distribution: not here
    assert worker_answers.read(path, here=True) is None
    (site_dir / "data.txt").write_text("")  # not a distribution
    assert worker_answers.read(path) is not None
    (site_dir / "newpkg-1.0.dist-info").mkdir()  # what an install leaves
    assert worker_answers.read(path) is None


def test_answers_for_other_versions_or_half_written_are_not_used(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({**BLANK, "versions": {**worker_answers.versions(), "skops": "0.0.1"}}))
    assert worker_answers.read(path) is None
    path.write_text('{"versions": ')
    assert worker_answers.read(path) is None and worker_answers.read(tmp_path / "missing.json") is None


def test_a_worker_without_the_answers_has_them_written_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder in (first, second, third):
        folder.mkdir()
    cache = worker_answers.cache_file()
    assert cache is not None and cache.parent == tmp_path / "cache" / "handoff"
    assert not worker_answers.provide(first) and not worker_answers.provide(second)  # one writer, not two
    deadline = time.monotonic() + 120
    while not cache.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_answers.read(cache) is not None
    assert not cache.with_name(cache.name + ".writing").exists()
    assert worker_answers.provide(third)
    assert json.loads((third / worker_answers.FILE_NAME).read_text()) == json.loads(cache.read_text())
    assert not (first / worker_answers.FILE_NAME).exists()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # nothing half written left
