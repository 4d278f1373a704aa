"""Forking a child that runs one function and exits, never returning into the caller's code (a
sweep's workers, the check server's workers)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable


def fork(child: Callable[[], int], *, failed: int = 1) -> int:
    """Fork; the child runs ``child`` and exits with what it returns (``failed``, its traceback on
    stderr, if it raises). Returns the child's pid, in the parent only."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = failed
        try:
            code = child()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid
