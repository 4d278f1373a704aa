"""What a build record shows people, in one order with one set of labels, for every medium.

``sections()`` turns a ``BuildRecord`` into titled sections of labelled lines and tables; the CLI
prints them as text (``render_text``), the package's model card as Markdown (``render_markdown``)
and the app draws them with Streamlit (``app/common.py``). Only the drawing differs, so the three
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handoff.messages import render
from handoff.record import BuildRecord, CheckReport, ModelInfo

#: The generic pyfunc fallback (``handoff/flavors/pyfunc.py``) and what the Model section says of it.
FALLBACK_FLAVOR = "pyfunc"
FALLBACK_WARNING = (
    "arbitrary pickle: loading runs code (no library flavor knows this model: it is cloudpickled inside "
    "a generic MLflow pyfunc; load it only from a trusted source)"
)
STATUS_LABELS = {"passed": "passed", "failed": "FAILED", "warning": "warning", "skipped": "skipped"}
#: The title of the section that holds a failed build's error: first, and only there (and in its root-cause check).
ERROR_SECTION = "Error"


@dataclass(frozen=True)
class Table:
    """Rows of text under column names."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    """A titled part of the record: ``label: value`` lines, then an optional table."""

    title: str
    lines: tuple[tuple[str, str], ...] = ()
    table: Table | None = None


def sections(record: BuildRecord) -> list[Section]:
    """The record as people read it: the error first (only for a failed build: shown once, on top),
    then model, metrics, parameters, checklist, data, environment, lineage, timings, and warnings
    (only when there are any). Hints in values are tokens (``handoff.messages``): renderers say them."""
    out = [error_section(record)] if record.error else []
    out += [
        _model(record.outputs.model),
        _metrics(record),
        _parameters(record),
        _checklist(record),
        _data(record),
        _environment(record),
        _lineage(record),
        _timings(record),
    ]
    if record.warnings:
        out.append(Section("Problems", tuple(("warning", w) for w in record.warnings)))
    return out


def error_section(record: BuildRecord) -> Section:
    """Where and why the build failed: the one failure (later checks say "skipped", not failed)."""
    error = record.error
    if error is None:
        return Section(ERROR_SECTION, (("error", "none"),))
    return Section(ERROR_SECTION, (("error", error.message),))


def candidate_rows(model: ModelInfo) -> list[tuple[str, ...]]:
    """Every model the build considered: the chosen one first, parts marked."""
    chosen = model.variable or (model.packaged or "").removeprefix("file ")
    rows = [
        (
            c.name,
            c.kind,
            c.type.rsplit(".", 1)[-1],
            str(c.cell or ""),
            "yes" if c.name == chosen else "",
            f"part of {c.part_of}" if c.part_of else c.note,
        )
        for c in model.candidates
    ]
    return sorted(rows, key=lambda r: r[4] != "yes")


def _model(model: ModelInfo | None) -> Section:
    if model is None:
        return Section("Model", (("shipped", "no model was captured"),))
    lines = [
        ("shipped", f"{model.shipped} ({model.type})"),
        ("task", model.task or "unknown"),
        ("chosen by", model.chosen_by),
    ]
    if model.saved is not None:
        lines += [
            ("saved as", f"{model.saved.format} (MLflow flavor {model.saved.flavor}): {model.saved.reason}"),
            ("requirements", ", ".join(model.saved.requirements) or "none"),
        ]
        if model.saved.flavor == FALLBACK_FLAVOR:
            lines.append(("warning", FALLBACK_WARNING))
    else:
        lines.append(("saved as", "not saved"))
    rows = candidate_rows(model)
    table = Table(("candidate", "from", "type", "cell", "chosen", "note"), tuple(rows)) if len(rows) > 1 else None
    return Section("Model", tuple(lines), table)


def _metrics(record: BuildRecord) -> Section:
    metrics = record.outputs.metrics
    if not metrics:
        return Section("Metrics", (("metrics", "none captured"),))
    return Section(
        "Metrics",
        table=Table(("metric", "value", "source"), tuple((m.name, f"{m.value:.6g}", m.source) for m in metrics)),
    )


def _parameters(record: BuildRecord) -> Section:
    values = record.inputs.parameters
    if not values:
        return Section("Parameters", (("parameters", "none"),))
    return Section("Parameters", table=Table(("parameter", "value"), tuple((k, repr(v)) for k, v in values.items())))


def _checklist(record: BuildRecord) -> Section:
    return checklist_section(record.outputs.checks)


def checklist_section(report: CheckReport | None) -> Section:
    """The checklist: its summary, then one row per check (also what ``handoff check`` prints)."""
    if report is None:
        return Section("Checklist", (("summary", "not run"),))
    return Section(
        "Checklist",
        (("summary", f"{report.summary} ({report.seconds:.2f}s)"),),
        Table(
            ("check", "status", "severity", "result"),
            tuple((r.id, STATUS_LABELS.get(r.status, r.status), r.severity, r.message) for r in report.results),
        ),
    )


def _data(record: BuildRecord) -> Section:
    data = record.outputs.data
    if not data.files:
        return Section("Data", (("fingerprint", "no data files were read"),))
    return Section(
        "Data",
        (("fingerprint", data.sha256),),
        Table(("file", "bytes", "sha256"), tuple((f.path, f"{f.size:,}", f.sha256) for f in data.files)),
    )


def _environment(record: BuildRecord) -> Section:
    env, inputs = record.outputs.environment, record.inputs
    lines = [("python", (env.python if env else None) or "unknown"), ("kernel", inputs.kernel or "unknown")]
    if (built := inputs.build_environment) is not None:
        how = "made for this build" if built.created else "reused from the cache"
        lines.append(
            (
                "build environment",
                f"{len(built.pins)} packages from {', '.join(built.sources)} (env {built.key}, {how})",
            )
        )
    if inputs.sandbox is not None:
        limits = inputs.sandbox.limits
        memory = f", memory {limits['memory_bytes'] / 1024**3:g} GiB" if "memory_bytes" in limits else ""
        lines.append(("sandbox", f"{inputs.sandbox.kind}, network {inputs.sandbox.network}{memory}"))
    if env is not None:
        lines.append(("imported", ", ".join(f"{k}=={v}" for k, v in env.imported.items()) or "none"))
    return Section("Environment", tuple(lines))


def _lineage(record: BuildRecord) -> Section:
    notebook, lineage = record.inputs.notebook, record.lineage
    lines = [("notebook", f"{notebook.name} (sha256 {notebook.sha256})")]
    if lineage.run_id:
        lines.append(("run", lineage.run_id))
    run = lineage.notebook_run
    if run is not None:
        lines.append(("notebook's MLflow run", f"{run.run_name!r} ({run.run_id}), params {_inline(run.params)}"))
    if lineage.champion is not None:
        lines.append(("compared with", f"champion v{lineage.champion}"))
    lines.append(("built by", f"handoff {record.handoff_version or 'unknown'} (record schema {record.schema_version})"))
    return Section("Lineage", tuple(lines))


def _timings(record: BuildRecord) -> Section:
    return Section("Timings", (("seconds", ", ".join(f"{k} {v:.2f}" for k, v in record.timings.items()) or "none"),))


def _inline(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "none"


def render_text(parts: list[Section], indent: str = "  ") -> str:
    """Plain text for a terminal: a title per section, ``label: value`` lines, aligned tables."""
    out: list[str] = []
    for section in parts:
        out.append(section.title)
        out += [f"{indent}{label}: {render(value, 'cli')}" for label, value in section.lines]
        if section.table is not None:
            rows = [section.table.columns, *(tuple(render(c, "cli") for c in row) for row in section.table.rows)]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            out += [(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip() for row in rows]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return render(text, "markdown").replace("|", "\\|").replace("\n", " ")


def render_markdown(parts: list[Section], level: int = 2) -> str:
    """Markdown for the package's README: a heading per section, a bullet per line, a table."""
    out: list[str] = []
    for section in parts:
        out += [f"{'#' * level} {section.title}", ""]
        out += [f"- **{label}**: {_md(value)}" for label, value in section.lines]
        if section.lines:
            out.append("")
        if section.table is not None:
            out += ["| " + " | ".join(section.table.columns) + " |", "|" + "---|" * len(section.table.columns)]
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in section.table.rows] + [""]
    return "\n".join(out)
