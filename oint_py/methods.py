"""The method table and the option table: every Bitrix24 method and every
option oint-py knows, declared as data.

Adding a method is adding an entry to METHODS; the CLI, help, completion,
parsing (call.py, cmdline.py), the quick path, execution (the REST method
names, the status that confirms a change) and batching read these tables. The
HTTP core (transport.py) reads none of them: it knows nothing of Bitrix24.
"""

from types import MappingProxyType
from typing import TYPE_CHECKING

from oint_py import bounds
from oint_py.record import Record

if TYPE_CHECKING:
    from collections.abc import Mapping


class Param(Record):
    name: str  # oint's parameter name (as in the 1C function signature)
    option: str  # CLI option, long form only
    type: str  # as in oint's docs: String, Number, Date
    required: bool
    description: str
    rest: str | None = None  # the REST field it fills; None for URL and Token
    env: str | None = None  # an environment variable that stands for the option (secrets stay out of ps)


class Method(Record):
    name: str  # oint's CLI name, e.g. StopTimekeeping
    rest: str  # REST method, e.g. timeman.close
    area: str
    title: str
    description: str
    params: tuple[Param, ...]
    # The STATUS timeman.status shows once this call has taken effect. When a
    # call that is not idempotent fails ambiguously (it may have reached the
    # portal), the status is checked before re-sending. None: safe to re-send.
    confirm_status: str | None = None
    # Whether a status other than confirm_status proves the call was not applied,
    # so that it may be sent again. Not for pause: an applied pause on a closed
    # day resumes it (OPENED), which looks just like a pause that never arrived.
    resend_unapplied: bool = True
    example: "Mapping[str, str]" = MappingProxyType({})  # option -> value, for the help page
    # -- for --if-needed and --plan (state-changing methods only) --
    # the STATUS values that make the call needed; () means every status but confirm_status
    needed: tuple[str, ...] = ()
    # why a user is skipped: a format with {status}; notes added for some statuses
    skip_why: str = ""
    skip_notes: "Mapping[str, str]" = MappingProxyType({})
    # the action as a plan says it, as the progress bar says it, and once done
    words: tuple[str, str, str] = ("", "", "")
    # the day's own date: an EXPIRED day is changed with a TIME on the date it opened, and a REPORT
    dated_by_start: bool = False
    # the record's TIME_FINISH dates the change (a close): a CLOSED record whose TIME_FINISH is neither the TIME
    # sent nor the portal's clock for the command is a close made before it (confirm.shown), whatever the HTTP status
    finish_dated: bool = False
    status_method: str = "GetTimekeepingStatus"  # the method whose STATUS these fields speak of
    # -- for a status method: every STATUS it answers; any other cannot tell whether a change is needed --
    statuses: tuple[str, ...] = ()
    # --if-needed may send it before reading the status: on a day that does not need it the portal changes
    # nothing, and answers the record unchanged (a skip, read from it) or refuses it; only the users whose answer
    # shows no change made (a refusal, another status) have their status read (half the requests of reading first)
    act_first: bool = False
    # rest: a REST method on the portal; token: a grant at the OAuth server (GetToken, RefreshToken);
    # link: builds the browser step's address (GetAppAuthLink); status: reads an auth file (AuthStatus)
    kind: str = "rest"

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def takes_token(self) -> bool:
        """A REST method called with --token, hence with --auth-file too."""
        return TOKEN in self.params

    @property
    def changes_state(self) -> bool:
        """Open, close, pause: the methods --if-needed and --plan are for."""
        return self.confirm_status is not None


class Option(Record):
    """An advanced or standard option shared by every method."""

    name: str  # --adv-response
    metavar: str  # "" for a flag
    kind: str  # flag | text | path | number | integer | size
    help: str
    config: str | None = None  # its key in oint's --config JSON (and OINT_CONFIG)
    env: str | None = None
    low: float = 0
    high: float = 0
    short: str | None = None  # a one-letter spelling: -q, -h

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every spelling the command line accepts, the advertised one first."""
        return tuple(filter(None, (self.name, self.alias, self.short)))

    @property
    def alias(self) -> str | None:
        """oint's key spelling of a --config key (--adv_response), accepted but not advertised."""
        return "--" + self.name[2:].replace("-", "_") if self.config and "-" in self.name[2:] else None


