"""Individual checks against purpose-built contexts (no kernel needed), the report and JUnit XML."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import psutil
import pytest

from handoff import checks
from handoff.check_config import resolve_config
from handoff.checklist import ArtifactChecker, CheckContext, CheckReport, junit_xml, run_checklist
from handoff.errors import SerializationFailure
from handoff.messages import render
from handoff.record import BuildError, BuildRecord, Environment, Inputs, Metric, NotebookRef, Outputs
from helpers import notebook


def _ctx(
    metrics: dict[str, float] | None = None,
    error: BuildError | None = None,
    environment: Environment | None = None,
    **changes,
) -> CheckContext:
    nb = notebook(["x = 1"])
    record = BuildRecord(
        name="m",
        status="failed" if error else "passed",
        error=error,
        inputs=Inputs(NotebookRef("m", "0" * 64)),
        outputs=Outputs(metrics=tuple(Metric(k, v) for k, v in (metrics or {}).items()), environment=environment),
    )
    fields = dict(
        record=record, source_notebook=nb, executed_notebook=nb, model_dir=None, champion=None, config=resolve_config()
    )
    fields.update(changes)
    return CheckContext(**fields)


def _run(check_id: str, ctx: CheckContext) -> checks.CheckResult:
    check = checks.get(check_id)
    return checks.CheckResult.from_outcome(check, check.run(ctx))


def test_registry_has_every_documented_check_in_order() -> None:
    assert checks.check_ids() == [
        "notebook.executed",
        "model.found",
        "model.loads",
        "model.fidelity",
        "model.predicts",
        "env.pinned",
        "metrics.thresholds",
        "metrics.no_regression",
        "user.tests",
        "notebook.secrets",
        "notebook.hygiene",
        "model.deterministic",
        "model.latency",
        "model.size",
        "model.portable",
        "data.fingerprinted",
        "metrics.present",
        "reproducible",
        "env.rebuilds",
    ]
    severities = {c.id: c.severity for c in checks.all_checks()}
    assert severities["model.loads"] == "blocking" and severities["model.latency"] == "warning"


def test_threshold_just_missed_fails_with_the_figure() -> None:
    ctx = _ctx(metrics={"accuracy": 0.8999}, config=resolve_config(cli={"thresholds": ["accuracy>=0.9"]}))
    result = _run("metrics.thresholds", ctx)
    assert result.status == "failed" and result.message == "accuracy = 0.8999 misses accuracy >= 0.9"
    ctx = _ctx(metrics={"accuracy": 0.9}, config=resolve_config(cli={"thresholds": ["accuracy>=0.9"]}))
    assert _run("metrics.thresholds", ctx).status == "passed"
    ctx = _ctx(metrics={}, config=resolve_config(cli={"thresholds": ["rmse<=5"]}))
    assert "rmse was not captured" in _run("metrics.thresholds", ctx).message


def _champion(**metrics: float) -> SimpleNamespace:
    return SimpleNamespace(version=3, metrics=metrics)


@pytest.mark.parametrize(
    "metrics, champion, settings, status",
    [
        ({"accuracy": 0.91}, {"accuracy": 0.90}, {}, "passed"),
        ({"accuracy": 0.90}, {"accuracy": 0.90}, {}, "passed"),  # no worse is enough
        ({"accuracy": 0.89}, {"accuracy": 0.90}, {}, "failed"),
        ({"rmse": 40.0}, {"rmse": 50.0}, {}, "passed"),  # lower is better
        ({"rmse": 51.0}, {"rmse": 50.0}, {}, "failed"),
        ({"accuracy": 0.905}, {"accuracy": 0.90}, {"min_absolute_change": 0.01}, "failed"),
        ({"accuracy": 0.95}, {"accuracy": 0.90}, {"min_relative_change": 0.05}, "passed"),
        ({"accuracy": 0.94}, {"accuracy": 0.90}, {"min_relative_change": 0.05}, "failed"),
        ({"accuracy": 0.95, "f1": 0.5}, {"accuracy": 0.90}, {}, "failed"),  # champion lacks f1
        ({"accuracy": 0.95, "f1": 0.5}, {"accuracy": 0.90}, {"gate_metrics": ["accuracy"]}, "passed"),
        ({"score": 2.0}, {"score": 3.0}, {"greater_is_better": {"score": False}}, "passed"),
    ],
)
def test_no_regression_follows_metric_threshold_semantics(metrics, champion, settings, status) -> None:
    ctx = _ctx(metrics=metrics, champion=_champion(**champion), config=resolve_config(cli={"gate": True, **settings}))
    assert _run("metrics.no_regression", ctx).status == status


def test_no_regression_is_skipped_without_gate_or_champion() -> None:
    assert _run("metrics.no_regression", _ctx(champion=_champion(accuracy=1.0))).status == "skipped"
    assert "no champion" in _run("metrics.no_regression", _ctx(config=resolve_config(cli={"gate": True}))).message


def test_hygiene_finds_order_stale_outputs_and_paths() -> None:
    nb = notebook(
        [
            "import pandas as pd\ndf = pd.read_csv('/home/alice/data/train.csv')",
            "API_KEY = 'sk-abcdefghijklmnopqrstuvwxyz123456'",
            "print('done')",
            "x = 2",
        ]
    )
    for cell, count in zip(nb.cells, [2, 1, 3, None], strict=True):
        cell.execution_count = count
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="password = 'hunter2hunter2'\n")]
    result = _run("notebook.hygiene", _ctx(source_notebook=nb))
    assert result.status == "warning" and result.severity == "warning"
    assert result.details["order"] == [2] and result.details["never_run"] == [4]
    assert result.details["paths"] == [{"cell": 1, "path": "/home/alice/data/train.csv"}]
    assert "absolute local paths" in result.message and "secret" not in result.message


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz3Kq8mQ4t"


def _printed(text: str, cells: list[str] | None = None) -> nbformat.NotebookNode:
    """An executed notebook whose last cell printed ``text`` (the source itself holds no secret)."""
    nb = notebook([*(cells or ["x = 1"]), "import json, os\nprint(json.dumps(dict(os.environ)))"])
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return nb


def test_secrets_in_printed_json_fail_naming_the_cell_never_the_value() -> None:
    import json

    nb = _printed(json.dumps({"HOME": "/root", "AWS_SECRET_ACCESS_KEY": AWS_SECRET}) + "\n", ["x = 1", ("md", "notes")])
    result = _run("notebook.secrets", _ctx(executed_notebook=nb))
    assert result.status == "failed" and result.severity == "blocking"
    assert {(f["cell"], f["in"]) for f in result.details["findings"]} == {(3, "output")}
    assert "Secret Keyword" in {f["type"] for f in result.details["findings"]}
    assert "cell 3" in result.message and "--allow-secrets" in render(result.message, "cli")
    assert AWS_SECRET not in repr(result.to_dict()) and AWS_SECRET[:8] not in repr(result.to_dict())


@pytest.mark.parametrize(
    "output",
    [
        nbformat.v4.new_output("execute_result", data={"text/plain": f"{{'aws_secret_access_key': '{AWS_SECRET}'}}"}),
        nbformat.v4.new_output("execute_result", data={"application/json": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}}),
        nbformat.v4.new_output(
            "error", ename="KeyError", evalue="x", traceback=[f"\x1b[0;31mKeyError\x1b[0m: password = '{AWS_SECRET}'"]
        ),
    ],
    ids=["text/plain", "json", "traceback"],
)
def test_secrets_found_in_every_kind_of_output(output: nbformat.NotebookNode) -> None:
    nb = notebook(["x = 1", "y = 2"])
    nb.cells[1].outputs = [output]
    result = _run("notebook.secrets", _ctx(executed_notebook=nb))
    assert result.status == "failed" and {f["cell"] for f in result.details["findings"]} == {2}


def test_secrets_in_source_and_handoffs_own_cells_are_told_apart() -> None:
    nb = notebook(["password = 'correct-horse-battery-staple-42'", "x = 1"])
    injected = nbformat.v4.new_code_cell("token = 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0'")
    injected.metadata["tags"] = ["handoff-injected"]
    nb.cells.insert(1, injected)
    result = _run("notebook.secrets", _ctx(executed_notebook=nb))
    assert [(f["cell"], f["in"]) for f in result.details["findings"]] == [(1, "source")]


def test_allow_secrets_passes_and_keeps_the_reason() -> None:
    import json

    nb = _printed(json.dumps({"AWS_SECRET_ACCESS_KEY": AWS_SECRET}))
    config = resolve_config(cli={"allow_secrets": "test fixture"})
    result = _run("notebook.secrets", _ctx(executed_notebook=nb, config=config))
    assert result.status == "passed" and result.details["allowed"] == "test fixture"
    assert "allowed: test fixture" in result.message and config.to_dict()["allow_secrets"] == "test fixture"


def test_a_notebook_cannot_allow_its_own_secrets(tmp_path: Path) -> None:
    from handoff.errors import OptionError

    with pytest.raises(OptionError, match="allow_secrets can only be given on the command line"):
        resolve_config(notebook_metadata={"handoff": {"checks": {"allow_secrets": "mine"}}})
    (tmp_path / "handoff.toml").write_text('[checks]\nallow_secrets = "mine"\n')
    with pytest.raises(OptionError, match="allow_secrets can only be given"):
        resolve_config(notebook_dir=tmp_path)
    with pytest.raises(OptionError, match="must be a reason"):
        resolve_config(cli={"allow_secrets": "  "})


def test_secrets_check_passes_a_clean_notebook() -> None:
    nb = _printed(
        "accuracy 0.97\nLogisticRegression(C=1.0, max_iter=300, random_state=42)\n",
        ["from sklearn.linear_model import LogisticRegression\ntoken_count = 3"],
    )
    assert _run("notebook.secrets", _ctx(executed_notebook=nb)).status == "passed"


@pytest.mark.parametrize(
    "workdir", ["/tmp/handoff-build-63903-xzhx0_v7", "/tmp/handoff-pool-63901-q8r_kz3w/handoff-build-63903-xzhx0_v7"]
)  # a build's own, a sweep worker's point's
def test_handoffs_own_random_work_dir_in_an_output_is_not_a_secret(workdir: str) -> None:
    # MLflow's Experiment repr shows its artifact location in the build's work dir: the random
    # suffix of that name made detect-secrets report a "Base64 High Entropy String"
    nb = notebook(["import mlflow\nmlflow.set_experiment('diabetes-ridge')"])
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "execute_result",
            execution_count=1,
            data={
                "text/plain": (
                    f"<Experiment: artifact_location='{workdir}/mlruns/1', "
                    "creation_time=1795433582376, experiment_id='1', name='diabetes-ridge', tags={}>"
                )
            },
        )
    ]
    assert _run("notebook.secrets", _ctx(executed_notebook=nb)).status == "passed"


def test_hygiene_passes_a_clean_notebook() -> None:
    nb = notebook(["import os\npath = os.path.join('data', 'x.csv')", "token_count = 3"])
    assert _run("notebook.hygiene", _ctx(source_notebook=nb)).status == "passed"


def test_warning_checks_on_empty_builds() -> None:
    assert _run("metrics.present", _ctx()).status == "warning"
    assert _run("data.fingerprinted", _ctx()).status == "warning"
    error = BuildError("CaptureFailure", "capture", "no fitted model found")
    assert _run("model.found", _ctx(error=error)).status == "failed"


def test_env_pinned_fails_on_loose_or_missing_requirements(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("mlflow==3.0\nscikit-learn>=1.0\n")
    environment = Environment(model_packages={"scikit-learn": "1.5", "numpy": "2.0"})
    result = _run("env.pinned", _ctx(model_dir=tmp_path, environment=environment))
    assert result.status == "failed" and result.details["loose"] == ["scikit-learn>=1.0"]
    assert result.details["missing"] == ["numpy", "scikit-learn"]


def _saved_iris_model(tmp_path: Path, estimator: Any = None) -> Path:
    """``estimator`` (a logistic regression by default) fitted on iris, saved as a pickled MLflow model."""
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(
        (estimator or LogisticRegression(max_iter=300)).fit(X, y),
        str(model_dir),
        serialization_format="pickle",
        input_example=X[:3],
        pip_requirements=["scikit-learn"],
    )
    return model_dir


def test_pickle_referencing_a_missing_class_fails_model_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """A model pickled *by reference* to a class that only exists where it was trained."""
    module_dir = tmp_path / "only_here"
    module_dir.mkdir()
    (module_dir / "notebook_classes.py").write_text(
        textwrap.dedent("""
        from sklearn.linear_model import LogisticRegression
        class MyModel(LogisticRegression):
            pass
    """)
    )
    sys.path.insert(0, str(module_dir))
    try:
        from notebook_classes import MyModel

        model_dir = _saved_iris_model(tmp_path, MyModel(max_iter=300))
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("notebook_classes", None)
    report = run_checklist(_ctx(model_dir=model_dir))
    by_id = {r.id: r for r in report.results}
    assert by_id["model.loads"].status == "failed"
    assert "No module named 'notebook_classes'" in by_id["model.loads"].message
    assert by_id["model.predicts"].status == "skipped" and not report.passed


def test_report_serialises_and_junit_counts_match() -> None:
    ctx = _ctx(metrics={"accuracy": 0.5}, config=resolve_config(cli={"thresholds": ["accuracy>=0.9"]}))
    report = run_checklist(ctx)
    again = CheckReport.from_dict(report.to_dict())
    assert again.results == report.results and not again.passed
    counts = report.counts
    root = ET.fromstring(junit_xml(report).split("?>", 1)[1])
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == len(report.results) == 19
    assert (
        int(suite.get("failures"))
        == counts["failed"] + counts["warning"]
        == len([c for c in cases if c.find("failure") is not None])
    )
    assert int(suite.get("skipped")) == counts["skipped"] == len([c for c in cases if c.find("skipped") is not None])
    failed = [c.get("name") for c in cases if (f := c.find("failure")) is not None and f.get("type") == "blocking"]
    assert failed == [r.id for r in report.failures]


def test_model_predicts_checks_length_and_signature_dtype() -> None:
    import numpy as np
    from mlflow.models.signature import infer_signature

    example = np.ones((3, 2))
    good = infer_signature(example, np.array([0, 1, 1]))
    ctx = SimpleNamespace(
        input_example=example, signature=good, model=SimpleNamespace(predict=lambda x: np.array([1, 0, 1]))
    )
    assert _run("model.predicts", ctx).status == "passed"
    ctx.model = SimpleNamespace(predict=lambda x: np.array(["a", "b", "c"]))
    assert "does not conform to the signature" in _run("model.predicts", ctx).message
    ctx.model = SimpleNamespace(predict=lambda x: np.array([1, 0]))
    assert _run("model.predicts", ctx).message == "2 predictions for 3 input rows"
    ctx.input_example = None
    assert "no input example" in _run("model.predicts", ctx).message


def test_a_secret_repeated_in_several_cells_is_reported_in_each() -> None:
    line = f"aws_secret_access_key = '{AWS_SECRET}'"
    nb = notebook(["x = 1", line, "y = 2", f"z = 3\n{line}"])
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{line}\n")]
    result = _run("notebook.secrets", _ctx(executed_notebook=nb))
    assert {(f["cell"], f["in"]) for f in result.details["findings"]} == {(2, "source"), (3, "output"), (4, "source")}


def test_an_allowlist_pragma_still_covers_only_the_line_after_it() -> None:
    line = f"aws_secret_access_key = '{AWS_SECRET}'"
    nb = notebook([f"# pragma: allowlist nextline secret\n{line}", f"x = 1\n{line}"])
    result = _run("notebook.secrets", _ctx(executed_notebook=nb))
    assert {(f["cell"], f["in"]) for f in result.details["findings"]} == {(2, "source")}


def test_the_secrets_scan_started_early_is_the_one_the_check_reports() -> None:
    from handoff.checklist import start_early

    nb = notebook(["x = 1", f"password = '{AWS_SECRET}'"])
    early = start_early(nb)
    assert set(early) == {"notebook.secrets"} and start_early(nb, ("notebook.secrets",)) == {}
    found = early["notebook.secrets"].result()
    result = _run("notebook.secrets", _ctx(executed_notebook=notebook(["x = 1"]), early=early))
    assert result.status == "failed" and result.details["findings"] == found  # not a scan of the clean one


@pytest.mark.parametrize("reproduce", [False, True])
def test_the_worker_has_the_artifact_checks_before_the_checks_here_run(tmp_path: Path, reproduce: bool) -> None:
    """The build waits for the worker's answer: it must not wait behind ``notebook.secrets`` and the
    other checks of the build's own process. Only ``reproducible`` (on request) needs the worker first."""
    model_dir = _saved_iris_model(tmp_path)
    config = resolve_config(cli={"reproduce": reproduce})
    again = SimpleNamespace(error="not run in this test", metrics={}, predictions=None, baseline_predictions=None)
    ctx = _ctx(model_dir=model_dir, config=config, rerun=lambda: again)
    checker = ArtifactChecker(readable=(model_dir.resolve(),))
    sent_first = []
    try:
        report = run_checklist(ctx, checker, then=lambda: sent_first.append(checker._stdin.closed))
    finally:
        checker.close()
    assert sent_first == [not reproduce]  # the worker's last request is written before any check here runs
    by_id = {r.id: r for r in report.results}
    assert by_id["model.loads"].status == "passed" and by_id["model.predicts"].status == "passed"
    assert by_id["reproducible"].status == ("failed" if reproduce else "skipped")


