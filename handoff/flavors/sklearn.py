"""scikit-learn (and scikit-learn-compatible) models, saved with MLflow's sklearn flavor.

skops when every type in the model is on an audited list of scikit-learn / NumPy / SciPy types
(loading it then executes no arbitrary code); otherwise cloudpickle, which also carries classes
defined inside the notebook by value so the model loads where the notebook never ran.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.flavors import register

#: Module prefixes whose types handoff trusts skops to load. Audited: data containers and
#: estimators from these libraries only; nothing that can call arbitrary functions.
TRUSTED_TYPE_PREFIXES = (
    "sklearn.",
    "numpy.",
    "scipy.sparse.",
    "builtins.",
    "collections.OrderedDict",
    "collections.defaultdict",
)


@dataclass(frozen=True)
class SkopsAudit:
    """What skops makes of a model: the types it would have to be told to trust to load it (``None``
    with the reason when skops cannot serialize it), and the bytes it serialized it to."""

    untrusted: list[str] | None
    why: str = ""
    data: bytes = b""


def audit(model: Any) -> SkopsAudit:
    """Serialize ``model`` with skops and list the types loading it needs trusted."""
    import skops.io

    try:
        data = skops.io.dumps(model)
        return SkopsAudit(list(skops.io.get_untrusted_types(data=data)), data=data)
    except Exception as exc:  # skops refuses many objects (lambdas, some C types): use cloudpickle
        return SkopsAudit(None, f"skops cannot serialize it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")


@contextmanager
def dumped_once(model: Any, audited: SkopsAudit) -> Iterator[None]:
    """While inside, skops's ``dump`` of this very model (MLflow's save calls it) writes the bytes
    the audit serialized instead of serializing the model again (skops writes its schema with the
    pure-Python JSON encoder: about as long as the rest of the save). Two dumps of one model differ
    only in the zip's timestamps and member names, so the file is what the second pass would be."""
    import skops.io

    real = skops.io.dump

    def dump(obj: Any, file: Any, **options: Any) -> None:
        if obj is not model or options or not audited.data:
            real(obj, file, **options)
        elif hasattr(file, "write"):
            file.write(audited.data)
        else:
            Path(file).write_bytes(audited.data)

    skops.io.dump = dump
    try:
        yield
    finally:
        skops.io.dump = real


def trusted_types_for(model: Any, audited: SkopsAudit | None = None) -> tuple[list[str] | None, str]:
    """The skops trusted-type list for ``model``, or ``None`` with the reason skops cannot be used."""
    found = audited or audit(model)
    if found.untrusted is None:
        return None, found.why
    outside = sorted(t for t in found.untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES))
    if outside:
        return None, f"types outside the audited skops trust list: {', '.join(outside[:5])}"
    return sorted(found.untrusted), "every type is on the audited scikit-learn/NumPy/SciPy trust list"


class SklearnFlavor:
    name = "sklearn"
    priority = 50

    def matches(self, model: Any) -> bool:
        return callable(getattr(model, "fit", None)) and callable(getattr(model, "predict", None))

    def save(
        self, model: Any, path: Path, *, input_example: Any, pin: Callable[[list[str]], list[str]]
    ) -> tuple[str, str, list[str]]:
        import mlflow.sklearn

        audited = audit(model)
        trusted, reason = trusted_types_for(model, audited)
        serialization = "skops" if trusted is not None else "cloudpickle"
        requirements = pin(["mlflow", "scikit-learn", "numpy", "pandas", serialization])
        with warnings.catch_warnings(), dumped_once(model, audited):  # MLflow's schema hints: for its users
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(
                model,
                str(path),
                serialization_format=serialization,
                skops_trusted_types=trusted,
                input_example=input_example,
                pip_requirements=requirements,
            )
        return serialization, reason, requirements


register(SklearnFlavor())
