"""The emulated portal's state and rules: users (active or not), a workday
per user, `user.get` with its paging, the timeman.* methods, `batch`, the
documented error codes, the leaky-bucket rate limit and the queue of injected
faults. No sockets here: server.py serves it. Thread-safe (one lock)."""

import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

# PHP's DateTime::createFromFormat(DATE_ATOM, ...) as the server parses TIME: `Y-m-d\TH:i:sP`, where the
# month, day and hour may have one digit, and the zone may be `Z`, `+03:00`, `+0300`, `+03` or a zone name
ATOM = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{2}):(\d{2})"
    r"(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?|([A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}))$",
    re.ASCII,
)
DEFAULT_CODE = "sandbox"
DEFAULT_TOKEN = "sandbox-token"
EXPIRED_TOKEN = "expired-token"
FAULTS = (
    "status:CODE (a JSON error with that HTTP status), html:CODE, empty:CODE, truncated:CODE, "
    "slow:SECONDS (then answer normally), drip:SECONDS (answer one byte every SECONDS), "
    "reset (drop the connection unanswered), apply-reset (apply the call, then drop the connection), "
    "retry-after:SECONDS (a 503 with it), see-other (apply the call, answer 303 to its status), "
    "huge:MB (a JSON answer that large), gzip-bomb:MB (a small gzip answer that inflates to MB), "
    "deep:N (JSON nested N levels), error:NAME:STATUS (a JSON error NAME with that HTTP status), "
    "no-refresh-token (the OAuth server answers a new access token and no refresh_token), "
    "die (the portal goes away: stops listening, drops every connection)"
)
METHOD_NAME = re.compile(r"^[a-z][a-z0-9]*(?:\.[a-z0-9]+)+$")  # a REST method's name: no handler outside _m_*
CHANGES = ("timeman.open", "timeman.close", "timeman.pause")
OPERATING_LIMIT = 480.0  # seconds of one method's operating time in OPERATING_WINDOW, as on cloud portals
OPERATING_WINDOW = 600.0  # ten one-minute baskets
ALLOWED_DELTA = timedelta(minutes=15)  # timeman.settings' UF_TM_ALLOWED_DELTA
BATCH_LIMIT = 50  # commands one batch runs; the rest end with ERROR_BATCH_LENGTH_EXCEEDED
PAGE = 50  # user.get answers 50 users a page, as Bitrix24 does
# --scenario forgotten: the kind of each user, by (uid * 7) % 50 so the kinds are spread out and every 50
# users hold exactly 35 with today's day open, 5 paused, 5 closed, 4 left open since yesterday and 1 inactive
_FORGOTTEN = ("opened",) * 35 + ("paused",) * 5 + ("closed",) * 5 + ("expired",) * 4 + ("inactive",)
SCENARIOS = {
    "forgotten": "70% of users with today's day open, 10% paused, 10% closed, 8% with yesterday's day never "
    "closed (EXPIRED), 2% inactive (fired: listed by user.get with ACTIVE false, left out by FILTER[ACTIVE]=true; "
    "their days left open a week ago)",
}
NO_SCOPE = "The request requires higher privileges than provided by the webhook token"
# --closed-close: what a close of a day that is not open (CLOSED, or no day at all) answers. "record": 200 with the
# status record unchanged, as the server code does (Bitrix\\Timeman\\Rest: CTimeManUser::CloseDay fails without
# an exception, and the method answers timeman.status's record). "refuse": a 400 with an error no doc names (older
# sandboxes invented one), so that oint is tested against a portal that refuses instead; oint must not care
CLOSED_CLOSE = ("record", "refuse")
NOT_CLOSABLE = "The workday cannot be closed"  # "refuse"'s text: deliberately no text oint could know


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


RUSSIAN = {
    "User not found": "Пользователь не найден",
    NOT_CLOSABLE: "Рабочий день не может быть завершён",
    "Report is needed": "Необходимо указать причину изменения",
    "Wrong datetime format": "Неверный формат даты",
}


def _now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)


def _parse(text: str) -> datetime:
    """A date as the portal stores it; `+0300` too (Python 3.10's fromisoformat wants `+03:00`)."""
    return datetime.fromisoformat(re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text))


