"""The typed build record: schema file, old records, and one view rendered the same in every medium."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import tarfile
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import jsonschema
import pytest
from streamlit.testing.v1 import AppTest

import handoff
from handoff.cli import main
from handoff.messages import Face, render
from handoff.record import SCHEMA_VERSION, BuildRecord, record_schema
from handoff.record_view import render_markdown, render_text, sections
from handoff.store import Store
from helpers import ROOT, SAMPLES, build

# one worker builds the module's shared fixture (not one per xdist worker)
pytestmark = pytest.mark.xdist_group("record")

FIXTURE = ROOT / "tests" / "fixtures" / "store_v1.tgz"
SCHEMA = ROOT / "docs" / "record.schema.json"
APP = str(ROOT / "app" / "streamlit_app.py")


def test_checked_in_schema_is_the_code_s() -> None:
    from tools.record_schema import schema_text  # type: ignore[import-not-found]

    assert SCHEMA.read_text() == schema_text(), "run .venv/bin/python tools/record_schema.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, handoff.BuildResult]:
    store = Store(tmp_path_factory.mktemp("record") / "store")
    result = build(SAMPLES / "grid_search_pipeline.ipynb", store)
    assert result.ok
    return store, result


def test_real_build_output_validates_against_the_schema_and_round_trips(
    built: tuple[Store, handoff.BuildResult],
) -> None:
    store, result = built
    stored = json.loads(store.read_artifact(result.run_id, "handoff/record.json"))
    jsonschema.validate(stored, record_schema())
    jsonschema.validate(result.record.to_dict(), json.loads(SCHEMA.read_text()))
    assert stored["schema_version"] == SCHEMA_VERSION
    again = BuildRecord.from_dict(stored)
    assert again == store.get_version(result.name, result.version).build
    assert again.outputs.model.packaged == "search.best_estimator_" and again.lineage.run_id == result.run_id
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**stored, "outputs": {**stored["outputs"], "metrics": {"accuracy": "high"}}}, record_schema()
        )


def _shown_lines(record: BuildRecord, lines: Face = "cli", cells: Face = "cli") -> list[str]:
    """Every label, value and table cell the record view shows (hints as the face says them)."""
    out = []
    for section in sections(record):
        out.append(section.title)
        for label, value in section.lines:
            out += [label, render(value, lines)]
        if section.table:
            out += [
                *section.table.columns,
                *(render(cell, cells) for row in section.table.rows for cell in row if cell),
            ]
    return out


def test_one_record_rendered_alike_by_the_cli_the_package_and_the_app(
    built: tuple[Store, handoff.BuildResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, result = built
    record = store.get_version(result.name, result.version).build
    home = str(Path(store.uri.removeprefix("sqlite:///")).parent)
    text = io.StringIO()
    with redirect_stdout(text):
        assert main(["show", result.name, str(result.version), "--store", home]) == 0
    package = handoff.export(result.name, result.version, tmp_path, store=store).path
    with zipfile.ZipFile(package) as archive:
        readme = archive.read(f"{result.name}-v{result.version}/README.md").decode()
    monkeypatch.setenv("HANDOFF_STORE", home)
    page = AppTest.from_file(APP, default_timeout=60)
    page.run()  # pages with a custom url_path are known only after a first run
    page.switch_page("app_pages/version_detail.py")
    page.query_params.update({"model": result.name, "version": str(result.version)})
    page.run()
    assert not page.exception, page.exception
    app = "\n".join(
        [
            *(m.value for m in page.markdown),
            *(s.value for s in page.subheader),
            *(" | ".join(map(str, row)) for t in page.table for row in t.value.itertuples(index=False)),
            *(str(c) for t in page.table for c in t.value.columns),
        ]
    )
    app = re.sub(r"\\(.)", r"\1", app)
    media = {"cli": text.getvalue(), "package": readme.replace("\\|", "|"), "app": app}
    faces: dict[str, tuple[Face, Face]] = {
        "cli": ("cli", "cli"),
        "package": ("markdown", "markdown"),
        "app": ("app", "app_plain"),
    }
    shown = _shown_lines(record)
    assert "search.best_estimator_ (sklearn.pipeline.Pipeline)" in shown and "model.fidelity" in shown
    for medium, rendered in media.items():
        missing = [item for item in _shown_lines(record, *faces[medium]) if item not in rendered]
        assert not missing, f"{medium} does not show {missing[:5]}"
    order = [s.title for s in sections(record)]
    for medium, rendered in media.items():  # same order of sections everywhere
        positions = [rendered.index(f"\n{title}\n") if medium == "cli" else rendered.index(title) for title in order]
        assert positions == sorted(positions), medium
    assert render_text(sections(record)) in text.getvalue() and render_markdown(sections(record)) in readme


@pytest.fixture
def old_store(tmp_path: Path) -> Store:
    """The store handoff 0.1.0 wrote (schema-1 records), moved here: its paths rewritten as a move would."""
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    home = tmp_path / "v1store"
    with sqlite3.connect(home / "mlflow.db") as db:
        for table, column in (
            ("runs", "artifact_uri"),
            ("experiments", "artifact_location"),
            ("model_versions", "source"),
            ("model_versions", "storage_location"),
        ):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, '/tmp/v1store', ?)", (str(home),))
    return Store(home)


def test_a_store_written_by_the_previous_release_still_reads(
    old_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    passed, failed = old_store.get_version("iris", 1), old_store.get_version("diabetes", 1)
    assert passed.build.schema_version == SCHEMA_VERSION  # upgraded on read
    assert passed.build.outputs.model.chosen_by == "preferred variable name 'model' (outermost fitted model)"
    assert passed.build.outputs.model.saved.format == "skops"
    assert passed.build.metric_sources["balanced_accuracy"] == "computed by handoff on X_test/y_test (38 rows)"
    assert passed.build.inputs.parameters == {"n_estimators": 50, "max_depth": 4, "test_size": 0.25, "random_state": 0}
    assert failed.build.error.stage == "check" and "r2 >= 0.99" in failed.build.error.message
    broken = old_store.read_record(old_store.list_builds("broken")[0]["run_id"])
    assert broken.error.cell == 2 and broken.outputs.model is None
    for record in (passed.build, failed.build, broken):
        jsonschema.validate(record.to_dict(), record_schema())
        assert render_text(sections(record)) and render_markdown(sections(record))
    home = str(tmp_path / "v1store")
    assert main(["verify-store", "--store", home]) == 0
    assert main(["show", "iris", "1", "--store", home]) == 0
    assert "chosen by: preferred variable name 'model'" in capsys.readouterr().out
    exported = handoff.export("iris", 1, tmp_path / "out", store=old_store)  # the package kept since 0.1.0
    assert handoff.verify_recorded(exported.path, store=old_store).ok
    assert handoff.check_version("iris", 1, store=old_store).passed
    assert build(SAMPLES / "iris_classifier.ipynb", old_store, name="iris").version == 2
    comparison = handoff.compare("iris", [1, 2], store=old_store)
    assert [r["param"] for r in comparison.parameters] == ["n_estimators", "max_depth", "test_size", "random_state"]


def test_no_string_key_reads_of_record_fields_outside_record_py() -> None:
    """The record's JSON keys are known to handoff/record.py only: everything else reads attributes
    of the typed record (a read like ``record["params"]`` or ``details.get("capture")`` is a regression)."""
    names = r"(?:record|records|details|build_record|stored|recorded|version|result|capture|saved|model)"
    pattern = re.compile(rf"""\b{names}(?:\.to_dict\(\))?(?:\[["']|\.get\(["'])""")
    offenders = []
    for path in [*ROOT.glob("handoff/**/*.py"), *ROOT.glob("app/**/*.py")]:
        if path.name in ("record.py", "kernel_capture.py", "kernel_models.py", "kernel_mlflow.py"):
            continue  # record.py owns the keys; the kernel writes its own capture report
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
