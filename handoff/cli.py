"""The ``handoff`` command: a thin layer over the public API for terminals and CI pipelines.

Exit codes, the same for every command (the table is in ``handoff.errors``; each error class
carries its code): 0 ok; 1 the build or a blocking check failed, or verify / verify-store found a
mismatch; 2 bad input or refused (usage, unknown version, promotion refused, a failed version
exported without --force); 3 the store cannot be opened or is corrupt (a tampered version);
130 interrupted. Errors are one line on stderr, never a traceback (set ``HANDOFF_DEBUG=1`` to see
one for an unexpected error, which exits 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import handoff
from handoff.errors import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_STORE, HandoffError, InputError
from handoff.forks import exit_now
from handoff.messages import render, render_data

MAX_UPLOAD_MB = 50
APP = Path(__file__).resolve().parents[1] / "app" / "server.py"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"handoff: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's arguments; with ``only`` (the command being run), the options of ``build``,
    ``list`` and ``builds`` only for that command: their choices and defaults come from modules
    (the build machinery, the store, the jobs) that ``--help`` and the other commands need not import."""
    parser = _Parser(prog="handoff", description="Turn a Jupyter notebook into a versioned, tested model.")
    parser.add_argument("--version", action="version", version=f"handoff {handoff.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(
        name: str,
        help_: str,
        store_help: str = "store directory or MLflow tracking URI (default: $HANDOFF_HOME or ~/.handoff)",
        **store: Any,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument("--store", metavar="DIR_OR_URI", help=store_help, **store)
        sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return sub

    build = command("build", "run a notebook and record its model as a new version")
    if only in (None, "build"):
        _build_arguments(build)
    sweeping = command("sweep", "build a notebook once per point of a parameter grid, in parallel")
    if only in (None, "sweep"):
        _build_arguments(sweeping, sweep=True)

    for verb in ("list", "versions"):  # `versions`: the same listing, under the name the app uses
        listing = command(verb, "list models and their versions (archived ones only with --archived)")
        if only in (None, verb):
            _listing_arguments(listing)

    show = command("show", "show everything recorded for a version")
    show.add_argument("model")
    show.add_argument("version")

    check = command("check", "re-run the checklist on a stored version; the new report is kept beside the original")
    check.add_argument("model")
    check.add_argument("version")
    _checklist_flags(check)

    export = command("export", "write a version's deployable package (a deterministic zip)")
    export.add_argument("model")
    export.add_argument("version")
    export.add_argument("-o", "--output", metavar="PATH", help="file or folder (default: ./MODEL-vVERSION.zip)")
    export.add_argument("--force", action="store_true", help="export a version whose checklist failed")
    export.add_argument(
        "--verify-env",
        action="store_true",
        help="then install the package's requirements.txt alone into a new virtualenv and predict there "
        "(env.rebuilds); exit 1 when it does not",
    )
    export.add_argument(
        "--strip-outputs",
        action="store_true",
        help="ship the executed notebook (and its HTML report) without the cells' outputs",
    )

    comparing = command("compare", "compare versions side by side (params, metrics, checks, data, env, code)")
    comparing.add_argument("model")
    comparing.add_argument("versions", nargs="*", help="version numbers; MODEL:N for another model")
    comparing.add_argument("--baseline", help="deltas against this version (default: champion, else the first)")
    comparing.add_argument("--sweep", metavar="ID", help="also every version the sweep ID built (handoff sweep)")

    for verb, help_ in (
        ("promote", "point an alias (default: champion) at a version"),
        ("rollback", "move an alias back to the version it held before"),
    ):
        sub = command(verb, help_)
        sub.add_argument("model")
        if verb == "promote":
            sub.add_argument("version")
            sub.add_argument(
                "--force-worse",
                action="store_true",
                help="promote even if the version is worse than the champion on the primary metric "
                "(refused otherwise, exit 2)",
            )
        sub.add_argument("--alias", default="champion")
        sub.add_argument("--by", help="who did it (default: the OS user)")
        sub.add_argument("--reason", help="why, kept in the history")

    builds = command("builds", "list build jobs (app, CLI and API builds), newest first")
    if only in (None, "builds"):
        from handoff.jobs import STATES

        builds.add_argument("--state", choices=STATES, help="only jobs in this state")
        builds.add_argument("--model", help="only jobs of this model")
        builds.add_argument("--sweep", metavar="ID", help="only the points of this sweep (handoff sweep)")
        builds.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")

    cancelling = command("cancel", "cancel a queued or running build job (its kernel and children are killed)")
    cancelling.add_argument("job", metavar="JOB_ID")
    cancelling.add_argument("--by", help="who cancels (default: the OS user)")

    for verb, help_ in (
        ("archive", "hide a version from default lists (never deleted; refused for the champion)"),
        ("unarchive", "list an archived version again"),
    ):
        sub = command(verb, help_)
        sub.add_argument("model")
        sub.add_argument("version")
        sub.add_argument("--by", help="who did it (default: the OS user)")
        sub.add_argument("--reason", help="why, kept in the history")

    hist = command("history", "every alias move of a model, with time, who and why")
    hist.add_argument("model")

    app = command("app", "start the web app (Streamlit) on localhost")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--address", default="localhost", help="interface to listen on (default: localhost only)")
    app.add_argument("--max-upload-mb", type=int, default=MAX_UPLOAD_MB, help="upload size limit")
    app.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this host name in Host/Origin (repeatable; localhost, 127.0.0.1, ::1 always)",
    )
    app.add_argument(
        "--no-token",
        action="store_true",
        help="do not require the access token (any local user or program can then drive the app)",
    )

    command("doctor", "what this machine gives handoff: the sandbox, the kernel, the store")

    verify = command(
        "verify",
        "check a package against its manifest (digests, layout, unsafe entries)",
        "also check that it is the package the store recorded for its version (a store given "
        "without a value: $HANDOFF_HOME or ~/.handoff)",
        nargs="?",
        const="",
    )
    verify.add_argument("package", help="the .zip to verify")
    command("verify-store", "check every version against the digests taken when it was recorded")
    _server_arguments(commands.add_parser("server", help="team mode: a shared MLflow tracking server on PostgreSQL"))
    store = commands.add_parser("store", help="operations on a whole store")
    store_actions = store.add_subparsers(dest="action", required=True, parser_class=_Parser)
    copy_help = "copy every model, version, alias and history entry into another store (e.g. a team server)"
    copying = store_actions.add_parser("copy", help=copy_help, description=copy_help)
    copying.add_argument("--to", required=True, metavar="URI", help="the destination (e.g. http://host:5000)")
    copying.add_argument("--from", dest="source", metavar="DIR_OR_URI", help="the source (default: the local store)")
    copying.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _server_arguments(server: argparse.ArgumentParser) -> None:
    actions = server.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for name, help_ in (
        ("init", "create the tables, the admin account and the roles on a PostgreSQL database (idempotent)"),
        ("start", "run `mlflow server --app-name basic-auth` on that database until SIGTERM or Ctrl-C"),
    ):
        sub = actions.add_parser(name, help=help_, description=help_)
        sub.add_argument("--db", required=True, metavar="URI", help="postgresql://USER@HOST:PORT/DB")
        sub.add_argument("--artifacts", required=True, metavar="DIR_OR_URI", help="where the artifacts are kept")
        if name == "start":
            sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
            sub.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
            sub.add_argument("--no-auth", action="store_true", help="no logins (only on a loopback address)")
    add = actions.add_parser("add-user", help="create a user with a role (as admin: HANDOFF_USER/HANDOFF_PASSWORD)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("viewer", "builder", "releaser"))
    users = actions.add_parser("users", help="list the server's users and their roles")
    for sub in (add, users):
        sub.add_argument("--store", metavar="URI", help="the server (default: $HANDOFF_STORE)")
        sub.add_argument("--json", action="store_true", help="print JSON on stdout")


def _build_arguments(build: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """``build``'s arguments; with ``sweep``, ``sweep``'s: the same build options, every parameter
    given as the values to sweep, and where the points run."""
    from handoff.build import BuildOptions  # its field defaults are the one source of the limits below

    limits = BuildOptions()
    build.add_argument("notebook", help="path to the .ipynb file")
    build.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUES") if sweep else ("NAME", "VALUE"),
        help="the values of a parameter to sweep: 50,100,200 or a range START:STOP:COUNT such as 0.1:1.0:4 "
        "(repeatable; the grid is every combination)"
        if sweep
        else "set a parameter of the notebook's parameters cell (repeatable)",
    )
    if sweep:
        _sweep_arguments(build)
    build.add_argument("--name", help="model name (default: the notebook's file name)")
    build.add_argument(
        "--timeout", type=float, default=limits.timeout, metavar="S", help="whole-run limit (default %(default)g)"
    )
    build.add_argument(
        "--cell-timeout",
        type=float,
        default=limits.cell_timeout,
        metavar="S",
        help="per-cell limit (default %(default)g)",
    )
    build.add_argument("--model-var", metavar="NAME", help="take the model from this variable")
    build.add_argument(
        "--max-cell-output",
        type=float,
        default=limits.max_cell_output_mb,
        metavar="MB",
        help="output one cell keeps in the executed notebook; the rest is cut around a marker (default %(default)g)",
    )
    build.add_argument(
        "--max-output",
        type=float,
        default=limits.max_output_mb,
        metavar="MB",
        help="output the whole notebook keeps (default %(default)g)",
    )
    packages = build.add_argument_group(
        "build environment (a requirements.txt or pyproject.toml beside the notebook is used by default)"
    )
    packages.add_argument(
        "--requirements",
        metavar="FILE",
        help="run the notebook in a virtualenv made from this requirements.txt or pyproject.toml (cached)",
    )
    packages.add_argument(
        "--with",
        dest="with_packages",
        action="append",
        default=[],
        metavar="PKG",
        help="add this package to the build environment (repeatable; e.g. --with seaborn)",
    )
    sandboxing = build.add_argument_group("sandbox (see docs/security.md)")
    sandboxing.add_argument(
        "--allow-network",
        action="store_true",
        help="give the notebook the network (off by default; recorded with the version)",
    )
    sandboxing.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this environment variable into the sandbox (repeatable; only the name is recorded)",
    )
    sandboxing.add_argument(
        "--memory", type=float, default=limits.memory_gib, metavar="GIB", help="memory limit (default %(default)g)"
    )
    sandboxing.add_argument(
        "--max-processes",
        type=int,
        default=limits.max_processes,
        metavar="N",
        help="processes the notebook may run at once (default %(default)d)",
    )
    sandboxing.add_argument(
        "--max-disk",
        type=float,
        default=limits.max_disk_gib,
        metavar="GIB",
        help="disk space of the build's work dir (default %(default)g)",
    )
    _checklist_flags(build)
    build.add_argument(
        "--reproduce",
        action="store_true",
        default=None,
        help="also run the notebook a second time and compare (check 'reproducible')",
    )