def _atom(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def php_atom(raw: object) -> tuple[datetime, timedelta] | None:
    """TIME as PHP's createFromFormat(ATOM) reads it: (the wall clock in TIME's own zone, that zone's
    offset), or None when PHP refuses the text (no zone, fractions, a space, anything but a string).
    A date or clock out of range is rolled over as PHP does (February 30 is March 2, hour 24 the next
    day's 00): the date checks then refuse it. The offset is kept as written, even beyond a day."""
    if not isinstance(raw, str):
        return None
    found = ATOM.match(raw)
    if not found:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    zulu, sign, hours, minutes, name = found.group(7, 8, 9, 10, 11)
    try:
        first = date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
        wall = datetime(first.year, first.month, 1) + timedelta(
            days=day - 1, hours=hour, minutes=minute, seconds=second
        )
    except (ValueError, OverflowError):  # before year 1 or after 9999: no day the portal could hold
        return None
    if zulu:
        return wall, timedelta(0)
    if sign:
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return wall, -offset if sign == "-" else offset
    if name.upper() in ("UTC", "GMT"):
        return wall, timedelta(0)
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(name)
        return wall, wall.replace(tzinfo=zone).utcoffset() or timedelta(0)
    except Exception:  # zoneinfo raises several kinds for a name it does not hold
        return None


def _in_offset(wall: datetime, given: timedelta, offset: timedelta) -> datetime | None:
    """The moment `wall` (a naive wall clock at offset `given`) as an aware datetime in `offset`;
    None when no zone has that offset, or the moment is out of datetime's range."""
    if abs(offset) >= timedelta(hours=24):
        return None
    try:
        return (wall - given + offset).replace(tzinfo=timezone(offset))
    except (ValueError, OverflowError):
        return None


def _number(value: object) -> float:
    """A coordinate as PHP's floatval reads it: 0 for what is not a number."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return 0.0
    return number if number == number and abs(number) != float("inf") else 0.0


def forgotten_kind(uid: int) -> str:
    """opened, paused, closed, expired or inactive: a user's lot in --scenario forgotten."""
    return _FORGOTTEN[uid * 7 % len(_FORGOTTEN)]


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "y", "1")


MAX_INPUT_NESTING = 64  # PHP's max_input_nesting_level (its default): deeper variables are dropped


def php_query(query: str) -> dict[str, Any]:
    """A batch command's query as PHP's parse_str reads it: `FILTER[ACTIVE]=true` is {"FILTER": {"ACTIVE": "true"}}."""
    params: dict[str, Any] = {}
    for name, value in parse_qsl(query):
        head, _, rest = name.partition("[")
        keys = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        if len(keys) > MAX_INPUT_NESTING:  # PHP's max_input_nesting_level: such a variable is dropped
            continue
        target = params
        for k in keys[:-1]:
            target = target.setdefault(k, {}) if isinstance(target.get(k, {}), dict) else {}
        target[keys[-1]] = value
    return params


USER_FIELDS = ("ID", "ACTIVE", "NAME", "LAST_NAME", "USER_TYPE")  # what the sandbox's users have
USER_GET_PARAMS = ("SORT", "ORDER", "START", "SELECT", "ADMIN_MODE", "IMAGE_RESIZE", "FILTER")
# a filter key's prefix, longest first, and what it tests: (value, wanted)
_PREFIXES = (
    ("!=%", "not like"),
    ("!%=", "not like"),
    ("!@", "not in"),
    ("!%", "not contains"),
    ("!=", "not in"),
    (">=", ">="),
    ("<=", "<="),
    ("=%", "like"),
    ("%=", "like"),
    (">", ">"),
    ("<", "<"),
    ("@", "in"),
    ("%", "contains"),
    ("=", "in"),
    ("!", "not in"),
)


def _key(field: str, value: object) -> object:
    """A field's value as a condition compares it: IDs as numbers, ACTIVE as a boolean, text folded."""
    if field == "ID":
        text = str(value).strip()
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if field == "ACTIVE":
        return _truthy(value)
    return str(value).casefold()


def _like(pattern: str, text: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("%")), text, re.S) is not None