def test_the_worker_serves_requests_at_normal_priority(tmp_path: Path) -> None:
    """It warms up behind the notebook's kernel (a lower-priority thread), then answers the build at
    normal priority: after the notebook has run, the worker is what the build waits for."""
    checker = ArtifactChecker()
    try:
        with pytest.raises(SerializationFailure):  # answered (after the warm-up): the worker waits for more
            checker.serialize(tmp_path / "no-capture", tmp_path / "model")
        family = psutil.Process(checker._process.pid).children(recursive=True)
        (worker,) = [p for p in family if p.cmdline()[1:] == ["-m", "handoff.checks.runner"]]
        assert worker.nice() == 0 == os.getpriority(os.PRIO_PROCESS, os.getpid())
    finally:
        checker.close()


SECRET_LINES = [  # one line for each kind of detect-secrets plugin this corpus can reach
    f"aws_secret_access_key = '{AWS_SECRET}'",
    "key_id = AKIAIOSFODNN7EXAMPLE",
    "token ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    "slack = xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
    "-----BEGIN RSA PRIVATE KEY-----",
    "db = https://admin:hunter2pass@db.example.com/prod",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    'hex = "a3f5c2e1b4d6978812fe4c3b2a1d0e9f8c7b6a59"',
    "twilio SK" + "0123456789abcdef0123456789abcdef",
]


