"""Every bound oint-py keeps, in one place, and the two readers that enforce
them on untrusted text: JSON of any origin and files named in options.

Nothing here imports the rest of the package. The README's "Bounds" table
lists these numbers; change both together.
"""

import codecs
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import NoReturn

DEFAULT_TIMEOUT = 30.0  # seconds for one whole attempt: connect, send and the entire answer (oint: 3600)
MAX_TIMEOUT = 86400.0
DEFAULT_RETRIES = 3  # re-sends after the first attempt
MAX_RETRIES = 20
BACKOFF_BASE = 0.25  # seconds; doubles each attempt, full jitter in [50%, 100%]
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0  # a longer Retry-After ends the retries instead of blocking a cron job
MAX_REDIRECTS = 5  # portal moves followed, same origin only
DEFAULT_MAX_ANSWER = 64 * 1024 * 1024  # bytes of one answer, counted after decompression
MAX_JSON_DEPTH = 64  # nesting of any JSON we parse (Bitrix24 answers nest 5 deep)
MAX_OPTION_FILE = 4 * 1024 * 1024  # bytes of a file named in an option (--userid @file, --config PATH)
MAX_URL = 4096  # characters of --url or --proxy
MAX_LOGGED_BODY = 2000  # characters of an answer shown by --debug
MAX_MESSAGE = 2000  # characters of one stderr line: a hostile value is cut, not echoed whole
BATCH_SIZE = 50  # Bitrix24's limit of commands in one batch request
MAX_ID_DIGITS = 19  # a user ID (a Bitrix24 integer: 19 digits hold any 64-bit one), checked before int()
MAX_USERS = 200_000  # users --userid all lists in one run; a portal's user.get claiming more is not believed
STOP_GRACE = 10.0  # seconds from a stop signal to the run's end, whatever it was doing (docker stop and systemd
# wait 10 s before SIGKILL); the request in flight gets all of it but STOP_WRAP_UP, kept to write the record
STOP_WRAP_UP = 1.0
STOP_SLICE = 0.25  # seconds a socket read waits at most before it looks again at a stop's deadline
LOCK_WAIT = 60.0  # seconds a state-changing run over many users waits for another run's lock on the same portal
MAX_LOCK_WAIT = 3600.0  # OINT_LOCK_WAIT's ceiling
MAX_TOKEN_ANSWER = 64 * 1024  # bytes of an OAuth server's token answer (a real one is under 1 KiB)
AUTH_LOCK_MIN_WAIT = 5.0  # seconds a process waits at least for another one renewing the same auth file
# (twice --timeout, see authfile.lock_wait: 60 s with the default timeout)
MAX_AUTH_FILE = 64 * 1024  # bytes of an auth file
ACCESS_TOKEN_SECONDS = 3600  # how long Bitrix24's access token lives, when a token answer does not say
REFRESH_TOKEN_DAYS = 180  # how long Bitrix24 keeps a refresh token (older docs: 28 days)
# seconds a close's TIME_FINISH may be before the portal's own clock for that command (its answer's
# time.date_start; in a batch result_time[key].date_start) and still be this close's: both are read to the second
# from the same portal's clock, so a close made now is never before it; older, the day was closed before
CLOSE_SLACK = 2.0
REPLACE_TRIES = 20  # renames of a written file into place on Windows, while another process holds the file
REPLACE_STEP = 0.1  # seconds between them
PORTAL_BURST, PORTAL_RATE = 50, 2.0  # Bitrix24's leaky bucket on standard plans


class BoundError(ValueError):
    """Untrusted input broke a bound or a format; the message says which, in one line."""


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _no_constant(name: str) -> "NoReturn":
    raise ValueError(f"{name} is not a JSON value")


def load_json(text: str | bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that never raises anything but BoundError: bad JSON (NaN and
    Infinity included: they are not JSON, and could not be printed as JSON), or
    nesting deeper than `max_depth` (json's own parser raises RecursionError
    on deep input; everything that later walks the value is recursive too)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BoundError(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BoundError(f"{what}: not valid JSON ({exc})") from None
    if _depth(value) > max_depth:
        raise BoundError(f"{what}: JSON nested deeper than {max_depth} levels")
    return value


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, what: str) -> str:
    """UTF-8, or UTF-16/32 with a byte-order mark (Windows PowerShell 5.1's `>`
    and Notepad's "Unicode" write UTF-16 LE with a BOM). Anything else that is
    not UTF-8 (an ANSI file with Cyrillic, say) is refused by name."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BoundError(f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def read_option_file(path: str, what: str, limit: int = MAX_OPTION_FILE) -> str:
    """The text of a file named in an option, read at most `limit` + 1 bytes
    (so /dev/zero or a runaway pipe cannot eat memory). Works on pipes, as
    `--userid @<(command)` gives."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise BoundError(f"{what}: cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise BoundError(f"{what}: {path!r} is larger than {limit // 1024} KiB")
    return decode_text(data, f"{what}: {path!r}")