def _condition(key: str, value: object) -> Callable[[dict[str, Any]], bool]:
    """A test of a user for one FILTER entry; ApiError for a field or a prefix the sandbox cannot apply."""
    upper = key.upper()
    prefix, test = next(((p, t) for p, t in _PREFIXES if upper.startswith(p)), ("", "in"))
    field = upper[len(prefix) :]
    if field not in USER_FIELDS:
        raise ApiError(
            400, "INVALID_FILTER", f"The sandbox cannot filter users by {key!r} (it knows {', '.join(USER_FIELDS)})"
        )
    values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
    if test in (">", ">=", "<", "<=", "like", "not like", "contains", "not contains") and len(values) != 1:
        raise ApiError(400, "INVALID_FILTER", f"The filter {key!r} takes one value")
    wanted = [_key(field, v) for v in values]
    if test in ("like", "not like", "contains", "not contains"):
        pattern = str(values[0]).casefold()
        pattern = pattern if test in ("like", "not like") else f"%{pattern}%"
        keep = test in ("like", "contains")
        return lambda user: _like(pattern, str(_key(field, user[field]))) == keep
    if test in ("in", "not in"):
        keep = test == "in"
        return lambda user: (_key(field, user[field]) in wanted) == keep
    bound = wanted[0]
    compare: Callable[[Any, Any], bool] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[test]

    def ordered(user: dict[str, Any]) -> bool:
        mine = _key(field, user[field])
        try:
            return bound is not None and compare(mine, bound)
        except TypeError:
            return False

    return ordered


def _ordering(params: dict[str, Any]) -> list[tuple[str, bool]]:
    """[(field, descending)]: `sort` and `order` as the docs give them, or order as {FIELD: DIRECTION}."""
    order = params.get("ORDER")
    if isinstance(order, dict):
        pairs = [(str(k).upper(), str(v).upper()) for k, v in order.items()]
    elif params.get("SORT") not in (None, ""):
        pairs = [(str(params["SORT"]).upper(), str(order or "ASC").upper())]
    else:
        return []
    for field, direction in pairs:
        if field not in USER_FIELDS or direction not in ("ASC", "DESC"):
            raise ApiError(400, "INVALID_ARG_VALUE", f"The sandbox cannot sort users by {field} {direction}")
    return [(field, direction == "DESC") for field, direction in pairs]


def _selected(select: object) -> set[str] | None:
    """The fields `select` asks for (None: all); fields a user does not have are skipped, as the docs say."""
    if select in (None, "", []):
        return None
    names = {
        str(n).upper()
        for n in (select.values() if isinstance(select, dict) else select if isinstance(select, list) else [select])
    }
    return None if "*" in names else names


# a batch command's reference to an earlier command's answer: $result[key][field]..., as the docs' linked calls
_REFERENCE = re.compile(r"\$(result|result_error|result_total|result_next)\[([^\]]*)\]((?:\[[^\]]*\])*)")


