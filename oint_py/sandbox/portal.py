"""The emulated portal's state and rules: users (active or not), a workday
per user, `user.get` with its paging, the timeman.* methods, `batch`, the
documented error codes, the leaky-bucket rate limit and the queue of injected
faults. No sockets here: server.py serves it. Thread-safe (one lock)."""

import re
import threading
import time
from collections import Counter, defaultdict, deque
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

ATOM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
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
PAGE = 50  # user.get answers 50 users a page, as Bitrix24 does
# --scenario forgotten: the kind of each user, by (uid * 7) % 50 so the kinds are spread out and every 50
# users hold exactly 35 with today's day open, 5 paused, 5 closed, 4 left open since yesterday and 1 inactive
_FORGOTTEN = ("opened",) * 35 + ("paused",) * 5 + ("closed",) * 5 + ("expired",) * 4 + ("inactive",)
SCENARIOS = {
    "forgotten": "70% of users with today's day open, 10% paused, 10% closed, 8% with yesterday's day never "
    "closed (EXPIRED), 2% inactive (left open days from a week ago; not listed by user.get)",
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


def forgotten_kind(uid: int) -> str:
    """opened, paused, closed, expired or inactive: a user's lot in --scenario forgotten."""
    return _FORGOTTEN[uid * 7 % len(_FORGOTTEN)]


def _truthy(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "y", "1")


def php_query(query: str) -> dict:
    """A batch command's query as PHP's parse_str reads it: `FILTER[ACTIVE]=true` is {"FILTER": {"ACTIVE": "true"}}."""
    params: dict = {}
    for name, value in parse_qsl(query):
        head, _, rest = name.partition("[")
        keys = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        target = params
        for k in keys[:-1]:
            target = target.setdefault(k, {}) if isinstance(target.get(k, {}), dict) else {}
        target[keys[-1]] = value
    return params


class Paged(list):
    """A page of a list method's result, with what Bitrix24 sends beside it: `next` (absent on the last
    page) and `total`, top-level in a plain answer and in result_next/result_total in a batch."""

    def __init__(self, items, start: int, total: int):
        super().__init__(items)
        self.next = start + PAGE if start + PAGE < total else None
        self.total = total

    def paging(self) -> dict:
        return {**({"next": self.next} if self.next is not None else {}), "total": self.total}


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class PortalState:
    """The emulated portal: state, rules and faults."""

    def __init__(
        self,
        *,
        code=DEFAULT_CODE,
        token=DEFAULT_TOKEN,
        users=1000,
        admins=(1,),
        free_schedule=False,
        rate_limit: tuple[float, float] | None = None,
        opened=True,
        scenario: str | None = None,
        user_scope=True,
        finish_default=True,
        now=None,
        lang="en",
        token_ttl: float | None = None,
        closed_close: str = "record",
    ):
        """`scenario`: a name in SCENARIOS (the days users start with; else all open, or all
        closed when not `opened`); `user_scope`: the webhook (and token) may call user.get,
        else insufficient_scope; `finish_default`: EXPIRED days state TIME_FINISH_DEFAULT;
        `now`: the portal's clock (a callable giving an aware datetime; tests fix the date);
        `lang`: "ru" answers errors in Russian, as a Russian-language portal does;
        `token_ttl`: seconds an access token from the OAuth server (sandbox/oauth.py) lives;
        `closed_close`: a name in CLOSED_CLOSE, how a close of a day that is not open is answered."""
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if closed_close not in CLOSED_CLOSE:
            raise ValueError(f"unknown closed_close {closed_close!r}; known: {', '.join(CLOSED_CLOSE)}")
        self.closed_close = closed_close
        self.code, self.token = code, token
        from .oauth import DEFAULT_TTL, OAuthState

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
        self.throttled = 0  # requests refused with QUERY_LIMIT_EXCEEDED by the rate limit
        self.lock = threading.RLock()
        self.days: dict[int, dict] = {}
        self.requests: list[dict] = []  # every request: method, path, verb, headers, params
        self.faults: deque = deque()  # consumed one per request: see inject()
        self.dead = False  # after the fault "die": every request is dropped
        self.applied: defaultdict = defaultdict(Counter)  # {"timeman.close": {uid: changes made}}, for tests
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

    def calls(self, method: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if method is None or r["method"] == method]

    # -- the rules ----------------------------------------------------------
    def _record(self, status: str, start: datetime) -> dict:
        return {
            "STATUS": status,
            "TIME_START": _atom(start),
            "TIME_FINISH": None,
            "DURATION": "00:00:00",
            "TIME_LEAKS": "00:00:00",
            "ACTIVE": status != "CLOSED",
            "IP_OPEN": "127.0.0.1",
            "IP_CLOSE": "",
            "LAT_OPEN": 0,
            "LON_OPEN": 0,
            "LAT_CLOSE": 0,
            "LON_CLOSE": 0,
            "TZ_OFFSET": int(start.utcoffset().total_seconds()),
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

    def _user(self, caller: int, params: dict) -> int:
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

    def _time(self, params: dict, day_start: str | None, verb: str) -> datetime | None:
        raw = params.get("TIME")
        if raw in (None, ""):
            return None
        if not isinstance(raw, str) or not ATOM.match(raw):
            raise ApiError(400, "WRONG_DATETIME_FORMAT", "Wrong datetime format")
        moment = datetime.fromisoformat(raw)
        if verb == "close" and day_start and raw[:10] != day_start[:10]:
            raise ApiError(400, "WRONG_DATETIME", "Day close date should correspond to the day open date")
        if verb == "open" and raw[:10] != _atom(self.now())[:10]:
            raise ApiError(400, "WRONG_DATETIME", "Day open date should correspond to the current date")
        if not params.get("REPORT") and not self.free_schedule:
            raise ApiError(400, "REPORT_NEEDED", "Report is needed")
        return moment

    def describe(self, exc: ApiError) -> str:
        """An error's description in the portal's language."""
        return RUSSIAN.get(exc.description, exc.description) if self.lang == "ru" else exc.description

    def dispatch(self, method: str, params: dict, caller: int):
        """Run one REST method; return its result or raise ApiError."""
        params = {str(k).upper(): v for k, v in params.items()}
        if method == "batch":
            return self._batch(params, caller)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        with self.lock:
            return handler(params, caller)

    def _day(self, uid: int) -> dict:
        """A user's day; one opened before today and never closed is EXPIRED, with the schedule's
        end of that day as TIME_FINISH_DEFAULT (unless the portal is made without it)."""
        day = self.days.get(uid)
        if day and day["STATUS"] in ("OPENED", "PAUSED") and day["TIME_START"][:10] < _atom(self.now())[:10]:
            day.update(STATUS="EXPIRED", ACTIVE=False)
            if self.finish_default:
                day["TIME_FINISH_DEFAULT"] = day["TIME_START"][:10] + "T18:00:00" + day["TIME_START"][19:]
        return day

    def _m_user_get(self, params, caller):
        if not self.user_scope:
            raise ApiError(403, "insufficient_scope", NO_SCOPE)
        given = params.get("FILTER")
        conditions = {str(k).upper(): v for k, v in given.items()} if isinstance(given, dict) else {}
        if "ACTIVE" in params:  # the older form: filter fields beside the other parameters
            conditions.setdefault("ACTIVE", params["ACTIVE"])
        ids = sorted(
            self.users,
            reverse=str(params.get("SORT", "")).upper() == "ID" and str(params.get("ORDER", "")).upper() == "DESC",
        )
        if "ACTIVE" in conditions:
            active = _truthy(conditions["ACTIVE"])
            ids = [uid for uid in ids if (uid not in self.inactive) == active]
        if str(conditions.get(">ID", "")).isdigit():  # paging by ID: those above the last one seen
            ids = [uid for uid in ids if uid > int(conditions[">ID"])]
        try:
            start = int(str(params.get("START") or 0))
        except ValueError:
            start = 0
        page = [
            {
                "ID": str(uid),
                "ACTIVE": uid not in self.inactive,
                "NAME": "User",
                "LAST_NAME": str(uid),
                "USER_TYPE": "employee",
            }
            for uid in ids[max(0, start) : max(0, start) + PAGE]
        ]
        if start == -1:  # no count: a plain list, neither next nor total (Bitrix24's fast paging)
            return page
        return Paged(page, max(0, start), len(ids))

    def _m_server_time(self, params, caller):
        return _atom(self.now())

    def _m_timeman_status(self, params, caller):
        uid = self._user(caller, params)
        day = self._day(uid)
        return dict(day) if day else {"STATUS": "CLOSED"}

    def _m_timeman_settings(self, params, caller):
        uid = self._user(caller, params)
        return {
            "UF_TIMEMAN": True,
            "UF_TM_FREE": self.free_schedule,
            "UF_TM_MAX_START": "09:15:00",
            "UF_TM_MIN_FINISH": "18:00:00",
            "UF_TM_MIN_DURATION": "08:00:00",
            "UF_TM_ALLOWED_DELTA": "00:15:00",
            "ADMIN": uid in self.admins,
        }

    def _m_timeman_open(self, params, caller):
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

    def _m_timeman_close(self, params, caller):
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

    def _m_timeman_pause(self, params, caller):
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

    def _batch(self, params, caller):
        cmd = params.get("CMD") or {}
        halt = str(params.get("HALT", "0")) not in ("0", "", "false", "False")
        if not isinstance(cmd, dict):
            raise ApiError(400, "INVALID_ARG_VALUE", "cmd must be a map")
        if len(cmd) > 50:
            raise ApiError(400, "INVALID_ARG_VALUE", "Max batch length exceeded")
        results, errors, times, totals, nexts = {}, {}, {}, {}, {}
        for key, line in cmd.items():
            started, clock = time.time(), self.now()
            name, _, query = str(line).partition("?")
            try:
                results[key] = self.dispatch(name.strip().lower(), php_query(query), caller)
            except ApiError as exc:
                errors[key] = {"error": exc.error, "error_description": self.describe(exc)}
                if halt:
                    break
            if isinstance(results.get(key), Paged):
                totals[key] = results[key].total
                if results[key].next is not None:
                    nexts[key] = results[key].next
            times[key] = self._timing(started, clock)
        # PHP serialises empty maps as []
        return {
            "result": results or [],
            "result_error": errors or [],
            "result_total": totals or [],
            "result_next": nexts or [],
            "result_time": times or [],
        }

    def _timing(self, started: float, clock: datetime) -> dict:
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

    def authenticate(self, hook: tuple[int, str] | None, params: dict) -> int:
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
        if auth == EXPIRED_TOKEN:
            raise ApiError(401, "expired_token", "The access token provided has expired.")
        if auth == self.token:
            return min(self.admins) if self.admins else 1
        from .oauth import OAuthError

        try:
            issued = self.oauth.check(auth)
        except OAuthError as exc:
            raise ApiError(exc.status, exc.error, exc.description) from None
        if not issued:
            raise ApiError(401, "invalid_token", "The access token provided is invalid.")
        return min(self.admins) if self.admins else 1