CONFIG_ENV = "OINT_CONFIG"  # stands for --config
JOBS_ENV = "OINT_JOBS_DIR"  # where --dontwait keeps its job files

URL = Param(
    "URL", "--url", "String", True, "URL of webhook or a Bitrix24 domain, when token used", env="OINT_BITRIX24_URL"
)
TOKEN = Param("Token", "--token", "String", False, "Access token, when app auth method used", env="OINT_BITRIX24_TOKEN")
USERID = Param(
    "UserID",
    "--userid",
    "String, Number",
    False,
    "Users ID. Current by default. Also a list (1,2,3), @file with one ID a line, or all "
    "(every active user, listed with user.get: needs the webhook's user scope): then they are sent in batches of 50",
    rest="USER_ID",
)


def _time(verb: str) -> Param:
    return Param(
        "Time",
        "--time",
        "Date",
        False,
        f"{verb} time. The date must match the current. Current time by default. "
        "ISO 8601; sent as YYYY-MM-DDTHH:MM:SS+HH:MM",
        rest="TIME",
    )


# the REPORT of a close --if-needed sends with a TIME when no --report is given: the portal wants one
DEFAULT_REPORT = "Workday left open; closed automatically by oint"

REPORT = Param(
    "Report",
    "--report",
    "String",
    False,
    "Reason for change. Required when Time is specified and free schedule is disabled",
    rest="REPORT",
)

ADVANCED = (
    Option(
        "--proxy",
        "URL|JSON",
        "text",
        "Proxy: http(s)://[user:password@]host:port, or oint's structure "
        '{"Protocol","Host","Port","User","Password","UseOSAuthentication"} as JSON',
        config="proxy",
    ),
    Option(
        "--timeout",
        "SECONDS",
        "number",
        f"Bound on each whole attempt: connect, send and the entire answer "
        f"(default {bounds.DEFAULT_TIMEOUT:g}; oint waits 3600)",
        config="timeout",
        low=0.001,
        high=bounds.MAX_TIMEOUT,
    ),
    Option(
        "--adv-response", "", "flag", "Print the complete HTTP structure: code, body and headers", config="adv_response"
    ),
    Option(
        "--retries",
        "N",
        "integer",
        "Re-sends on 5xx, 429, QUERY_LIMIT_EXCEEDED, OVERLOAD_LIMIT and connection "
        "errors, with exponential backoff and jitter, honouring Retry-After "
        f"(default {bounds.DEFAULT_RETRIES}, at most {bounds.MAX_RETRIES})",
        config="retries",
        low=0,
        high=bounds.MAX_RETRIES,
    ),
    Option(
        "--dontwait",
        "",
        "flag",
        "Run in a detached background job; print the job and the file its result goes to",
        config="dontwait",
    ),
    Option(
        "--config",
        "JSON|PATH",
        "path",
        "oint's advanced settings as a JSON object or a file: keys proxy, "
        "timeout, adv_response, retries, dontwait (also ca_bundle, insecure, max_answer). Explicit flags win",
        env=CONFIG_ENV,
    ),
    Option(
        "--ca-bundle",
        "PATH",
        "path",
        "Trust this CA file (PEM) instead of the system's certificate store",
        config="ca_bundle",
    ),
    Option(
        "--insecure",
        "",
        "flag",
        "Do not verify the portal's TLS certificate (self-signed portals; unsafe)",
        config="insecure",
    ),
    Option(
        "--max-answer",
        "SIZE",
        "size",
        "Largest answer accepted, after decompression: bytes, or with K, M or G "
        f"(default {bounds.DEFAULT_MAX_ANSWER // 2**20}M)",
        config="max_answer",
        low=1024,
        high=2**40,
    ),
)
GLOBAL = (
    Option("--out", "PATH", "path", "Write the JSON to PATH atomically and print one confirmation line"),
    Option("--debug", "", "flag", "Log the HTTP exchange to stderr (secrets masked)"),
    Option("--test", "", "flag", "Print the request that would be sent (secrets masked); send nothing"),
    Option(
        "--quiet",
        "",
        "flag",
        "For cron and Task Scheduler: print nothing when everything succeeded (the answer "
        "still goes to --out); on failure the summary and at most 20 failure lines. Exit codes unchanged",
        short="-q",
    ),
    Option("--help", "", "flag", "Show this help", short="-h"),
)
# only for the methods that change a day (Method.changes_state)
SWEEP = (
    Option(
        "--if-needed",
        "",
        "flag",
        "Read each user's timeman.status first (in batches) and call only where it "
        "changes something: Stop on OPENED, PAUSED or EXPIRED (an expired day is closed on its own date: "
        "--time's clock on that date, else the portal's TIME_FINISH_DEFAULT), Start where not OPENED, Pause "
        "only on OPENED. Other users are skipped, which is no error. A close that sends a TIME without "
        f"--report sends the report {DEFAULT_REPORT!r}",
    ),
    Option(
        "--plan", "", "flag", "Read the users and their statuses and print what would be done for each; change nothing"
    ),
)
CONFIG_OPTIONS = {o.config: o for o in ADVANCED if o.config}

