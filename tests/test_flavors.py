"""Model flavors beyond scikit-learn, end to end: each optional library's sample notebook (and a few
notebooks written here) builds, passes its checks in a fresh process, exports, verifies, and its
package's model loads with ``mlflow.pyfunc`` in a new interpreter and predicts its input example."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import handoff
from handoff import flavors
from handoff.package import verify
from handoff.store import Store
from helpers import SAMPLES, build

#: notebook -> (MLflow flavor, on-disk format, shipped variable, task, model.portable status)
CASES = {
    "xgboost_classifier.ipynb": ("xgboost", "xgboost-ubj", "model", "classification", "passed"),
    "lightgbm_booster.ipynb": ("lightgbm", "lightgbm-text", "booster", "regression", "passed"),
    "catboost_classifier.ipynb": ("catboost", "catboost-cbm", "clf", "classification", "passed"),
    "statsmodels_ols.ipynb": ("statsmodels", "pickle", "ols", "regression", "warning"),
    "pytorch_mlp.ipynb": ("pytorch", "cloudpickle", "net", None, "warning"),
}


def _predict_in_fresh_process(model_dirs: list[Path]) -> list[list]:
    """Load each MLflow model with pyfunc in one new interpreter (none of the notebook's state, none of
    handoff) and predict on its stored input example; each answer as (nested) lists."""
    code = (
        "import json, sys, numpy, mlflow.pyfunc\n"
        "from mlflow.models import Model\n"
        "answers = []\n"
        "for path in sys.argv[1:]:\n"
        "    example = Model.load(path).load_input_example(path)\n"
        "    answers.append(numpy.asarray(mlflow.pyfunc.load_model(path).predict(example)).tolist())\n"
        "print(json.dumps(answers))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, model_dirs)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _model_dir(package: Path, target: Path) -> Path:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(target)
    (model_dir,) = target.glob("*/model")
    return model_dir


@pytest.mark.parametrize("sample", sorted(CASES))
def test_sample_builds_checks_exports_and_serves(sample: str, store: Store, tmp_path: Path) -> None:
    flavor, fmt, variable, task, portable = CASES[sample]
    result = build(SAMPLES / sample, store)
    assert result.ok, result.error
    saved = result.model.saved
    assert saved is not None and (saved.flavor, saved.format) == (flavor, fmt)
    assert result.model.variable == variable and result.model.task == task
    statuses = {r.id: r.status for r in result.checks.results}
    assert statuses["model.loads"] == statuses["model.fidelity"] == statuses["model.predicts"] == "passed"
    assert statuses["model.portable"] == portable
    exported = handoff.export(result.name, result.version, tmp_path / "out", store=store)
    assert verify(exported.path).ok
    (answer,) = _predict_in_fresh_process([_model_dir(exported.path, tmp_path / "unzipped")])
    assert len(answer) == result.record.outputs.input_example.rows


def test_flavors_are_tried_library_first_and_the_fallback_last() -> None:
    assert {"xgboost", "lightgbm", "catboost", "statsmodels", "pytorch", "pyfunc", "sklearn"} <= set(
        flavors.available()
    )

    class Custom:
        def predict(self, X: object) -> object:
            return X

    assert flavors.flavor_for(Custom()).name == "pyfunc"
    from sklearn.linear_model import LinearRegression

    assert flavors.flavor_for(LinearRegression()).name == "sklearn"


RULE_NOTEBOOK = [
    "import numpy as np\nimport handoff\nfrom sklearn.datasets import load_iris\n"
    "from sklearn.model_selection import train_test_split\n"
    "X, y = load_iris(return_X_y=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
    "class PetalRule:\n"
    "    '''Hand-written: setosa below 2.5 cm of petal, virginica above 4.8 cm, else versicolor.'''\n"
    "    def predict(self, X):\n"
    "        petal = np.asarray(X)[:, 2]\n"
    "        return np.where(petal < 2.5, 0, np.where(petal > 4.8, 2, 1))\n"
    "rule = handoff.log_model(PetalRule())\n"
    "accuracy = float((rule.predict(X_test) == y_test).mean())",
]


def test_any_object_with_predict_ships_with_the_generic_fallback_marked_as_a_pickle(
    write_notebook, store: Store, tmp_path: Path
) -> None:
    from handoff.flavors.pyfunc import FALLBACK_FORMAT

    result = build(write_notebook(RULE_NOTEBOOK, name="petal_rule.ipynb"), store)
    assert result.ok, result.error
    saved = result.model.saved
    assert saved is not None and (saved.flavor, saved.format) == ("pyfunc", FALLBACK_FORMAT)
    assert "arbitrary pickle: loading runs code" in saved.reason
    portable = next(r for r in result.checks.results if r.id == "model.portable")
    assert portable.status == "warning" and "arbitrary pickle: loading runs code" in portable.message
    fidelity = next(r for r in result.checks.results if r.id == "model.fidelity")
    assert fidelity.status == "passed" and "X_test/y_test" in fidelity.message
    exported = handoff.export(result.name, result.version, tmp_path / "out", store=store)
    assert verify(exported.path).ok
    with zipfile.ZipFile(exported.path) as archive:
        readme = archive.read("petal_rule-v1/README.md").decode()
    assert "- **warning**: arbitrary pickle: loading runs code" in readme
    (answer,) = _predict_in_fresh_process([_model_dir(exported.path, tmp_path / "unzipped")])
    assert len(answer) == result.record.outputs.input_example.rows and set(answer) <= {0, 1, 2}


NATIVE_BOOSTER = [
    "import xgboost as xgb\nfrom sklearn.datasets import load_breast_cancer\n"
    "from sklearn.model_selection import train_test_split\n"
    "X, y = load_breast_cancer(return_X_y=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)\n"
    "dtrain, dtest = xgb.DMatrix(X_train, label=y_train), xgb.DMatrix(X_test, label=y_test)",
    "params = {'objective': 'binary:logistic', 'max_depth': 3, 'eta': 0.3, 'nthread': 1}\n"
    "bst = xgb.train(params, dtrain, num_boost_round=30, evals=[(dtest, 'test')], verbose_eval=False)",
]


def test_a_native_booster_ships_in_xgboost_format_with_its_probabilities(write_notebook, store: Store) -> None:
    result = build(write_notebook(NATIVE_BOOSTER, name="xgb_native.ipynb"), store)
    assert result.ok, result.error
    model = result.model
    assert (model.source, model.variable, model.task) == ("auto", "bst", "classification")
    assert model.saved is not None and (model.saved.flavor, model.saved.format) == ("xgboost", "xgboost-ubj")
    fidelity = next(r for r in result.checks.results if r.id == "model.fidelity")
    # probabilities, not labels: compared as floats, no label metrics computed from them
    assert fidelity.status == "passed" and "X_test/y_test" in fidelity.message and "agree" not in fidelity.message
    assert not {"accuracy", "f1_macro"} & result.metrics.keys()


# --- the variants the samples do not build: flavor by flavor, saved here, served in a fresh process ---


def _variants() -> dict[str, tuple[object, object]]:
    """name -> (fitted model, input rows): XGBoost's regressor, LightGBM's scikit-learn API,
    statsmodels' formula API; each trains in well under a second."""
    import lightgbm
    import pandas as pd
    import statsmodels.formula.api as smf
    import xgboost
    from sklearn.datasets import load_breast_cancer, load_diabetes

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    regressor = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(Xd, yd)
    lgbm = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=7, n_jobs=1, verbose=-1).fit(X, y)
    formula = smf.ols("target ~ bmi + bp + s5", data=pd.concat([Xd, yd], axis=1)).fit()
    return {
        "xgboost_regressor": (regressor, Xd.head(5)),
        "lightgbm_sklearn": (lgbm, X.head(5)),
        "statsmodels_formula": (formula, Xd.head(5)),
    }


