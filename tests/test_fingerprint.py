"""Data fingerprint: data files are kept, code and library internals are left out."""

from __future__ import annotations

import hashlib
from pathlib import Path

from handoff.fingerprint import combined_digest, fingerprint, is_data_file


def test_data_in_the_workdir_is_fingerprinted_code_and_hidden_files_are_not(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / ".handoff").mkdir(parents=True)
    (work / "train.csv").write_text("a,b\n1,2\n")
    (work / "helper.py").write_text("x = 1")
    (work / ".handoff" / "capture.json").write_text("{}")
    reads = [
        str(work / "train.csv"),
        str(work / "train.csv"),
        str(work / "helper.py"),
        str(work / ".handoff" / "capture.json"),
        str(work / "missing.csv"),
    ]
    files = fingerprint(reads, str(work), [])
    assert files == [{"path": "train.csv", "size": 8, "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()}]


def test_bundled_datasets_count_other_library_files_do_not(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "sklearn" / "datasets" / "data").mkdir(parents=True)
    (site / "sklearn" / "datasets" / "data" / "iris.csv").write_text("1,2\n")
    (site / "sklearn" / "datasets" / "descr").mkdir()
    (site / "sklearn" / "datasets" / "descr" / "iris.rst").write_text("doc")
    (site / "pkg").mkdir()
    (site / "pkg" / "table.csv").write_text("internal")
    assert is_data_file(str(site / "sklearn/datasets/data/iris.csv"), str(tmp_path / "w"), [str(site)])
    assert not is_data_file(str(site / "sklearn/datasets/descr/iris.rst"), str(tmp_path / "w"), [str(site)])
    assert not is_data_file(str(site / "pkg/table.csv"), str(tmp_path / "w"), [str(site)])
    files = fingerprint([str(site / "sklearn/datasets/data/iris.csv")], str(tmp_path / "w"), [str(site)])
    assert files[0]["path"] == "<site-packages>/sklearn/datasets/data/iris.csv"


def test_combined_digest_changes_with_content_not_order() -> None:
    a = [{"path": "a.csv", "sha256": "1"}, {"path": "b.csv", "sha256": "2"}]
    assert combined_digest(a) == combined_digest(list(reversed(a)))
    assert combined_digest(a) != combined_digest([{"path": "a.csv", "sha256": "1"}, {"path": "b.csv", "sha256": "3"}])
