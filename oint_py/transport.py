"""The HTTP core: one POST with its bounds, and a REST call with retries.

`Client.call()` sends one JSON body and returns an `Answer`: the status,
headers and parsed body of the portal's last response and how to read it
(`ok`, `api_error`, `failed`). Failures with no usable answer raise
RequestFailure (OutcomeUnknown when a call that is not idempotent may have
been applied and nobody can say). Bounds, all in bounds.py:
- time: `--timeout` bounds each whole attempt (connect, TLS, send, headers and
  the entire body): every socket operation gets at most what is left of it;
- size: the answer is streamed and counted after decompression (gzip and
  deflate decoded here, a chunk at a time), and refused past `--max-answer`;
- depth: JSON nested deeper than MAX_JSON_DEPTH is not an answer;
- redirects: followed only within the origin the user named, at most
  MAX_REDIRECTS; 303 is followed with a GET without a body (the call was made).
httpx is imported only when a request is really made, and an SSL context is
built only for https.
"""

import json
import random
import sys
import time
import types
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

from . import __version__, bounds, tls
from .outcome import OutcomeUnknown, RequestFailure, UsageError, error_words
from .settings import Settings

THROTTLED = ("QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT", "OPERATION_TIME_LIMIT")  # refused before processing
REDIRECTS = (301, 302, 303, 307, 308)
GATEWAY_TIMEOUTS = (504, 524, 598, 599)  # a proxy gave up waiting: the portal may still be running the call
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _httpx():
    """Import httpx without its own command-line tool: httpx/__init__ imports
    httpx._main, which pulls in rich and click's console code we never use.
    A stand-in module with a `main` keeps httpx's namespace complete."""
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        stub = types.ModuleType("httpx._main")

        def main():  # pragma: no cover - httpx's CLI is not part of oint
            raise SystemExit("the httpx command-line tool is not loaded inside oint")

        stub.main = main
        sys.modules["httpx._main"] = stub
    import httpx

    return httpx


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in: what 'the same
    portal' means for credentials."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class Answer:
    code: int
    headers: dict
    body: Any  # parsed JSON, or the text when it is not JSON
    url: str
    kind: str = "ok"  # ok | api_error | failed
    problem: str = ""  # one line for stderr when kind != ok
    notes: tuple[str, ...] = ()
    accepted: bool = False  # a 303 said the call was made before this answer came

    @property
    def error(self):
        return self.body.get("error") if isinstance(self.body, dict) else None

    def adv(self) -> dict:
        return {"code": self.code, "body": self.body, "headers": self.headers}


def classify(code: int, content: bytes, content_type: str, mask: Callable[[str], str] = str) -> tuple[Any, str, str]:
    """Parse a body and say what it is: (body, kind, problem). `mask` hides
    secrets in the snippet of a body that is not JSON, before it is cut."""
    text = content.decode("utf-8", errors="replace")
    body, why = None, ""
    if text.strip():
        try:
            body = bounds.load_json(text, "the answer")
        except bounds.BoundError as exc:
            why = str(exc) if "deeper" in str(exc) else ""
    if body is None:
        what = why or ("an empty body" if not text.strip() else f"{content_type or 'no content type'}, not JSON")
        snippet = "" if why else " ".join(mask(_strip_tags(text)).split())[:120]
        return text, "failed", f"the portal answered HTTP {code} with {what}" + (f": {snippet}" if snippet else "")
    if isinstance(body, dict) and "error" in body:
        problem = f"the portal answered HTTP {code} " + error_words(body.get("error"), body.get("error_description"))
        return body, "api_error", problem
    if isinstance(body, dict) and "result" in body:
        return body, "ok", ""
    return body, "failed", f"the portal answered HTTP {code} with JSON that is not a Bitrix24 answer"


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]*>", " ", text[:4096])


def retry_after(headers: dict) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def backoff(attempt: int) -> float:
    return min(bounds.BACKOFF_CAP, bounds.BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)


