"""What a call ended as: the exit statuses and the Outcome that carries one.

Every way the program can end maps to exactly one documented ExitStatus.
Windows `if errorlevel N` means "N or higher", so the codes grow with how bad
(or how unexpected) the outcome is. Execution returns an Outcome and never
prints; output/render.py renders it; only program.finish turns it into an exit status,
which main() returns to the console-script shim.
"""

from enum import IntEnum
from typing import Any

from oint_py.record import Record


class ExitStatus(IntEnum):
    OK = 0
    UNKNOWN_LIBRARY = 1  # as oint
    UNKNOWN_METHOD = 2  # as oint
    API_ERROR = 3  # the portal answered {"error": ...}; the JSON is still printed
    REQUEST_FAILED = 4  # no usable answer: timeout, connection, TLS, proxy, redirect, not Bitrix24 JSON, too large
    BAD_OPTIONS = 5  # invalid options, --time or --config: nothing was sent
    NOT_WRITTEN = 6  # the call was made, but its answer could not be written where asked
    REAUTHORIZE = 7  # an app's auth file cannot be renewed: a person must authorise the app again in a browser
    INTERNAL = 99  # a bug in oint-py (oint's catch-all code); never a traceback
    HANGUP = 129  # SIGHUP during a run over many users (128 + 1, the shell's convention)
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM during a run over many users (128 + 15)


DESCRIPTIONS = {
    ExitStatus.OK: "success: the portal answered with a result",
    ExitStatus.UNKNOWN_LIBRARY: "unknown library (oint's code)",
    ExitStatus.UNKNOWN_METHOD: "unknown method (oint's code)",
    ExitStatus.API_ERROR: "the portal answered an error (for several users: at least one failed); "
    "the error JSON is printed",
    ExitStatus.REQUEST_FAILED: "the request failed: timeout, connection, TLS, proxy, a redirect not followed, "
    "an answer that is not Bitrix24 JSON or is too large, retries exhausted, or an outcome that is unknown",
    ExitStatus.BAD_OPTIONS: "invalid options, --time or --config; nothing was sent",
    ExitStatus.NOT_WRITTEN: "the call was made but its answer could not be written (--out or stdout failed); "
    "when --out failed, the answer is on stdout",
    ExitStatus.REAUTHORIZE: "a person must authorise the app again (the auth file's tokens cannot be renewed: "
    "invalid_grant, invalid_client, invalid_token, NOT_INSTALLED, PAYMENT_REQUIRED); stderr gives the steps, "
    "the auth file is left as it was",
    ExitStatus.INTERNAL: "internal error in oint-py (please report it)",
    ExitStatus.HANGUP: "stopped by SIGHUP (a closed terminal) during a run over many users; the record says "
    "what was applied",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C); a run over many users stops sending and its record says what "
    "was applied",
    ExitStatus.TERMINATED: "stopped by SIGTERM (a cron timeout, systemctl stop) during a run over many users; "
    "the record says what was applied",
}


# what to do about an error code the portal gives, said after its description
HINTS = {"REPORT_NEEDED": 'add --report "REASON": the portal wants a reason with --time unless the schedule is free'}


def hint(code: object) -> str:
    return f" ({HINTS[code]})" if isinstance(code, str) and code in HINTS else ""


def error_words(code: object, desc: object) -> str:
    """`error 'CODE': description (hint)`; a missing or empty code is said, never shown as ''."""
    said = f"error {code!r}" if code not in (None, "") else "an error with no code"
    return said + (f": {desc}" if desc else "") + hint(code)


class OintError(Exception):
    """Ends the program with one line on stderr and an exit status."""

    status = ExitStatus.INTERNAL

    def __init__(self, message: str, status: ExitStatus | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(OintError):
    """Bad input, found before anything was sent."""

    status = ExitStatus.BAD_OPTIONS


class RequestFailure(OintError):
    """No usable answer from the portal."""

    status = ExitStatus.REQUEST_FAILED


class Unreachable(RequestFailure):
    """The portal could not be reached at all: no connection, no name, or no answer in time."""


class OutcomeUnknown(RequestFailure):
    """A call that is not idempotent may have been applied, and the status
    check that would tell failed too: it is not sent again."""


class Outcome(Record):
    status: ExitStatus
    data: Any = None  # the JSON for stdout (or --out); None prints nothing
    messages: tuple[str, ...] = ()  # one line each on stderr, prefixed "oint: "
    summary: str | None = None  # a run over many users: one line after the messages, kept by --quiet
    per_user: bool = False  # data is keyed by user ID: a terminal shows it as a short table

    @classmethod
    def failed(cls, error: OintError, data: Any = None) -> "Outcome":
        return cls(error.status, data, (error.message,))