def _sweep_arguments(sweep: argparse.ArgumentParser) -> None:
    points = sweep.add_argument_group("the sweep")
    points.add_argument(
        "--random", type=int, metavar="N", help="N points drawn at random from the values instead of the grid"
    )
    points.add_argument("--seed", type=int, help="with --random: the seed of the draw (default: a new one)")
    points.add_argument("--workers", type=int, metavar="N", help="points built at once (default: the machine's cores)")
    points.add_argument(
        "--cluster",
        metavar="local|tcp://HOST:PORT",
        help="run the points on Dask: 'local' starts a LocalCluster of --workers, an address uses that "
        "scheduler's workers (other machines need a team server store)",
    )
    points.add_argument(
        "--promote-best",
        action="store_true",
        help="promote the best passed version to champion, through the normal gate",
    )


def _listing_arguments(listing: argparse.ArgumentParser) -> None:
    from handoff.store import SORT_KEYS

    listing.add_argument("model", nargs="?", help="only this model")
    listing.add_argument("--archived", action="store_true", help="also list archived versions")
    listing.add_argument("--status", choices=("passed", "failed"), help="only versions with this status")
    listing.add_argument("--alias", help="only versions holding this alias (e.g. champion)")
    listing.add_argument(
        "--search", metavar="TEXT", help="only versions whose model, notebook, parameters or author contain TEXT"
    )
    listing.add_argument(
        "--sort",
        default="created",
        choices=SORT_KEYS,
        help="order by this column (default: created, with model and version)",
    )
    listing.add_argument("--desc", action="store_true", help="descending order")
    listing.add_argument("--sweep", metavar="ID", help="only versions built in this sweep (handoff sweep)")
    listing.add_argument("--metric", metavar="NAME", help="only versions that reported this metric, within --min/--max")
    listing.add_argument("--min", type=float, metavar="X", help="with --metric: its value at least X")
    listing.add_argument("--max", type=float, metavar="X", help="with --metric: its value at most X")


