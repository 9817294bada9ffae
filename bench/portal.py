"""A tiny Bitrix24 portal on loopback that answers at once: the far end of bench.py.

Any POST (or GET) to `/rest/<user>/<code>/<method>[.json]` gets 200 and a
timeman.close-shaped answer: `{"result": {"STATUS": "CLOSED", ...}, "time": {...}}`.
`batch` answers each of its commands the same way, keyed as sent:
`{"result": {"result": {key: record, ...}, "result_error": [], ...}, "time": {...}}`.
It keeps no state (every close succeeds, however often), so timings measure
the client, not the portal. Standard library only; importable:

    from portal import BenchPortal
    portal = BenchPortal(certfile=..., keyfile=...).start()   # TLS when certfile is given
    portal.webhook()  ->  "https://127.0.0.1:PORT/rest/1/bench/"
    portal.requests, portal.throttled, portal.connections, portal.stop()

    python bench/portal.py [--port 8024] [--cert C --key K] [--rate-limit 50,2]   # by hand

HTTP/1.1 with keep-alive, TCP_NODELAY on every accepted socket (so headers and
body written apart do not wait ~40 ms on Nagle and delayed ACKs), and the TLS
handshake done in each connection's own thread, not in the accept loop.
`rate_limit=(burst, per_second)` turns on Bitrix24's leaky bucket: over it,
503 {"error": "QUERY_LIMIT_EXCEEDED"} and the request counts as throttled.
"""

import argparse
import json
import re
import ssl
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

CODE = "bench"
_PATH = re.compile(r"^/rest/(\d+)/([^/?]+)/([\w.]+?)(?:\.json)?/?(?:\?.*)?$")


