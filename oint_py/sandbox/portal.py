"""The emulated portal's state and rules: users, a workday per user, the
timeman.* methods, `batch`, the documented error codes, the leaky-bucket rate
limit and the queue of injected faults. No sockets here: server.py serves it.
Thread-safe (one lock)."""

import re
import threading
import time
from collections import deque
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
    "deep:N (JSON nested N levels)"
)


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


RUSSIAN = {
    "User not found": "Пользователь не найден",
    "Workday is not opened": "Рабочий день не начат",
    "Report is needed": "Необходимо указать причину изменения",
    "Wrong datetime format": "Неверный формат даты",
}


def _now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)


def _atom(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class PortalState:
    """The emulated portal: state, rules and faults."""

    def __init__(self, *, code=DEFAULT_CODE, token=DEFAULT_TOKEN, users=1000, admins=(1,), free_schedule=False,
                 rate_limit: tuple[float, float] | None = None, opened=True, now=None, lang="en"):
        """`now`: the portal's clock (a callable giving an aware datetime; tests fix the date);
        `lang`: "ru" answers errors in Russian, as a Russian-language portal does."""
        self.code, self.token = code, token
        self.now = now or _now
        self.lang = lang
        self.users = set(range(1, users + 1))
        self.admins = set(admins)
        self.free_schedule = free_schedule
        self.rate_limit = rate_limit  # (capacity, drain per second), as Bitrix24's leaky bucket
        self.level, self.level_stamp = 0.0, time.monotonic()
        self.throttled = 0  # requests refused with QUERY_LIMIT_EXCEEDED by the rate limit
        self.lock = threading.RLock()
        self.days: dict[int, dict] = {}
        self.requests: list[dict] = []  # every request: method, path, verb, headers, params
        self.faults: deque = deque()  # consumed one per request: see inject()
        # "portal moved": answer every request with a redirect to this base URL + the path. A
        # base ending in /moved stays on this portal: paths under /moved are served as without it.
        self.redirect_to: str | None = None
        self.redirect_status = 302
        if opened:
            start = self.now().replace(hour=9, minute=0, second=0)
            if start > self.now():
                start = self.now() - timedelta(minutes=1)
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
        return {"STATUS": status, "TIME_START": _atom(start), "TIME_FINISH": None, "DURATION": "00:00:00",
                "TIME_LEAKS": "00:00:00", "ACTIVE": status != "CLOSED", "IP_OPEN": "127.0.0.1", "IP_CLOSE": "",
                "LAT_OPEN": 0, "LON_OPEN": 0, "LAT_CLOSE": 0, "LON_CLOSE": 0,
                "TZ_OFFSET": int(start.utcoffset().total_seconds())}

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
        day = self.days.get(uid)
        if day and day["STATUS"] == "OPENED" and day["TIME_START"][:10] < _atom(self.now())[:10]:
            day.update(STATUS="EXPIRED", TIME_FINISH_DEFAULT=day["TIME_START"][:10] + "T18:00:00" + day["TIME_START"][19:])
        return day

    def _m_timeman_status(self, params, caller):
        uid = self._user(caller, params)
        day = self._day(uid)
        return dict(day) if day else {"STATUS": "CLOSED"}

    def _m_timeman_settings(self, params, caller):
        uid = self._user(caller, params)
        return {"UF_TIMEMAN": True, "UF_TM_FREE": self.free_schedule, "UF_TM_MAX_START": "09:15:00",
                "UF_TM_MIN_FINISH": "18:00:00", "UF_TM_MIN_DURATION": "08:00:00",
                "UF_TM_ALLOWED_DELTA": "00:15:00", "ADMIN": uid in self.admins}

    def _m_timeman_open(self, params, caller):
        uid = self._user(caller, params)
        day = self._day(uid)
        moment = self._time(params, None, "open") or self.now()
        if day and day["STATUS"] in ("OPENED", "PAUSED") and day["TIME_START"][:10] == _atom(moment)[:10]:
            day.update(STATUS="OPENED", ACTIVE=True)  # resumes a paused day
        elif day and day["STATUS"] == "CLOSED" and day["TIME_START"][:10] == _atom(moment)[:10]:
            day.update(STATUS="OPENED", ACTIVE=True, TIME_FINISH=None)  # re-opens today's day
        else:
            self.days[uid] = day = self._record("OPENED", moment)
        return dict(day)

    def _m_timeman_close(self, params, caller):
        uid = self._user(caller, params)
        day = self._day(uid)
        if not day or day["STATUS"] == "CLOSED":
            raise ApiError(400, "", "Workday is not opened")
        moment = self._time(params, day["TIME_START"], "close")
        if moment is None and day["STATUS"] == "EXPIRED":
            raise ApiError(400, "WD_EXPIRED", "Workday is expired")
        moment = moment or self.now()
        start = datetime.fromisoformat(day["TIME_START"])
        day.update(STATUS="CLOSED", ACTIVE=False, TIME_FINISH=_atom(moment), IP_CLOSE="127.0.0.1",
                   DURATION=_hms((moment - start).total_seconds()))
        day.pop("TIME_FINISH_DEFAULT", None)
        return dict(day)

    def _m_timeman_pause(self, params, caller):
        uid = self._user(caller, params)
        day = self._day(uid)
        if not day:
            raise ApiError(400, "", "Workday is not opened")
        # not idempotent, as on a real portal: pausing a closed day resumes it
        day.update(STATUS="OPENED" if day["STATUS"] == "CLOSED" else "PAUSED", TIME_FINISH=None)
        day["ACTIVE"] = day["STATUS"] == "OPENED"
        return dict(day)

    def _batch(self, params, caller):
        cmd = params.get("CMD") or {}
        halt = str(params.get("HALT", "0")) not in ("0", "", "false", "False")
        if not isinstance(cmd, dict):
            raise ApiError(400, "INVALID_ARG_VALUE", "cmd must be a map")
        if len(cmd) > 50:
            raise ApiError(400, "INVALID_ARG_VALUE", "Max batch length exceeded")
        results, errors, times = {}, {}, {}
        for key, line in cmd.items():
            started = time.time()
            name, _, query = str(line).partition("?")
            try:
                results[key] = self.dispatch(name.strip().lower(), dict(parse_qsl(query)), caller)
            except ApiError as exc:
                errors[key] = {"error": exc.error, "error_description": self.describe(exc)}
                if halt:
                    break
            times[key] = self._timing(started)
        # PHP serialises empty maps as []
        return {"result": results or [], "result_error": errors or [], "result_total": [],
                "result_next": [], "result_time": times or []}

    @staticmethod
    def _timing(started: float) -> dict:
        finished = time.time()
        return {"start": started, "finish": finished, "duration": finished - started,
                "processing": finished - started, "date_start": _atom(datetime.fromtimestamp(started).astimezone()),
                "date_finish": _atom(datetime.fromtimestamp(finished).astimezone())}



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
        if auth != self.token:
            raise ApiError(401, "invalid_token", "The access token provided is invalid.")
        return min(self.admins) if self.admins else 1
