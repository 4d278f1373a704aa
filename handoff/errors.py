"""Every error handoff raises or reports is a ``HandoffError``, and the CLI's exit codes.

Bad input is raised before anything runs; a notebook that fails while it is built is *reported*
in the ``BuildResult`` as a ``BuildFailure``, because a failed build is a normal outcome that
still leaves a record behind.

Exit codes, the same for every ``handoff`` command (each error class carries its ``exit_code``,
so a script can tell "fix your input" from "the model is not good enough" from "the store is
broken")::

    EXIT_OK          0    done; the build or check passed; verify found everything intact
    EXIT_FAILED      1    the build or a blocking check failed; verify / verify-store found a mismatch
    EXIT_INPUT       2    bad input or refused: usage, InputError, VersionNotFoundError,
                          PromotionRefused, export of a failed version without --force,
                          AccessError (a server's wrong password or missing role: nothing changed)
    EXIT_STORE       3    the store cannot be opened or is corrupt: StoreError, TamperedError,
                          StoreUnreachableError (a server that does not answer)
    EXIT_INTERRUPTED 130  Ctrl-C

Tree::

    HandoffError
    ├── InputError                  bad input, detected before anything runs (exit 2)
    │   ├── NotebookFormatError     not JSON, not a notebook, invalid nbformat
    │   ├── ParameterError          unknown parameter, wrong type, unsafe name
    │   └── OptionError             a bad option or registry name; export of a failed version without force
    ├── StoreError                  the MLflow store cannot be opened or is inconsistent (exit 3)
    │   ├── VersionNotFoundError    no such model or version (exit 2: bad input, the store is fine)
    │   └── TamperedError           a version's artifacts, record or metrics changed after recording (exit 3)
    ├── PromotionRefused            the version failed its checklist, already holds the alias, or nothing
    │   │                           to roll back to (exit 2)
    │   └── WorseThanChampion       worse than the champion on the primary metric, not confirmed (exit 2)
    ├── BuildCancelled              a build cancelled before it ran: nothing recorded (exit 130)
    └── BuildFailure                a stage of a build failed (exit 1); has stage, cell, ename
        ├── CellExecutionFailure    a cell raised
        ├── EarlyExitFailure        the notebook called sys.exit() / raised SystemExit
        ├── KernelDiedFailure       the kernel process died (os._exit, segfault, OOM kill)
        ├── BuildTimeoutFailure     the per-cell or whole-run limit expired; kernel killed
        ├── LimitExceededFailure    a sandbox limit (memory, processes, disk) was exceeded
        ├── KernelStartFailure      no kernel could be started
        ├── CaptureFailure          no fitted model found, or it could not be captured
        ├── SerializationFailure    the model could not be saved as an MLflow model
        ├── ChecklistFailure        a blocking check failed (the version exists, marked failed)
        ├── CancelledFailure        someone cancelled the build while it ran (kernel killed)
        └── RecordFailure           the store refused the build's record
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handoff.messages import Face, render

if TYPE_CHECKING:
    from nbformat import NotebookNode

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_STORE = 3
EXIT_INTERRUPTED = 130


class HandoffError(Exception):
    """Root of every error handoff raises; ``exit_code`` is what the CLI exits with for it."""

    exit_code: int = EXIT_FAILED
    # a build that failed after its notebook ran (its store gave out mid-run): the run as far as it
    # got, which the build's job keeps beside its error; nothing was recorded
    notebook: NotebookNode | None = None

    def __str__(self) -> str:
        """The message with its option hints as CLI flags (``handoff.messages``); faces that name
        their own controls render ``raw`` instead."""
        return render(self.raw, "cli")

    @property
    def raw(self) -> str:
        """The message as the library wrote it, hint tokens (``{option:gate}``) included."""
        return super().__str__()

    def render(self, face: Face) -> str:
        """The message for one face: ``app`` names the app's controls, ``cli`` its flags."""
        return render(self.raw, face)


class InputError(HandoffError):
    """The input is wrong; nothing ran and nothing was recorded."""

    exit_code = EXIT_INPUT


class NotebookFormatError(InputError):
    """The file is not a readable, valid Jupyter notebook."""


class ParameterError(InputError):
    """A parameter name or value does not fit the notebook's parameters cell."""


