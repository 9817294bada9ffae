"""The sandbox portal on a socket: Bitrix24's REST protocol over HTTP/1.1
(and TLS with --tls-cert), serving a PortalState, plus the faults a hostile
or broken portal shows (portal.FAULTS). Standard library only.

Each accepted socket gets TCP_NODELAY (without it every TLS request waits
~40 ms on Nagle's algorithm) and does its TLS handshake in its own thread.
SO_REUSEADDR is off on Windows, where it would let a second sandbox take the
same port.
"""

import functools
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

from oint_py.sandbox.oauth import MEMBER_ID, SCOPE
from oint_py.sandbox.portal import ApiError, Paged, PortalState, php_query

STATUS_TEXT = {
    200: "OK",
    302: "Found",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
MOVED = "/moved"  # see PortalState.redirect_to
MAX_BODY = 64 * 2**20  # bytes of a request body the sandbox reads


@functools.lru_cache(maxsize=4)
def _gzip_bomb(megabytes: float) -> bytes:
    """A gzip answer that inflates to `megabytes` of valid JSON, made without holding it inflated."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(b'{"result": "')]
    block = b" " * 2**20
    parts += [z.compress(block) for _ in range(int(megabytes))]
    parts += [z.compress(b'"}'), z.flush()]
    return b"".join(parts)


class Portal(PortalState):
    """A PortalState served on loopback: `Portal(...).start()`, then `.webhook()`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | None = None,
        keyfile: str | None = None,
        **state: Any,
    ):
        super().__init__(**state)
        self.server = _Server((host, port), _Handler)
        self.server.portal = self
        self.scheme = "http"
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
            self.scheme = "https"
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.server.server_address[0]}:{self.port}"

    def webhook(self, user: int = 1) -> str:
        return f"{self.base}/rest/{user}/{self.code}/"

    def start(self) -> "Portal":
        # polled every 50 ms for shutdown: stop() returns at once, not after up to half a second
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    portal: Portal  # set by Portal
    server_address: tuple[str, int]  # AF_INET (the default family): (host, port)

    @property
    def allow_reuse_address(self) -> bool:  # type: ignore[override]  # only read (by server_bind), never set
        # read by server_bind; on Windows it would let two servers share a port
        return os.name != "nt"

    def handle_error(self, request: object, client_address: object) -> None:  # clients that hang up are no news
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Bitrix24Sandbox/1.0"
    disable_nagle_algorithm = True
    timeout = 60  # a client that stalls is dropped
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def portal(self) -> Portal:
        return self.server.portal

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library answers itself (a method it has no do_ for, a request line or URI it cannot
        read): JSON as every other answer here, never its HTML page; the connection is closed after it."""
        self.close_connection = True
        short = self.responses.get(code, ("",))[0]
        body = json.dumps({"error": f"HTTP_{code}", "error_description": message or short}).encode("utf-8")
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:  # the client went away
            pass

    def do_GET(self) -> None:
        self._safely()

    def do_POST(self) -> None:
        self._safely()

    def _safely(self) -> None:
        """No request crashes the sandbox: a bug answers 500 INTERNAL_SERVER_ERROR in JSON (the
        property test in tests/test_sandbox_fidelity.py calls that a failure too)."""
        try:
            self._handle()
        except OSError:
            raise
        except Exception as exc:  # the last line of defence, named in the answer
            self.close_connection = True
            try:
                self._error(500, "INTERNAL_SERVER_ERROR", f"sandbox bug: {type(exc).__name__}: {exc}"[:500])
            except OSError:
                pass

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status, STATUS_TEXT.get(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: object, extra: Iterable[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), extra=extra)

    def _error(self, status: int, error: str, description: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        self._json(status, {"error": error, "error_description": description}, extra)

    def _reset(self) -> None:
        # SO_LINGER 0: the peer sees a connection reset, not a clean close
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _drip(self, body: bytes, pause: float) -> None:
        """Headers and body one byte at a time: every read is quick, the whole answer is not."""
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        self.close_connection = True
        try:
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass

    def _stream(
        self, size: int, chunk: bytes, encoding: str | None = None, head: bytes = b"", tail: bytes = b""
    ) -> None:
        """A large answer written in chunks with chunked transfer encoding, stopping when the client leaves."""
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        self.close_connection = True
        try:
            sent = 0
            for piece in [head] + [chunk] * (size // len(chunk)) + [tail]:
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    def _params(self) -> dict[str, Any]:
        """The query's and the body's parameters, as PHP reads them: `FILTER[ID]=5` and `cmd[k]=...`
        nest; a JSON body's object merges over the query."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            raise ApiError(400, "INVALID_REQUEST", "Bad Content-Length")
        raw = self.rfile.read(length) if length else b""
        query = php_query(urlsplit(self.path).query)
        if not raw:
            return query
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                raise ApiError(400, "INVALID_REQUEST", "Invalid JSON body") from None
            return {**query, **(data if isinstance(data, dict) else {})}
        return {**query, **php_query(raw.decode("utf-8", "replace"))}

    def _fault(self, fault: str) -> bool:
        """Play a fault that replaces the answer; False when the request goes on."""
        kind, _, arg = fault.partition(":")
        if kind == "slow":
            time.sleep(float(arg))
            return False
        if kind == "reset":
            self._reset()
        elif kind == "die":  # the portal goes away: it stops listening, and drops every connection it still has
            self.portal.dead = True
            threading.Thread(target=self.portal.stop, daemon=True).start()
            self._reset()
        elif kind == "status":
            code = int(arg)
            error = {500: "INTERNAL_SERVER_ERROR", 503: "QUERY_LIMIT_EXCEEDED", 429: "OPERATION_TIME_LIMIT"}
            self._error(code, error.get(code, "ERROR"), "Injected fault")
        elif kind == "retry-after":
            self._error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests", [("Retry-After", arg)])
        elif kind == "html":
            page = f"<html><head><title>{arg} Bad Gateway</title></head><body><h1>{arg} Bad Gateway</h1>nginx</body></html>"
            self._send(int(arg), page.encode(), "text/html")
        elif kind == "empty":
            self._send(int(arg), b"")
        elif kind == "truncated":
            self._send(int(arg), b'{"result": {"STATUS": "CLO')
        elif kind == "drip":
            self._drip(b'{"result": {"STATUS": "CLOSED"}}', float(arg))
        elif kind == "huge":
            self._stream(int(float(arg) * 2**20), b" " * 65536, head=b'{"result": "', tail=b'"}')
        elif kind == "gzip-bomb":
            self._stream(0, b"x", "gzip", head=_gzip_bomb(float(arg)))
        elif kind == "error":  # error:NAME:STATUS, e.g. error:wrong_client:200 or error:NOT_INSTALLED:401
            name, _, status = arg.rpartition(":")
            self._error(int(status), name, "Injected fault")
        elif kind == "deep":
            depth = int(arg)
            self._send(200, b'{"result": ' + b"[" * depth + b"]" * depth + b"}")
        else:
            return False  # apply-reset, see-other and no-refresh-token act after the call
        return True

    def _handle(self) -> None:
        portal = self.portal
        path = urlsplit(self.path).path
        try:
            params = self._params()
        except ApiError as exc:
            return self._error(exc.status, exc.error, exc.description)
        served = path[len(MOVED) :] if path.startswith(MOVED + "/") else path
        hook = re.match(r"^/rest/(\d+)/([^/]+)/([\w.]+?)(?:\.json)?/?$", served, re.ASCII)
        oauth = re.match(r"^/rest/([\w.]+?)(?:\.json)?/?$", served, re.ASCII)
        found = hook or oauth
        method = found.group(3 if hook else 1).lower() if found else ""
        server = re.match(r"^/(oauth/(?:token|authorize|app)|sandbox/stats)/?$", served)
        method = server.group(1).replace("/", ".") if server else method
        with portal.lock:
            portal.requests.append(
                {
                    "method": method,
                    "path": path,
                    "verb": self.command,
                    "headers": dict(self.headers.items()),
                    "params": dict(params),
                }
            )
        if portal.dead:
            return self._reset()
        with portal.lock:
            moved = portal.redirect_to if served == path else None
            fault = portal.faults.popleft() if portal.faults and not moved else None
        if moved:
            return self._send(portal.redirect_status, b"", "text/html", [("Location", moved.rstrip("/") + path)])
        if fault and self._fault(fault):
            return None
        if server:
            return self._oauth(method, params, fault)
        if not (hook or oauth):
            return self._error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        try:
            caller = portal.authenticate((int(hook.group(1)), hook.group(2)) if hook else None, params)
        except ApiError as exc:
            return self._error(exc.status, exc.error, exc.description)
        started, clock = time.time(), portal.now()
        with portal.lock:
            throttled = portal._throttled()
        if throttled:
            return self._error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        who = f"webhook {hook.group(1)}/{hook.group(2)}" if hook else "app"
        try:
            result = portal.dispatch(method, params, caller, who)
        except ApiError as exc:
            return self._error(exc.status, exc.error, portal.describe(exc))
        if fault == "apply-reset":
            return self._reset()
        if fault == "see-other":
            status = self.path.rsplit("/", 1)[0] + "/timeman.status"
            return self._send(303, b"", "text/html", [("Location", status)])
        paging = result.paging() if isinstance(result, Paged) else {}
        self._json(200, {"result": result, **paging, "time": portal.timing(started, clock, who, method)})

    def _oauth(self, what: str, params: dict[str, Any], fault: str | None) -> None:
        """The OAuth server's pages (sandbox/oauth.py), on the portal's own address."""
        from oint_py.sandbox.oauth import OAuthError

        state = self.portal.oauth
        params = {k: v for k, v in params.items() if isinstance(v, str)}  # a[]=... is no client_id nor code
        if what == "sandbox.stats":
            with state.lock:
                return self._json(200, dict(state.counts))
        if what == "oauth.app":  # the app's redirect_uri: shows the code the browser step brought
            code = params.get("code", "")
            page = (
                f"code: {code}\nNext, within 30 seconds:\n  oint bitrix24 GetToken --oauth-server "
                f"{self.portal.base} --code {code} --save AUTH_FILE\n"
            )
            return self._send(200, page.encode(), "text/plain; charset=utf-8")
        try:
            if what == "oauth.authorize":
                code = state.authorize(params.get("client_id", ""))
                host = f"{self.server.server_address[0]}:{self.portal.port}"
                state_echo = f"&state={quote(params['state'], safe='')}" if params.get("state") else ""
                target = (
                    f"{self.portal.base}/oauth/app/?code={code}&domain={host}&member_id={MEMBER_ID}"
                    f"&scope={SCOPE}&server_domain={host}{state_echo}"
                )
                return self._send(302, b"", "text/html", [("Location", target)])
            answer = state.grant(params, self.portal.base, self.portal.base, rotate=fault != "no-refresh-token")
        except OAuthError as exc:
            return self._error(exc.status, exc.error, exc.description)
        if fault == "apply-reset":  # the pair was issued and the answer never arrives
            return self._reset()
        return self._json(200, answer)
