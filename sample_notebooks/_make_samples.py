"""Generate the sample notebooks (and the data file one of them reads) in this folder.

Run it from anywhere:

    .venv/bin/python sample_notebooks/_make_samples.py

It rewrites every sample in place. The output is deterministic: cell ids are fixed (not the
random ids nbformat would assign), notebooks are clean (no outputs, no execution counts), and
``diabetes.csv`` is rounded to 6 decimals so re-running produces byte-identical files.

Every sample runs offline (scikit-learn's bundled datasets or a file shipped next to the
notebook), in a couple of seconds, with ``random_state=0`` everywhere.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LANGUAGE_INFO = {"name": "python"}


def md(source: str) -> nbformat.NotebookNode:
    return new_markdown_cell(source.strip("\n"))


def code(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source.strip("\n"))


def params(source: str) -> nbformat.NotebookNode:
    """The papermill parameters cell: a code cell tagged ``parameters``."""
    cell = code(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def write_notebook(filename: str, cells: list[nbformat.NotebookNode]) -> Path:
    nb = new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)})
    stem = Path(filename).stem.replace("_", "-")
    for index, cell in enumerate(nb.cells):
        cell.id = f"{stem}-{index}"  # stable ids, so regenerating changes nothing
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    path = HERE / filename
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        nbformat.write(nb, handle)
    return path


# --------------------------------------------------------------------------------------------
# 1. iris_classifier.ipynb: the simplest case, everything auto-detected.
# --------------------------------------------------------------------------------------------

IRIS = [
    md("""
# Iris classifier

A random forest trained on scikit-learn's bundled iris dataset (no network needed).

handoff finds everything by itself here: the fitted estimator in `model`, and the metrics in the
plain float variables `accuracy` and `f1`. The next cell is the papermill **parameters** cell:
its values can be overridden at build time (`-p n_estimators 100`).
"""),
    params("""
n_estimators = 50  # number of trees in the forest
max_depth = 4  # maximum depth of each tree
test_size = 0.25  # fraction of rows held out for evaluation
random_state = 0  # seed for the split and the forest
"""),
    md("## Load the data and split it"),
    code("""
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=test_size, random_state=random_state, stratify=y
)
print(f"train: {X_train.shape}, test: {X_test.shape}")
"""),
    md("## Train the model"),
    code("""
from sklearn.ensemble import RandomForestClassifier

model = RandomForestClassifier(
    n_estimators=n_estimators, max_depth=max_depth, random_state=random_state
)
model.fit(X_train, y_train)
"""),
    md("## Evaluate on the held-out test set"),
    code("""
from sklearn.metrics import accuracy_score, f1_score

