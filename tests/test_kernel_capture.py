"""Capture, inside real kernels: which model, which metrics, input example, environment, data."""

from __future__ import annotations

from pathlib import Path

from handoff.record import DataFile, InputExample
from handoff.store import Store
from helpers import build

FIT_TWO = (
    "from sklearn.datasets import load_iris\n"
    "from sklearn.tree import DecisionTreeClassifier\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X, y = load_iris(return_X_y=True)\n"
)


def test_preferred_name_wins_over_a_later_fit(write_notebook, store: Store) -> None:
    path = write_notebook(
        [FIT_TWO + "clf = DecisionTreeClassifier().fit(X, y)", "other = LogisticRegression(max_iter=300).fit(X, y)"]
    )
    result = build(path, store)
    assert result.model.variable == "clf" and result.model.source == "auto"
    assert "preferred variable name 'clf'" in result.model.chosen_by
    assert {c.name for c in result.model.candidates} == {"clf", "other"}


def test_most_recently_fitted_wins_without_a_preferred_name(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            FIT_TWO + "late = LogisticRegression(max_iter=300)\nearly = DecisionTreeClassifier().fit(X, y)",
            "late.fit(X, y)",
            "unfitted = DecisionTreeClassifier()",
        ]
    )
    result = build(path, store)
    assert result.model.variable == "late" and result.model.chosen_by == "the most recently fitted model"
    assert {c.name for c in result.model.candidates} == {"late", "early"}  # unfitted is not a candidate


def test_model_var_option_and_log_model_precedence(write_notebook, store: Store) -> None:
    path = write_notebook(
        [FIT_TWO + "model = DecisionTreeClassifier().fit(X, y)\nspecial = LogisticRegression(max_iter=300).fit(X, y)"]
    )
    result = build(path, store, model_var="special")
    assert result.model.variable == "special" and result.model.source == "model_var"
    explicit = write_notebook(
        [
            FIT_TWO + "import handoff\nmodel = DecisionTreeClassifier().fit(X, y)\n"
            "chosen = handoff.log_model(LogisticRegression(max_iter=300).fit(X, y))"
        ],
        name="explicit.ipynb",
    )
    result = build(explicit, store, model_var="model")
    assert result.model.source == "log_model" and result.model.variable == "chosen"
    assert result.model.type.endswith("LogisticRegression")


def test_no_fitted_model_is_a_clear_capture_failure(write_notebook, store: Store) -> None:
    path = write_notebook(
        ["from sklearn.tree import DecisionTreeClassifier\nclf = DecisionTreeClassifier()", "accuracy = 0.5"]
    )
    result = build(path, store)
    assert result.status == "failed" and result.version is None
    assert result.error.stage == "capture" and "no fitted model found" in result.error.message
    assert store.list_models() == [] and store.list_builds()[0]["status"] == "failed"


def test_unknown_model_var_says_what_was_seen(write_notebook, store: Store) -> None:
    path = write_notebook([FIT_TWO + "clf = DecisionTreeClassifier().fit(X, y)"])
    result = build(path, store, model_var="nope")
    assert result.error.stage == "capture"
    assert "'nope': no such variable" in result.error.message and "clf" in result.error.message


def test_metrics_from_names_and_dicts_but_not_other_numbers(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            FIT_TWO + "model = DecisionTreeClassifier(random_state=0).fit(X, y)\n"
            "import numpy as np\n"
            "accuracy = 0.9\ntest_f1 = np.float64(0.8)\nval_rmse = 2\nn_estimators = 100\n"
            "flag_auc = True\nloss = float('nan')\ntest_size = 0.2\n"
            "metrics = {'precision': 0.7, 'note': 'text'}"
        ]
    )
    result = build(path, store)
    assert result.metrics == {"accuracy": 0.9, "test_f1": 0.8, "val_rmse": 2.0, "precision": 0.7}


def test_explicit_metrics_win(write_notebook, store: Store) -> None:
    path = write_notebook(
        [
            FIT_TWO + "import handoff\nmodel = DecisionTreeClassifier().fit(X, y)\n"
            "accuracy = 0.1\nhandoff.log_metric('auc', 0.93)\nhandoff.log_metrics({'f1': 0.91})"
        ]
    )
    result = build(path, store)
    assert result.metrics == {"auc": 0.93, "f1": 0.91}
    assert store.get_version(result.name, result.version).build.outputs.metrics_source == "log_metric"


def test_input_example_environment_and_csv_fingerprint(tmp_path: Path, write_notebook, store: Store) -> None:
    csv = tmp_path / "houses.csv"
    csv.write_text("size,rooms,price\n" + "".join(f"{50 + i},{1 + i % 4},{100 + 3 * i}\n" for i in range(30)))
    path = write_notebook(
        [
            "import pandas as pd\nfrom sklearn.linear_model import LinearRegression\n"
            "df = pd.read_csv('houses.csv')\nfeatures = df[['size', 'rooms']]\n"
            "reg = LinearRegression().fit(features, df['price'])\nr2 = reg.score(features, df['price'])"
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    outputs = store.get_version(result.name, result.version).build.outputs
    assert outputs.input_example == InputExample("features", 5, "pandas.DataFrame")
    env = outputs.environment
    assert set(env.imported) == {"pandas", "scikit-learn"}
    import pandas
    import sklearn

    assert env.imported["pandas"] == pandas.__version__ and env.imported["scikit-learn"] == sklearn.__version__
    assert "numpy" in env.loaded and env.installed["mlflow"]
    assert env.python.count(".") == 2
    import hashlib

    assert outputs.data.files == (
        DataFile("houses.csv", csv.stat().st_size, hashlib.sha256(csv.read_bytes()).hexdigest()),
    )


def test_a_model_fitted_on_some_columns_of_a_frame_takes_just_those(write_notebook, store: Store) -> None:
    """``model.fit(train[features], ...)``: the input example and the held-out rows are those columns."""
    path = write_notebook(
        [
            "from sklearn.datasets import load_breast_cancer\nfrom sklearn.model_selection import train_test_split\n"
            "from sklearn.ensemble import RandomForestClassifier\n"
            "df = load_breast_cancer(as_frame=True).frame\ntrain, test = train_test_split(df, random_state=0)\n"
            "X_test, y_test = test.drop(columns='target'), test['target']",
            "features = ['worst area', 'mean radius', 'mean texture']\n"
            "model = RandomForestClassifier(n_estimators=20, random_state=0).fit(train[features], train['target'])",
        ]
    )
    result = build(path, store)
    assert result.ok, result.error
    outputs = store.get_version(result.name, result.version).build.outputs
    assert outputs.input_example == InputExample("X_test[3 columns]", 5, "pandas.DataFrame")
    assert result.record.metric_sources["accuracy"] == "computed by handoff on X_test/y_test (143 rows)"
    assert result.metrics["accuracy"] > 0.9
    fidelity = next(r for r in result.checks.results if r.id == "model.fidelity")
    assert fidelity.status == "passed" and "143 rows of X_test/y_test" in fidelity.message


def test_log_calls_are_noops_outside_a_build() -> None:
    import handoff

    model = object()
    assert handoff.log_model(model) is model
    assert handoff.log_metric("accuracy", 0.5) == 0.5
    assert handoff.log_metrics({"f1": 1}) == {"f1": 1}
