"""The log of a pipeline job (a Snakemake ``script:``): its stderr goes to the rule's log file,
and an uncaught error is also shown where Snakemake runs, in a few lines, so the terminal says
what failed, not only "check log file(s) for error details".

Light on purpose: scripts call :func:`send_stderr_to` before importing anything else, so that
import warnings land in the log too.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

SHOWN_LINES = 5  # of the error message, shown in the terminal


def send_stderr_to(log_path: str) -> None:
    """Send stderr to ``log_path``; an uncaught error goes there with its traceback, and its
    message (at most :data:`SHOWN_LINES` lines) to the original stderr, naming the log."""
    terminal = sys.stderr
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 (open for the rest of the job)
    sys.stderr = log

    def report(kind: type[BaseException], error: BaseException,
               trace: TracebackType | None) -> None:
        traceback.print_exception(kind, error, trace, file=log)
        message = "".join(traceback.format_exception_only(kind, error)).strip().splitlines()
        shown = message[:SHOWN_LINES] + (["..."] if len(message) > SHOWN_LINES else [])
        print("\n".join(shown) + f"\n(traceback in {log_path})", file=terminal, flush=True)

    sys.excepthook = report