y_pred = model.predict(X_test)
accuracy = float(accuracy_score(y_test, y_pred))
f1 = float(f1_score(y_test, y_pred, average="macro"))
print(f"accuracy = {accuracy:.4f}")
print(f"f1 (macro) = {f1:.4f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 2. diabetes_regression.ipynb: reads a CSV shipped next to the notebook.
# --------------------------------------------------------------------------------------------

DIABETES = [
    md("""
# Diabetes regression

A ridge regression (standardised features) predicting disease progression one year after
baseline. The data is read from **`diabetes.csv`**, a file shipped next to this notebook
(scikit-learn's diabetes dataset exported to CSV), so the build records it as a data input.

The model is the fitted `pipeline`; the metrics are the floats `rmse`, `mae` and `r2`.
"""),
    params("""
alpha = 1.0  # ridge regularisation strength
test_size = 0.2  # fraction of rows held out for evaluation
random_state = 0  # seed for the train/test split
"""),
    md("## Load the data from the CSV next to the notebook"),
    code("""
import pandas as pd
from sklearn.model_selection import train_test_split

df = pd.read_csv("diabetes.csv")
X = df.drop(columns=["target"])
y = df["target"]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=test_size, random_state=random_state
)
print(f"{len(df)} rows, features: {list(X.columns)}")
"""),
    md("## Train: scaling + ridge in one pipeline"),
    code("""
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

pipeline = Pipeline([
    ("scale", StandardScaler()),
    ("ridge", Ridge(alpha=alpha, random_state=random_state)),
])
pipeline.fit(X_train, y_train)
"""),
    md("## Evaluate on the held-out test set"),
    code("""
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

y_pred = pipeline.predict(X_test)
rmse = float(mean_squared_error(y_test, y_pred) ** 0.5)
mae = float(mean_absolute_error(y_test, y_pred))
r2 = float(r2_score(y_test, y_pred))
print(f"rmse = {rmse:.3f}")
print(f"mae  = {mae:.3f}")
print(f"r2   = {r2:.4f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 3. explicit_logging.ipynb: handoff.log_model / log_metric(s) override auto-detection.
# --------------------------------------------------------------------------------------------

EXPLICIT = [
    md("""
# Explicit logging with `handoff.log_model` and `handoff.log_metric`

Auto-detection would pick the wrong model here: the classifier lives in `wine_clf` (not a
preferred name such as `model`), and a `baseline` dummy classifier is fitted *after* it, so
"the most recently fitted model" would be the baseline. Calling `handoff.log_model(wine_clf)`
says which one to package, and `handoff.log_metric` / `handoff.log_metrics` say exactly which
metrics to record. Explicit calls always win.

Outside a handoff build these calls do nothing except return their argument, so the notebook
runs unchanged in plain Jupyter.
"""),
    params("""
C = 1.0  # inverse regularisation strength of the logistic regression
test_size = 0.25  # fraction of rows held out for evaluation
random_state = 0  # seed for the split and the models
"""),
    md("## Load the wine dataset (bundled with scikit-learn)"),
    code("""
import handoff
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=test_size, random_state=random_state, stratify=y
)
"""),
    md("## The model we want to ship: scaling + logistic regression"),
    code("""
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

wine_clf = Pipeline([
    ("scale", StandardScaler()),
    ("logreg", LogisticRegression(C=C, max_iter=1000, random_state=random_state)),
])
wine_clf.fit(X_train, y_train)
"""),
    md("## A baseline for comparison (fitted last, but not the model to ship)"),
    code("""
from sklearn.dummy import DummyClassifier

baseline = DummyClassifier(strategy="most_frequent", random_state=random_state).fit(X_train, y_train)
"""),
    md("## Evaluate, then tell handoff what to keep"),
    code("""
from sklearn.metrics import accuracy_score, f1_score

acc = float(accuracy_score(y_test, wine_clf.predict(X_test)))
macro_f1 = float(f1_score(y_test, wine_clf.predict(X_test), average="macro"))
baseline_acc = float(accuracy_score(y_test, baseline.predict(X_test)))

handoff.log_model(wine_clf)
handoff.log_metric("accuracy", acc)
handoff.log_metrics({"f1_macro": macro_f1, "baseline_accuracy": baseline_acc})
print(f"accuracy = {acc:.4f}  f1_macro = {macro_f1:.4f}  baseline_accuracy = {baseline_acc:.4f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 4. dataframe_features.ipynb: a DataFrame with named columns, metrics in a dict.
# --------------------------------------------------------------------------------------------

FEATURES = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
]

DATAFRAME = [
    md("""
# Named DataFrame features

A gradient-boosting classifier on eight named columns of scikit-learn's bundled breast cancer
dataset. Because it is fitted on a pandas DataFrame, the model remembers its column names
(`feature_names_in_`), so the packaged model's input example and signature use those names.

The model is `clf`; the metrics are collected in a dict named `metrics`.
"""),
    params("""
n_estimators = 30  # boosting stages
learning_rate = 0.1  # shrinkage applied to each stage
test_size = 0.25  # fraction of rows held out for evaluation
random_state = 0  # seed for the split and the model
"""),
    md("## Load the data as a DataFrame and keep a few named columns"),
    code(f"""
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

data = load_breast_cancer(as_frame=True)
columns = {FEATURES!r}
X = data.frame[columns]
y = data.frame["target"]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=test_size, random_state=random_state, stratify=y
)
X_train.head()
"""),
    md("## Train"),
    code("""
from sklearn.ensemble import GradientBoostingClassifier

clf = GradientBoostingClassifier(
    n_estimators=n_estimators, learning_rate=learning_rate, random_state=random_state
)
clf.fit(X_train, y_train)
print(list(clf.feature_names_in_))
"""),
    md("## Evaluate"),
    code("""
from sklearn.metrics import accuracy_score, roc_auc_score

proba = clf.predict_proba(X_test)[:, 1]
metrics = {
    "accuracy": float(accuracy_score(y_test, clf.predict(X_test))),
    "roc_auc": float(roc_auc_score(y_test, proba)),
}
print(metrics)
"""),
]


# --------------------------------------------------------------------------------------------
# 5. grid_search_pipeline.ipynb: a search over a pipeline, with its last step pulled out to look at.
# --------------------------------------------------------------------------------------------

GRID_SEARCH = [
    md("""
# Breast cancer: grid search over a scaled logistic regression

The way it is usually written: a `GridSearchCV` over a `Pipeline`, then the best pipeline and its
classifier step pulled out into variables to read the coefficients. The model to ship is the whole
refit pipeline (scaler included), not the `clf` step: handoff takes the outermost fitted model.
"""),
    params("""
cv_folds = 5  # cross-validation folds
random_state = 0  # seed for the split
"""),
    code("""
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=random_state, stratify=y)
"""),
    code("""
pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=cv_folds)
search.fit(X_train, y_train)
print("best params:", search.best_params_)
"""),
    md("## Look inside the best model"),
    code("""
best = search.best_estimator_
clf = best.named_steps["clf"]
top = sorted(zip(clf.coef_[0], X.columns), key=lambda t: -abs(t[0]))[:5]
for weight, name in top:
    print(f"{name:>25} {weight:+.3f}")
print("test accuracy:", best.score(X_test, y_test))
"""),
]


# --------------------------------------------------------------------------------------------
# 6. train_in_function.ipynb: trained inside a function, saved with joblib, nothing left global.
# --------------------------------------------------------------------------------------------

TRAIN_IN_FUNCTION = [
    md("""
# Wine quality class: train in a function, save with joblib

Training happens inside `train_and_save()`, which writes `model.joblib` and returns only the
score: no fitted model is left in a global variable. handoff loads the file the notebook wrote
(inside the kernel) and ships that model.
"""),
    params("""
n_estimators = 100  # trees in the forest
"""),
    code("""
import joblib
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
"""),
    code("""
def train_and_save(X, y, path="model.joblib"):
    model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=0)
    model.fit(X, y)
    joblib.dump(model, path)
    return model.score(X_test, y_test)


print("held-out accuracy:", train_and_save(X_train, y_train))
"""),
]


# --------------------------------------------------------------------------------------------
# 7. mlflow_tracking.ipynb: the notebook tracks itself with MLflow.
# --------------------------------------------------------------------------------------------

MLFLOW_TRACKING = [
    md("""
# Diabetes progression, tracked with MLflow

This notebook does its own MLflow tracking: parameters, the RMSE of each cross-validation fold
(a stepped metric), the held-out RMSE, and the model with `mlflow.sklearn.log_model`. Under
handoff its run goes to a build-local store and is imported into the version: the logged model
is the one shipped, the logged metrics are the version's metrics, and the notebook writes nothing
to your folder or to handoff's store.
"""),
    params("""
alpha = 0.5  # ridge regularisation strength
folds = 5  # cross-validation folds
"""),
    code("""
import mlflow
import mlflow.sklearn
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import cross_val_score, train_test_split

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
mlflow.set_experiment("diabetes-ridge")
"""),
    code("""
with mlflow.start_run(run_name="ridge-baseline"):
    mlflow.log_params({"alpha": alpha, "folds": folds})
    ridge = Ridge(alpha=alpha)
    scores = cross_val_score(ridge, X_train, y_train, cv=folds, scoring="neg_root_mean_squared_error")
    for fold, score in enumerate(scores):
        mlflow.log_metric("cv_rmse", float(-score), step=fold)
    ridge.fit(X_train, y_train)
    rmse = float(np.sqrt(mean_squared_error(y_test, ridge.predict(X_test))))
    mlflow.log_metric("rmse", rmse)
    mlflow.sklearn.log_model(ridge, name="model", input_example=X_test.head(3))
print("rmse", rmse)
"""),
]


# --------------------------------------------------------------------------------------------
# 8. classification_report.ipynb: evaluates by printing; leaves no metric variable at all.
# --------------------------------------------------------------------------------------------

CLASSIFICATION_REPORT = [
    md("""
# Digits: evaluated by printing a classification report

No metric is kept in a variable: the notebook only prints `classification_report`. handoff finds
the held-out rows from the `train_test_split` call (`Xtest`, `ytest`) and computes the standard
metrics itself, recorded as "computed by handoff".
"""),
    code("""
from sklearn.datasets import load_digits
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

digits = load_digits()
Xtrain, Xtest, ytrain, ytest = train_test_split(digits.data, digits.target, test_size=0.25, random_state=0)
svc = SVC(gamma=0.001, probability=True, random_state=0).fit(Xtrain, ytrain)
print(classification_report(ytest, svc.predict(Xtest)))
"""),
]


# --------------------------------------------------------------------------------------------
# 10.-14. One notebook per optional model library (pip install handoff[all]): each is saved with
# that library's MLflow flavor. Small and fast: each trains in a second or two.
# --------------------------------------------------------------------------------------------

XGBOOST = [
    md("""
# Breast cancer: gradient boosting with XGBoost

An `XGBClassifier` (XGBoost's scikit-learn API) on scikit-learn's bundled breast cancer dataset.
handoff saves it with MLflow's xgboost flavor, in XGBoost's own model format.
"""),
    params("""
n_estimators = 60  # boosting rounds
max_depth = 3  # depth of each tree
learning_rate = 0.2
random_state = 0
"""),
    code("""
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

data = load_breast_cancer(as_frame=True)
X, y = data.data, data.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=random_state, stratify=y)
X_train.shape, X_test.shape
"""),
    code("""
from xgboost import XGBClassifier

model = XGBClassifier(
    n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
    random_state=random_state, n_jobs=1,
)
model.fit(X_train, y_train)
"""),
    code("""
from sklearn.metrics import accuracy_score, roc_auc_score

accuracy = accuracy_score(y_test, model.predict(X_test))
auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
print(f"accuracy: {accuracy:.3f}  auc: {auc:.3f}")
"""),
]

LIGHTGBM = [
    md("""
# Diabetes progression with LightGBM's native API

`lgb.train` on a `lgb.Dataset`, the way LightGBM's own examples do it, with early stopping on a
validation split. The result is a native `Booster`; handoff saves it in LightGBM's text format.
"""),
    params("""
num_leaves = 15
learning_rate = 0.05
num_boost_round = 200
"""),
    code("""
import lightgbm as lgb
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
"""),
    code("""
params = {
    "objective": "regression",
    "num_leaves": num_leaves,
    "learning_rate": learning_rate,
    "min_data_in_leaf": 10,
    "num_threads": 1,
    "seed": 42,
    "verbose": -1,
}
train_set = lgb.Dataset(X_train, label=y_train)
valid_set = lgb.Dataset(X_test, label=y_test, reference=train_set)
booster = lgb.train(
    params, train_set, num_boost_round=num_boost_round, valid_sets=[valid_set],
    callbacks=[lgb.early_stopping(20, verbose=False)],
)
print("best iteration:", booster.best_iteration)
"""),
    code("""
pred = booster.predict(X_test, num_iteration=booster.best_iteration)
rmse = float(np.sqrt(np.mean((pred - y_test) ** 2)))
print(f"rmse: {rmse:.2f}")
"""),
]

CATBOOST = [
    md("""
# Wine classes with CatBoost

A `CatBoostClassifier` on scikit-learn's bundled wine dataset. handoff saves it with MLflow's
catboost flavor, in CatBoost's own `cbm` format.
"""),
    params("""
iterations = 100
depth = 4
"""),
    code("""
from catboost import CatBoostClassifier
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
"""),
    code("""
clf = CatBoostClassifier(
    iterations=iterations, depth=depth, learning_rate=0.1, random_seed=0,
    thread_count=1, verbose=0, allow_writing_files=False,
)
clf.fit(X_train, y_train, eval_set=(X_test, y_test))
"""),
    code("""
from sklearn.metrics import accuracy_score

accuracy = accuracy_score(y_test, clf.predict(X_test).ravel())
print(f"accuracy: {accuracy:.3f}")
"""),
]

STATSMODELS = [
    md("""
# Diabetes progression: ordinary least squares with statsmodels

An OLS fit with an intercept, and its summary table. The fitted results object is the model:
handoff saves it with MLflow's statsmodels flavor.
"""),
    code("""
import statsmodels.api as sm
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=1)
X_train = sm.add_constant(X_train)
X_test = sm.add_constant(X_test)
"""),
    code("""
ols = sm.OLS(y_train, X_train).fit()
print(ols.summary())
"""),
    code("""
pred = ols.predict(X_test)
rmse = float(((pred - y_test) ** 2).mean() ** 0.5)
r2 = ols.rsquared
print(f"test rmse: {rmse:.2f}, train R^2: {r2:.3f}")
"""),
]

PYTORCH = [
    md("""
# Iris with a small PyTorch network

A two-layer perceptron written as an `nn.Module` subclass, trained full-batch with Adam on the
iris measurements in cm, as they are (the network is the whole model: no scaler outside it).
handoff saves the network with MLflow's pytorch flavor; its signature comes from the input
example (float32 rows of 4 features), its output is the logits.
"""),
    params("""
hidden = 16
epochs = 200
lr = 0.05
"""),
    code("""
import numpy as np
import torch
from torch import nn
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

torch.manual_seed(0)
X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)  # torch's default dtype
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
"""),
    code("""
class IrisNet(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))

    def forward(self, x):
        return self.layers(x)


net = IrisNet(4, hidden, 3)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(net.parameters(), lr=lr)
inputs, targets = torch.from_numpy(X_train), torch.from_numpy(y_train)
for epoch in range(epochs):
    optimizer.zero_grad()
    loss = loss_fn(net(inputs), targets)
    loss.backward()
    optimizer.step()
print(f"final training loss: {loss.item():.4f}")
"""),
    code("""
net.eval()
with torch.no_grad():
    predicted = net(torch.from_numpy(X_test)).argmax(dim=1).numpy()
accuracy = float((predicted == y_test).mean())
print(f"test accuracy: {accuracy:.3f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 15. two_candidate_models.ipynb: a baseline and a tuned model both left in the namespace, as
#     people do when they compare; handoff ships the most recently fitted and records the other
#     as a candidate (the app's model picker, or `--model-var baseline`, chooses it instead).
# --------------------------------------------------------------------------------------------

TWO_CANDIDATES = [
    md("""
# Wine: a baseline and a tuned model

Two models are fitted and compared here: a simple logistic regression as the baseline, then a
gradient-boosted model. Both stay in the notebook's variables. handoff ships the most recently
fitted one (`tuned`) and lists `baseline` as a candidate: pick it in the app's model picker under
the build's result, or build with `--model-var baseline`.
"""),
    params("""
learning_rate = 0.1  # step size of the boosting
max_iter = 50  # boosting rounds
random_state = 0  # seed for the split and the model
"""),
    code("""
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, random_state=random_state, stratify=y
)
"""),
    md("## Baseline"),
    code("""
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
baseline.fit(X_train, y_train)
baseline_accuracy = float(baseline.score(X_test, y_test))
print(f"baseline accuracy: {baseline_accuracy:.3f}")
"""),
    md("## Tuned"),
    code("""
from sklearn.ensemble import HistGradientBoostingClassifier

tuned = HistGradientBoostingClassifier(
    learning_rate=learning_rate, max_iter=max_iter, random_state=random_state
)
tuned.fit(X_train, y_train)
accuracy = float(tuned.score(X_test, y_test))
print(f"tuned accuracy: {accuracy:.3f} (baseline {baseline_accuracy:.3f})")
"""),
]


# --------------------------------------------------------------------------------------------
# 16. ridge_sweep.ipynb: a notebook meant for a parameter sweep (typed parameters, a grid in mind).
# --------------------------------------------------------------------------------------------

RIDGE_SWEEP = [
    md("""
# Ridge with polynomial features: which degree and regularisation?

The usual question before handing a model over: how much feature expansion, how much shrinkage?
Rather than editing the cell below by hand, sweep it:

    handoff sweep ridge_sweep.ipynb -p degree 1,2 -p alpha 0.1:10:3 --promote-best

Every point is its own build and version; the table at the end ranks them by `rmse` (lower is better).
"""),
    params("""
degree: int = 1  # polynomial degree of the feature expansion
alpha: float = 1.0  # ridge regularisation strength, at least 0
test_size: float = 0.25  # fraction of rows held out for evaluation
"""),
    code("""
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=0)
"""),
    code("""
model = make_pipeline(PolynomialFeatures(degree), StandardScaler(), Ridge(alpha=alpha))
model.fit(X_train, y_train)
"""),
    code("""
y_pred = model.predict(X_test)
rmse = float(mean_squared_error(y_test, y_pred) ** 0.5)
r2 = float(r2_score(y_test, y_pred))
print(f"degree={degree} alpha={alpha}: rmse={rmse:.2f} r2={r2:.3f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 17. boosting_sweep.ipynb: a sweep whose points each train for seconds (the issue's own example:
#     n_estimators x max_depth), as real sweeps do; the benchmark's compute-bound case.
# --------------------------------------------------------------------------------------------

BOOSTING_SWEEP = [
    md("""
# Gradient boosting on tabular data: how many trees, how deep, how fast?

Each point trains for a few seconds on one core, so a sweep of them is worth running in parallel:

    handoff sweep boosting_sweep.ipynb -p n_estimators 100,200 -p max_depth 2,3 -p learning_rate 0.05,0.1 --workers 2

The data is generated here (a stand-in for the team's customer table, so the notebook runs offline).
"""),
    params("""
n_estimators: int = 100  # boosting stages
max_depth: int = 3  # depth of each tree
learning_rate: float = 0.1  # shrinkage of each stage
"""),
    code("""
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

X, y = make_classification(
    n_samples=6000, n_features=20, n_informative=8, n_redundant=4, class_sep=0.8, random_state=7
)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
"""),
    code("""
from sklearn.ensemble import GradientBoostingClassifier

clf = GradientBoostingClassifier(
    n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate, random_state=0
)
clf.fit(X_train, y_train)
"""),
    code("""
from sklearn.metrics import accuracy_score, roc_auc_score

auc = roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1])
accuracy = accuracy_score(y_test, clf.predict(X_test))
print(f"{n_estimators} trees of depth {max_depth} at {learning_rate}: AUC {auc:.3f}, accuracy {accuracy:.3f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 18. scaler_fitted_apart.ipynb: the scaler fitted on its own, the classifier on its output.
# --------------------------------------------------------------------------------------------

SCALER_APART = [
    md("""
# Breast cancer: scale, then logistic regression (no Pipeline)

The scaler and the classifier are fitted one after the other, each in its own variable, as in many
tutorials. `clf` alone expects scaled rows: handoff ships `scaler` and `clf` together, as one
scikit-learn Pipeline that takes the raw columns.
"""),
    params("""
C = 1.0  # inverse regularisation strength
random_state = 0  # seed for the split
"""),
    code("""
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=random_state, stratify=y)
"""),
    md("## Scale"),
    code("""
from sklearn.preprocessing import StandardScaler

scaler = StandardScaler()
X_train_scaled = scaler.fit_transform(X_train)
X_test_scaled = scaler.transform(X_test)
"""),
    md("## Train and evaluate"),
    code("""
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

clf = LogisticRegression(C=C, max_iter=1000)
clf.fit(X_train_scaled, y_train)
print("test accuracy:", accuracy_score(y_test, clf.predict(X_test_scaled)))
"""),
]


# --------------------------------------------------------------------------------------------
# 19. preprocessing_reassigned.ipynb: scaling and PCA written back into X_train / X_test.
# --------------------------------------------------------------------------------------------

PREPROCESSING_REASSIGNED = [
    md("""
# Wine: scale, reduce with PCA, classify (each step overwrites X_train and X_test)

No variable keeps the scaled rows: each step writes back into `X_train` and `X_test`. handoff finds
the chain from the raw `X` (scaler, then pca) and ships it in front of `model`.
"""),
    params("""
n_components = 5  # principal components kept
random_state = 0  # seed for the split
"""),
    code("""
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=random_state, stratify=y)
"""),
    code("""
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

scaler = StandardScaler()
X_train = scaler.fit_transform(X_train)
X_test = scaler.transform(X_test)

pca = PCA(n_components=n_components, random_state=random_state)
X_train = pca.fit_transform(X_train)
X_test = pca.transform(X_test)
print(pca.explained_variance_ratio_.round(3))
"""),
    code("""
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
predictions = model.predict(X_test)
accuracy = accuracy_score(y_test, predictions)
f1 = f1_score(y_test, predictions, average="macro")
print(f"accuracy={accuracy:.3f} f1={f1:.3f}")
"""),
]


# --------------------------------------------------------------------------------------------
# 20. feature_subset.ipynb: one frame split whole, the model fitted on a list of its columns.
# --------------------------------------------------------------------------------------------

FEATURE_SUBSET = [
    md("""
# Breast cancer: a forest on a hand-picked list of columns

The whole frame (target included) is split into `train` and `test`, and the model is fitted on
`train[features]`. The packaged model takes exactly those named columns: handoff's input example is
those columns of the notebook's frames.
"""),
    params("""
n_estimators = 100  # trees in the forest
random_state = 0  # seed for the split and the forest
"""),
    code("""
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

df = load_breast_cancer(as_frame=True).frame
train, test = train_test_split(df, test_size=0.25, random_state=random_state, stratify=df["target"])
"""),
    code("""
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score

features = ["worst area", "worst concave points", "mean texture", "worst smoothness"]
model = RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)
model.fit(train[features], train["target"])
accuracy = accuracy_score(test["target"], model.predict(test[features]))
print(f"accuracy on {len(test)} rows: {accuracy:.3f}")
"""),
]


def write_diabetes_csv() -> Path:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.round(6)
    path = HERE / "diabetes.csv"
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def main() -> None:
    written = [
        write_notebook("iris_classifier.ipynb", IRIS),
        write_diabetes_csv(),
        write_notebook("diabetes_regression.ipynb", DIABETES),
        write_notebook("explicit_logging.ipynb", EXPLICIT),
        write_notebook("dataframe_features.ipynb", DATAFRAME),
        write_notebook("grid_search_pipeline.ipynb", GRID_SEARCH),
        write_notebook("train_in_function.ipynb", TRAIN_IN_FUNCTION),
        write_notebook("mlflow_tracking.ipynb", MLFLOW_TRACKING),
        write_notebook("classification_report.ipynb", CLASSIFICATION_REPORT),
        write_notebook("xgboost_classifier.ipynb", XGBOOST),
        write_notebook("lightgbm_booster.ipynb", LIGHTGBM),
        write_notebook("catboost_classifier.ipynb", CATBOOST),
        write_notebook("statsmodels_ols.ipynb", STATSMODELS),
        write_notebook("pytorch_mlp.ipynb", PYTORCH),
        write_notebook("two_candidate_models.ipynb", TWO_CANDIDATES),
        write_notebook("ridge_sweep.ipynb", RIDGE_SWEEP),
        write_notebook("boosting_sweep.ipynb", BOOSTING_SWEEP),
        write_notebook("scaler_fitted_apart.ipynb", SCALER_APART),
        write_notebook("preprocessing_reassigned.ipynb", PREPROCESSING_REASSIGNED),
        write_notebook("feature_subset.ipynb", FEATURE_SUBSET),
    ]
    for path in written:
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
