"""The app's pages through Streamlit's AppTest: real library calls, a real store, real kernels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest import APP, open_tab, page, texts, wait_for_result
from handoff.inspection import load_notebook
from handoff.store import Store
from helpers import SAMPLES, TRAIN_IRIS, build


def test_parameter_form_has_a_widget_per_type_with_defaults(app: AppTest) -> None:
    app.run()
    assert not app.exception
    app.radio[0].set_value("Use a sample notebook").run()
    app.selectbox[0].set_value("diabetes_regression.ipynb").run()
    numbers = {n.label: n.value for n in app.number_input}
    defaults = load_notebook(SAMPLES / "diabetes_regression.ipynb").parameter_map
    assert numbers["alpha (float)"] == defaults["alpha"].default == 1.0
    assert numbers["test_size (float)"] == defaults["test_size"].default
    assert numbers["random_state (int)"] == 0 and isinstance(numbers["random_state (int)"], int)
    assert app.text_input[0].label == "Model name" and app.text_input[0].value == "diabetes_regression"
    assert any(b.label == "Build" for b in app.button)


def test_upload_that_is_not_a_notebook_shows_the_error(app: AppTest) -> None:
    app.run()
    app.file_uploader[0].set_value(("notes.ipynb", b"this is not json", "application/octet-stream")).run()
    assert not app.exception
    assert any("notes.ipynb is not a notebook: invalid JSON" in e.value for e in app.error)


def test_notebook_without_parameters_cell_says_so(app: AppTest, write_notebook) -> None:
    path = write_notebook(["x = 1"])
    app.run()
    app.file_uploader[0].set_value(("plain.ipynb", path.read_bytes(), "application/json")).run()
    assert any("has no parameters cell" in i.value for i in app.info)
    assert any(b.label == "Build" for b in app.button)


def test_invalid_values_are_refused_before_the_build(app: AppTest) -> None:
    app.run()
    app.radio[0].set_value("Use a sample notebook").run()
    app.selectbox[0].set_value("iris_classifier.ipynb").run()
    app.text_area[0].set_value("accuracy => 0.9")
    next(b for b in app.button if b.label == "Build").click().run()
    assert any("Cannot build: malformed threshold 'accuracy => 0.9'" in e.value for e in app.error)
    assert not app.query_params.get("job")


def test_build_from_the_page_shows_the_result(app: AppTest, store: Store) -> None:
    app.run()
    app.radio[0].set_value("Use a sample notebook").run()
    app.selectbox[0].set_value("iris_classifier.ipynb").run()
    next(n for n in app.number_input if n.label == "n_estimators (int)").set_value(20)
    next(c for c in app.checkbox if c.label.startswith("Allow network access")).check()
    next(n for n in app.number_input if n.label == "Memory limit (GiB)").set_value(3.0)
    next(b for b in app.button if b.label == "Build").click().run()
    assert app.query_params.get("job")
    wait_for_result(app)
    assert any("iris_classifier version 1** passed" in s.value for s in app.success), texts(app)
    assert {m.label for m in app.metric} >= {"accuracy", "f1"}
    text = texts(app)
    assert "Checklist" in text and "**chosen by:** preferred variable name 'model'" in text
    assert re.search(r"balanced_accuracy \| [\d.]+ \| computed by handoff on X_test/y_test \(38 rows\)", text)
    assert re.search(r"accuracy \| [\d.]+ \| a notebook variable", text)  # each metric with its source
    inputs = store.get_version("iris_classifier", 1).build.inputs
    assert inputs.parameters["n_estimators"] == 20
    assert inputs.sandbox.network == "allowed" and inputs.sandbox.limits["memory_bytes"] == 3 * 1024**3


def test_failed_build_shows_the_cell_and_the_error(app: AppTest, write_notebook) -> None:
    path = write_notebook([("parameters", "rate = 0.5"), "x = 1", "y = x / 0"])
    app.run()
    app.file_uploader[0].set_value(("broken.ipynb", path.read_bytes(), "application/json")).run()
    next(b for b in app.button if b.label == "Build").click().run()
    wait_for_result(app)
    message = next(e.value for e in app.error)
    assert "Build failed" in message and "cell 3" in message and "ZeroDivisionError" in message
    assert any("y = x / 0" in c.value for c in app.code)


def test_a_missing_import_offers_to_add_the_package_and_rebuild(
    app: AppTest, write_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_ENVS", str(tmp_path / "envs"))
    path = write_notebook(["import pyfiglet\nbanner = pyfiglet.figlet_format('hi')", TRAIN_IRIS])
    app.run()
    app.file_uploader[0].set_value(("banner.ipynb", path.read_bytes(), "application/json")).run()
    next(b for b in app.button if b.label == "Build").click().run()
    wait_for_result(app)
    first = app.query_params["job"]
    assert any("the notebook imports `pyfiglet`" in e.value for e in app.error), texts(app)
    next(b for b in app.button if b.label == "Add pyfiglet to the build environment and rebuild").click().run()
    assert app.query_params["job"] != first
    wait_for_result(app)
    # the second build ran in a build environment with pyfiglet: it got past that import, to the next one
    # (a build environment holds only what was asked for: scikit-learn is the next package to add)
    errors = " ".join(e.value for e in app.error)
    assert "`pyfiglet`" not in errors and "the notebook imports `sklearn`" in errors, texts(app)
    assert any(b.label == "Add scikit-learn to the build environment and rebuild" for b in app.button)


def test_versions_table_detail_and_compare(app: AppTest, store: Store) -> None:
    for n in (10, 20):
        assert build(SAMPLES / "iris_classifier.ipynb", store, params={"n_estimators": n}).ok
    page(app, "versions")
    table = app.dataframe[0].value
    assert list(table["version"]) == [2, 1] and list(table["model"]) == ["iris_classifier"] * 2
    assert "accuracy" in table.columns
    detail = AppTest.from_file(APP, default_timeout=60)
    page(detail, "version_detail", model="iris_classifier", version="2")
    assert not detail.exception, detail.exception
    assert detail.title[0].value == "iris_classifier · version 2"
    text = texts(detail)
    assert "Checklist" in text and "**fingerprint:**" in text and "notebook.executed | passed" in text
    assert not detail.get("download_button") and not detail.code  # the other tabs run when opened
    downloads = open_tab(detail, "Package").get("download_button")
    assert downloads and "Download package" in downloads[0].proto.label
    open_tab(detail, "Notebook")
    assert any("n_estimators = 50" in c.value for c in detail.code)  # the executed notebook, rendered
    compare = AppTest.from_file(APP, default_timeout=60)
    page(compare, "compare", model="iris_classifier", versions="1,2")
    assert not compare.exception
    params = compare.dataframe[1].value
    assert list(params.columns) == ["v1", "v2"] and params.loc["n_estimators"].tolist() == ["10", "20"]


def test_unknown_version_is_a_message_not_a_crash(app: AppTest) -> None:
    page(app, "version_detail", model="ghost", version="3")
    assert not app.exception
    assert any("Cannot open ghost version 3" in e.value for e in app.error)


def test_compare_from_query_params_and_promote_with_confirmation(app: AppTest, store: Store, write_notebook) -> None:
    path = write_notebook(
        [
            ("parameters", "score = 0.8"),
            "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
            "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier().fit(X, y)\n"
            "accuracy = float(score)",
        ],
        name="m.ipynb",
    )
    for score in (0.8, 0.9):
        assert build(path, store, params={"score": score}).ok
    page(app, "compare", model="m", versions="1,2")
    assert not app.exception, app.exception
    metrics = app.dataframe[0].value
    assert metrics.loc["accuracy (↑ better)", "v2"].startswith("0.9  (+0.1")
    assert app.toggle[0].value is True  # differences only
    assert app.dataframe[1].value.index.tolist() == ["score"]
    assert app.query_params["versions"] == "1,2"
    next(b for b in app.button if b.label == "Promote v2 to champion").click().run()
    assert any("Make v2 the first **champion** of m?" in w.value for w in app.warning)
    assert store.alias_version("m") is None  # nothing moves before the confirmation
    next(b for b in app.button if b.label == "Confirm").click().run()
    assert any("champion of m: none → v2" in s.value for s in app.success), texts(app)
    assert store.alias_version("m").version == 2
    versions = AppTest.from_file(APP, default_timeout=60)
    page(versions, "versions", model="m")
    assert versions.dataframe[-1].value["kind"].tolist() == ["promote"]  # the history on the model's page


def test_rollback_from_the_version_page_with_confirmation(app: AppTest, store: Store, write_notebook) -> None:
    import handoff

    path = write_notebook(
        [
            "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
            "X, y = load_iris(return_X_y=True)\nmodel = DecisionTreeClassifier().fit(X, y)"
        ],
        name="r.ipynb",
    )
    for _ in range(2):
        assert build(path, store).ok
    handoff.promote("r", 1, store=store)
    handoff.promote("r", 2, store=store)
    page(app, "version_detail", model="r", version="2")
    next(b for b in app.button if b.label == "Roll back champion").click().run()
    assert any("Move **champion** of r back from v2 to v1?" in w.value for w in app.warning)
    next(b for b in app.button if b.label == "Cancel").click().run()
    assert store.alias_version("r").version == 2 and not app.warning  # cancelled: nothing moved
    next(b for b in app.button if b.label == "Roll back champion").click().run()
    next(b for b in app.button if b.label == "Confirm").click().run()
    assert any("champion of r: v2 → v1 (rollback" in s.value for s in app.success), texts(app)
    assert store.alias_version("r").version == 1