#: variant -> (flavor, format, task the kernel records)
VARIANTS = {
    "xgboost_regressor": ("xgboost", "xgboost-ubj", "regression"),
    "lightgbm_sklearn": ("lightgbm", "skops", "classification"),
    "statsmodels_formula": ("statsmodels", "pickle", "regression"),
}


def test_each_variant_saves_with_its_library_flavor_and_serves_the_same_answers(tmp_path: Path) -> None:
    import numpy as np

    from handoff import kernel_capture, kernel_models

    models = _variants()
    dirs, expected = [], []
    for name, (model, rows) in models.items():
        flavor_name, fmt, task = VARIANTS[name]
        assert kernel_models.is_model(model) and kernel_models.is_fitted(model), name
        assert kernel_capture._task(model) == task, name
        flavor = flavors.flavor_for(model)
        assert flavor is not None and flavor.name == flavor_name, name
        target = tmp_path / name
        serialization, _, _ = flavor.save(model, target, input_example=rows, pin=lambda n: n)
        assert serialization == fmt, name
        dirs.append(target)
        expected.append(np.asarray(kernel_models.predict(model, rows)))
    from handoff.evaluation import compare_predictions

    for name, want, got in zip(models, expected, _predict_in_fresh_process(dirs), strict=True):
        assert compare_predictions(want, np.asarray(got)) == (0, 5, compare_predictions(want, want)[2]), name


