"""Package format v1: layout, manifest, determinism, atomic export, verify, and real serving."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import handoff
from handoff.cli import main
from handoff.errors import OptionError, TamperedError
from handoff.package import MAX_COMPRESSIBLE_BYTES, REQUIRED_FILES, verify
from handoff.store import Store
from helpers import SAMPLES, TRAIN_IRIS, build, free_port, local_path, predict_in_fresh_process
from versions_fixture import copy_store


def _build_and_export(store: Store, out: Path) -> tuple[handoff.BuildResult, Path]:
    result = build(SAMPLES / "dataframe_features.ipynb", store)
    assert result.ok, result.error
    return result, handoff.export(result.name, result.version, out, store=store).path


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory, _store_template: Path) -> Store:
    """One store for the tests that only read its version: built once per worker, not once per test."""
    return copy_store(_store_template, tmp_path_factory.mktemp("package") / "store")


@pytest.fixture(scope="module")
def exported(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> tuple[handoff.BuildResult, Path]:
    return _build_and_export(shared_store, tmp_path_factory.mktemp("exported") / "out")


@pytest.fixture
def exported_alone(tmp_path: Path, store: Store) -> tuple[handoff.BuildResult, Path]:
    """Its own build, for a test that damages what the store holds."""
    return _build_and_export(store, tmp_path / "out")


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_layout_and_manifest(exported, shared_store: Store) -> None:
    result, path = exported
    assert path.name == "dataframe_features-v1.zip"
    members = _members(path)
    root = "dataframe_features-v1/"
    assert all(name.startswith(root) for name in members)
    assert {root + f for f in REQUIRED_FILES} <= members.keys()
    assert {
        root + f"model/{f}" for f in ("input_example.json", "serving_input_example.json", "python_env.yaml")
    } <= members.keys()
    manifest = json.loads(members[root + "MANIFEST.json"])
    assert (manifest["format_version"], manifest["name"], manifest["version"], manifest["status"]) == (
        1,
        "dataframe_features",
        1,
        "passed",
    )
    assert manifest["created"] == shared_store.get_version("dataframe_features", 1).created
    assert (
        manifest["source_notebook"]["sha256"]
        == shared_store.get_version("dataframe_features", 1).build.inputs.notebook.sha256
    )
    assert manifest["parameters"] == result.record.inputs.parameters and manifest["metrics"] == result.metrics
    assert manifest["checklist"]["results"]["model.loads"] == "passed"
    assert manifest["data"]["files"][0]["path"].endswith("breast_cancer.csv")
    assert manifest["environment"]["python"] and any(
        r.startswith("scikit-learn==") for r in manifest["environment"]["requirements"]
    )
    assert manifest["serialization"]["format"] == "skops" and manifest["serialization"]["reason"]
    listed = set(manifest["files"])
    assert listed == {n[len(root) :] for n in members} - {"MANIFEST.json"}
    readme = members[root + "README.md"].decode()
    for heading in ("## Input", "## Serve it", "## Model", "## Metrics", "## Checklist", "## Data", "## Lineage"):
        assert heading in readme
    assert "mean radius" in readme and "mlflow models serve" in readme and "roc_auc" in readme
    assert b"mlflow" in members[root + "serve/Dockerfile"] and b"<script" not in members[root + "notebook/report.html"]


def test_exports_are_byte_identical_and_match_the_recorded_digest(
    exported, tmp_path: Path, shared_store: Store
) -> None:
    result, first = exported
    second = handoff.export(result.name, result.version, tmp_path / "again.zip", store=shared_store)
    assert first.read_bytes() == second.path.read_bytes()
    recorded = shared_store.read_artifact(result.run_id, "package/dataframe_features-v1.zip.sha256").decode().split()[0]
    assert recorded == second.sha256


def test_a_missing_stored_package_is_rebuilt_to_the_same_bytes(exported_alone, tmp_path: Path, store: Store) -> None:
    result, first = exported_alone
    package_dir = store.local_artifacts(result.run_id) / "package"
    shutil.rmtree(package_dir)
    rebuilt = handoff.export(result.name, result.version, tmp_path / "rebuilt.zip", store=store)
    assert rebuilt.path.read_bytes() == first.read_bytes()
    assert (package_dir / "dataframe_features-v1.zip").exists()


def test_interrupted_export_leaves_no_partial_file(
    exported, tmp_path: Path, shared_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = exported

    def broken_copy(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", broken_copy)
    target = tmp_path / "final" / "pkg.zip"
    with pytest.raises(OSError, match="disk full"):
        handoff.export(result.name, result.version, target, store=shared_store)
    assert list(target.parent.iterdir()) == []


def test_failed_version_exports_only_with_force(write_notebook, tmp_path: Path, store: Store) -> None:
    path = write_notebook(
        [
            "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
            "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier().fit(X, y)\n"
            "accuracy = 0.5"
        ],
        name="weak.ipynb",
    )
    result = build(path, store, checks={"thresholds": ["accuracy>=0.9"]})
    assert result.status == "failed" and result.version == 1
    with pytest.raises(OptionError, match="failed its checklist; it is exported only with --force"):
        handoff.export("weak", 1, tmp_path, store=store)
    forced = handoff.export("weak", 1, tmp_path, store=store, force=True)
    members = _members(forced.path)
    assert json.loads(members["weak-v1/MANIFEST.json"])["status"] == "failed"
    assert "FAILED its checklist" in members["weak-v1/README.md"].decode()
    assert verify(forced.path).ok


def _rewrite(source: Path, target: Path, change) -> Path:
    """Copy a zip member by member, letting ``change(name, data)`` edit, drop (None) or keep each."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info))
            if data is not None:
                dst.writestr(info, data)
    return target