def test_the_scan_finds_what_detect_secrets_finds_line_by_line_in_a_long_log() -> None:
    """The scan leaves out lines no plugin finds a candidate in (a training log's thousands): the
    findings must be exactly those of detect-secrets scanning every cell's text as it is."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    from handoff.checks.notebook_secrets import scan

    log = [f"epoch {i} step {i * 7} loss {1 / (i + 1):.5f} lr 0.001 acc {i % 97 / 97:.4f}" for i in range(3000)]
    sources = []
    for i, secret in enumerate(SECRET_LINES):
        sources.append("\n".join([*log[i * 300 : i * 300 + 150], secret, *log[i * 300 + 150 : (i + 1) * 300]]))
    nb = notebook(["x = 1"] * len(sources))
    for cell, text in zip(nb.cells, sources, strict=True):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
    expected = set()
    with default_settings():
        for number, text in enumerate(sources, start=1):
            path = Path(tempfile.mkdtemp()) / "cells.txt"
            path.write_text(text + "\n")
            expected |= {(number, s.type) for s in scan_file(str(path))}
    found = {(f["cell"], f["type"]) for f in scan(nb)}
    assert found == expected
    assert len({kind for _, kind in expected}) >= 8  # the corpus reaches most of the plugins
    assert {cell for cell, _ in expected} == set(range(1, len(SECRET_LINES) + 1))  # every secret line found