AUTH_FILE_ENV = "OINT_BITRIX24_AUTH_FILE"
OAUTH_SERVER_ENV = "OINT_BITRIX24_OAUTH_SERVER"
ALLOW_HTTP_ENV = "OINT_BITRIX24_OAUTH_ALLOW_HTTP"  # "1": send the secret in cleartext to an http OAuth server
DEFAULT_OAUTH_SERVER = "https://oauth.bitrix.info"  # oint's; Russian docs and b24pysdk use https://oauth.bitrix24.tech
AUTH_FILE = Option(
    "--auth-file",
    "PATH",
    "path",
    "An auth file written by GetToken --save: its access token (and its "
    "portal, unless --url is given), renewed in the file when the portal says it expired",
    env=AUTH_FILE_ENV,
)
# GetToken and RefreshToken: where the grant goes, and where the new pair is kept
OAUTH = (
    Option(
        "--oauth-server",
        "URL",
        "text",
        f"The OAuth server (default {DEFAULT_OAUTH_SERVER}; also "
        "https://oauth.bitrix24.tech, a self-hosted one, or the sandbox); plain http only on this machine, "
        "unless OINT_BITRIX24_OAUTH_ALLOW_HTTP=1",
        env=OAUTH_SERVER_ENV,
    ),
    Option(
        "--save",
        "PATH",
        "path",
        "Write the answer, the client id and secret and the OAuth server to this auth "
        "file (private, 0600), for --auth-file; the tokens are then not printed",
    ),
)
# the advanced options that apply to a request to the OAuth server: no retries (a refresh token is single-use),
# no background job, no adv_response
OAUTH_ADVANCED = tuple(o for o in ADVANCED if o.name not in ("--retries", "--dontwait", "--adv-response"))

_EXAMPLE = {"--url": "b24-ar17wx.bitrix24.by", "--userid": "1", "--token": "***"}
_TIMED_EXAMPLE = {
    "--url": "b24-ar17wx.bitrix24.by",
    "--userid": "1",
    "--time": "18:00",
    "--report": "Time off",
    "--token": "***",
}

