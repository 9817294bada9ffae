"""The method table: every Bitrix24 method oint-py knows, declared as data.

Adding a method is adding an entry here; the CLI, help, completion, the HTTP
core and batching all read this table.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str  # oint's parameter name (as in the 1C function signature)
    option: str  # CLI option, long form only
    type: str  # as in oint's docs: String, Number, Date
    required: bool
    description: str
    rest: str | None = None  # the REST field it fills; None for URL and Token
    env: str | None = None  # an environment variable that stands for the option (secrets stay out of ps)


@dataclass(frozen=True)
class Method:
    name: str  # oint's CLI name, e.g. StopTimekeeping
    rest: str  # REST method, e.g. timeman.close
    area: str
    title: str
    description: str
    params: tuple[Param, ...]
    # The STATUS timeman.status shows once this call has taken effect. When a
    # non-idempotent call fails ambiguously (it may have reached the portal),
    # the status is checked before re-sending. None: safe to re-send.
    confirm_status: str | None = None
    example: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name.lower()


URL = Param("URL", "--url", "String", True, "URL of webhook or a Bitrix24 domain, when token used",
            env="OINT_BITRIX24_URL")
TOKEN = Param("Token", "--token", "String", False, "Access token, when app auth method used",
              env="OINT_BITRIX24_TOKEN")
USERID = Param(
    "UserID", "--userid", "String, Number", False,
    "Users ID. Current by default. Also a list (1,2,3) or @file with one ID a line: "
    "then all of them are sent in batches of 50",
    rest="USER_ID",
)


def _time(verb: str) -> Param:
    return Param(
        "Time", "--time", "Date", False,
        f"{verb} time. The date must match the current. Current time by default. "
        "ISO 8601; sent as YYYY-MM-DDTHH:MM:SS+HH:MM",
        rest="TIME",
    )


REPORT = Param(
    "Report", "--report", "String", False,
    "Reason for change. Required when Time is specified and free schedule is disabled",
    rest="REPORT",
)

_EXAMPLE = {"--url": "b24-ar17wx.bitrix24.by", "--userid": "1", "--token": "***"}
_TIMED_EXAMPLE = {"--url": "b24-ar17wx.bitrix24.by", "--userid": "1", "--time": "2026-05-26T14:13:07",
                  "--report": "Time off", "--token": "***"}

METHODS: tuple[Method, ...] = (
    Method(
        "StartTimekeeping", "timeman.open", "Timekeeping", "Start timekeeping",
        "Starts or resumes user timekeeping",
        (URL, USERID, _time("Start"), REPORT, TOKEN),
        confirm_status="OPENED", example=_TIMED_EXAMPLE,
    ),
    Method(
        "StopTimekeeping", "timeman.close", "Timekeeping", "Stop timekeeping",
        "Stops user timekeeping",
        (URL, USERID, _time("Stop"), REPORT, TOKEN),
        confirm_status="CLOSED", example=_TIMED_EXAMPLE,
    ),
    Method(
        "PauseTimekeeping", "timeman.pause", "Timekeeping", "Pause timekeeping",
        "Pauses user timekeeping",
        (URL, USERID, TOKEN),
        confirm_status="PAUSED", example=_EXAMPLE,
    ),
    Method(
        "GetTimekeepingStatus", "timeman.status", "Timekeeping", "Get timekeeping status",
        "Gets user timekeeping status",
        (URL, USERID, TOKEN), example=_EXAMPLE,
    ),
    Method(
        "GetTimekeepingSettings", "timeman.settings", "Timekeeping", "Get timekeeping settings",
        "Gets user timekeeping settings",
        (URL, USERID, TOKEN), example=_EXAMPLE,
    ),
)

BY_KEY = {m.key: m for m in METHODS}
STATUS_METHOD = "timeman.status"

LIBRARIES = {"bitrix24": "Bitrix24: REST API of Bitrix24 portals (webhooks and OAuth tokens)"}