def _index(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 19


def _linked(params: dict[str, Any], tables: dict[str, dict[Any, Any]]) -> dict[str, Any]:
    """A batch command's parameters with every `$result[key][field]...` replaced by that value of an
    earlier command's answer ("" when there is none: inferred)."""

    def look(found: re.Match[str]) -> object:
        table = tables[found.group(1)]
        key = found.group(2)
        value = table.get(key, table.get(int(key)) if _index(key) else None)
        for step in re.findall(r"\[([^\]]*)\]", found.group(3)):
            if isinstance(value, dict):
                value = value.get(step)
            elif isinstance(value, list) and _index(step) and int(step) < len(value):
                value = value[int(step)]
            else:
                value = None
        return value

    def text(value: object) -> str:
        return "" if value is None or value is False else "1" if value is True else str(value)

    def walk(value: object) -> object:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if not isinstance(value, str) or "$result" not in value:
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole:
            found = look(whole)
            return found if isinstance(found, dict | list) else text(found)
        return _REFERENCE.sub(lambda m: text(look(m)), value)

    return {k: walk(v) for k, v in params.items()}


def _php_array(items: dict[Any, Any]) -> "dict[str, Any] | list[Any]":
    """A map as PHP's json_encode writes an array: a list when its keys are 0, 1, ... in order
    (so also [] when empty), else an object."""
    if list(items) == list(range(len(items))):
        return list(items.values())
    return {str(k): v for k, v in items.items()}


class Paged(list[Any]):
    """A page of a list method's result, with what Bitrix24 sends beside it: `next` (absent on the last
    page) and `total`, top-level in a plain answer and in result_next/result_total in a batch."""

    def __init__(self, items: Iterable[Any], start: int, total: int):
        super().__init__(items)
        self.next = start + PAGE if start + PAGE < total else None
        self.total = total

    def paging(self) -> dict[str, Any]:
        return {**({"next": self.next} if self.next is not None else {}), "total": self.total}


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class PortalState:
    """The emulated portal: state, rules and faults."""

    def __init__(
        self,
        *,
        code: str = DEFAULT_CODE,
        token: str = DEFAULT_TOKEN,
        users: int = 1000,
        admins: Iterable[int] = (1,),
        free_schedule: bool = False,
        rate_limit: tuple[float, float] | None = None,
        opened: bool = True,
        scenario: str | None = None,
        user_scope: bool = True,
        finish_default: bool = True,
        now: Callable[[], datetime] | None = None,
        lang: str = "en",
        token_ttl: float | None = None,
        closed_close: str = "record",
        clock: Callable[[], float] = time.time,
        operating_limit: float = OPERATING_LIMIT,
    ):
        """`scenario`: a name in SCENARIOS (the days users start with; else all open, or all
        closed when not `opened`); `user_scope`: the webhook (and token) may call user.get,
        else insufficient_scope; `finish_default`: EXPIRED days state TIME_FINISH_DEFAULT;
        `now`: the portal's clock (a callable giving an aware datetime; tests fix the date);
        `lang`: "ru" answers errors in Russian, as a Russian-language portal does;
        `token_ttl`: seconds an access token from the OAuth server (sandbox/oauth.py) lives;
        `closed_close`: a name in CLOSED_CLOSE, how a close of a day that is not open is answered;
        `clock`: the epoch seconds the operating time is counted by; `operating_limit`: a method's
        seconds in 10 minutes before 429 OPERATION_TIME_LIMIT."""
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if closed_close not in CLOSED_CLOSE:
            raise ValueError(f"unknown closed_close {closed_close!r}; known: {', '.join(CLOSED_CLOSE)}")
        self.closed_close = closed_close
        self.code, self.token = code, token
        from oint_py.sandbox.oauth import DEFAULT_TTL, OAuthState

        self.oauth = OAuthState(DEFAULT_TTL if token_ttl is None else token_ttl)
        self.now = now or _now
        self.lang = lang
        self.users = set(range(1, users + 1))
        self.inactive: set[int] = set()
        self.admins = set(admins)
        self.free_schedule = free_schedule
        self.user_scope, self.finish_default = user_scope, finish_default
        self.rate_limit = rate_limit  # (capacity, drain per second), as Bitrix24's leaky bucket
        self.level, self.level_stamp = 0.0, time.monotonic()
        self.clock, self.operating_limit = clock, operating_limit
        self.local = threading.local()  # the webhook or app of the request this thread serves
        self.baskets: defaultdict[tuple[str, str], list[list[float]]] = defaultdict(
            list
        )  # {(who, method): [[first call's time, seconds], ...]}
        self.throttled = 0  # requests refused with QUERY_LIMIT_EXCEEDED by the rate limit
        self.lock = threading.RLock()
        self.days: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # every request: method, path, verb, headers, params
        self.faults: deque[str] = deque()  # consumed one per request: see inject()
        self.dead = False  # after the fault "die": every request is dropped
        self.applied: defaultdict[str, Counter[int]] = defaultdict(
            Counter
        )  # {"timeman.close": {uid: changes made}}, for tests
        # "portal moved": answer every request with a redirect to this base URL + the path. A
        # base ending in /moved stays on this portal: paths under /moved are served as without it.
        self.redirect_to: str | None = None
        self.redirect_status = 302
        start = self.now().replace(hour=9, minute=0, second=0)
        if start > self.now():
            start = self.now() - timedelta(minutes=1)
        if scenario == "forgotten":
            for uid in self.users:
                kind = forgotten_kind(uid) if uid not in self.admins else "opened"
                if kind == "inactive":
                    self.inactive.add(uid)
                    self.days[uid] = self._record("OPENED", start - timedelta(days=7))
                elif kind == "expired":
                    self.days[uid] = self._record("OPENED", start - timedelta(days=1))
                elif kind == "closed":  # closed hours before (a minute at least: never a close this moment)
                    finish = min(max(start, self.now() - timedelta(hours=2)), self.now() - timedelta(minutes=1))
                    self.days[uid] = dict(
                        self._record("CLOSED", min(start, finish)),
                        TIME_FINISH=_atom(finish),
                        DURATION=_hms((finish - min(start, finish)).total_seconds()),
                    )
                else:
                    self.days[uid] = self._record(kind.upper(), start)
        elif opened:
            for uid in self.users:
                self.days[uid] = self._record("OPENED", start)

    def inject(self, *faults: str) -> None:
        """Queue faults, one per coming request (see FAULTS)."""
        with self.lock:
            self.faults.extend(faults)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if method is None or r["method"] == method]

    # -- the rules ----------------------------------------------------------
    def _record(self, status: str, start: datetime) -> dict[str, Any]:
        return {
            "STATUS": status,
            "TIME_START": _atom(start),
            "TIME_FINISH": None,
            "DURATION": "00:00:00",
            "TIME_LEAKS": "00:00:00",
            "ACTIVE": True,  # the supervisor's confirmation (see _change), not whether the day runs
            "IP_OPEN": "127.0.0.1",
            "IP_CLOSE": "",
            "LAT_OPEN": 0,
            "LON_OPEN": 0,
            "LAT_CLOSE": 0,
            "LON_CLOSE": 0,
            "TZ_OFFSET": int(start.utcoffset().total_seconds()),  # type: ignore[union-attr]  # aware, as now() gives
        }

    def _throttled(self) -> bool:
        if not self.rate_limit:
            return False
        capacity, rate = self.rate_limit
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.level_stamp) * rate)
        self.level_stamp = now
        if self.level + 1 > capacity:
            self.throttled += 1
            return True
        self.level += 1
        return False

    def _user(self, caller: int, params: dict[str, Any]) -> int:
        raw = params.get("USER_ID")
        if raw in (None, ""):
            return caller
        try:
            uid = int(str(raw))
        except ValueError:
            raise ApiError(400, "", "User not found") from None
        if uid not in self.users:
            raise ApiError(400, "", "User not found")
        if uid != caller and caller not in self.admins:
            raise ApiError(400, "", "User does not have access to managing other users work time")
        return uid

    def _time(self, params: dict[str, Any], day_start: str | None, verb: str) -> datetime | None:
        """TIME as the server reads it (see php_atom): for a close, converted to the offset the day
        started in and its date checked against the day's start date; for an open, its date checked
        against today in TIME's own zone. Then REPORT, unless the schedule is free."""
        raw = params.get("TIME")
        if raw in (None, ""):
            return None
        parsed = php_atom(raw)
        if parsed is None:
            raise ApiError(400, "WRONG_DATETIME_FORMAT", "Wrong datetime format")
        wall, offset = parsed
        if verb == "close" and day_start:
            start = _parse(day_start)
            moment = _in_offset(wall, offset, start.utcoffset() or timedelta(0))
            if moment is None or _atom(moment)[:10] != day_start[:10]:
                raise ApiError(400, "WRONG_DATETIME", "Day close date should correspond to the day open date")
        else:
            today = (self.now().astimezone(timezone.utc).replace(tzinfo=None) + offset).date()
            moment = _in_offset(wall, offset, offset)
            if verb == "open" and (moment is None or wall.date() != today):
                raise ApiError(400, "WRONG_DATETIME", "Day open date should correspond to the current date")
        if moment is None:  # an offset no zone has, on a day that is not checked
            raise ApiError(400, "WRONG_DATETIME", "Wrong datetime")
        if not params.get("REPORT") and not self.free_schedule:
            raise ApiError(400, "REPORT_NEEDED", "Report is needed")
        return moment

    def describe(self, exc: ApiError) -> str:
        """An error's description in the portal's language."""
        return RUSSIAN.get(exc.description, exc.description) if self.lang == "ru" else exc.description

    def dispatch(self, method: str, params: dict[str, Any], caller: int, who: str = "") -> Any:
        """Run one REST method; return its result or raise ApiError. `who`: the webhook or app
        calling, whose operating time per method is counted (see operating())."""
        params = {str(k).upper(): v for k, v in params.items()}
        if method == "batch":
            self.local.who = who  # _batch(params, caller) keeps the signature tests wrap
            return self._batch(params, caller)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None) if METHOD_NAME.match(method) else None
        if handler is None:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        with self.lock:
            used, _ = self.operating(who, method)
            if used > self.operating_limit:
                raise ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
            started = time.perf_counter()
            try:
                if method in CHANGES:
                    return self._change(method, handler, params, caller)
                return handler(params, caller)
            finally:
                self.charge(who, method, time.perf_counter() - started)

    # -- the operating time limit (cloud portals: 480 s of a method's time in 10 one-minute baskets) --
    def charge(self, who: str, method: str, seconds: float) -> None:
        """Count `seconds` of `method`'s operating time for `who`, in the basket of the current minute
        (tests charge minutes at once instead of waiting for them)."""
        with self.lock:
            now = self.clock()
            baskets = self.baskets[(who, method)]
            baskets[:] = [b for b in baskets if b[0] + OPERATING_WINDOW > now]
            if baskets and now - baskets[-1][0] < 60:
                baskets[-1][1] += seconds
            else:
                baskets.append([now, seconds])

    def operating(self, who: str, method: str) -> tuple[float, float | None]:
        """(seconds of `method` counted for `who` in the last 10 minutes, when the oldest basket
        leaves the count: the `time` block's operating and operating_reset_at)."""
        with self.lock:
            now = self.clock()
            baskets = [b for b in self.baskets.get((who, method), ()) if b[0] + OPERATING_WINDOW > now]
            if not baskets:
                return 0.0, None
            return sum(b[1] for b in baskets), baskets[0][0] + OPERATING_WINDOW

    def timing(self, started: float, clock: datetime, who: str = "", method: str = "") -> dict[str, Any]:
        """The `time` block of an answer (`clock`: the portal's own, as the command started); with the operating
        time when a method was named."""
        block = self._timing(started, clock)
        if method and method != "batch":  # the outer batch is not counted, its commands are
            used, reset = self.operating(who, method)
            block.update(operating=used, operating_reset_at=int(reset if reset is not None else self.clock()))
        return block

    def _change(
        self, method: str, handler: Callable[[dict[str, Any], int], Any], params: dict[str, Any], caller: int
    ) -> Any:
        """timeman.open, .close or .pause, and what every change records beside its decision: the
        supervisor's confirmation (ACTIVE) and the place (LAT, LON)."""
        uid = self._user(caller, params)
        day = self._day(uid)
        if method == "timeman.pause" and day and day["STATUS"] == "EXPIRED":
            return dict(day)  # inferred: a forgotten day is not paused; pause answers the status as it is
        before, was, made = day, bool(day.get("ACTIVE", True)) if day else True, self.applied[method][uid]
        result = handler(params, caller)
        day = self.days.get(uid)
        if day is None or self.applied[method][uid] == made:
            return result
        moment = php_atom(params.get("TIME"))
        far = moment is not None and not self.free_schedule
        if far and moment is not None:
            sent = moment[0] - moment[1]
            now = self.now().astimezone(timezone.utc).replace(tzinfo=None)
            far = abs(sent - now) > ALLOWED_DELTA
        # ACTIVE: false while a change of the day awaits the supervisor's confirmation (a time set
        # further from now than the schedule's allowed delta); a new day starts confirmed
        day["ACTIVE"] = (day is not before or was) and not far
        where = {"timeman.open": "OPEN", "timeman.close": "CLOSE"}.get(method)
        for axis in ("LAT", "LON") if where else ():
            if params.get(axis) not in (None, ""):
                day[f"{axis}_{where}"] = _number(params[axis])
        return {**result, **{k: day[k] for k in result if k in day}} if isinstance(result, dict) else result

    def _day(self, uid: int) -> dict[str, Any] | None:
        """A user's day; one opened before today and never closed is EXPIRED, with the schedule's
        end of that day as TIME_FINISH_DEFAULT (unless the portal is made without it)."""
        day = self.days.get(uid)
        if day and day["STATUS"] in ("OPENED", "PAUSED") and day["TIME_START"][:10] < _atom(self.now())[:10]:
            day.update(STATUS="EXPIRED")
            if self.finish_default:
                day["TIME_FINISH_DEFAULT"] = day["TIME_START"][:10] + "T18:00:00" + day["TIME_START"][19:]
        return day

    def _m_user_get(self, params: dict[str, Any], caller: int) -> list[dict[str, Any]]:
        """user.get as the docs describe it, over the fields the sandbox's users have (USER_FIELDS):
        FILTER with every documented prefix, or (without FILTER) the fields beside the other
        parameters; sort and order (also order as {FIELD: ASC|DESC}); select; start rounded down to
        a page of 50 (-1: no count). A filter field or prefix it cannot apply is refused, never
        ignored."""
        if not self.user_scope:
            raise ApiError(403, "insufficient_scope", NO_SCOPE)
        given = params.get("FILTER")
        if "FILTER" in params:
            if given in ("", [], None):
                given = {}
            if not isinstance(given, dict):
                raise ApiError(400, "INVALID_FILTER", "FILTER must be a map of field conditions")
            conditions = dict(given)
            if "ACTIVE" in params:  # the older form: filter fields beside the other parameters
                conditions.setdefault("ACTIVE", params["ACTIVE"])
        else:
            conditions = {k: v for k, v in params.items() if k not in USER_GET_PARAMS}
        tests = [_condition(str(key), value) for key, value in conditions.items()]
        users = [self._user_fields(uid) for uid in sorted(self.users)]
        users = [user for user in users if all(test(user) for test in tests)]
        for field, descending in reversed(_ordering(params)):
            users.sort(key=lambda user, f=field: (user[f] is None, user[f]), reverse=descending)  # type: ignore[misc]  # mypy infers no lambda with a default
        try:
            start = int(str(params.get("START") or 0).strip())
        except ValueError:
            start = 0
        fields = _selected(params.get("SELECT"))
        page = [
            {k: v for k, v in user.items() if fields is None or k in fields}
            for user in users[max(0, start) // PAGE * PAGE :][:PAGE]
        ]
        for user in page:
            if "ID" in user:
                user["ID"] = str(user["ID"])
        if start == -1:  # no count: a plain list, neither next nor total (Bitrix24's fast paging)
            return page
        return Paged(page, max(0, start) // PAGE * PAGE, len(users))

    def _user_fields(self, uid: int) -> dict[str, Any]:
        return {
            "ID": uid,
            "ACTIVE": uid not in self.inactive,
            "NAME": "User",
            "LAST_NAME": str(uid),
            "USER_TYPE": "employee",
        }

    def _m_server_time(self, params: dict[str, Any], caller: int) -> str:
        return _atom(self.now())

    def _m_timeman_status(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        uid = self._user(caller, params)
        day = self._day(uid)
        return dict(day) if day else {"STATUS": "CLOSED"}

    def _m_timeman_settings(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        uid = self._user(caller, params)
        return {
            "UF_TIMEMAN": True,
            "UF_TM_FREE": self.free_schedule,
            "UF_TM_MAX_START": "09:15:00",
            "UF_TM_MIN_FINISH": "18:00:00",
            "UF_TM_MIN_DURATION": "08:00:00",
            "UF_TM_ALLOWED_DELTA": "00:15:00",
            **({"ADMIN": uid in self.admins} if uid == caller else {}),  # only for the caller's own settings
        }

    def _m_timeman_open(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        """The core chooses REOPEN (a day of today: open, paused or closed) or OPEN (no day, or a closed one of
        an earlier date). REOPEN with a TIME is refused with code TIME (server code); a REOPEN or an OPEN that
        has nothing to do answers 200 with the status unchanged (server code). An EXPIRED day is left as it is,
        200 and unchanged (inferred: the source does not show it; a person must close the forgotten day first,
        and a new day over it would lose it)."""
        uid = self._user(caller, params)
        day = self._day(uid)
        timed = params.get("TIME") not in (None, "")
        if day and day["STATUS"] == "EXPIRED":
            return dict(day)
        if day and (day["STATUS"] != "CLOSED" or day["TIME_START"][:10] == _atom(self.now())[:10]):  # REOPEN
            if timed:
                raise ApiError(400, "TIME", "Unable to set time, work day is paused")
            if day["STATUS"] == "OPENED":
                return dict(day)  # nothing to resume
            day.update(STATUS="OPENED", ACTIVE=True, TIME_FINISH=None)  # resumes a paused day, re-opens today's
        else:  # OPEN: a new day
            moment = self._time(params, None, "open") or self.now()
            self.days[uid] = day = self._record("OPENED", moment)
        self.applied["timeman.open"][uid] += 1
        return dict(day)

    def _m_timeman_close(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        uid = self._user(caller, params)
        day = self._day(uid)
        if not day or day["STATUS"] == "CLOSED":
            # a TIME is read and dated first (format, the day's own date); no reason is asked for: the core's
            # close fails for the day, without an exception, and the method answers the status (CLOSED_CLOSE)
            self._time({**params, "REPORT": "-"}, day["TIME_START"] if day else None, "close")
            if self.closed_close == "refuse":
                raise ApiError(400, "", NOT_CLOSABLE)
            return dict(day) if day else {"STATUS": "CLOSED"}
        moment = self._time(params, day["TIME_START"], "close")
        if day["STATUS"] == "EXPIRED":
            if moment is None:
                raise ApiError(400, "WD_EXPIRED", "Workday is expired")
            if not params.get("REPORT"):  # a forgotten day always wants a reason, free schedule or not
                raise ApiError(400, "REPORT_NEEDED", "Report is needed")
        moment = moment or self.now()
        start = _parse(day["TIME_START"])
        day.update(
            STATUS="CLOSED",
            ACTIVE=False,
            TIME_FINISH=_atom(moment),
            IP_CLOSE="127.0.0.1",
            DURATION=_hms((moment - start).total_seconds()),
        )
        day.pop("TIME_FINISH_DEFAULT", None)
        self.applied["timeman.close"][uid] += 1
        return dict(day)

    def _m_timeman_pause(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        """Always 200 with the status record, never an error: the method ignores the core's result (server
        code); a user with no day gets {"STATUS": "CLOSED"}. Not idempotent: today's closed day is resumed, as
        the docs say (timeman-pause.md); an older closed day, a paused or an EXPIRED one is left unchanged
        (inferred: the core has nothing it may do to them)."""
        uid = self._user(caller, params)
        day = self._day(uid)
        if not day:
            return {"STATUS": "CLOSED"}
        if day["STATUS"] == "OPENED":
            day.update(STATUS="PAUSED", ACTIVE=False)
        elif day["STATUS"] == "CLOSED" and day["TIME_START"][:10] == _atom(self.now())[:10]:
            day.update(STATUS="OPENED", ACTIVE=True, TIME_FINISH=None)
        else:
            return dict(day)
        self.applied["timeman.pause"][uid] += 1
        return dict(day)

    def _batch(self, params: dict[str, Any], caller: int) -> dict[str, Any]:
        """batch as the docs describe it: `cmd` a map or a list (then its keys are 0, 1, ...); the
        commands past 50 each end with ERROR_BATCH_LENGTH_EXCEEDED, a nested batch with
        ERROR_BATCH_METHOD_NOT_ALLOWED; result_time only for the commands that succeeded."""
        cmd = params.get("CMD")
        if cmd in (None, "", []):
            cmd = {}
        if isinstance(cmd, list):
            cmd = dict(enumerate(cmd))
        if not isinstance(cmd, dict):
            raise ApiError(400, "INVALID_ARG_VALUE", "cmd must be an array of commands")
        halt = _truthy(params.get("HALT", 0))
        who = getattr(self.local, "who", "")
        results: dict[Any, Any]
        errors: dict[Any, dict[str, str]]
        times: dict[Any, dict[str, Any]]
        totals: dict[Any, int]
        nexts: dict[Any, int]
        results, errors, times, totals, nexts = {}, {}, {}, {}, {}
        for index, (key, line) in enumerate(cmd.items()):
            started, clock = time.time(), self.now()
            name, _, query = str(line).partition("?")
            name = name.strip().lower()
            try:
                if index >= BATCH_LIMIT:
                    raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
                if name == "batch":
                    raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
                tables = {"result": results, "result_error": errors, "result_total": totals, "result_next": nexts}
                results[key] = self.dispatch(name, _linked(php_query(query), tables), caller, who)
            except ApiError as exc:
                errors[key] = {"error": exc.error, "error_description": self.describe(exc)}
                if halt:
                    break
                continue
            if isinstance(results.get(key), Paged):
                totals[key] = results[key].total
                if results[key].next is not None:
                    nexts[key] = results[key].next
            times[key] = self.timing(started, clock, who, name)
        # PHP serialises empty maps as []
        return {
            "result": _php_array(results),
            "result_error": _php_array(errors),
            "result_total": _php_array(totals),
            "result_next": _php_array(nexts),
            "result_time": _php_array(times),
        }

    def _timing(self, started: float, clock: datetime) -> dict[str, Any]:
        """A `time` block: `date_start` is the portal's own clock (`now`) as the command started, the clock its
        days are dated by (a close's TIME_FINISH is never before it)."""
        finished = time.time()
        return {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": _atom(clock),
            "date_finish": _atom(max(clock, self.now())),
        }

    def authenticate(self, hook: tuple[int, str] | None, params: dict[str, Any]) -> int:
        """The calling user: a webhook's (user, code), or the `auth` token in the
        parameters (removed from them). Raises ApiError as a portal answers."""
        if hook:
            caller, code = hook
            if code != self.code or caller not in self.users:
                raise ApiError(401, "INVALID_CREDENTIALS", "Invalid request credentials")
            return caller
        auth = params.pop("auth", None) or params.pop("AUTH", None)
        if not auth:
            raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if not isinstance(auth, str):
            raise ApiError(401, "invalid_token", "The access token provided is invalid.")
        if auth == EXPIRED_TOKEN:
            raise ApiError(401, "expired_token", "The access token provided has expired.")
        if auth == self.token:
            return min(self.admins) if self.admins else 1
        from oint_py.sandbox.oauth import OAuthError

        try:
            issued = self.oauth.check(auth)
        except OAuthError as exc:
            raise ApiError(exc.status, exc.error, exc.description) from None
        if not issued:
            raise ApiError(401, "invalid_token", "The access token provided is invalid.")
        return min(self.admins) if self.admins else 1
