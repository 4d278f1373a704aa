"""What looking for transformers fitted apart costs a build (``handoff.kernel_preprocessing.compose``,
run in the kernel after the last cell), on a table of ``--rows`` rows by 50 columns split 75/25, with an
imputer, a scaler and a PCA fitted in the namespace:

- fitted apart: ``clf`` fitted on ``scaler.transform(X_train)`` (found: the pipeline is built, and every
  variable is checked for transformed rows);
- not fitted apart: ``clf`` fitted on the raw ``X_train`` (no chain found: the whole search runs).

The peer, in the same process: ``Pipeline(scaler, LogisticRegression).fit`` on the same rows, the
training the notebook itself does (a fast one: a linear model). Goal: at most 1 s at 100,000 rows.

    .venv/bin/python benchmarks/bench_preprocessing.py [--rows 100000] [--runs 5]
"""

from __future__ import annotations

import ast
from typing import Any

from _common import arguments, median_time, report, row


def main() -> None:
    args = arguments(__doc__, rows=100_000)
    import numpy as np
    import pandas as pd
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from handoff.kernel_preprocessing import compose

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(args.rows, 50)), columns=[f"f{i}" for i in range(50)])
    y = (X["f0"] + rng.normal(size=len(X)) > 0).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    fitted: dict[str, Any] = {
        "X": X, "y": y, "X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test,
        "imputer": SimpleImputer().fit(X_train), "scaler": StandardScaler().fit(X_train),
        "pca": PCA(10, random_state=0).fit(X_train),
    }  # fmt: skip
    cases = {
        "fitted apart": "X_train_s = scaler.transform(X_train)\nclf = LogisticRegression().fit(X_train_s, y_train)",
        "not fitted apart": "X_view = pca.transform(X_train)\nclf = LogisticRegression().fit(X_train, y_train)",
    }
    peer_s = median_time(args.runs, lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train))
    rows = []
    print(f"{args.rows:,} rows x 50 columns, runs: {args.runs}")
    print(f"{'Pipeline(scaler, LogisticRegression).fit (peer)':48} median {peer_s:6.3f} s")
    for label, source in cases.items():
        namespace = {**fitted, "LogisticRegression": LogisticRegression}
        exec(source, namespace)
        namespace = {k: v for k, v in namespace.items() if not k.startswith("__")}
        cells = [(1, ast.parse(source))]
        composed = compose(namespace["clf"], "clf", namespace, cells)
        assert (composed is not None) == (label == "fitted apart"), label
        seconds = median_time(args.runs, lambda n=namespace, c=cells: compose(n["clf"], "clf", n, c))
        print(f"{'compose, ' + label:48} median {seconds:6.3f} s   ratio {seconds / peer_s:.2f}")
        rows.append(row(f"compose, {label}", seconds, peer="Pipeline.fit", peer_value=peer_s, goal=1.0))
    report(rows)


if __name__ == "__main__":
    main()