def test_parts_of_library_models_are_not_shipped_and_unfitted_ones_are_not_models() -> None:
    import statsmodels.api as sm
    import torch
    import xgboost
    from catboost import CatBoostRegressor
    from sklearn.datasets import load_diabetes

    from handoff.kernel_models import Candidate, choose, is_fitted, is_model

    X, y = load_diabetes(return_X_y=True)
    xgb = xgboost.XGBRegressor(n_estimators=5, n_jobs=1).fit(X, y)
    booster = xgb.get_booster()
    net = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    layer = net[0]
    variables = [
        Candidate("booster", "variable", booster, 3),
        Candidate("layer", "variable", layer, 4),
        Candidate("net", "variable", net, 2),
        Candidate("xgb", "variable", xgb, 1),
    ]
    choice = choose(variables, None, None, {}, [], [])
    assert {v.name: v.part_of for v in variables} == {
        "booster": "xgb._Booster",
        "layer": "net._modules['0']",
        "net": None,
        "xgb": None,
    }
    assert choice.candidate.name == "net"  # the most recently fitted outermost model
    assert not is_fitted(torch.nn.CrossEntropyLoss())  # no weights: not a model to ship
    assert is_model(sm.OLS(y, X)) and not is_fitted(sm.OLS(y, X))  # the results object is the model
    assert is_model(CatBoostRegressor()) and not is_fitted(CatBoostRegressor())


def test_the_core_never_imports_the_optional_libraries() -> None:
    """Finding a flavor for a scikit-learn model, listing the flavors and checks, and the kernel-side
    model rules load none of the optional libraries (they are extras, maybe not installed)."""
    code = (
        "import sys\n"
        "import handoff, handoff.cli, handoff.serialize, handoff.kernel_capture, handoff.checks.runner\n"
        "from handoff import checks, flavors, kernel_models\n"
        "from sklearn.linear_model import LinearRegression\n"
        "checks.all_checks()\n"
        "model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])\n"
        "assert flavors.flavor_for(model).name == 'sklearn'\n"
        "assert kernel_models.is_model(model) and kernel_models.is_fitted(model)\n"
        "assert kernel_models.native_library(model) is None\n"
        "print(sorted({'xgboost', 'lightgbm', 'catboost', 'statsmodels', 'torch'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_label_metrics_only_for_answers_and_the_task_of_native_models() -> None:
    import lightgbm
    import numpy as np
    import statsmodels.api as sm
    from sklearn.datasets import load_breast_cancer

    from handoff.evaluation import answer_metrics
    from handoff.kernel_capture import _task

    y = [0, 1, 1, 0]
    assert answer_metrics("classification", y, [0.1, 0.9, 0.8, 0.3]) == {}  # probabilities
    assert answer_metrics("classification", y, [[0.9, 0.1]] * 4) == {}  # per-class scores
    assert answer_metrics("classification", y, [0, 1, 1, 1])["accuracy"] == 0.75
    assert answer_metrics("regression", [1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]])["r2"] == 1.0

    X, target = load_breast_cancer(return_X_y=True)
    X = X[:, :3]
    binary = lightgbm.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lightgbm.Dataset(X, target), 3)
    logit = sm.Logit(target, sm.add_constant(X)).fit(disp=0)
    glm = sm.GLM(target, sm.add_constant(X), family=sm.families.Binomial()).fit()
    ols = sm.OLS(target.astype(np.float64), sm.add_constant(X)).fit()
    assert [_task(m) for m in (binary, logit, glm, ols)] == ["classification"] * 3 + ["regression"]
