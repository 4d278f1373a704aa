"""Is a build's output the same, however fast it was made? Builds one notebook with two Pythons (e.g.
``main``'s venv and this checkout's) and diffs what must not change: the record (without timings, run
ids, times and the load and latency checks' measurements), the package's file list, and the model's
files byte for byte (a zip-format file such as ``model.skops`` or ``model.pth`` member by member,
with the ``id()``s skops names its arrays after and PyTorch's random ``serialization_id`` left out;
``MLmodel`` without its creation time and uuid).

    .venv/bin/python benchmarks/build_content.py --before /work/main/.venv/bin/python \\
        [--after .venv/bin/python] [--notebook sample_notebooks/iris_classifier.ipynb]

Prints ``same content`` (exit 0) or each difference (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Measured, not built: they differ between any two builds.
VOLATILE_MLMODEL = re.compile(rb"^(utc_time_created|model_uuid):.*\n", re.M)
#: Checks whose message and ``*_ms`` details are times measured in the worker.
MEASURED = ("model.latency", "model.loads")
OBJECT_ID = re.compile(rb"\b\d{9,}\b")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _zip_members(data: bytes) -> dict[str, Any]:
    """A zip-format model file's members: by content (skops names its arrays after ``id()``s, which
    differ in every process), and skops's schema with those ids blanked."""
    with zipfile.ZipFile(io.BytesIO(data)) as inner:  # PyTorch writes a random id in every save
        members = {n: inner.read(n) for n in inner.namelist() if not n.endswith("serialization_id")}
    schema = OBJECT_ID.sub(b"ID", members.pop("schema.json", b""))
    return {"schema.json": _digest(schema), "arrays": sorted(_digest(d) for d in members.values())}


def content(record: dict[str, Any], package: Path) -> dict[str, Any]:
    """What must not depend on the build's speed, from a record's JSON form and its package."""
    record = json.loads(json.dumps(record, default=str))
    record.pop("timings", None)
    record["lineage"] = {"champion": record.get("lineage", {}).get("champion")}
    checks = record.get("outputs", {}).get("checks") or {}
    checks.pop("created", None)
    checks.pop("seconds", None)
    for row in checks.get("results", []):
        row.pop("seconds", None)
        if row.get("id") in MEASURED:  # milliseconds measured on a busy machine
            row.pop("message", None)
            row["details"] = {k: v for k, v in (row.get("details") or {}).items() if not k.endswith("_ms")}
    files: dict[str, Any] = {}
    with zipfile.ZipFile(package) as archive:
        for name in sorted(archive.namelist()):
            short = name.split("/", 1)[1]  # without "<model>-v<N>/"
            data = archive.read(name)
            if not short.startswith("model/"):
                files[short] = "present"  # manifest, README, reports: they carry times and the version
            elif zipfile.is_zipfile(io.BytesIO(data)):  # model.skops, PyTorch's model.pth
                files[short] = _zip_members(data)
            elif short.endswith("MLmodel"):
                files[short] = _digest(VOLATILE_MLMODEL.sub(b"", data))
            else:
                files[short] = _digest(data)
    return {"record": record, "package": files}


def _one(notebook: Path, output: Path) -> None:
    """Build ``notebook`` into a fresh store with this Python's handoff; write its content as JSON."""
    import handoff

    with tempfile.TemporaryDirectory(prefix="handoff-content-") as tmp:
        store = handoff.open_store(Path(tmp) / "store")
        result = handoff.build(notebook, store=store)
        if not result.ok or result.version is None:
            raise SystemExit(f"the build failed: {result.error}")
        exported = handoff.export(result.name, result.version, Path(tmp) / "export", store=store)
        output.write_text(json.dumps(content(result.record.to_dict(), Path(exported.path)), indent=1, sort_keys=True))


def _differences(before: Any, after: Any, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key not in after:
                found.append(f"{where}/{key}: only before")
            elif key not in before:
                found.append(f"{where}/{key}: only after")
            else:
                found += _differences(before[key], after[key], f"{where}/{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in _differences(b, a, f"{where}/{i}")
        ]
    return [] if before == after else [f"{where}: {str(before)[:200]!r} -> {str(after)[:200]!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the Python (venv) of the code before")
    parser.add_argument("--after", type=Path, default=Path(sys.executable))
    parser.add_argument("--notebook", type=Path, default=ROOT / "sample_notebooks" / "iris_classifier.ipynb")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.notebook.resolve(), args.one)
        return 0
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="handoff-content-") as tmp:
        for label, python in (("before", args.before), ("after", args.after)):
            out = Path(tmp) / f"{label}.json"
            subprocess.run(
                [
                    str(python),
                    __file__,
                    "--before",
                    str(python),
                    "--notebook",
                    str(args.notebook.resolve()),
                    "--one",
                    str(out),
                ],
                check=True,
                cwd=tmp,
            )
            found[label] = json.loads(out.read_text())
    differences = _differences(found["before"], found["after"])
    model_files = sorted(k for k in found["after"]["package"] if k.startswith("model/"))
    print(f"notebook: {args.notebook}; before: {args.before}; after: {args.after}")
    print(
        f"compared: the record ({len(json.dumps(found['after']['record']))} chars of JSON), "
        f"{len(found['after']['package'])} package files, model files {', '.join(model_files)}"
    )
    for line in differences:
        print("DIFFERENT", line)
    print("same content" if not differences else f"{len(differences)} differences")
    return 0 if not differences else 1


if __name__ == "__main__":
    raise SystemExit(main())
