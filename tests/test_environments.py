"""Build environments from a notebook's requirements: real uv, real virtualenvs, packages from PyPI.

One env cache (``HANDOFF_ENVS``) is shared by the tests of this module, so the env for ``six`` is
made once; the test that checks creation and reuse makes its own under a fresh ``HANDOFF_HOME``.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from handoff import environments
from handoff.cli import main
from handoff.environments import EnvironmentFailure, EnvironmentSpec, find_spec, pip_installs
from handoff.store import Store
from helpers import build, local_path, notebook

# one worker builds the module's shared fixture (not one per xdist worker)
pytestmark = pytest.mark.xdist_group("environments")

#: A model made without scikit-learn (the build env holds only what the notebook asks for, plus
#: what handoff's capture needs: numpy, cloudpickle, ipykernel).
NUMPY_MODEL = (
    "import numpy as np\n"
    "class MeanModel:\n"
    "    def fit(self, X, y):\n"
    "        self.mean_ = float(np.mean(y)); self.n_features_in_ = X.shape[1]; return self\n"
    "    def predict(self, X):\n"
    "        return np.full(len(X), self.mean_)\n"
    "X = np.arange(20.0).reshape(10, 2)\n"
    "y = np.arange(10.0)\n"
    "model = MeanModel().fit(X, y)"
)
USES_SIX = "import six, sys\nprint('prefix', sys.prefix)\nprint('six', six.__version__)"


@pytest.fixture(scope="module", autouse=True)
def _shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("envs")
    before = os.environ.get("HANDOFF_ENVS")
    os.environ["HANDOFF_ENVS"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("HANDOFF_ENVS", None)
    else:
        os.environ["HANDOFF_ENVS"] = before


def _home(store: Store) -> str:
    return str(local_path(store.artifact_root).parent)


def _printed(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _leftovers(cache: Path) -> list[str]:
    """Entries of the cache that are not complete envs, their lock files or the resolution index."""
    return sorted(
        p.name
        for p in cache.iterdir()
        if not (p.suffix == ".lock" or p.name == "resolved" or (p / environments.MARKER).exists())
    )


@pytest.mark.kernel
def test_requirements_beside_the_notebook_make_an_env_reused_by_the_next_build(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # envs under HANDOFF_HOME, which the sandbox hides: only the env itself is shown to the kernel
    home = tmp_path / "home"
    monkeypatch.setenv("HANDOFF_HOME", str(home))
    monkeypatch.delenv("HANDOFF_ENVS")
    path = write_notebook([USES_SIX, NUMPY_MODEL], directory=tmp_path / "project")
    # numpy pinned below handoff's own: the version's pins must come from the env the kernel ran in
    (path.parent / "requirements.txt").write_text("six  # a small pure-Python package\nnumpy==2.3.5\n")
    events: list[tuple[str, str]] = []

    first = build(path, store, name="sixer", on_event=lambda e: events.append((e.stage, e.message)))
    assert first.ok, first.error
    env = first.record.inputs.build_environment
    assert env is not None and env.created
    assert env.requirements == ("six", "numpy==2.3.5") and env.sources == ("requirements.txt beside the notebook",)
    assert any(p.startswith("six==") for p in env.pins) and any(p.startswith("ipykernel==") for p in env.pins)
    env_dir = home / "envs" / env.key
    assert f"prefix {env_dir}" in _printed(first.notebook)  # the kernel ran on the env's Python
    assert ("environment", f"creating the build environment: installing {len(env.pins)} packages") in events
    assert first.timings["environment"] > 0
    # the version's pins come from the env the kernel ran in: six is there, handoff's mlflow is not
    kernel_env = first.record.outputs.environment
    assert kernel_env is not None and kernel_env.imported["six"] == next(
        p.split("==")[1] for p in env.pins if p.startswith("six==")
    )
    assert "mlflow" not in kernel_env.installed and "scikit-learn" not in kernel_env.installed
    assert kernel_env.installed["numpy"] == "2.3.5"
    assert first.model is not None and first.model.saved is not None
    assert "numpy==2.3.5" in first.model.saved.requirements
    marker = (env_dir / environments.MARKER).stat()

    second = build(path, store, name="sixer")
    assert second.ok, second.error
    again = second.record.inputs.build_environment
    assert again is not None and not again.created and again.key == env.key
    assert (env_dir / environments.MARKER).stat().st_mtime_ns == marker.st_mtime_ns  # not re-made
    assert second.timings["environment"] < 1.0
    assert [p.name for p in (home / "envs").iterdir() if not p.name.startswith(("resolved", env.key))] == []


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("requirements", "reason"),
    [
        ("no-such-package-for-handoff-tests==1.0\n", "was not found in the package registry"),
        ("six==1.16.0\nsix==1.17.0\n", "six==1.16.0 and six==1.17.0"),
    ],
    ids=["missing", "conflict"],
)
def test_a_broken_requirements_file_fails_at_the_environment_stage_and_records_nothing(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path, requirements: str, reason: str
) -> None:
    path = write_notebook([USES_SIX, NUMPY_MODEL])
    (tmp_path / "requirements.txt").write_text(requirements)
    result = build(path, store, name="broken")
    assert not result.ok and result.version is None and result.run_id is None
    assert result.error is not None and result.error.stage == "environment"
    assert "No solution found when resolving dependencies" in result.error.message
    assert reason in result.error.message and "\n" not in result.error.message
    assert result.notebook is None and "execute" not in result.timings
    assert store.list_models() == []
    assert _leftovers(Path(os.environ["HANDOFF_ENVS"])) == []


def test_two_builds_wanting_the_same_env_make_it_once(tmp_path: Path) -> None:
    spec = EnvironmentSpec(("six",), ("test",))
    with ThreadPoolExecutor(max_workers=2) as pool:
        ready = list(pool.map(lambda _: environments.prepare(spec, lambda m: None, cache=tmp_path), range(2)))
    assert ready[0].path == ready[1].path and sorted(r.created for r in ready) == [False, True]
    assert _leftovers(tmp_path) == [] and len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # env, index
    done = subprocess.run([str(ready[0].python), "-c", "import six, handoff.kernel_capture"], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_failed_install_leaves_no_half_made_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # resolution succeeds, the install cannot: the temp env is removed, nothing is cached
    monkeypatch.setattr(environments, "resolve", lambda spec, python, workdir: ("no-such-package-for-handoff==1.0",))
    with pytest.raises(EnvironmentFailure, match=r"installing the requirements: .*no-such-package-for-handoff"):
        environments.prepare(EnvironmentSpec(("x",), ("test",)), lambda message: None, cache=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.kernel
def test_pip_install_cells_go_to_the_build_env(write_notebook: Callable[..., Path], store: Store) -> None:
    path = write_notebook(["%pip install -q six", USES_SIX, NUMPY_MODEL])
    result = build(path, store, name="pipcell")
    assert result.ok, result.error
    env = result.record.inputs.build_environment
    assert env is not None and env.requirements == ("six",) and env.sources == ("pip install in cell 1",)
    assert any("cell 1 runs `pip install six`" in w and "build environment" in w for w in result.warnings)
    assert result.notebook is not None
    assert result.notebook.cells[0].source.startswith("# handoff: installed in the build environment: %pip install")
    assert f"prefix {Path(os.environ['HANDOFF_ENVS']) / env.key}" in _printed(result.notebook)


@pytest.mark.kernel
def test_cli_with_and_an_uninstalled_kernelspec_run_on_the_build_env(
    write_notebook: Callable[..., Path], store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_notebook([USES_SIX, NUMPY_MODEL], kernel="no-such-kernel-for-handoff")
    code = main(["build", str(path), "--store", _home(store), "--with", "six", "--json", "--timeout", "120"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["error"]
    assert out["inputs"]["build_environment"]["sources"] == ["--with six"]
    assert any(
        "'no-such-kernel-for-handoff' is not installed; ran on the build environment's Python" in w
        for w in out["warnings"]
    )
    assert "environment" in out["timings"]


def test_cli_requirements_file_that_does_not_exist_is_bad_input(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path
) -> None:
    path = write_notebook([USES_SIX])
    assert main(["build", str(path), "--store", _home(store), "--requirements", str(tmp_path / "nope.txt")]) == 2


def test_where_requirements_come_from(tmp_path: Path) -> None:
    nb = notebook(["import six", "!pip install tabulate==0.9.0 'rich>=13' --quiet", "x = 1"])
    assert find_spec(notebook(["x = 1"]), tmp_path, {}, None, ()) == (EnvironmentSpec((), ()), [])
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["six>=1.16"]\n')
    spec, warnings = find_spec(nb, tmp_path, {}, None, ["seaborn"])
    assert spec.requirements == ("six>=1.16", "seaborn", "tabulate==0.9.0", "rich>=13")
    assert spec.sources == ("pyproject.toml beside the notebook", "--with seaborn", "pip install in cell 2")
    assert warnings and "tabulate==0.9.0, rich>=13" in warnings[0]
    (tmp_path / "requirements.txt").write_text("# pins\nsix==1.17.0\n\n")
    assert find_spec(notebook(["x = 1"]), tmp_path, {}, None, ())[0].requirements == ("six==1.17.0",)
    uploaded = find_spec(notebook(["x = 1"]), tmp_path, {"requirements.txt": b"tabulate\n"}, None, ())[0]
    assert uploaded == EnvironmentSpec(("tabulate",), ("requirements.txt uploaded with the notebook",))
    given = tmp_path / "other.txt"
    given.write_text("rich\n")
    assert find_spec(notebook(["x = 1"]), tmp_path, {}, given, ())[0].requirements == ("rich",)


@pytest.mark.parametrize(
    ("line", "packages"),
    [
        ("%pip install six", ("six",)),
        ("!pip install -U six tabulate", ("six", "tabulate")),
        ("!pip3 install --index-url https://example.org/simple six", ("six",)),
        ("!python -m pip install 'six==1.17.0'", ("six==1.17.0",)),
        ("!{sys.executable} -m pip install six", ("six",)),
        ("  % pip install six  # for the table", ("six",)),
        ("!pip install -r requirements.txt", ()),
        ("print('pip install six')", ()),
        ("# %pip install six", ()),
    ],
)
def test_pip_install_lines(line: str, packages: tuple[str, ...]) -> None:
    found = pip_installs(notebook([line]))
    assert found == ([(1, packages)] if packages else [])


@pytest.mark.kernel
def test_verify_env_rebuilds_the_package_from_its_requirements_and_fails_without_a_pin(
    iris_notebook: Path, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = build(iris_notebook, store, checks={"verify_env": True})
    assert result.ok, result.error
    assert result.checks is not None
    check = next(r for r in result.checks.results if r.id == "env.rebuilds")
    assert check.status == "passed", check.message
    assert "loads and predicts 5 example rows in a new env" in check.message

    # the exported package passes too (the env is cached by its pins: reused, not made again) ...
    target = tmp_path / "iris.zip"
    code = main(["export", "iris", "1", "-o", str(target), "--store", _home(store), "--verify-env"])
    err = capsys.readouterr().err
    assert code == 0 and "env.rebuilds: passed" in err, err
    # ... and a package whose requirements.txt lost a pin fails, naming what is missing (mlflow: every
    # other pin of this model is also one of mlflow's own dependencies, so dropping it alone still loads)
    model_dir = tmp_path / "unpacked"
    with zipfile.ZipFile(target) as archive:
        archive.extractall(model_dir, [n for n in archive.namelist() if n.startswith("iris-v1/model/")])
    requirements = model_dir / "iris-v1" / "model" / "requirements.txt"
    requirements.write_text(
        "".join(line + "\n" for line in requirements.read_text().splitlines() if not line.startswith("mlflow"))
    )
    rebuilt = environments.rebuild_and_predict(model_dir / "iris-v1" / "model")
    assert not rebuilt.ok and "No module named 'mlflow'" in rebuilt.message, rebuilt.message


def test_verify_env_is_off_by_default(iris_notebook: Path) -> None:
    from handoff.check_config import CheckConfig
    from handoff.checks import get

    assert not CheckConfig().verify_env
    assert get("env.rebuilds").optional
