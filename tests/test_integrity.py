"""Store integrity: first use under concurrency, owner-only files, tamper-evident versions."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.store import Store

RECORD_ONE = """
import sys, tempfile
from pathlib import Path
from handoff.store import Store
staging = Path(tempfile.mkdtemp())
(staging / "model").mkdir()
(staging / "model" / "MLmodel").write_text(sys.argv[2])
recorded = Store(sys.argv[1]).record_build(name="m", staging=staging, record={"status": "passed"}, params={},
                                           metrics={"a": 1.0}, tags={}, register=True)
print(recorded.version)
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_six_processes_opening_a_new_store_at_once_all_record_and_files_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "brand" / "new"  # does not exist yet: every process races to create the schema
    procs = [subprocess.Popen([sys.executable, "-c", RECORD_ONE, str(home), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-1500:] for _, err in outputs]
    assert sorted(int(out.split()[-1]) for out, _ in outputs) == [1, 2, 3, 4, 5, 6]
    store = Store(home)
    assert [v.version for v in store.list_versions("m")] == [1, 2, 3, 4, 5, 6]
    assert store.get_version("m", 6).details["status"] == "passed"
    assert _mode(home) == 0o700 and _mode(home / "mlflow.db") == 0o600 and _mode(home / "artifacts") == 0o700
    under = list((home / "artifacts").rglob("*"))
    assert any(p.name == "MLmodel" for p in under)
    assert {_mode(p) for p in under if p.is_file()} == {0o600}
    assert {_mode(p) for p in under if p.is_dir()} == {0o700}
