"""skops's trust lists, worked out once per environment (handoff.skops_lists): the lists a worker
imports with the kept file are the lists skops works out itself, and the file is written by a
detached process the first time a worker is started without it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handoff import skops_lists

#: Prints every trust list skops built at import, as JSON (run in a fresh interpreter).
PRINT_LISTS = """
import json, sys
from pathlib import Path
from handoff import skops_lists
kept = skops_lists.read(Path(sys.argv[1])) if len(sys.argv) > 1 else None
if len(sys.argv) > 1:
    assert kept is not None, "the kept file was refused"
    with skops_lists.answering(kept):
        import skops.io
else:
    import skops.io
from skops.io import _trusted_types
print(json.dumps({k: v for k, v in vars(_trusted_types).items() if k.endswith("_NAMES")}, sort_keys=True))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("sklearn."))))
"""


def _lists(*args: str) -> tuple[dict[str, list[str]], list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PRINT_LISTS, *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    return json.loads(out[0]), json.loads(out[1])


def test_the_kept_lists_are_the_lists_skops_works_out(tmp_path: Path) -> None:
    kept = tmp_path / "lists.json"
    subprocess.run([sys.executable, "-m", "handoff.checks.runner", "--skops-lists", str(kept)], check=True, timeout=120)
    noted = json.loads(kept.read_text())
    assert noted["versions"] == skops_lists.versions() and len(noted["estimators"]) > 100
    assert "sklearn.ensemble._forest.RandomForestClassifier" in noted["estimators"] and noted["public"]
    (worked_out, walked), (answered, imported) = _lists(), _lists(str(kept))
    assert answered == worked_out and len(answered["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100
    assert len(imported) < len(walked) - 100  # without the walk through every scikit-learn module


def test_lists_for_other_versions_or_half_written_are_not_used(tmp_path: Path) -> None:
    path = tmp_path / "lists.json"
    path.write_text(
        json.dumps({"versions": {**skops_lists.versions(), "skops": "0.0.1"}, "estimators": [], "public": {}})
    )
    assert skops_lists.read(path) is None
    path.write_text('{"versions": ')
    assert skops_lists.read(path) is None and skops_lists.read(tmp_path / "missing.json") is None


def test_a_worker_without_the_lists_has_them_written_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder in (first, second, third):
        folder.mkdir()
    cache = skops_lists.cache_file()
    assert cache is not None and cache.parent == tmp_path / "cache" / "handoff"
    assert not skops_lists.provide(first) and not skops_lists.provide(second)  # one writer, not two
    deadline = time.monotonic() + 120
    while not cache.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert skops_lists.read(cache) is not None
    assert not cache.with_name(cache.name + ".writing").exists()
    assert skops_lists.provide(third)
    assert json.loads((third / skops_lists.FILE_NAME).read_text()) == json.loads(cache.read_text())
    assert not (first / skops_lists.FILE_NAME).exists()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # nothing half written left
