"""Everything the CLI does, the app does (AppTest, real kernels, a real store): the model picker, test
uploads, re-checks with new thresholds, verifying a package, and hints that name the app's controls."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import handoff
from apptest import APP, open_tab, page, texts, wait_for_result
from handoff.messages import OPTIONS, render
from handoff.store import Store
from helpers import SAMPLES, build, local_path

USER_TEST = b"""
def test_predicts_one_class_per_row(model, input_example):
    assert len(model.predict(input_example)) == len(input_example)
"""
WIDGETS = ("checkbox", "text_input", "number_input", "text_area", "multiselect", "selectbox", "file_uploader", "button")


def _labels(at: AppTest) -> list[str]:
    return [w.label for kind in WIDGETS for w in getattr(at, kind)]


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _sample(at: AppTest, sample: str) -> AppTest:
    at.run()
    at.radio[0].set_value("Use a sample notebook").run()
    return at.selectbox[0].set_value(sample).run()


def test_every_build_page_hint_names_a_control_on_the_page(app: AppTest) -> None:
    app.run()
    labels = _labels(app)  # the upload mode's data files (a requirements.txt there: the ``with`` hint)
    _sample(app, "iris_classifier.ipynb")
    assert not app.exception, app.exception
    labels += _labels(app)
    for key, entry in OPTIONS.items():
        if entry.page == "build" and key != "model_var":  # the picker is on the result: next test
            assert any(label.startswith(entry.control) for label in labels), f"{key}: no {entry.control!r} control"


def test_pick_the_other_candidate_and_rebuild_with_the_tests_uploaded(app: AppTest, store: Store) -> None:
    _sample(app, "two_candidate_models.ipynb")
    tests = next(u for u in app.file_uploader if u.label.startswith(OPTIONS["tests"].control))
    tests.set_value(("test_rows.py", USER_TEST, "text/x-python"))
    _click(app, "Build")
    wait_for_result(app, 240)
    assert any("two_candidate_models version 1** passed" in s.value for s in app.success), texts(app)
    first = store.get_version("two_candidate_models", 1).build
    assert first.outputs.model.variable == "tuned"
    user_tests = next(r for r in first.outputs.checks.results if r.id == "user.tests")
    assert (user_tests.status, user_tests.message) == ("passed", "user tests: 1 passed, 0 failed")

    picker = next(s for s in app.selectbox if s.label == OPTIONS["model_var"].control)
    assert picker.value == "tuned" and len(picker.options) == 2  # the shipped one first, then the other
    assert picker.options[0].startswith("tuned · ") and picker.options[1].startswith("baseline · Pipeline")
    picker.set_value("baseline").run()
    job = app.query_params["job"]
    _click(app, "Rebuild with this model")
    assert app.query_params["job"] != job
    wait_for_result(app, 240)
    assert any("two_candidate_models version 2** passed" in s.value for s in app.success), texts(app)
    second = store.get_version("two_candidate_models", 2).build
    assert second.outputs.model.variable == "baseline" and second.inputs.options["model_var"] == "baseline"
    assert second.inputs.parameters == first.inputs.parameters  # the same request, one change
    user_tests = next(r for r in second.outputs.checks.results if r.id == "user.tests")
    assert user_tests.status == "passed"  # the uploaded tests went with the request, as data
    # the rule that chose it names the app's picker, not --model-var
    text = texts(app)
    assert "named with the **Model to ship** picker" in text and "--model-var" not in text


UNSAVEABLE_AND_GOOD = (
    "import numpy as np\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.tree import DecisionTreeClassifier\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    "clf = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
    "from sklearn.base import BaseEstimator\n"
    "class Odd(BaseEstimator):  # its pickle loads as the number 0: nothing the worker can save\n"
    "    def fit(self, X, y):\n        self.coef_ = 1\n        return self\n"
    "    def predict(self, X):\n        return np.zeros(len(X))\n"
    "    def __reduce__(self):\n        return (int, ())\n"
    "model = Odd().fit(X, y)\n"
)


def test_a_failed_build_offers_its_other_candidates(app: AppTest, store: Store, write_notebook) -> None:
    path = write_notebook([UNSAVEABLE_AND_GOOD], name="odd.ipynb")
    app.run()
    app.file_uploader[0].set_value(("odd.ipynb", path.read_bytes(), "application/json")).run()
    _click(app, "Build")
    wait_for_result(app, 240)
    assert any("Build failed" in e.value and "could not be saved" in e.value for e in app.error), texts(app)
    picker = next(s for s in app.selectbox if s.label == OPTIONS["model_var"].control)
    assert picker.value == "model" and any(o.startswith("clf · DecisionTreeClassifier") for o in picker.options)
    picker.set_value("clf").run()
    _click(app, "Rebuild with this model")
    wait_for_result(app, 240)
    assert any("odd version 1** passed" in s.value for s in app.success), texts(app)
    assert store.get_version("odd", 1).build.outputs.model.variable == "clf"


@pytest.fixture
def failed_iris(store: Store) -> handoff.BuildResult:
    """iris, recorded as a failed version (its threshold cannot be met)."""
    result = build(SAMPLES / "iris_classifier.ipynb", store, checks={"thresholds": ["accuracy >= 1.01"]})
    assert result.status == "failed" and result.version == 1
    return result


def test_recheck_failed_rows_and_hints_on_the_version_page(app: AppTest, failed_iris) -> None:
    page(app, "version_detail", model="iris_classifier", version="1")
    assert not app.exception, app.exception
    text = texts(app)
    # hints name the app's controls, never a CLI flag
    assert "gate off (enable with the “Gate” checkbox under Checklist and time limits on the Build page)" in text
    assert "no user tests given (the “Test files” upload" in text
    assert not re.search(r"\(--|with --", text), text
    # FAILED rows of the checklist are highlighted, and only those
    checklist = next(t for t in app.table if "check" in t.value.columns and "status" in t.value.columns)
    failed_rows = [i for i, status in enumerate(checklist.value["status"]) if status == "FAILED"]
    styles = checklist.proto.arrow_data.styler.styles
    assert failed_rows and all(f"row{i}_" in styles for i in failed_rows), styles
    assert {int(n) for n in re.findall(r"row(\d+)_", styles)} == set(failed_rows)
    assert "background-color" in styles

    open_tab(app, "Package")
    assert any(c.label.startswith(OPTIONS["force"].control) for c in app.checkbox)  # the force hint's control
    open_tab(app, "Re-check")
    assert not re.search(r"\(--|with --", texts(app)), texts(app)
    app.text_area(key="recheck_thresholds").set_value("accuracy >= 0.5\nf1 >= 1.5")
    _click(app, "Re-check")
    assert not app.exception, app.exception
    assert any("Re-check FAILED: metrics.thresholds" in e.value and "f1" in e.value for e in app.error), texts(app)
    assert "Earlier re-checks" in texts(app)
    earlier = app.dataframe[-1].value
    assert list(earlier["result"]) == ["FAILED"] and "f1 >= 1.5" in earlier["thresholds"][0]


def _zip_with(package: Path, member: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, content if info.filename.endswith(member) else source.read(info))
    return out.getvalue()


def test_verify_an_intact_a_tampered_and_another_stores_package(
    app: AppTest, failed_iris, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = handoff.export("iris_classifier", 1, tmp_path, store=store, force=True).path
    page(app, "verify")
    assert any("Upload a package" in i.value for i in app.info)
    app.file_uploader[0].set_value((package.name, package.read_bytes(), "application/zip")).run()
    assert not app.exception, app.exception
    assert any("Intact" in s.value and "the package this store recorded" in s.value for s in app.success), texts(app)

    tampered = _zip_with(package, "model/MLmodel", b"flavors: {}\n")
    app.file_uploader[0].set_value((package.name, tampered, "application/zip")).run()
    assert not app.success and any("problem(s) found" in e.value for e in app.error), texts(app)
    problems = [row[0] for t in app.table for row in t.value.itertuples(index=False)]
    assert any("MLmodel" in p for p in problems), problems

    other = Store(tmp_path / "other-store")  # a store that never recorded this version
    other.list_models()
    monkeypatch.setenv("HANDOFF_STORE", str(local_path(other.artifact_root).parent))
    elsewhere = AppTest.from_file(APP, default_timeout=60)
    page(elsewhere, "verify")
    elsewhere.file_uploader[0].set_value((package.name, package.read_bytes(), "application/zip")).run()
    assert not elsewhere.exception, elsewhere.exception
    assert any("comes from another store" in w.value for w in elsewhere.warning), texts(elsewhere)
    assert any("Intact" in s.value for s in elsewhere.success)  # its own digests still hold


def test_render_in_app_and_cli_of_the_same_hint() -> None:
    hint = "off (enable with {option:reproduce}; it runs the notebook a second time)"
    assert "--reproduce" in render(hint, "cli") and "**Check reproducibility** checkbox" in render(hint, "app")