def _atom(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def closed_day(user_id) -> dict:
    """What timeman.close answers: the day just closed, opened at 09:00 today."""
    now = datetime.now().astimezone().replace(microsecond=0)
    start = now.replace(hour=9, minute=0, second=0)
    if start > now:
        start = now.replace(hour=0, minute=0, second=0)
    return {
        "STATUS": "CLOSED",
        "TIME_START": _atom(start),
        "TIME_FINISH": _atom(now),
        "DURATION": _hms((now - start).total_seconds()),
        "TIME_LEAKS": "00:00:00",
        "ACTIVE": False,
        "IP_OPEN": "127.0.0.1",
        "IP_CLOSE": "127.0.0.1",
        "LAT_OPEN": 0,
        "LON_OPEN": 0,
        "LAT_CLOSE": 0,
        "LON_CLOSE": 0,
        "TZ_OFFSET": int(now.utcoffset().total_seconds()),
        "USER_ID": str(user_id),
    }


def timing(started: float) -> dict:
    """The `time` block every Bitrix24 answer carries."""
    finished = time.time()
    return {
        "start": started,
        "finish": finished,
        "duration": finished - started,
        "processing": finished - started,
        "date_start": _atom(datetime.fromtimestamp(started).astimezone().replace(microsecond=0)),
        "date_finish": _atom(datetime.fromtimestamp(finished).astimezone().replace(microsecond=0)),
        "operating_reset_at": int(finished) + 600,
        "operating": 0,
    }


class BenchPortal:
    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        *,
        code=CODE,
        certfile=None,
        keyfile=None,
        rate_limit: "tuple[float, float] | None" = None,
    ):
        self.code = code
        self.rate_limit = rate_limit
        self.lock = threading.Lock()
        self.requests = 0  # every request that reached a handler, throttled ones included
        self.throttled = 0  # of them, refused with QUERY_LIMIT_EXCEEDED
        self.connections = 0  # TCP connections accepted: fewer than requests when clients keep them alive
        self.methods: dict[str, int] = {}  # REST method -> requests
        self._level, self._stamp = 0.0, time.monotonic()
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients hanging up are no news
        self.server.portal = self
        self.tls = None
        if certfile:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(certfile, keyfile)
        self.thread = None

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def webhook(self, user: int = 1) -> str:
        return f"{self.base}/rest/{user}/{self.code}/"

    def start(self) -> "BenchPortal":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str) -> bool:
        """Count one request; False when the leaky bucket refuses it."""
        with self.lock:
            self.requests += 1
            self.methods[method] = self.methods.get(method, 0) + 1
            if not self.rate_limit:
                return True
            burst, rate = self.rate_limit
            now = time.monotonic()
            self._level = max(0.0, self._level - (now - self._stamp) * rate)
            self._stamp = now
            if self._level + 1 > burst:
                self.throttled += 1
                return False
            self._level += 1
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Content-Length on every answer
    server_version = "BenchPortal/1.0"
    disable_nagle_algorithm = True  # TCP_NODELAY on the accepted socket

    def setup(self):
        with self.server.portal.lock:
            self.server.portal.connections += 1
        tls = self.server.portal.tls
        if tls:  # the handshake happens here, in this connection's thread
            self.request = tls.wrap_socket(self.request, server_side=True)
        super().setup()  # TCP_NODELAY, then the buffered reader and unbuffered writer

    def finish(self):
        super().finish()
        if self.server.portal.tls:  # the server only knows the plain socket the TLS one replaced
            self.request.close()

    def log_message(self, format, *args):  # quiet
        pass

    def do_POST(self):
        self._handle()

    def do_GET(self):
        self._handle()

    def _answer(self, status: int, data) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _params(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = dict(parse_qsl(self.path.partition("?")[2]))
        if not raw:
            return query
        if "json" in (self.headers.get("Content-Type") or ""):
            data = json.loads(raw.decode("utf-8"))
            return {**query, **(data if isinstance(data, dict) else {})}
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        cmd = {k[4:-1]: v for k, v in form.items() if k.startswith("cmd[") and k.endswith("]")}
        return {**query, **form, **({"cmd": cmd} if cmd else {})}

    def _handle(self):
        started = time.time()
        portal = self.server.portal
        try:
            params = self._params()
        except ValueError:
            return self._answer(400, {"error": "INVALID_REQUEST", "error_description": "Invalid JSON body"})
        hook = _PATH.match(self.path)
        if not hook or hook.group(2) != portal.code:
            portal.count("?")
            return self._answer(
                401, {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
            )
        method = hook.group(3).lower()
        if not portal.count(method):
            return self._answer(503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
        if method == "batch":
            cmd = params.get("cmd") or params.get("CMD") or {}
            result, times = {}, {}
            for key, line in cmd.items() if isinstance(cmd, dict) else []:
                query = dict(parse_qsl(str(line).partition("?")[2]))
                result[key] = closed_day(query.get("USER_ID", hook.group(1)))
                times[key] = timing(started)
            inner = {
                "result": result or [],
                "result_error": [],
                "result_total": [],
                "result_next": [],
                "result_time": times or [],
            }
            return self._answer(200, {"result": inner, "time": timing(started)})
        user = params.get("USER_ID") or params.get("user_id") or hook.group(1)
        self._answer(200, {"result": closed_day(user), "time": timing(started)})


def main() -> None:
    ap = argparse.ArgumentParser(description="A Bitrix24 portal on loopback that answers every close at once.")
    ap.add_argument("--port", type=int, default=8024)
    ap.add_argument("--cert", help="PEM certificate: serve TLS")
    ap.add_argument("--key", help="PEM private key for --cert")
    ap.add_argument("--rate-limit", metavar="BURST,PER_S", help="leaky bucket, e.g. 50,2")
    ns = ap.parse_args()
    limit = tuple(float(x) for x in ns.rate_limit.split(",")) if ns.rate_limit else None
    portal = BenchPortal(port=ns.port, certfile=ns.cert, keyfile=ns.key, rate_limit=limit).start()
    print(f"webhook: {portal.webhook()}  (Ctrl-C stops)", flush=True)
    try:
        portal.thread.join()
    except KeyboardInterrupt:
        portal.stop()
        print(
            f"\n{portal.requests} requests on {portal.connections} connections, "
            f"{portal.throttled} throttled: {portal.methods}"
        )


if __name__ == "__main__":
    main()