class OptionError(InputError):
    """A build option is invalid, e.g. a negative timeout or an unknown registry name."""


class StoreError(HandoffError):
    """The store cannot be reached, or it refused an operation."""

    exit_code = EXIT_STORE


class StoreUnreachableError(StoreError):
    """The tracking server did not answer (stopped, wrong address, network down)."""


class AccessError(HandoffError):
    """The tracking server refused the caller: nothing was changed."""

    exit_code = EXIT_INPUT


class LoginError(AccessError):
    """Wrong or missing user name or password for a tracking server (HTTP 401)."""


class PermissionDeniedError(AccessError):
    """The logged-in user lacks the role an operation needs (HTTP 403)."""


class VersionNotFoundError(StoreError):
    """The requested model or version does not exist in the store (the store itself is fine)."""

    exit_code = EXIT_INPUT


class TamperedError(StoreError):
    """A recorded version no longer matches the digests taken when it was recorded.

    Attributes:
        name: The model name.
        version: The version number.
        problems: What differs, e.g. ``model/model.skops differs``, ``metric accuracy differs``.
    """

    exit_code = EXIT_STORE  # a corrupt store; verify-store reports these as a mismatch (exit 1) instead

    def __init__(self, name: str, version: int, problems: list[str] | tuple[str, ...]) -> None:
        self.name, self.version, self.problems = name, version, tuple(problems)
        super().__init__(f"version {version} of {name} was modified after it was recorded: " + "; ".join(problems))


class PromotionRefused(HandoffError):
    """An alias move that handoff will not make, with the reason."""

    exit_code = EXIT_INPUT


class WorseThanChampion(PromotionRefused):
    """A promotion of a version worse than the champion on the primary metric, without the explicit
    confirmation (``allow_worse``) that says the worse number is known and wanted.

    Attributes:
        preview: The ``PromotionPreview`` it was refused on, so a caller can show the evidence.
    """

    def __init__(self, message: str, preview: Any = None) -> None:
        super().__init__(message)
        self.preview = preview


class BuildFailure(HandoffError):
    """A stage of the build failed. Reported in ``BuildResult.error``, not raised by ``build``.

    Attributes:
        stage: The build stage that failed (``execute``, ``capture``, ...).
        cell: 1-based position of the failing cell in the source notebook, when one is to blame.
        ename: The exception's class name (from the kernel for notebook errors).
        detail: The exception's message.
    """

    exit_code = EXIT_FAILED
    kind = "build failed"

    def __init__(
        self,
        stage: str,
        detail: str,
        *,
        cell: int | None = None,
        ename: str | None = None,
        traceback: str | None = None,
    ) -> None:
        self.stage = stage
        self.detail = detail
        self.cell = cell
        self.ename = ename or type(self).__name__
        self.traceback = traceback
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One sentence: what failed and where."""
        where = f"{self.stage} stage" + (f", cell {self.cell}" if self.cell is not None else "")
        return f"{self.kind} in {where}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "stage": self.stage,
            "cell": self.cell,
            "ename": self.ename,
            "detail": self.detail,
            "message": self.message,
            "traceback": self.traceback,
        }


class CellExecutionFailure(BuildFailure):
    kind = "a cell raised an error"


class EarlyExitFailure(BuildFailure):
    kind = "the notebook exited early"


class KernelDiedFailure(BuildFailure):
    kind = "the kernel died"


class BuildTimeoutFailure(BuildFailure):
    kind = "the run timed out"


class LimitExceededFailure(BuildFailure):
    kind = "a sandbox limit was exceeded"


class KernelStartFailure(BuildFailure):
    kind = "the kernel could not start"


class CaptureFailure(BuildFailure):
    kind = "the model could not be captured"


class SerializationFailure(BuildFailure):
    kind = "the model could not be saved"


class ChecklistFailure(BuildFailure):
    kind = "blocking checks failed"


class RecordFailure(BuildFailure):
    kind = "the build could not be recorded"


class CancelledFailure(BuildFailure):
    kind = "the build was cancelled"


class BuildCancelled(HandoffError):
    """A build cancelled before its notebook started running: nothing ran, nothing was recorded."""

    exit_code = EXIT_INTERRUPTED