def _checklist_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="a bound on a metric, e.g. 'accuracy>=0.9' (repeatable)",
    )
    sub.add_argument(
        "--gate", action="store_true", default=None, help="fail when a metric regresses against the champion version"
    )
    sub.add_argument(
        "--tests",
        action="append",
        default=[],
        metavar="PATH",
        help="a pytest file run against the saved model (fixtures: model, input_example, manifest)",
    )
    sub.add_argument("--skip", action="append", default=[], metavar="CHECK_ID", help="do not run this check")
    sub.add_argument(
        "--verify-env",
        action="store_true",
        default=None,
        help="check env.rebuilds: the package's requirements.txt alone, in a new virtualenv, loads and runs the model",
    )
    sub.add_argument(
        "--allow-secrets",
        metavar="REASON",
        help="let notebook.secrets pass despite likely secrets; the reason is recorded",
    )


def _checklist_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "thresholds": args.threshold,
        "gate": args.gate,
        "tests": args.tests,
        "skip": args.skip,
        "reproduce": getattr(args, "reproduce", None),
        "verify_env": args.verify_env,
        "allow_secrets": args.allow_secrets,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handoff`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(next((a for a in argv if not a.startswith("-")), "")).parse_args(argv)
    _quiet_libraries()
    try:
        commands = {
            "build": _build,
            "sweep": _sweep,
            "list": _list,
            "versions": _list,
            "archive": _archive,
            "unarchive": _archive,
            "show": _show,
            "check": _check,
            "export": _export,
            "verify": _verify,
            "verify-store": _verify_store,
            "app": _app,
            "doctor": _doctor,
            "compare": _compare,
            "promote": _promote,
            "rollback": _rollback,
            "history": _history,
            "builds": _builds,
            "cancel": _cancel,
            "server": _server,
            "store": _store_copy,
        }
        return commands[args.command](args)
    except HandoffError as exc:
        sys.stderr.write(f"handoff: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("handoff: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("HANDOFF_DEBUG"):
            raise
        sys.stderr.write(f"handoff: internal error: {type(exc).__name__}: {exc} (HANDOFF_DEBUG=1 shows more)\n")
        return EXIT_FAILED


def run() -> NoReturn:
    """The ``handoff`` console script: ``main``, then exit without tearing the interpreter down
    (``forks.exit_now``: unloading what a build imported took 0.5-0.8 s after the answer was printed)."""
    exit_now(main())


def _quiet_libraries() -> None:
    # MLflow sets its own loggers' level when it is imported, which the CLI now does late, if at all
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in ("mlflow", "papermill", "nbclient", "traitlets", "alembic", "skops"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.CRITICAL)


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(render_data(data, "cli"), indent=2, default=str) + "\n")


class _Progress:
    """Build events to stderr: a progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.tty = sys.stderr.isatty()

    def __call__(self, event: handoff.BuildEvent) -> None:
        if self.tty and event.stage == "execute" and event.total:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.total, file=sys.stderr, unit="cell", leave=False)
            self.bar.n = event.done or 0
            self.bar.set_description(f"cell {event.cell or '-'}: {event.message[:40]}")
            return
        self.close()
        where = f" {event.done}/{event.total} (cell {event.cell})" if event.cell else ""
        sys.stderr.write(f"[{event.elapsed:6.1f}s] {event.stage}{where}: {event.message}\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _build(args: argparse.Namespace) -> int:
    from handoff.inspection import load_notebook, parse_params
    from handoff.jobs import run_here

    source = load_notebook(args.notebook)
    params = parse_params(source, dict(args.param))
    progress = _Progress()

    def announce(job: Any) -> None:
        if not args.json:
            sys.stderr.write(f"build job {job.id}\n")

    try:
        # in this process, with a job row: `handoff builds` and the app's Builds page list it
        job, result = run_here(
            source,
            params,
            args.name,
            store=args.store,
            on_event=progress,
            on_job=announce,
            checks=_checklist_settings(args),
            **_build_options(args),
        )
    finally:
        progress.close()
    if result is None:  # cancelled before it ran (errors before anything ran are raised)
        sys.stderr.write(f"handoff: {render(job.message or job.state, 'cli')}\n")
        return EXIT_INTERRUPTED if job.state == "cancelled" else EXIT_FAILED
    if args.json:
        _emit(result.to_dict() | {"job": job.id, "job_state": job.state})
    else:
        _print_result(result)
    if job.state == "cancelled":
        sys.stderr.write(f"handoff: {job.message}\n")
        return EXIT_INTERRUPTED
    if not result.ok:
        sys.stderr.write(f"handoff: error: {render(result.error.message, 'cli') if result.error else 'build failed'}\n")
        unrecorded = result.error is not None and result.error.stage == "record"  # the store's fault, not the model's
        return EXIT_STORE if unrecorded else EXIT_FAILED
    return EXIT_OK


def _build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``BuildOptions`` fields ``build`` and ``sweep`` take from their flags."""
    return {
        "timeout": args.timeout,
        "cell_timeout": args.cell_timeout,
        "model_var": args.model_var,
        "allow_network": args.allow_network,
        "env": tuple(args.env),
        "memory_gib": args.memory,
        "max_processes": args.max_processes,
        "max_disk_gib": args.max_disk,
        "max_cell_output_mb": args.max_cell_output,
        "max_output_mb": args.max_output,
        "requirements": args.requirements,
        "with_packages": tuple(args.with_packages),
    }


def _sweep(args: argparse.Namespace) -> int:
    from handoff.inspection import load_notebook

    source = load_notebook(args.notebook)
    grid: dict[str, str] = {}
    for name, values in args.param:
        if name in grid:
            raise InputError(f"parameter {name} is given twice; give all its values at once: -p {name} A,B,C")
        grid[name] = values
    bar = _SweepProgress(quiet=args.json)
    try:
        result = handoff.sweep(
            source,
            grid,
            args.name,
            store=args.store,
            workers=args.workers,
            cluster=args.cluster,
            random=args.random,
            seed=args.seed,
            promote_best=args.promote_best,
            checks=_checklist_settings(args),
            on_point=bar,
            source="cli",
            **_build_options(args),
        )
    finally:
        bar.close()
    if args.json:
        _emit(result.to_dict())
    else:
        _print_sweep(result)
    if result.cancelled_by:
        sys.stderr.write(f"handoff: sweep {result.id} cancelled by {result.cancelled_by}\n")
        return EXIT_INTERRUPTED
    if args.promote_best and result.promoted is None:
        sys.stderr.write(f"handoff: error: {render(result.promotion or 'nothing promoted', 'cli')}\n")
        return EXIT_FAILED
    return EXIT_OK if result.ok else EXIT_FAILED


def _point_params(point: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in point.params.items())


class _SweepProgress:
    """One line per finished point on stderr, and a bar of points done (with an ETA) on a terminal."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, point: Any, result: Any) -> None:
        if self.quiet:
            return
        metric = result.metric
        value = point.metrics.get(metric[0]) if metric else None
        shown = f"  {metric[0]}={value:.4g}" if metric and value is not None else ""
        version = f"  v{point.version}" if point.version is not None else ""
        why = f"  {render(point.message or '', 'cli')[:120]}" if point.state != "passed" else ""
        line = (
            f"[{result.done}/{len(result.points)}] point {point.index} {point.state}{version}"
            f"  {_point_params(point)}{shown}{why}"
        )
        if sys.stderr.isatty():
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=len(result.points), file=sys.stderr, unit="point", leave=False)
            self.bar.write(line, file=sys.stderr)
            self.bar.update(result.done - self.bar.n)
        else:
            sys.stderr.write(line + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_sweep(result: Any) -> None:
    """The points best first (by the primary metric), then the best one and what was promoted."""
    out = sys.stdout.write
    metric = result.metric
    out(f"sweep {result.id}: {len(result.points)} points of {result.model} on {result.where}\n")
    names = list(result.points[0].params) if result.points else []
    rows = [
        (
            "RANK",
            "POINT",
            *(n.upper() for n in names),
            "STATE",
            "VERSION",
            metric[0].upper() if metric else "METRIC",
            "TIME",
        )
    ]
    for rank, point in enumerate(result.ranked(), start=1):
        value = point.metrics.get(metric[0]) if metric else None
        rows.append(
            (
                str(rank),
                str(point.index),
                *(str(point.params.get(n)) for n in names),
                point.state,
                str(point.version) if point.version is not None else "-",
                f"{value:.4g}" if value is not None else "-",
                f"{point.seconds:.1f}s" if point.seconds else "-",
            )
        )
    _table(rows)
    best = result.best
    if best is not None:
        out(f"best: {result.model} version {best.version} ({_point_params(best)})\n")
    if result.promoted is not None:
        out(f"promoted: {result.model} version {result.promoted} is now champion\n")
    out(f"compare them: handoff compare {result.model} --sweep {result.id}\n")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _builds(args: argparse.Namespace) -> int:
    import time

    jobs = handoff.list_jobs(args.store, state=args.state, model=args.model, limit=args.limit, sweep=args.sweep)
    if args.json:
        _emit([j.to_dict() for j in jobs])
        return EXIT_OK
    if not jobs:
        sys.stdout.write("no build jobs yet\n")
        return EXIT_OK
    now = time.time()
    rows = [("JOB", "STATE", "MODEL", "VERSION", "SOURCE", "USER", "CREATED", "ELAPSED", "WHERE / RESULT")]
    for j in jobs:
        rows.append(
            (
                j.id,
                j.state,
                j.model,
                str(j.version) if j.version is not None else "-",
                j.source,
                j.user,
                f"{_ago(now - j.created)} ago",
                f"{j.elapsed:.0f}s",
                render(j.progress if j.active or j.state == "cancelled" else (j.error or j.message or ""), "cli")[:100],
            )
        )
    _table(rows)
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    job = handoff.cancel(args.job, by=args.by, store=args.store)
    if args.json:
        _emit(job.to_dict())
    elif job.state == "cancelled":
        sys.stdout.write(f"{job.id}: {job.message}\n")
    elif job.active:
        sys.stdout.write(f"{job.id}: cancel requested by {job.cancel_requested_by}; the worker stops it\n")
    else:
        sys.stdout.write(f"{job.id}: already {job.state}, nothing to cancel\n")
    return EXIT_OK


def _print_result(result: handoff.BuildResult) -> None:
    out = sys.stdout.write
    seconds = result.timings.get("total", 0)
    if result.ok:
        out(f"{result.name} version {result.version}: passed in {seconds:.1f}s\n")
    elif result.version is not None:
        out(
            f"{result.name} version {result.version}: FAILED its checklist in {seconds:.1f}s "
            "(recorded as a failed version; it cannot be promoted)\n"
        )
    else:
        out(f"{result.name}: build failed in {seconds:.1f}s (no version created)\n")
    from handoff.record_view import render_text, sections

    out(render_text(sections(result.record)))
    if result.error and result.error.traceback:
        out("\n" + result.error.traceback.strip()[-3000:] + "\n")
    if result.executed_notebook_uri:
        out(f"executed notebook: {result.executed_notebook_uri}\n")


def _list(args: argparse.Namespace) -> int:
    from handoff.store import MetricRange, filter_versions, sort_versions

    if args.metric is None and (args.min is not None or args.max is not None):
        raise handoff.OptionError("--min and --max bound a metric: name it with --metric NAME")
    ranged = MetricRange(args.metric, args.min, args.max) if args.metric else None
    store = handoff.open_store(args.store)
    versions = store.list_versions(args.model, include_archived=args.archived)
    versions = filter_versions(
        versions, status=args.status, alias=args.alias, search=args.search, metric_range=ranged, sweep=args.sweep
    )
    versions = sort_versions(versions, args.sort, descending=args.desc)
    if args.json:
        _emit([v.to_dict() for v in versions])
        return EXIT_OK
    if not versions:
        sys.stdout.write(
            f"no versions{' match' if args.status or args.alias or args.search or ranged or args.sweep else ' yet'}"
            f" in {store.uri}\n"
        )
        return EXIT_OK
    rows = [("MODEL", "VERSION", "STATUS", "CREATED", "ALIASES", "NOTEBOOK", "DURATION", "AUTHOR", "METRICS")]
    for v in versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in list(v.metrics.items())[:4])
        status = f"{v.status} (archived)" if v.archived else v.status
        duration = f"{v.duration:.1f}s" if v.duration is not None else ""
        rows.append(
            (
                v.name,
                str(v.version),
                status,
                v.created or "",
                ",".join(v.aliases),
                v.notebook or "",
                duration,
                v.author or "",
                metrics,
            )
        )
    _table(rows)
    return EXIT_OK


def _archive(args: argparse.Namespace) -> int:
    act = handoff.archive if args.command == "archive" else handoff.unarchive
    entry = act(args.model, args.version, store=args.store, by=args.by, reason=args.reason)
    if args.json:
        _emit(entry)
    else:
        sys.stdout.write(
            f"{entry['model']} v{entry['to_version']}: {entry['kind']}d by {entry['by']} at {entry['time']}\n"
        )
    return EXIT_OK


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


def _show(args: argparse.Namespace) -> int:
    version = handoff.open_store(args.store).get_version(args.model, args.version)
    if args.json:
        _emit(version.to_dict())
        return EXIT_OK
    out = sys.stdout.write
    out(f"{version.name} version {version.version}  [{version.status}]  created {version.created}\n")
    out(f"  run: {version.run_id}\n  model: {version.model_uri}\n")
    if version.aliases:
        out(f"  aliases: {', '.join(version.aliases)}\n")
    if version.archived:
        out(f"  archived: hidden from `handoff list` (`handoff unarchive {version.name} {version.version}`)\n")
    from handoff.record_view import render_text, sections

    out(render_text(sections(version.build)))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    settings = _checklist_settings(args)
    settings.pop("reproduce")
    report = handoff.check_version(args.model, args.version, store=args.store, checks=settings)
    if args.json:
        _emit(report.to_dict())
    else:
        from handoff.record_view import checklist_section, render_text

        sys.stdout.write(render_text([checklist_section(report)]))
    if not report.passed:
        sys.stderr.write(
            "handoff: error: blocking checks failed: "
            + "; ".join(f"{r.id} ({render(r.message, 'cli')})" for r in report.failures)
            + "\n"
        )
        return EXIT_FAILED
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    result = handoff.export(
        args.model, args.version, args.output, store=args.store, force=args.force, strip_outputs=args.strip_outputs
    )
    if args.json:
        _emit(result.to_dict())
    else:
        stripped = ", notebook outputs stripped" if result.outputs_stripped else ""
        sys.stdout.write(
            f"{result.path}\nsha256 {result.sha256}  ({result.size:,} bytes, {result.seconds:.2f}s{stripped})\n"
        )
        if result.status != "passed":
            sys.stderr.write("handoff: warning: this version FAILED its checklist (exported with --force)\n")
    if args.verify_env:
        rebuilt = _rebuild_package(Path(result.path), args.store)
        sys.stderr.write(f"env.rebuilds: {'passed' if rebuilt.ok else 'FAILED'}: {rebuilt.message}\n")
        if not rebuilt.ok:
            return EXIT_FAILED
    return EXIT_OK


def _rebuild_package(package: Path, store: str | None) -> Any:
    """env.rebuilds on an exported zip: its ``model/`` folder in a new env from its own requirements."""
    import tempfile
    import zipfile

    from handoff.environments import rebuild_and_predict
    from handoff.store import default_home, open_store

    with tempfile.TemporaryDirectory(prefix="handoff-verify-env-") as scratch:
        with zipfile.ZipFile(package) as archive:  # the package's one top folder holds model/
            names = [n for n in archive.namelist() if n.split("/")[1:2] == ["model"]]
            archive.extractall(scratch, names)
        if not names:
            raise handoff.OptionError(f"{package} holds no model/ folder")
        hidden = (*open_store(store).local_paths(), default_home())
        return rebuild_and_predict(Path(scratch) / names[0].split("/")[0] / "model", hidden=hidden)


def _print_comparison(data: dict[str, Any]) -> None:
    out = sys.stdout.write
    labels, base = data["labels"], data["baseline"]
    out(f"baseline: {base}   status: " + ", ".join(f"{k} {v}" for k, v in data["status"].items()) + "\n")
    if data["data"]["warning"]:
        out(f"WARNING: {data['data']['warning']}\n")
    out("\nmetrics\n")
    rows = [("METRIC", *labels)]
    for row in data["metrics"]:
        cells = []
        for lbl in labels:
            value = row["values"].get(lbl)
            delta = row["deltas"].get(lbl)
            text = "-" if value is None else f"{value:.4g}"
            if delta and delta["absolute"] is not None:
                mark = {True: "better", False: "worse", None: "same"}[delta["better"]]
                rel = f", {delta['relative']:+.1%}" if delta["relative"] is not None else ""
                text += f" ({delta['absolute']:+.4g}{rel} {mark})"
            cells.append(text)
        rows.append((row["metric"], *cells))
    _table(rows)
    differing = [r for r in data["parameters"] if r["differs"]]
    out(f"\nparameters ({len(differing)} of {len(data['parameters'])} differ)\n")
    if differing:
        _table(
            [("PARAM", *labels)] + [(r["param"], *(repr(r["values"].get(lbl)) for lbl in labels)) for r in differing]
        )
    changed = [r for r in data["checklist"] if r["changed"]]
    out(f"\nchecklist ({len(changed)} checks changed)\n")
    if changed:
        _table([("CHECK", *labels)] + [(r["check"], *(str(r["statuses"].get(lbl)) for lbl in labels)) for r in changed])
    if data["environment"]["packages"]:
        out("\nenvironment (packages that differ)\n")
        _table(
            [("PACKAGE", *labels)]
            + [
                (p["package"], *(str(p["versions"].get(lbl)) for lbl in labels))
                for p in data["environment"]["packages"]
            ]
        )
    for diff in data["code"]:
        out(
            f"\ncode: {diff['version']} against {diff['against']}: "
            + (f"{len(diff['cells'])} cell(s) differ\n" if diff["cells"] else "same source\n")
        )
        for cell in diff["cells"]:
            where = cell["new_cell"] if cell["new_cell"] is not None else cell["old_cell"]
            out(f"  {cell['change']} {cell['cell_type']} cell {where}\n")
            out("".join(f"    {line}\n" for line in cell["diff"][:40]))


def _compare(args: argparse.Namespace) -> int:
    versions = list(args.versions)
    if args.sweep:
        from handoff.sweeps import sweep_versions

        versions += sweep_versions(args.model, args.sweep, store=args.store)
    elif not versions:
        raise InputError("compare needs versions to compare: give their numbers, or --sweep ID")
    comparison = handoff.compare(args.model, versions, args.baseline, store=args.store)
    if args.json:
        _emit(comparison.to_dict())
    else:
        _print_comparison(comparison.to_dict())
    return EXIT_OK


def _print_evidence(evidence: Any) -> None:
    """The metrics of the version the alias would move to against the one holding it (as the app shows
    them above its confirm), then the candidate's failed and warning checks."""
    out = sys.stdout.write
    promotion = isinstance(evidence, handoff.PromotionPreview)
    new = evidence.version if promotion else evidence.target
    if evidence.current is None or evidence.current == new:
        if evidence.metrics:
            out("metrics: " + ", ".join(f"{m.metric}={m.candidate:.4g}" for m in evidence.metrics) + "\n")
    elif evidence.metrics:
        rows = [("METRIC", f"v{evidence.current}", f"v{new}", "CHANGE")]
        for m in evidence.metrics:
            change = "-"
            if m.absolute is not None:
                rel = f", {m.relative:+.1%}" if m.relative is not None else ""
                change = f"{m.absolute:+.4g}{rel} " + {True: "better", False: "worse", None: "same"}[m.better]
            rows.append(
                (
                    m.metric + (" (primary)" if m.primary else ""),
                    "-" if m.current is None else f"{m.current:.4g}",
                    "-" if m.candidate is None else f"{m.candidate:.4g}",
                    change,
                )
            )
        _table(rows)
    for check in evidence.concerns if promotion else ():
        out(f"check {check.status.upper()}: {check.id}: {check.message}\n")
    if promotion and evidence.worse_message:
        out(f"WORSE: {evidence.worse_message}\n")


def _print_move(move: Any, as_json: bool) -> None:
    if as_json:
        _emit(move.to_dict())
        return
    entry = move.entry
    if move.evidence is not None:
        _print_evidence(move.evidence)
    sys.stdout.write(
        f"{entry['model']}: {entry['alias']} {move.move.replace('→', '->')} "
        f"({entry['kind']} by {entry['by']} at {entry['time']})\n"
    )


def _promote(args: argparse.Namespace) -> int:
    try:
        move = handoff.promote(
            args.model,
            args.version,
            args.alias,
            store=args.store,
            by=args.by,
            reason=args.reason,
            allow_worse=args.force_worse,
        )
    except handoff.WorseThanChampion as exc:  # the evidence, then why it was refused and how to insist
        if args.json:
            _emit({"refused": str(exc), "evidence": exc.preview.to_dict() if exc.preview else None})
        elif exc.preview is not None:
            _print_evidence(exc.preview)
        why = f"{args.model}: {exc.preview.worse_message}" if exc.preview is not None else str(exc)
        sys.stderr.write(f"handoff: error: {why}: refused; pass --force-worse to promote it anyway\n")
        return exc.exit_code
    _print_move(move, args.json)
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    _print_move(handoff.rollback(args.model, args.alias, store=args.store, by=args.by, reason=args.reason), args.json)
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from handoff.lifecycle import history_rows

    entries = handoff.history(args.model, store=args.store)
    if args.json:
        _emit(entries)  # times as recorded: ISO 8601, UTC
    elif not entries:
        sys.stdout.write(f"{args.model}: no alias has been moved yet\n")
    else:
        columns = ("time", "alias", "kind", "from", "to", "by", "reason")
        _table([tuple(c.upper() for c in columns)] + [tuple(r[c] for c in columns) for r in history_rows(entries)])
    return EXIT_OK


def app_command(port: int, address: str = "localhost", max_upload_mb: int = MAX_UPLOAD_MB) -> list[str]:
    """The ``streamlit run`` command line, with handoff's deliberate server settings."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--server.enableCORS",
        "true",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--theme.base",
        "light",
        "--client.toolbarMode",
        "minimal",
    ]


def _app(args: argparse.Namespace) -> NoReturn:
    if not APP.exists():
        raise handoff.OptionError(f"the app is not installed beside the package ({APP} is missing)")
    from handoff.app_guard import GuardSettings, new_token

    extra_hosts = [*args.allowed_host, *([] if args.address in ("0.0.0.0", "::", "") else [args.address])]
    guard = GuardSettings.make(extra_hosts, token=None if args.no_token else new_token())
    env = dict(os.environ) | guard.to_env()
    if args.store:
        env["HANDOFF_STORE"] = args.store
    host = f"[{args.address}]" if ":" in args.address else args.address
    url = f"http://{host}:{args.port}/" + (f"?token={guard.token}" if guard.token else "")
    sys.stderr.write(
        f"handoff app on {url}\n  (store: {handoff.open_store(args.store).uri}; uploads up to "
        f"{args.max_upload_mb} MB; {'NO access token' if guard.token is None else 'open this URL'}; "
        f"hosts allowed: {', '.join(sorted(guard.allowed_hosts))})\n"
    )
    sys.stderr.flush()
    command = app_command(args.port, args.address, args.max_upload_mb)
    os.execve(command[0], command, env)  # become the server: signals reach Streamlit directly


def _doctor(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    from handoff.execution import DEFAULT_KERNEL
    from handoff.sandbox import detect

    support = detect()
    kernels = KernelSpecManager().find_kernel_specs()
    store = handoff.open_store(args.store)
    report = {
        "sandbox": support.kind,
        "sandbox_detail": support.detail,
        "default_kernel": kernels.get(DEFAULT_KERNEL, "not installed"),
        "store": store.uri,
    }
    if store.is_server:  # who this machine's CLI acts as there: checks the login
        report["user"] = store.user
        report["role"] = store.login() or "no logins on this server"
    if args.json:
        _emit(report)
    else:
        sys.stdout.write("".join(f"{k}: {v}\n" for k, v in report.items()))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    if not Path(args.package).is_file():  # nothing to verify: bad input, not a mismatch
        raise InputError(f"no such file: {args.package}")
    recorded = args.store is not None
    report = (
        handoff.verify_recorded(args.package, store=args.store or None) if recorded else handoff.verify(args.package)
    )
    if args.json:
        _emit(report.to_dict())
    elif report.ok:
        sys.stdout.write(
            f"{args.package}: intact ({len(report.manifest.get('files', {}))} files match the manifest"
            + ("; it is the package the store recorded" if recorded else "")
            + f"; {report.manifest.get('name')} v{report.manifest.get('version')}, "
            f"status {report.manifest.get('status')})\n"
        )
    else:
        sys.stdout.write(f"{args.package}: NOT intact\n" + "".join(f"  {p}\n" for p in report.problems))
    return EXIT_OK if report.ok else EXIT_FAILED


def _server(args: argparse.Namespace) -> int:
    from handoff import server
    from handoff.credentials import Credentials
    from handoff.store import default_location

    if args.action == "init":
        generated = server.init(args.db, args.artifacts, admin_password=os.environ.get("HANDOFF_ADMIN_PASSWORD"))
        print(f"server database ready: {server.safe_uri(args.db)}")
        if generated:
            print(f"admin password (shown once, keep it): {generated}")
        return EXIT_OK
    if args.action == "start":
        return server.start(args.db, args.artifacts, host=args.host, port=args.port, auth=not args.no_auth)
    store = str(args.store or default_location())
    admin = Credentials.from_env()
    if admin is None:
        raise handoff.OptionError("set HANDOFF_USER and HANDOFF_PASSWORD to the server's admin account")
    if args.action == "add-user":
        password = os.environ.get("HANDOFF_NEW_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                raise handoff.OptionError(f"set HANDOFF_NEW_PASSWORD to {args.name}'s password (no terminal to ask on)")
            import getpass

            password = getpass.getpass(f"password for {args.name}: ")
        server.add_user(store, args.name, args.role, password, admin=admin)
        print(json.dumps({"name": args.name, "role": args.role}) if args.json else f"{args.name}: {args.role}")
        return EXIT_OK
    listed = server.list_users(store, admin=admin)
    if args.json:
        print(json.dumps(listed))
    else:
        width = max(len(u["name"]) for u in listed)
        for user in listed:
            print(f"{user['name']:<{width}}  {user['role']}")
    return EXIT_OK


def _store_copy(args: argparse.Namespace) -> int:
    from handoff.store import Store, default_home

    source = Store(args.source or default_home())  # not HANDOFF_STORE: that is where a team's copy goes
    destination = Store(args.to)
    report = handoff.copy_store(
        source, destination, on_version=None if args.json else lambda m, v, what: print(f"{m} v{v}: {what}")
    )
    if args.json:
        _emit(report.to_dict())
    else:
        for name, done in report.models.items():
            aliases = ", ".join(f"{a} -> v{v}" for a, v in done["aliases"].items()) or "no aliases"
            sys.stdout.write(
                f"{name}: {len(done['copied'])} copied, {len(done['skipped'])} already there; {aliases}; "
                f"{done['history_added']} history entries added\n"
            )
    return EXIT_OK


def _verify_store(args: argparse.Namespace) -> int:
    results = handoff.verify_store(store=args.store)
    bad = [r for r in results if not r["ok"]]
    if args.json:
        _emit(results)
    else:
        for r in bad:
            sys.stdout.write(
                f"{r['name']} v{r['version']}: modified after it was recorded: " + "; ".join(r["problems"]) + "\n"
            )
        sys.stdout.write(f"{len(results)} versions checked: " + (f"{len(bad)} modified\n" if bad else "all intact\n"))
    return EXIT_FAILED if bad else EXIT_OK


if __name__ == "__main__":
    run()
