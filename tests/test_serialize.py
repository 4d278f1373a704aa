"""Serialize stage and flavor registry: models load and predict in a fresh process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handoff import flavors
from handoff.errors import OptionError
from handoff.flavors import sklearn as sklearn_flavor
from handoff.flavors.sklearn import trusted_types_for
from handoff.store import Store
from helpers import build, local_path, predict_in_fresh_process

CUSTOM_TRANSFORMER = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

class Doubler(BaseEstimator, TransformerMixin):
    """Defined inside the notebook: exists nowhere else."""
    def fit(self, X, y=None):
        self.scale_ = 2.0
        return self
    def transform(self, X):
        return np.asarray(X) * self.scale_

X, y = load_iris(return_X_y=True)
model = make_pipeline(Doubler(), LogisticRegression(max_iter=500)).fit(X, y)
'''


def test_notebook_defined_class_uses_cloudpickle_and_loads_in_a_fresh_process(write_notebook, store: Store) -> None:
    result = build(write_notebook([CUSTOM_TRANSFORMER]), store)
    assert result.ok, result.error
    assert result.model.saved.format == "cloudpickle"
    assert "__main__.Doubler" in result.model.saved.reason
    model_dir = local_path(store.get_version(result.name, result.version).model_uri)
    predictions = predict_in_fresh_process(model_dir)
    assert len(predictions) == 5 and set(predictions) <= {0, 1, 2}


def test_plain_sklearn_uses_skops_with_an_audited_trust_list(write_notebook, store: Store) -> None:
    code = (
        "from sklearn.datasets import load_iris\nfrom sklearn.ensemble import RandomForestClassifier\n"
        "X, y = load_iris(return_X_y=True)\nmodel = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)"
    )
    result = build(write_notebook([code]), store)
    assert result.ok, result.error
    assert result.model.saved.format == "skops"
    model_dir = local_path(store.get_version(result.name, result.version).model_uri)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    trusted = mlmodel["flavors"]["sklearn"]["skops_trusted_types"]
    assert "sklearn.tree._tree.Tree" in trusted
    assert all(t.startswith(("sklearn.", "numpy.", "scipy.sparse.", "builtins.")) for t in trusted)
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert all("==" in r for r in requirements)
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "scikit-learn", "numpy", "skops"}
    assert len(predict_in_fresh_process(model_dir)) == 5


def test_trust_list_refuses_code_it_has_not_audited() -> None:
    from sklearn.preprocessing import FunctionTransformer

    types, reason = trusted_types_for(FunctionTransformer(func=lambda x: x).fit([[1.0]]))
    assert types is None and reason
    types, reason = trusted_types_for(FunctionTransformer().fit([[1.0]]))
    assert types is not None and "trust list" in reason


def test_a_skops_model_is_serialized_once_and_saved_as_skops_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's skops bytes are what MLflow's save writes (the model is serialized once), and they
    load back to the same predictions."""
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from skops.io import _persist

    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    passes, audits, real_dump = [], [], skops.io.dump
    real_state, real_audit = _persist.get_state, sklearn_flavor.audit
    monkeypatch.setattr(_persist, "get_state", lambda *a, **k: passes.append(1) or real_state(*a, **k))
    monkeypatch.setattr(sklearn_flavor, "audit", lambda m: audits.append(real_audit(m)) or audits[-1])
    serialization, _, _ = flavors.get("sklearn").save(
        model, tmp_path / "model", input_example=X[:3], pin=lambda names: names
    )
    assert serialization == "skops" and len(passes) == 1
    saved = tmp_path / "model" / "model.skops"
    assert saved.read_bytes() == audits[0].data
    loaded = skops.io.load(saved, trusted=skops.io.get_untrusted_types(file=saved))
    assert (loaded.predict(X) == model.predict(X)).all()
    assert skops.io.dump is real_dump  # put back after the save


def test_flavor_registry_lists_what_is_available() -> None:
    assert "sklearn" in flavors.available()
    assert flavors.get("sklearn").name == "sklearn"
    with pytest.raises(
        OptionError,
        match="unknown model flavor 'xgb'; available: catboost, lightgbm, pyfunc, pytorch, sklearn, "
        "statsmodels, xgboost",
    ):
        flavors.get("xgb")
    assert flavors.flavor_for(object()) is None
