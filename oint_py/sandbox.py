"""A Bitrix24 portal on loopback, for dry runs and for the tests.

It speaks the REST protocol the way a portal does: webhook URLs
(`/rest/<user>/<code>/<method>`) and token auth (`/rest/<method>` with `auth`),
JSON or form bodies, the timeman.* methods with a workday per user, `batch`,
the documented error codes, an optional leaky-bucket rate limit, and faults
injected on demand (5xx, HTML pages, empty or truncated bodies, slow answers,
dropped connections, redirects). Standard library only.

    oint sandbox --port 8024                # foreground, Ctrl-C stops it
    oint sandbox --port 8024 --background   # detached; stops after --stop-after seconds
"""

import argparse
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

ATOM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
DEFAULT_CODE = "sandbox"
DEFAULT_TOKEN = "sandbox-token"
EXPIRED_TOKEN = "expired-token"
STATUS_TEXT = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
               404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
               503: "Service Unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)


def _atom(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Portal:
    """The emulated portal: state, rules and faults. Thread-safe."""

    def __init__(self, *, host="127.0.0.1", port=0, code=DEFAULT_CODE, token=DEFAULT_TOKEN, users=1000,
                 admins=(1,), free_schedule=False, rate_limit: tuple[float, float] | None = None,
                 certfile=None, keyfile=None, opened=True):
        self.code, self.token = code, token
        self.users = set(range(1, users + 1))
        self.admins = set(admins)
        self.free_schedule = free_schedule
        self.rate_limit = rate_limit  # (capacity, drain per second), as Bitrix24's leaky bucket
        self.level, self.level_stamp = 0.0, time.monotonic()
        self.throttled = 0  # requests refused with QUERY_LIMIT_EXCEEDED by the rate limit
        self.lock = threading.RLock()
        self.days: dict[int, dict] = {}
        self.requests: list[dict] = []  # every request: method, path, headers, body, params
        self.faults: deque = deque()  # consumed one per request: see inject()
        self.redirect_to: str | None = None  # "portal moved": answer every request with a redirect there
        self.redirect_status = 302
        if opened:
            start = _now().replace(hour=9, minute=0, second=0)
            if start > _now():
                start = _now() - timedelta(minutes=1)
            for uid in self.users:
                self.days[uid] = self._record("OPENED", start)
        self.server = _Server((host, port), _Handler)
        self.server.portal = self
        self.scheme = "http"
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.server.server_address[0]}:{self.port}"

    def webhook(self, user: int = 1) -> str:
        return f"{self.base}/rest/{user}/{self.code}/"

    def start(self) -> "Portal":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, *faults: str) -> None:
        """Queue faults, one per coming request:
        `status:503` (a JSON error for that status), `html:502`, `empty:200`, `truncated:200`,
        `slow:SECONDS` (then answer normally), `reset` (drop the connection unanswered),
        `apply-reset` (apply the call, then drop the connection), `retry-after:SECONDS` (a 503 with it)."""
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
        if verb == "open" and raw[:10] != _atom(_now())[:10]:
            raise ApiError(400, "WRONG_DATETIME", "Day open date should correspond to the current date")
        if not params.get("REPORT") and not self.free_schedule:
            raise ApiError(400, "REPORT_NEEDED", "Report is needed")
        return moment

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
        if day and day["STATUS"] == "OPENED" and day["TIME_START"][:10] < _atom(_now())[:10]:
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
        moment = self._time(params, None, "open") or _now()
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
        moment = moment or _now()
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
                errors[key] = {"error": exc.error, "error_description": exc.description}
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up are no news
        pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        from .errors import UsageFailure

        raise UsageFailure(f"sandbox: {message}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Bitrix24Sandbox/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    @property
    def portal(self) -> Portal:
        return self.server.portal

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _send(self, status: int, body: bytes, content_type="application/json; charset=utf-8", extra=()):
        self.send_response(status, STATUS_TEXT.get(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data, extra=()):
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), extra=extra)

    def _error(self, status: int, error: str, description: str, extra=()):
        self._json(status, {"error": error, "error_description": description}, extra)

    def _reset(self):
        # SO_LINGER 0: the peer sees a connection reset, not a clean close
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _params(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = dict(parse_qsl(urlsplit(self.path).query))
        if not raw:
            return query
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                data = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise ApiError(400, "INVALID_REQUEST", "Invalid JSON body") from None
            return {**query, **(data if isinstance(data, dict) else {})}
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        cmd = {k[4:-1]: v for k, v in form.items() if k.startswith("cmd[") and k.endswith("]")}
        return {**query, **{k: v for k, v in form.items() if not k.startswith("cmd[")}, **({"cmd": cmd} if cmd else {})}

    def _handle(self):
        portal = self.portal
        path = urlsplit(self.path).path
        try:
            params = self._params()
        except ApiError as exc:
            return self._error(exc.status, exc.error, exc.description)
        hook = re.match(r"^/rest/(\d+)/([^/]+)/([\w.]+?)(?:\.json)?/?$", path)
        oauth = re.match(r"^/rest/([\w.]+?)(?:\.json)?/?$", path)
        method = (hook or oauth).group(3 if hook else 1).lower() if (hook or oauth) else ""
        with portal.lock:
            portal.requests.append({"method": method, "path": path, "verb": self.command,
                                    "headers": dict(self.headers.items()), "params": dict(params)})
            fault = portal.faults.popleft() if portal.faults else None
            moved = portal.redirect_to
        if moved:
            return self._send(portal.redirect_status, b"", "text/html", [("Location", moved.rstrip("/") + path)])
        if fault:
            kind, _, arg = fault.partition(":")
            if kind == "slow":
                time.sleep(float(arg))
            elif kind == "reset":
                return self._reset()
            elif kind == "status":
                code = int(arg)
                error = {500: "INTERNAL_SERVER_ERROR", 503: "QUERY_LIMIT_EXCEEDED", 429: "OPERATION_TIME_LIMIT"}
                return self._error(code, error.get(code, "ERROR"), "Injected fault")
            elif kind == "retry-after":
                return self._error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests", [("Retry-After", arg)])
            elif kind == "html":
                page = f"<html><head><title>{arg} Bad Gateway</title></head><body><h1>{arg} Bad Gateway</h1>nginx</body></html>"
                return self._send(int(arg), page.encode(), "text/html")
            elif kind == "empty":
                return self._send(int(arg), b"")
            elif kind == "truncated":
                return self._send(int(arg), b'{"result": {"STATUS": "CLO')
        if not (hook or oauth):
            return self._error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        if hook:
            caller = int(hook.group(1))
            if hook.group(2) != portal.code or caller not in portal.users:
                return self._error(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        else:
            auth = params.pop("auth", None) or params.pop("AUTH", None)
            if not auth:
                return self._error(401, "NO_AUTH_FOUND", "Wrong authorization data")
            if auth == EXPIRED_TOKEN:
                return self._error(401, "expired_token", "The access token provided has expired.")
            if auth != portal.token:
                return self._error(401, "invalid_token", "The access token provided is invalid.")
            caller = min(portal.admins) if portal.admins else 1
        started = time.time()
        with portal.lock:
            throttled = portal._throttled()
        if throttled:
            return self._error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        try:
            result = portal.dispatch(method, params, caller)
        except ApiError as exc:
            return self._error(exc.status, exc.error, exc.description)
        if fault == "apply-reset":
            return self._reset()
        self._json(200, {"result": result, "time": portal._timing(started)})


def _rate(value: str) -> tuple[float, float]:
    burst, _, per_second = value.partition("/")
    try:
        rate = (float(burst), float(per_second or 2))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BURST/RATE such as 50/2, got {value!r}") from None
    if rate[0] < 1 or rate[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected a burst of at least 1 and a positive rate, got {value!r}")
    return rate


def serve(args: list[str] | None = None) -> None:
    """`oint sandbox`: run a portal in the foreground until Ctrl-C or --stop-after."""
    p = _Parser(prog="oint sandbox", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8024, help="port (default 8024; 0 picks a free one)")
    p.add_argument("--code", default=DEFAULT_CODE, help="webhook code (URL /rest/<user>/<code>/)")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="accepted OAuth token")
    p.add_argument("--users", type=int, default=1000, help="users 1..N exist, each with today's day open")
    p.add_argument("--closed", action="store_true", help="start with every day closed")
    p.add_argument("--free-schedule", action="store_true", help="no REPORT needed when TIME is given")
    p.add_argument("--rate-limit", metavar="BURST/RATE", type=_rate,
                   help="leaky bucket, e.g. 50/2 as on standard plans, 250/5 as on Enterprise")
    p.add_argument("--fail", action="append", default=[], metavar="FAULT",
                   help="inject a fault into the next request (repeatable): " + Portal.inject.__doc__.split(":", 1)[1])
    p.add_argument("--tls-cert", help="PEM certificate: serve https")
    p.add_argument("--tls-key", help="PEM key for --tls-cert")
    p.add_argument("--stop-after", type=float, default=0, help="exit after so many seconds (0: never)")
    p.add_argument("--background", action="store_true", help="start detached, print the URLs, return")
    ns = p.parse_args(args)
    if ns.background:
        return _background(args or [])
    try:
        portal = Portal(host=ns.host, port=ns.port, code=ns.code, token=ns.token, users=ns.users,
                        free_schedule=ns.free_schedule, rate_limit=ns.rate_limit, certfile=ns.tls_cert,
                        keyfile=ns.tls_key, opened=not ns.closed)
    except (OSError, ssl.SSLError) as exc:
        from .errors import UsageFailure

        print(json.dumps({"error": f"cannot listen on {ns.host}:{ns.port}: {exc}"}), flush=True)
        raise UsageFailure(f"sandbox: cannot listen on {ns.host}:{ns.port}: {exc}") from None
    portal.inject(*ns.fail)
    print(json.dumps({"sandbox": portal.base, "webhook": portal.webhook(1), "token": ns.token,
                      "users": ns.users}), flush=True)
    if ns.stop_after:
        threading.Timer(ns.stop_after, portal.server.shutdown).start()
    try:
        portal.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        portal.server.server_close()


def _background(args: list[str]) -> None:
    import os
    import subprocess
    import sys

    args = [a for a in args if a != "--background"]
    if "--stop-after" not in args:
        args += ["--stop-after", "3600"]
    kwargs = {"start_new_session": True} if os.name != "nt" else {
        "creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    proc = subprocess.Popen([sys.executable, "-m", "oint_py.sandbox", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kwargs)
    line = proc.stdout.readline().decode("utf-8", "replace")  # one JSON line once it listens, or why not
    proc.stdout.close()
    try:
        info = json.loads(line)
    except ValueError:
        info = {"error": "the sandbox exited without a word"}
    if "error" in info:
        from .errors import UsageFailure

        raise UsageFailure(f"sandbox: {info['error']}")
    sys.stdout.write(line)
    sys.stdout.flush()


if __name__ == "__main__":
    from .cli import cli

    cli.main(["sandbox", *__import__("sys").argv[1:]], prog_name="oint")
