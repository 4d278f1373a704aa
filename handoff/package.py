"""Package format v1: one deterministic, verifiable zip an ML engineer can deploy.

Layout (documented in ``docs/package-format.md``)::

    <model>-v<version>/
      MANIFEST.json      format, lineage, metrics, checklist, environment, sha256 of every file
      README.md          the model card for engineers
      model/             the MLflow model directory (MLmodel, model file, requirements, examples)
      notebook/          source.ipynb, executed.ipynb, report.html (no JavaScript)
      checks/            report.json, junit.xml
      serve/             Dockerfile (MLflow's scoring server), README.md

The same version always packs to the same bytes: entries sorted, timestamps fixed at 1980-01-01,
permissions fixed, the manifest's time is the version's creation time. Writing goes to a temporary
file renamed into place, so an interrupted export never leaves a partial file under the final name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from handoff.fingerprint import sha256_file
from handoff.layout import (
    CHECK_JUNIT,
    CHECK_REPORT,
    CHECKS_DIR,
    EXECUTED_NOTEBOOK,
    MODEL_DIR,
    RECHECKS_DIR,
    REPORT_HTML,
    SOURCE_NOTEBOOK,
)
from handoff.record import BuildRecord
from handoff.record_view import render_markdown, sections

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

FORMAT_VERSION = 1
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
REQUIRED_FILES = (
    "MANIFEST.json",
    "README.md",
    f"{MODEL_DIR}/MLmodel",
    f"{MODEL_DIR}/requirements.txt",
    SOURCE_NOTEBOOK,
    EXECUTED_NOTEBOOK,
    REPORT_HTML,
    CHECK_REPORT,
    CHECK_JUNIT,
    "serve/Dockerfile",
    "serve/README.md",
)
#: Limits that make ``verify`` refuse a zip bomb before reading it (the rule: docs/package-format.md).
#: Ratio alone is no sign of a bomb: a notebook that printed the same line a million times
#: compresses over 1000:1, and handoff packs it. So a high ratio counts only above an absolute size
#: no handoff package member reaches, under a cap on the total.
MAX_TOTAL_BYTES = 20 * 1024**3
MAX_RATIO = 200
MAX_COMPRESSIBLE_BYTES = 1024**3
_EXPORTER_LOCK = threading.Lock()
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)


def package_name(name: str, version: int) -> str:
    return f"{name}-v{version}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_report_html(executed_notebook: Path | bytes) -> str:
    """The executed notebook (a path or its bytes) as static HTML: outputs' HTML sanitized, no <script> at all."""
    import nbformat

    raw = executed_notebook if isinstance(executed_notebook, bytes) else Path(executed_notebook).read_bytes()
    nb = nbformat.reads(raw.decode(), as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for mime in [m for m in output.get("data", {}) if "javascript" in m or "widget" in m]:
                del output["data"][mime]
    with _EXPORTER_LOCK:  # one exporter, its templates compiled once per process (not thread-safe)
        body, _ = _html_exporter().from_notebook_node(nb)
    return _SCRIPT.sub("", body)


@functools.cache
def _html_exporter() -> HTMLExporter:
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", embed_images=True, sanitize_html=True)


def warm_up() -> None:
    """Pay the report's first-render costs (nbconvert's imports, templates, filters: about a second of
    CPU) ahead; a build calls this on a thread while its notebook runs."""
    import nbformat

    cell = nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1\n")])
    render_report_html(nbformat.writes(nbformat.v4.new_notebook(cells=[cell])).encode())


def strip_outputs(notebook: bytes) -> bytes:
    """The notebook without its cells' outputs (execution counts kept: they show the order it ran in)."""
    import nbformat

    nb = nbformat.reads(notebook.decode(), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    text: str = nbformat.writes(nb)
    return text.encode()


def _dockerfile(python: str) -> str:
    major_minor = ".".join(python.split(".")[:2]) or "3.11"
    return f"""# Serve this model with MLflow's scoring server. Build from the package's root folder:
#   docker build -f serve/Dockerfile -t MODEL:VERSION .
FROM python:{major_minor}-slim
WORKDIR /opt/model
COPY model/ /opt/model/
RUN pip install --no-cache-dir -r /opt/model/requirements.txt
EXPOSE 8080
CMD ["mlflow", "models", "serve", "-m", "/opt/model", "--env-manager", "local", "--host", "0.0.0.0", "--port", "8080"]
"""


def _serve_readme(title: str) -> str:
    return f"""# Serving {title}

From the package's root folder:

```bash
# 1. In a Python environment with the model's pinned requirements
pip install -r model/requirements.txt
mlflow models serve -m model --env-manager local --host 127.0.0.1 --port 8080

# 2. Or as a container (MLflow's scoring server inside)
docker build -f serve/Dockerfile -t {title.lower()} .
docker run -p 8080:8080 {title.lower()}

# Then ask it for predictions
curl -s -X POST http://127.0.0.1:8080/invocations \\
     -H 'Content-Type: application/json' --data @model/serving_input_example.json
```

In Python: `mlflow.pyfunc.load_model("model").predict(data)`.
"""


def _schema(model_dir: Path) -> tuple[list[str], str | None]:
    """Input schema lines and the serving example from the MLmodel file, read as the YAML it is (its
    signature's inputs are MLflow's JSON schema): no MLflow import in the building process."""
    import yaml

    meta = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    inputs = (meta.get("signature") or {}).get("inputs")
    lines = []
    if inputs:
        for spec in json.loads(inputs):
            if spec.get("type") == "tensor":
                tensor = spec.get("tensor-spec", {})
                shape = tensor.get("shape")  # a tuple in MLflow's schema object, as the card always showed it
                lines.append(f"| (tensor) | {tensor.get('dtype')} | shape {tuple(shape) if shape else shape} |")
            else:
                lines.append(
                    f"| {spec.get('name', '(unnamed)')} | {spec.get('type')} | "
                    f"{'required' if spec.get('required', True) else 'optional'} |"
                )
    example = model_dir / "serving_input_example.json"
    return lines, json.dumps(json.loads(example.read_text())) if example.exists() else None


def _model_card(
    record: BuildRecord, title: str, model_dir: Path, version: int, created: str, stripped: bool = False
) -> str:
    """The package's README: status, input, how to serve it, then the record's sections."""
    schema, example = _schema(model_dir)
    out = [f"# {title}", ""]
    if not record.ok:
        out += [
            "> **This version FAILED its checklist.** It was exported with `--force`; do not deploy it "
            "without reading the checklist below.",
            "",
        ]
    out += [
        f"Model **{record.name}**, version **{version}**, created {created}, status **{record.status}**.",
        "",
        "As run: `notebook/executed.ipynb`, readable: `notebook/report.html`"
        + (" (both without the cells' outputs: exported with `--strip-outputs`)." if stripped else "."),
        "",
        "## Input",
        "",
    ]
    if schema:
        out += ["| column | type | |", "|---|---|---|", *schema, ""]
    else:
        out += ["No signature was recorded.", ""]
    if example:
        out += ["Example request body (`model/serving_input_example.json`):", "", "```json", example, "```", ""]
    out += [
        "## Serve it",
        "",
        "```bash",
        "mlflow models serve -m model --env-manager local --port 8080",
        "curl -X POST http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \\",
        "     --data @model/serving_input_example.json",
        "```",
        "",
        "Or `docker build -f serve/Dockerfile .` — see `serve/README.md`. "
        "In Python: `mlflow.pyfunc.load_model('model')`.",
        "",
    ]
    return "\n".join(out) + "\n" + render_markdown(sections(record))


def _manifest(
    record: BuildRecord, version: int, created: str, files: dict[str, bytes], stripped: bool = False
) -> dict[str, Any]:
    from handoff import __version__

    model, checks, env = record.outputs.model, record.outputs.checks, record.outputs.environment
    saved = model.saved if model else None
    manifest: dict[str, Any] = {"outputs_stripped": True} if stripped else {}  # absent: default packages unchanged
    return {
        **manifest,
        "format_version": FORMAT_VERSION,
        "name": record.name,
        "version": version,
        "created": created,
        "handoff_version": __version__,
        "status": record.status,
        "source_notebook": {"name": record.inputs.notebook.name, "sha256": record.inputs.notebook.sha256},
        "parameters": record.inputs.parameters,
        "metrics": record.metrics,
        "checklist": {
            "passed": checks.passed if checks else None,
            "summary": checks.summary if checks else None,
            "results": {r.id: r.status for r in checks.results} if checks else {},
        },
        "data": {
            "sha256": record.outputs.data.sha256,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in record.outputs.data.files],
        },
        "environment": {
            "python": env.python if env else None,
            "requirements": list(saved.requirements) if saved else [],
        },
        "serialization": {
            "flavor": saved.flavor if saved else None,
            "format": saved.format if saved else None,
            "reason": saved.reason if saved else None,
        },
        "model": {
            "type": model.type if model else None,
            "task": model.task if model else None,
            "variable": model.variable if model else None,
            "source": model.source if model else None,
            "rule": model.chosen_by if model else None,
        },
        "files": {path: {"size": len(data), "sha256": _sha256(data)} for path, data in sorted(files.items())},
    }


def package_files(
    artifacts: Path,
    record: BuildRecord,
    version: int,
    created: str,
    report_html: str | None = None,
    stripped: bool = False,
) -> dict[str, bytes]:
    """Every file of the package (relative path to bytes), from a build's artifacts folder.

    ``stripped`` ships the executed notebook (and its HTML report) without outputs, and says so in
    the manifest and README.
    """
    files: dict[str, bytes] = {}
    for sub in (MODEL_DIR, CHECKS_DIR):
        for path in sorted((artifacts / sub).rglob("*")):
            if path.is_file() and not path.relative_to(artifacts).as_posix().startswith(RECHECKS_DIR):
                files[path.relative_to(artifacts).as_posix()] = path.read_bytes()
    files[SOURCE_NOTEBOOK] = (artifacts / SOURCE_NOTEBOOK).read_bytes()
    executed = (artifacts / EXECUTED_NOTEBOOK).read_bytes()
    if stripped:
        executed, report_html = strip_outputs(executed), None
    files[EXECUTED_NOTEBOOK] = executed
    files[REPORT_HTML] = (report_html or render_report_html(executed)).encode()
    env = record.outputs.environment
    title = package_name(record.name, version)
    files["serve/Dockerfile"] = _dockerfile((env.python if env else None) or "3.11").encode()
    files["serve/README.md"] = _serve_readme(title).encode()
    files["README.md"] = _model_card(record, title, artifacts / MODEL_DIR, version, created, stripped).encode()
    manifest = _manifest(record, version, created, files, stripped)
    files["MANIFEST.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return files


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it only if the block completes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def write_zip(files: dict[str, bytes], root: str, target: Path) -> str:
    """Write a deterministic zip atomically; returns its sha256."""
    with (
        atomic_path(target) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
    ):
        for path in sorted(files):
            info = zipfile.ZipInfo(f"{root}/{path}", date_time=ZIP_EPOCH)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[path], compresslevel=9)
    return sha256_file(target)


def build_package(
    artifacts: Path,
    record: BuildRecord,
    version: int,
    created: str,
    target: Path,
    report_html: str | None = None,
    stripped: bool = False,
) -> str:
    """Pack a version's artifacts into ``target`` (a .zip); returns the zip's sha256."""
    files = package_files(artifacts, record, version, created, report_html, stripped)
    return write_zip(files, package_name(record.name, version), target)


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found.

    Attributes:
        path: The package verified.
        ok: True when every file matches the manifest and the layout is complete.
        problems: One line per problem: unsafe entries, changed / missing / unexpected files.
        manifest: The parsed manifest, when it could be read.
    """

    path: str
    ok: bool
    problems: tuple[str, ...]
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": list(self.problems),
            "name": self.manifest.get("name"),
            "version": self.manifest.get("version"),
            "status": self.manifest.get("status"),
        }


def _unsafe(infos: Iterable[zipfile.ZipInfo]) -> list[str]:
    """Entries no extractor should touch: checked on the central directory alone."""
    problems, seen, total = [], set(), 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            problems.append(f"unsafe: absolute path {name!r}")
        if ".." in parts:
            problems.append(f"unsafe: path traversal {name!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            problems.append(f"unsafe: symlink {name!r}")
        if name in seen:
            problems.append(f"unsafe: duplicate entry {name!r}")
        seen.add(name)
        total += info.file_size
        if info.file_size > MAX_TOTAL_BYTES or (
            info.file_size > MAX_COMPRESSIBLE_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1)
        ):
            problems.append(
                f"unsafe: {name!r} declares {info.file_size:,} bytes from {info.compress_size:,} compressed (zip bomb)"
            )
    if total > MAX_TOTAL_BYTES:
        problems.append(f"unsafe: declared total size {total:,} bytes exceeds {MAX_TOTAL_BYTES:,}")
    return problems


#: What reading a member whose headers lie (sizes, offsets, CRC, compression data) raises.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


def _corrupt(member: str, exc: BaseException) -> str:
    return f"corrupt package: member {member} cannot be read ({type(exc).__name__}: {exc})"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> tuple[int, str]:
    """Size and sha256 of a member, streamed, stopping one chunk past ``limit`` bytes.

    Raises ``BadZipFile`` when the member holds other than the size its central directory declares.
    """
    digest, size = hashlib.sha256(), 0
    with archive.open(info) as stream:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
            if size > limit:
                return size, digest.hexdigest()
    if size != info.file_size:
        raise zipfile.BadZipFile(f"it declares {info.file_size:,} bytes but holds {size:,}")
    return size, digest.hexdigest()


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Recompute every digest against the manifest and check the layout, extracting nothing."""
    label = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return VerifyReport(label, False, (f"not a readable zip: {exc}",))
    with archive:
        infos = archive.infolist()
        unsafe = _unsafe(infos)
        if unsafe:
            return VerifyReport(label, False, tuple(unsafe))
        roots = {PurePosixPath(i.filename).parts[0] for i in infos}
        if len(roots) != 1:
            return VerifyReport(label, False, (f"layout: expected one top-level folder, found {sorted(roots)}",))
        root = roots.pop()
        members = {i.filename[len(root) + 1 :]: i for i in infos if not i.is_dir()}
        if "MANIFEST.json" not in members:
            return VerifyReport(label, False, ("missing: MANIFEST.json",))
        try:
            manifest = json.loads(archive.read(members["MANIFEST.json"]))
        except _CORRUPT as exc:
            return VerifyReport(label, False, (_corrupt("MANIFEST.json", exc),))
        except (ValueError, UnicodeDecodeError) as exc:
            return VerifyReport(label, False, (f"MANIFEST.json is not valid JSON: {exc}",))
        problems = []
        if manifest.get("format_version") != FORMAT_VERSION:
            problems.append(f"layout: unsupported format_version {manifest.get('format_version')!r}")
        expected_root = package_name(str(manifest.get("name")), manifest.get("version"))
        if root != expected_root:
            problems.append(f"layout: top-level folder is {root!r}, the manifest says {expected_root!r}")
        listed = manifest.get("files", {})
        for rel, entry in sorted(listed.items()):
            info = members.get(rel)
            if info is None:
                problems.append(f"missing: {rel}")
                continue
            try:
                size, sha256 = _read_member(archive, info, entry.get("size", 0))
            except _CORRUPT as exc:
                problems.append(_corrupt(rel, exc))
                continue
            if size != entry.get("size") or sha256 != entry.get("sha256"):
                problems.append(f"changed: {rel} (sha256 or size differs from the manifest)")
        for rel in sorted(set(members) - set(listed) - {"MANIFEST.json"}):
            problems.append(f"unexpected: {rel} (not in the manifest)")
        for rel in REQUIRED_FILES:
            if rel not in members and rel not in listed:
                problems.append(f"layout: required file {rel} is absent")
    return VerifyReport(label, not problems, tuple(problems), manifest)
