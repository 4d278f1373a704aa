"""env.pinned: every third-party package the model needs is pinned in its requirements."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.checks import BLOCKING, Check, Outcome, failed, passed, register

if TYPE_CHECKING:
    from handoff.checklist import CheckContext


def run(ctx: CheckContext) -> Outcome:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if ctx.model_dir is None or not (ctx.model_dir / "requirements.txt").exists():
        return failed("the model has no requirements.txt")
    lines = [
        ln.strip()
        for ln in (ctx.model_dir / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    pinned, loose = {}, []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            loose.append(line)
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "==="):
            pinned[canonicalize_name(req.name)] = specs[0].version
        else:
            loose.append(line)
    environment = ctx.record.outputs.environment
    needed = {canonicalize_name(n) for n in (environment.model_packages if environment else {})}
    missing = sorted(needed - pinned.keys())
    if loose or missing:
        parts = ([f"not pinned: {', '.join(loose)}"] if loose else []) + (
            [f"missing: {', '.join(missing)}"] if missing else []
        )
        return failed("; ".join(parts), loose=loose, missing=missing)
    return passed(
        f"{len(pinned)} requirements, all pinned ({', '.join(f'{k}=={v}' for k, v in sorted(pinned.items()))})",
        requirements=pinned,
    )


register(Check("env.pinned", "Model requirements are pinned", BLOCKING, "build", run, order=50, needs="serialize"))