class LeakyBucket:
    """The portal's own limit, kept on our side: a burst of `capacity`, then
    `rate` requests a second. One request of headroom below the portal's 50:
    the portal measures at arrival, a few milliseconds after we send."""

    def __init__(self, capacity: float = bounds.PORTAL_BURST - 1, rate: float = bounds.PORTAL_RATE):
        self.capacity, self.rate = capacity, rate
        self.level, self.stamp = 0.0, time.monotonic()

    def acquire(self) -> float:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        wait = max(0.0, (self.level + 1 - self.capacity) / self.rate)
        if wait:
            time.sleep(wait)
            self.level = max(0.0, self.level - wait * self.rate)
            self.stamp = time.monotonic()
        self.level += 1
        return wait

    def fill(self) -> None:
        """The portal refused a request as over its limit: its bucket is full,
        whatever ours says (another process, or a run just before, filled it).
        From here on requests go at the drain rate."""
        self.level, self.stamp = float(self.capacity), time.monotonic()


class _Failed(Exception):
    """One attempt got no usable answer. retryable: a second try may help;
    maybe_applied: the request may have reached the portal; in_flight: it may
    even still be running there (we stopped waiting, or a 303 said it was
    made), so a status check cannot show that it was not applied."""

    def __init__(self, message: str, retryable: bool, maybe_applied: bool, in_flight: bool = False,
                 once: bool = False):
        super().__init__(message)
        self.message, self.retryable, self.maybe_applied, self.in_flight = message, retryable, maybe_applied, in_flight
        self.once = once  # worth one retry at most (a name that did not resolve)


def _caused_by(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in the chain that led to `exc` (httpx wraps the socket's and ssl's)."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, kind):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


# -- the whole-attempt deadline, enforced at every socket operation ---------
class _Clock:
    deadline: float | None = None

    def left(self, timeout: float | None, error: type) -> float | None:
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("the whole attempt ran out of time")
        return left if timeout is None else min(timeout, left)


def _deadline_classes():
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner, clock: _Clock):
            self.inner, self.clock = inner, clock

        def read(self, max_bytes, timeout=None):
            return self.inner.read(max_bytes, self.clock.left(timeout, httpcore.ReadTimeout))

        def write(self, buffer, timeout=None):
            return self.inner.write(buffer, self.clock.left(timeout, httpcore.WriteTimeout))

        def close(self):
            self.inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            left = self.clock.left(timeout, httpcore.ConnectTimeout)
            return Stream(self.inner.start_tls(ssl_context, server_hostname, left), self.clock)

        def get_extra_info(self, info):
            return self.inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self, inner, clock: _Clock):
            self.inner, self.clock = inner, clock

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            left = self.clock.left(timeout, httpcore.ConnectTimeout)
            return Stream(self.inner.connect_tcp(host, port, left, local_address, socket_options), self.clock)

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            left = self.clock.left(timeout, httpcore.ConnectTimeout)
            return Stream(self.inner.connect_unix_socket(path, left, socket_options), self.clock)

        def sleep(self, seconds):
            self.inner.sleep(seconds)

    return Backend


class _Decoder:
    """Content-Encoding decoded a chunk at a time, never producing more than
    asked; gzip may hold several members and must end whole."""

    def __init__(self, encoding: str):
        self.encoding = encoding.strip().lower()
        self.z = None
        self.pending = b""  # deflate: the first bytes, until the format is known
        if self.encoding in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding not in ("", "identity", "deflate"):
            raise _Failed(f"the portal answered with Content-Encoding {encoding!r}, which was not asked for",
                          retryable=False, maybe_applied=True)

    def feed(self, data: bytes, room: int) -> bytes:
        if self.encoding in ("", "identity"):
            return data
        if self.z is None:  # deflate: zlib-wrapped (RFC 9110) or raw, as servers send both
            self.pending += data
            if len(self.pending) < 2:
                return b""
            head, data, self.pending = self.pending, self.pending, b""
            zlib_header = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
            self.z = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        try:
            out = self.z.decompress(data, room)
            while self.z.eof and self.z.unused_data and len(out) < room and self.encoding != "deflate":
                rest = self.z.unused_data  # the next gzip member
                self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += self.z.decompress(rest, room - len(out))
            return out
        except zlib.error as exc:
            raise _Failed(f"the portal's {self.encoding} answer is corrupt ({exc})", False, True) from None

    def finish(self) -> None:
        if self.encoding in ("", "identity"):
            return
        if self.z is None or not self.z.eof:
            raise _Failed(f"the portal's {self.encoding} answer is truncated", False, True)


