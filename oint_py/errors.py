"""Exit codes and the exceptions that carry them.

Every way the program can end maps to exactly one documented exit code.
Windows `if errorlevel N` means "N or higher", so the codes grow with how
bad (or how unexpected) the outcome is.
"""

OK = 0
UNKNOWN_LIBRARY = 1  # as oint
UNKNOWN_METHOD = 2  # as oint
API_ERROR = 3  # the portal answered {"error": ...}; the JSON is still printed
REQUEST_FAILED = 4  # timeout, connection, TLS, proxy, redirects, non-JSON answer, retries exhausted
BAD_OPTIONS = 5  # invalid options or --config, nothing was sent
INTERRUPTED = 130  # Ctrl-C
INTERNAL = 99  # a bug in oint-py (oint's catch-all code); never a traceback

EXIT_CODES = {
    OK: "success: the portal answered with a result",
    UNKNOWN_LIBRARY: "unknown library (oint's code)",
    UNKNOWN_METHOD: "unknown method (oint's code)",
    API_ERROR: "the portal answered an error (for several users: at least one failed); the error JSON is printed",
    REQUEST_FAILED: "the request failed: timeout, connection, TLS, proxy, too many redirects, "
    "an answer that is not Bitrix24 JSON, or retries exhausted",
    BAD_OPTIONS: "invalid options, --time or --config; nothing was sent",
    INTERNAL: "internal error in oint-py (please report it)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


class OintError(Exception):
    """An outcome that ends the program with a one-line message and an exit code."""

    exit_code = INTERNAL

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageFailure(OintError):
    exit_code = BAD_OPTIONS


class RequestFailure(OintError):
    exit_code = REQUEST_FAILED