METHODS: tuple[Method, ...] = (
    Method(
        "StartTimekeeping",
        "timeman.open",
        "Timekeeping",
        "Start timekeeping",
        "Starts or resumes user timekeeping",
        (URL, USERID, _time("Start"), REPORT, TOKEN),
        confirm_status="OPENED",
        example=_TIMED_EXAMPLE,
        skip_why="the day is already open",
        words=("open", "opening", "opened"),
    ),
    Method(
        "StopTimekeeping",
        "timeman.close",
        "Timekeeping",
        "Stop timekeeping",
        "Stops user timekeeping",
        (URL, USERID, _time("Stop"), REPORT, TOKEN),
        confirm_status="CLOSED",
        example=_TIMED_EXAMPLE,
        needed=("OPENED", "PAUSED", "EXPIRED"),
        skip_why="the day is {status}, not open",
        words=("close", "closing", "closed"),
        dated_by_start=True,
        finish_dated=True,
        act_first=True,
    ),
    Method(
        "PauseTimekeeping",
        "timeman.pause",
        "Timekeeping",
        "Pause timekeeping",
        "Pauses user timekeeping",
        (URL, USERID, TOKEN),
        confirm_status="PAUSED",
        resend_unapplied=False,
        example=_EXAMPLE,
        needed=("OPENED",),
        skip_why="the day is {status}; only an open day is paused",
        skip_notes={"CLOSED": " (pausing a closed day would re-open it)"},
        words=("pause", "pausing", "paused"),
    ),
    Method(
        "GetTimekeepingStatus",
        "timeman.status",
        "Timekeeping",
        "Get timekeeping status",
        "Gets user timekeeping status",
        (URL, USERID, TOKEN),
        example=_EXAMPLE,
        statuses=("OPENED", "PAUSED", "EXPIRED", "CLOSED"),
    ),
    Method(
        "GetTimekeepingSettings",
        "timeman.settings",
        "Timekeeping",
        "Get timekeeping settings",
        "Gets user timekeeping settings",
        (URL, USERID, TOKEN),
        example=_EXAMPLE,
    ),
)

CLIENT_ID = Param("ClientID", "--clientid", "String", True, "Application ID (client_id)", env="OINT_BITRIX24_CLIENT_ID")
CLIENT_SECRET = Param(
    "ClientSecret",
    "--clientsecret",
    "String",
    True,
    "Application secret key (client_secret)",
    env="OINT_BITRIX24_CLIENT_SECRET",
)
_APP = {"--clientid": "local.5f3a9c2e1b7d40.61832057", "--clientsecret": "***"}

METHODS += (
    Method(
        "GetAppAuthLink",
        "oauth/authorize",
        "Authorization and settings",
        "Get app authorization link",
        "Forms a link for authorization via the browser",
        (Param("Domain", "--domain", "String", True, "Current Bitrix24 domain (with or without https://)"), CLIENT_ID),
        kind="link",
        example={"--domain": "b24-ar17wx.bitrix24.by", "--clientid": _APP["--clientid"]},
    ),
    Method(
        "GetToken",
        "oauth/token",
        "Authorization and settings",
        "Get token",
        "Gets the token by the code from the browser authorization",
        (CLIENT_ID, CLIENT_SECRET, Param("Code", "--code", "String", True, "Code from browser authorization")),
        kind="token",
        example={**_APP, "--code": "***"},
    ),
    Method(
        "RefreshToken",
        "oauth/token",
        "Authorization and settings",
        "Refresh token",
        "Updates the token by the refresh token",
        (CLIENT_ID, CLIENT_SECRET, Param("Refresh", "--refresh", "String", True, "Refresh token")),
        kind="token",
        example={**_APP, "--refresh": "***"},
    ),
    Method(
        "ServerTime",
        "server.time",
        "Authorization and settings",
        "Server time",
        "Gets the current server time",
        (URL, TOKEN),
        example={"--url": "b24-ar17wx.bitrix24.by", "--token": "***"},
    ),
    Method(
        "AuthStatus",
        "reads the auth file",
        "Authorization and settings",
        "Auth file status",
        "Shows an auth file's portal, user, scope and token ages; sends nothing (oint-py extension)",
        (),
        kind="status",
        example={"--auth-file": "/home/me/.config/oint/portal.auth.json"},
    ),
)

# options that carry a secret (masked everywhere before anything parses them), with their environment variables
SECRET_OPTIONS = {TOKEN.option: TOKEN.env, CLIENT_SECRET.option: CLIENT_SECRET.env, "--code": None, "--refresh": None}


BY_KEY = {m.key: m for m in METHODS}
STATUS_METHOD = "timeman.status"

LIBRARIES = {"bitrix24": "Bitrix24: REST API of Bitrix24 portals (webhooks and OAuth tokens)"}