class Client:
    def __init__(self, settings: Settings, target: str, log: Callable[[str], None] | None = None, transport=None,
                 mask: Callable[[str], str] = str):
        """`target`: the portal URL (decides whether TLS is needed at all);
        `transport`: an httpx transport to use instead of the network (unit tests);
        `mask`: hides secrets in text that is cut before it is shown."""
        httpx = _httpx()

        self.settings = settings
        self.origin = origin(target)
        self.mask = mask
        self.log = log or (lambda line: None)
        self.bucket = LeakyBucket()
        self.clock = _Clock()
        if tls.needed(target, settings.proxy):
            try:
                verify = tls.context(settings.insecure, settings.ca_bundle)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise UsageError(f"cannot load the trusted certificates "
                                 f"({tls.describe(settings.insecure, settings.ca_bundle)}): {exc}") from None
            self.log(f"  TLS trust: {tls.describe(settings.insecure, settings.ca_bundle)}")
        else:
            import ssl

            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used: plain http loads no certificates
        try:
            self.http = httpx.Client(
                proxy=settings.proxy, verify=verify, timeout=settings.timeout, follow_redirects=False,
                trust_env=False, transport=transport,
                headers={"User-Agent": f"oint-py/{__version__}", "Accept": "application/json",
                         "Accept-Encoding": "gzip, deflate"},
            )
        except (ValueError, httpx.InvalidURL) as exc:
            raise UsageError(f"--proxy: {exc}") from None
        if transport is None:
            backend = _deadline_classes()
            pools = [t._pool for t in (self.http._transport, *self.http._mounts.values()) if t is not None]
            for pool in pools:  # httpcore's pool and proxy classes create every connection through this
                pool._network_backend = backend(pool._network_backend, self.clock)

    def close(self) -> None:
        self.http.close()

    # -- one attempt: a POST, following same-origin moves --------------------
    def post(self, url: str, payload: dict) -> Answer:
        httpx = _httpx()

        verb, content = "POST", json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        accepted = False  # a 303 said the call was made
        self.bucket.acquire()
        self.clock.deadline = time.monotonic() + self.settings.timeout
        try:
            for _hop in range(bounds.MAX_REDIRECTS + 1):
                self.log(f"> {verb} {url}")
                if content:
                    self.log(f"> {json.dumps(payload, ensure_ascii=False)}")
                try:
                    with self.http.stream(verb, url, content=content, headers=headers) as resp:
                        target = self._redirect(url, resp, accepted or resp.status_code == 303)
                        if target is None:
                            raw = self._read(resp)
                            break
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    raise self._failure(exc, accepted) from None
                if resp.status_code == 303:  # See Other: the call was made; fetch its answer, never re-POST
                    verb, content, headers, accepted = "GET", None, {}, True
                url = target
            else:
                raise _Failed(f"more than {bounds.MAX_REDIRECTS} redirects, last to {url}", False, accepted, accepted)
        finally:
            self.clock.deadline = None
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        body, kind, problem = classify(resp.status_code, raw, hdrs.get("content-type", ""), self.mask)
        self.log(f"< {self.mask(raw.decode('utf-8', 'replace'))[:bounds.MAX_LOGGED_BODY]}")
        return Answer(resp.status_code, hdrs, body, url, kind, problem, accepted=accepted)

    def _redirect(self, url: str, resp, accepted: bool) -> str | None:
        """Where a redirect leads, if it is to be followed; None when `resp` is the answer."""
        self.log(f"< HTTP {resp.status_code} {resp.reason_phrase}")
        for name, value in resp.headers.items():
            self.log(f"< {name}: {value}")
        location = resp.headers.get("location")
        if resp.status_code not in REDIRECTS or not location:
            return None
        try:
            target = urljoin(url, location)
            new = origin(target)
        except ValueError:
            raise _Failed(f"the portal redirected to an invalid address {location!r}", False, accepted,
                          accepted) from None
        done = " The call was accepted before the redirect." if accepted else ""
        if self.origin[0] == "https" and new[0] != "https":
            raise _Failed(f"refused a redirect from https to {target} (would expose credentials).{done}",
                          False, accepted, accepted)
        if new != self.origin:
            raise _Failed(f"the portal moved to {target}: not followed, since the webhook code or token would go to "
                          f"another address; check the new address and update --url.{done}", False, accepted, accepted)
        self.log(f"  portal moved within its address: {'GET' if resp.status_code == 303 else 'POST'} {target}")
        return target

    def _read(self, resp) -> bytearray:
        """The whole body, decoded, within --max-answer."""
        limit = self.settings.max_answer
        decoder = _Decoder(resp.headers.get("content-encoding", ""))
        body = bytearray()
        for chunk in resp.iter_raw():
            body += decoder.feed(chunk, limit - len(body) + 1)
            if len(body) > limit:
                raise _Failed(f"the answer is larger than {limit:,} bytes (--max-answer); not read further",
                              retryable=False, maybe_applied=True)
        decoder.finish()
        return body

    def _failure(self, exc: Exception, accepted: bool) -> _Failed:
        """A one-line message for a transport failure; whether re-sending may help
        (TLS and proxy refusals will not change); whether the portal may have the
        call (anything after the connection was made), and may still be running
        it (we stopped waiting)."""
        httpx = _httpx()

        text = str(exc) or type(exc).__name__
        self.log(f"< {type(exc).__name__}: {text}")
        connecting = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError,
                                      httpx.UnsupportedProtocol, httpx.InvalidURL))
        sent = accepted or not connecting  # the request may have left
        if isinstance(exc, httpx.ProxyError):
            return _Failed(f"proxy error: {text}", False, accepted, accepted)
        if isinstance(exc, httpx.ConnectTimeout):
            return _Failed(f"timed out connecting (--timeout {self.settings.timeout:g} s)", True, accepted, accepted)
        if isinstance(exc, httpx.TimeoutException):
            return _Failed(f"timed out: no whole answer within --timeout {self.settings.timeout:g} s "
                           f"({type(exc).__name__})", True, True, True)
        import socket
        import ssl

        if _caused_by(exc, socket.gaierror) is not None:
            host = exc.request.url.host if isinstance(exc, httpx.RequestError) else "the host"
            return _Failed(f"cannot resolve {host}: no such host, or DNS is unreachable ({text})", True, False,
                           once=True)
        tls = _caused_by(exc, ssl.SSLError)
        if tls is not None and tls.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                                              "HTTP_REQUEST"):
            return _Failed(f"TLS error: the portal did not answer in TLS ({tls.reason}); it may speak plain http: "
                           "try --url http://...", False, sent, sent)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return _Failed(f"TLS certificate verification failed ({text}); for a self-signed portal give "
                           "--ca-bundle PATH (or SSL_CERT_FILE), or --insecure", False, sent, accepted)
        if "SSL" in text or "TLS" in text:
            return _Failed(f"TLS error: {text}", False, sent, sent)
        if isinstance(exc, httpx.ConnectError):
            return _Failed(f"cannot connect: {text}", True, accepted, accepted)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return _Failed(f"cannot send: {text}", False, accepted, accepted)
        return _Failed(f"connection failed: {text}", True, True, accepted)

    # -- a REST call with retries -------------------------------------------
    def call(self, url: str, payload: dict, confirm: "Callable[[dict], Answer | dict] | None" = None,
             retries: int | None = None) -> Answer:
        """POST `payload` to `url`; re-send on 5xx, throttling and connection errors.

        `confirm(payload)` is given for calls that are not idempotent. After a
        failure that may have reached the portal, it reads the status and
        returns an Answer (the call took effect: stop) or the payload of what
        has not taken effect, or raises OutcomeUnknown (the status could not be
        read). What has not taken effect is re-sent only when the portal
        cannot still be running the call: never after a timeout, a gateway
        timeout (504, 524, 598, 599), or a 303 that said the call was made; then the outcome
        is unknown. `retries` overrides the settings' number."""
        try:
            return self._call(url, payload, confirm, self.settings.retries if retries is None else retries)
        except _Settled as settled:
            return settled.answer

    def _call(self, url: str, payload: dict, confirm, retries: int) -> Answer:
        attempt = 0
        while True:
            answer, failure, maybe_applied, in_flight = None, None, False, False
            try:
                answer = self.post(url, payload)
            except _Failed as exc:
                if exc.maybe_applied and confirm is not None and (not exc.retryable or exc.in_flight):
                    self._settle(confirm, payload, exc.message, exc.in_flight)
                if not exc.retryable:
                    raise RequestFailure(exc.message) from None
                if exc.once and attempt >= min(1, retries):
                    raise RequestFailure(f"{exc.message} [{attempt + 1} attempt{'s' if attempt else ''}]") from None
                failure, maybe_applied, in_flight = exc.message, exc.maybe_applied, exc.in_flight
            else:
                throttled = not answer.accepted and (answer.code == 429 or answer.error in THROTTLED)
                done = answer.code < 500 and not throttled
                if done and answer.kind == "failed" and confirm is not None:  # an answer that is not Bitrix24's
                    self._settle(confirm, payload, answer.problem, answer.accepted)
                    return answer
                if done and not (answer.accepted and answer.kind != "ok"):
                    return answer
                if throttled:
                    self.bucket.fill()
                maybe_applied = answer.accepted or (answer.code >= 500 and not throttled)
                in_flight = answer.accepted or answer.code in GATEWAY_TIMEOUTS
            wait = backoff(attempt)
            asked = retry_after(answer.headers) if answer else None
            if asked is not None:
                wait = max(wait, asked)
            if maybe_applied and confirm is not None:
                payload = self._settle(confirm, payload, failure or answer.problem, in_flight)
            if attempt >= retries or (asked or 0) > bounds.RETRY_AFTER_CAP:
                why = "" if attempt >= retries else f" (the portal asked to wait {asked:g} s)"
                tries = f" [{attempt + 1} attempt{'s' if attempt else ''}]{why}"
                if answer is None:
                    raise RequestFailure(f"{failure}{tries}")
                return replace(answer, kind="failed", problem=f"{answer.problem or f'HTTP {answer.code}'}{tries}")
            attempt += 1
            self.log(f"  retry {attempt}/{retries} in {wait:.2f} s: {failure or answer.problem}")
            time.sleep(wait)

    @staticmethod
    def _settle(confirm, payload: dict, why: str, in_flight: bool) -> dict:
        """Ask `confirm` about a call that may have been applied. Returns the
        payload of what is known not to have taken effect; raises _Settled with
        the answer when everything has, and OutcomeUnknown when nobody can tell."""
        try:
            settled = confirm(payload)
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(f"{why}; {exc.message}") from None
        if isinstance(settled, Answer):
            raise _Settled(settled)
        if in_flight:
            raise OutcomeUnknown(f"{why}; the status does not show it applied, but the portal may still be running "
                                 "it: it was not sent again. Check with GetTimekeepingStatus before repeating it")
        return settled


class _Settled(Exception):
    """The status check showed the call took effect: its answer ends the call."""

    def __init__(self, answer: Answer):
        super().__init__("settled")
        self.answer = answer