def test_verify_reports_each_kind_of_tampering(exported, tmp_path: Path) -> None:
    _, path = exported
    assert verify(path).ok and verify(path).problems == ()
    flipped = _rewrite(
        path,
        tmp_path / "flipped.zip",
        lambda n, d: (bytes([d[0] ^ 1]) + d[1:]) if n.endswith("model/model.skops") else d,
    )
    assert verify(flipped).problems == ("changed: model/model.skops (sha256 or size differs from the manifest)",)
    removed = _rewrite(path, tmp_path / "removed.zip", lambda n, d: None if n.endswith("checks/junit.xml") else d)
    problems = verify(removed).problems
    assert "missing: checks/junit.xml" in problems and not verify(removed).ok
    added = tmp_path / "added.zip"
    shutil.copy(path, added)
    with zipfile.ZipFile(added, "a") as archive:
        archive.writestr("dataframe_features-v1/model/extra.py", "import os")
    assert verify(added).problems == ("unexpected: model/extra.py (not in the manifest)",)
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("hello")
    assert "not a readable zip" in verify(not_zip).problems[0]


def _malicious(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m-v1/MANIFEST.json", "{}")
        if kind == "traversal":
            archive.writestr("m-v1/../../evil.sh", "rm -rf /")
        elif kind == "absolute":
            archive.writestr("/etc/evil.conf", "x")
        elif kind == "symlink":
            info = zipfile.ZipInfo("m-v1/link")
            info.external_attr = (0o120777) << 16
            archive.writestr(info, "/etc/passwd")
        elif kind == "duplicate":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                archive.writestr("m-v1/MANIFEST.json", "{}")
    if kind == "bomb":  # just over the size above which a ratio over 200 is refused, at ratio ~230
        with (
            zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
            archive.open("m-v1/model/model.pkl", "w", force_zip64=True) as member,
        ):
            chunk = b"\0" * 1024**2
            for _ in range(MAX_COMPRESSIBLE_BYTES // len(chunk) + 1):
                member.write(chunk)
    return path


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("traversal", "path traversal"),
        ("absolute", "absolute path"),
        ("symlink", "symlink"),
        ("duplicate", "duplicate entry"),
        ("bomb", "zip bomb"),
    ],
)
def test_verify_rejects_malicious_zips_without_extracting(tmp_path: Path, kind: str, phrase: str) -> None:
    path = _malicious(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        report = verify(path)
    finally:
        os.chdir(cwd)
    assert not report.ok and any(phrase in p for p in report.problems), report.problems
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing was extracted


def test_cli_export_and_verify(exported, tmp_path: Path, shared_store: Store, capsys: pytest.CaptureFixture) -> None:
    result, _ = exported
    home = str(local_path(shared_store.artifact_root).parent)
    target = tmp_path / "cli.zip"
    assert main(["export", result.name, "1", "-o", str(target), "--store", home]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(target)
    assert out[1].split()[:2] == ["sha256", hashlib.sha256(target.read_bytes()).hexdigest()]
    assert main(["verify", str(target)]) == 0
    assert "intact" in capsys.readouterr().out
    broken = _rewrite(target, tmp_path / "broken.zip", lambda n, d: None if n.endswith("-v1/README.md") else d)
    assert main(["verify", str(broken), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == ["missing: README.md"]


def _lie_about_size(source: Path, target: Path, member: str, delta: int) -> Path:
    """Copy a zip, changing the uncompressed size its central directory declares for one member."""
    data = bytearray(source.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_len = int.from_bytes(data[start + 28 : start + 30], "little")
        if data[start + 46 : start + 46 + name_len].decode().endswith(member):
            size = int.from_bytes(data[start + 24 : start + 28], "little")
            data[start + 24 : start + 28] = (size + delta).to_bytes(4, "little")
            target.write_bytes(bytes(data))
            return target
        start = data.find(b"PK\x01\x02", start + 4)
    raise AssertionError(f"{member} not in {source}")


@pytest.mark.parametrize("delta", [-7, 4096])
def test_verify_calls_a_member_whose_declared_size_lies_corrupt(
    exported, tmp_path: Path, delta: int, capsys: pytest.CaptureFixture
) -> None:
    _, path = exported
    lying = _lie_about_size(path, tmp_path / "lying.zip", "model/MLmodel", delta)
    report = verify(lying)
    assert not report.ok
    assert any(p.startswith("corrupt package: member model/MLmodel") for p in report.problems), report.problems
    assert main(["verify", str(lying)]) == 1
    captured = capsys.readouterr()
    assert "corrupt package: member model/MLmodel" in captured.out and "internal error" not in captured.err


def test_a_package_with_a_large_highly_compressible_notebook_verifies_and_strips(
    write_notebook, tmp_path: Path, store: Store
) -> None:
    # 2 MB of one repeated line: over 1 MiB at a ratio far above 200, which the bomb guard once refused
    path = write_notebook([TRAIN_IRIS, "print('handoff-marker ' * 140_000)"], name="chatty.ipynb")
    result = build(path, store)
    assert result.ok, result.error
    full = handoff.export("chatty", 1, tmp_path / "full", store=store)
    with zipfile.ZipFile(full.path) as archive:
        info = archive.getinfo("chatty-v1/notebook/executed.ipynb")
        assert info.file_size > 2_000_000 and info.file_size > 200 * info.compress_size
    assert verify(full.path).ok, verify(full.path).problems
    assert handoff.verify_recorded(full.path, store=store).ok

    stripped = handoff.export("chatty", 1, tmp_path / "stripped", store=store, strip_outputs=True)
    assert stripped.outputs_stripped and stripped.sha256 != full.sha256
    assert verify(stripped.path).ok and handoff.verify_recorded(stripped.path, store=store).ok
    members = _members(stripped.path)
    executed = json.loads(members["chatty-v1/notebook/executed.ipynb"])
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] for c in code) and any(c["execution_count"] for c in code)
    assert b"handoff-marker" in members["chatty-v1/notebook/executed.ipynb"]  # the source line stays
    assert members["chatty-v1/notebook/report.html"].count(b"handoff-marker") < 5
    assert _members(full.path)["chatty-v1/notebook/report.html"].count(b"handoff-marker") > 100_000
    assert json.loads(members["chatty-v1/MANIFEST.json"])["outputs_stripped"] is True
    assert "outputs_stripped" not in json.loads(_members(full.path)["chatty-v1/MANIFEST.json"])
    assert "exported with `--strip-outputs`" in members["chatty-v1/README.md"].decode()
    # the store-recorded package is untouched: a plain export is still the same bytes
    assert handoff.export("chatty", 1, tmp_path / "again", store=store).sha256 == full.sha256


def test_export_refuses_a_stored_package_truncated_on_disk(
    exported_alone, tmp_path: Path, store: Store, capsys: pytest.CaptureFixture
) -> None:
    result, _ = exported_alone
    stored = store.local_artifacts(result.run_id) / "package" / "dataframe_features-v1.zip"
    stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    with pytest.raises(
        TamperedError,
        match=re.escape("version 1 of dataframe_features was modified after it was recorded: ")
        + re.escape("package/dataframe_features-v1.zip differs"),
    ):
        handoff.export(result.name, 1, tmp_path / "out2", store=store)
    home = str(local_path(store.artifact_root).parent)
    assert main(["export", result.name, "1", "-o", str(tmp_path / "out3"), "--store", home]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "package/dataframe_features-v1.zip differs" in err[0]
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def _recomputed(source: Path, target: Path, member: str, change) -> Path:
    """A re-zipped package whose member was changed and whose manifest was recomputed to match."""
    members = _members(source)
    root = next(iter(members)).split("/")[0]
    members[f"{root}/{member}"] = change(members[f"{root}/{member}"])
    manifest = json.loads(members[f"{root}/MANIFEST.json"])
    manifest["files"][member] = {
        "size": len(members[f"{root}/{member}"]),
        "sha256": hashlib.sha256(members[f"{root}/{member}"]).hexdigest(),
    }
    members[f"{root}/MANIFEST.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_verify_with_store_catches_a_rezipped_package_with_a_recomputed_manifest(
    exported, tmp_path: Path, shared_store: Store, capsys: pytest.CaptureFixture
) -> None:
    _, path = exported
    home = str(local_path(shared_store.artifact_root).parent)
    assert main(["verify", str(path), "--store", home]) == 0
    assert "it is the package the store recorded" in capsys.readouterr().out
    forged = _recomputed(path, tmp_path / "forged.zip", "README.md", lambda d: d + b"\nAll checks passed.\n")
    assert verify(forged).ok  # self-consistent: the manifest alone cannot tell
    report = handoff.verify_recorded(forged, store=shared_store)
    assert not report.ok and report.problems[-1].startswith("recorded: not the package")
    assert main(["verify", str(forged), "--store", home]) == 1
    assert "recorded: not the package" in capsys.readouterr().out


def test_exported_model_serves_with_mlflow_and_loads_in_a_fresh_process(exported, tmp_path: Path) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path / "pkg")
    model_dir = tmp_path / "pkg" / "dataframe_features-v1" / "model"
    expected = predict_in_fresh_process(model_dir)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "the scoring server did not come up"
                time.sleep(0.5)
        body = (model_dir / "serving_input_example.json").read_bytes()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert answer["predictions"] == expected
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
