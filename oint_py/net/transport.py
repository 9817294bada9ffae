"""The HTTP core: one bounded attempt, and nothing that knows Bitrix24.

`Client.attempt(url, payload)` POSTs one JSON body and returns a `Reply` (the
status, headers and decoded body of the last response) or a `Failure` (no
usable answer: what went wrong, as a `Trouble`, and whether the request may
have reached the far end, or may even still be running there). It never
raises for a network event and never retries: what follows an attempt is
decided by the retry policy (retry.py) and, for a call that may have been
applied, by the settlement in rest/client.py.

Bounds, all in bounds.py:
- time: `--timeout` bounds each whole attempt (connect, TLS, send, headers and
  the entire body): every socket operation gets at most what is left of it.
  In a run that a signal can stop (`stop`, a files.signals.Stop), the stop's
  deadline bounds it too: a read waits at most STOP_SLICE at a time, so that a
  deadline the signal set during the wait cuts it (a `Trouble.STOPPED`); a
  connect (with its name lookup) and a TLS handshake, one blocking call each,
  run on a helper thread that is waited for STOP_SLICE at a time (`_cuttable`),
  so the deadline cuts them too, with nothing sent; a write keeps the deadline
  it started with;
- size: the answer is streamed and counted after decompression (gzip and
  deflate decoded here, a chunk at a time), and refused past `--max-answer`;
- redirects: followed within the origin the user named, at most
  MAX_REDIRECTS; 303 is followed with a GET without a body (the call was
  made). A move to another origin is followed only where the client was told
  the secret travels in the path (`moves_with`: a webhook) and the new address
  carries that very path over https, as the portal itself disclosed it.

Public extension points only: the deadline is a network backend handed to
httpcore's ConnectionPool / HTTPProxy (their `network_backend=`), behind a
small httpx.BaseTransport; httpx itself is imported through `_import_httpx`,
the one shim this module keeps (see there).
"""

import json
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urljoin, urlsplit

from oint_py import __version__, bounds
from oint_py.net import tls
from oint_py.outcome import UsageError
from oint_py.record import Record
from oint_py.settings import Settings

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Protocol

    import httpx

    from oint_py.files.signals import Stop

    class _Parts(Protocol):
        """A sync httpcore response's stream: its bytes, and a close that gives its connection back."""

        def __iter__(self) -> Iterator[bytes]: ...

        def close(self) -> None: ...


_T = TypeVar("_T")


REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _import_httpx() -> "ModuleType":
    """httpx without its command-line tool.

    The shim (httpx >=0.27,<0.29, the range pyproject.toml pins and CI tests at
    both ends): httpx/__init__ runs `from ._main import main`, which loads rich,
    click and pygments for a CLI oint never uses, and falls back to a stub of
    its own when that import fails. A None in sys.modules makes the import fail
    by Python's own rule, so httpx takes its fallback. Nothing of httpx is
    patched or read; only this one module name is relied on."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: import fails, by Python's rule
    import httpx

    return httpx


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in: what 'the same
    portal' means for credentials."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme, 0)


# -- what one attempt gives ----------------------------------------------------
class Reply(Record):
    """A whole response: the last one, after the redirects that were followed."""

    code: int
    reason: str
    headers: dict[str, str]  # names lowercased
    content: bytes | bytearray  # decoded (gzip, deflate), within --max-answer; not copied
    url: str
    accepted: bool = False  # a 303 said the call was made before this answer came
    moved: str | None = None  # the new origin a move to another origin was followed to


class Trouble(Enum):
    """Why an attempt got no usable answer; each value is how a message starts."""

    RESOLVE = "cannot resolve"  # the host name is unknown: nothing was sent
    CONNECT = "cannot connect"  # refused or unreachable: nothing was sent
    CONNECT_TIMEOUT = "timed out connecting"
    TIMEOUT = "timed out"  # we stopped waiting for an answer: the far end may still be working on it
    LOST = "connection failed"  # dropped after the request may have left
    TLS = "TLS error"
    CERTIFICATE = "TLS certificate verification failed"
    PROXY = "proxy error"
    CANNOT_SEND = "cannot send"
    REDIRECT = "redirect not followed"
    TOO_LARGE = "answer too large"
    ENCODING = "answer unreadable"
    STOPPED = "stopped"  # a signal stopped the run: not sent, or cut at the stop's deadline

    @property
    def retryable(self) -> bool:
        """Whether a second attempt may get an answer (a refusal of TLS, the proxy or a
        redirect will not change; a size or encoding fault is the portal's, every time)."""
        return self in _RETRYABLE


_RETRYABLE = {Trouble.RESOLVE, Trouble.CONNECT, Trouble.CONNECT_TIMEOUT, Trouble.TIMEOUT, Trouble.LOST}


class Failure(Record):
    """No usable answer. maybe_applied: the request may have reached the far end;
    in_flight: it may even still be running there (we stopped waiting, or a 303
    said it was made), so nothing read now can show that it was not applied."""

    trouble: Trouble
    message: str
    maybe_applied: bool
    in_flight: bool = False

    @property
    def retryable(self) -> bool:
        return self.trouble.retryable


class _Stop(Exception):
    """Ends an attempt early with its Failure (inside this module only)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.message)
        self.failure = failure


# -- the whole-attempt deadline, enforced at every socket operation ---------
class Clock:
    """The attempt's deadline, and a stop's (`stop.deadline`, set by a signal at any moment)."""

    deadline: float | None = None
    stop: "Stop | None" = None

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        stop = self.stop.deadline if self.stop is not None else None
        ends = [d for d in (self.deadline, stop) if d is not None]
        if not ends:
            return timeout
        left = min(ends) - time.monotonic()
        if left <= 0:
            raise error("the whole attempt ran out of time")
        return left if timeout is None else min(timeout, left)

    def cut(self) -> bool:
        """Whether the stop's deadline has come."""
        ends = self.stop.deadline if self.stop is not None else None
        return ends is not None and time.monotonic() >= ends


def _cuttable(clock: Clock, work: Callable[[], _T], cancel: Callable[[], None], discard: Callable[[_T], None]) -> _T:
    """work() on a helper thread, waited for STOP_SLICE at a time: the stop's deadline, set by a signal while
    it runs, ends the wait (an httpcore.ConnectTimeout: a connect or a TLS handshake has sent no request yet);
    `cancel()` then hastens the abandoned work's end, and `discard(result)` closes what it makes after all.
    For the blocking calls httpcore's backend makes with one timeout (a socket's connect, TLS's handshake),
    which neither a signal nor _thread.interrupt_main can break."""
    import httpcore

    done = threading.Event()
    guard = threading.Lock()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # re-raised on the waiting thread
            box["error"] = exc
        else:
            with guard:
                if box.get("abandoned"):
                    discard(result)
                    return
                box["result"] = result
        finally:
            done.set()

    threading.Thread(target=run, name="oint-connect", daemon=True).start()
    try:
        while not done.wait(bounds.STOP_SLICE):
            if clock.cut():
                raise httpcore.ConnectTimeout("the run was stopped while connecting")
    except BaseException:  # the stop's deadline, or a second signal (KeyboardInterrupt)
        with guard:
            box["abandoned"] = True
            result = box.pop("result", None)
        if result is not None:
            discard(result)
        elif not done.is_set():
            cancel()
        raise
    if "error" in box:
        raise box["error"]
    return cast("_T", box["result"])


def _shut(sock: socket.socket | None) -> None:
    """Ends a blocking wait on `sock` on another thread (a TLS handshake's read)."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def deadline_network(clock: Clock, ssl_context: ssl.SSLContext, proxy: str | None) -> "httpx.BaseTransport":
    """An httpx transport over httpcore's public pool (or proxy) classes, whose
    every connection is made through a backend that keeps `clock`'s deadline."""
    import httpcore

    _import_httpx()  # first: the shim
    import httpx

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self.inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            if clock.stop is None:
                return self.inner.read(max_bytes, clock.left(timeout, httpcore.ReadTimeout))
            while True:  # in slices: a stop's deadline, set while it waits, is seen within STOP_SLICE
                left = clock.left(timeout, httpcore.ReadTimeout)
                try:
                    return self.inner.read(
                        max_bytes, bounds.STOP_SLICE if left is None else min(left, bounds.STOP_SLICE)
                    )
                except httpcore.ReadTimeout:  # nothing was read (a socket's recv, TLS's read): reading again is safe
                    if left is not None and left <= bounds.STOP_SLICE:
                        raise

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            return self.inner.write(buffer, clock.left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(
            self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
        ) -> httpcore.NetworkStream:
            left = clock.left(timeout, httpcore.ConnectTimeout)
            if clock.stop is None:
                return Stream(self.inner.start_tls(ssl_context, server_hostname, left))
            return Stream(
                _cuttable(
                    clock,
                    lambda: self.inner.start_tls(ssl_context, server_hostname, left),
                    lambda: _shut(self.inner.get_extra_info("socket")),
                    lambda made: made.close(),
                )
            )

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self.inner = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            left = clock.left(timeout, httpcore.ConnectTimeout)
            if clock.stop is None:
                return Stream(self.inner.connect_tcp(host, port, left, local_address, socket_options))
            return Stream(
                _cuttable(
                    clock,
                    lambda: self.inner.connect_tcp(host, port, left, local_address, socket_options),
                    lambda: None,  # a connect in progress has no socket to reach: it ends at `left`, then closes
                    lambda made: made.close(),
                )
            )

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.NetworkStream:  # pragma: no cover - not used
            left = clock.left(timeout, httpcore.ConnectTimeout)
            return Stream(self.inner.connect_unix_socket(path, left, socket_options))

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    class Body(httpx.SyncByteStream):
        def __init__(self, parts: "_Parts") -> None:
            self.parts = parts

        def __iter__(self) -> Iterator[bytes]:
            yield from self.parts

        def close(self) -> None:
            self.parts.close()

    class Transport(httpx.BaseTransport):
        def __init__(self) -> None:
            self.pool: httpcore.ConnectionPool
            if proxy is None:
                self.pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=Backend())
            else:
                found = httpx.Proxy(proxy)  # splits off the user and password, as httpx itself does
                self.pool = httpcore.HTTPProxy(
                    proxy_url=httpcore.URL(
                        scheme=found.url.raw_scheme,
                        host=found.url.raw_host,
                        port=found.url.port,
                        target=found.url.raw_path,
                    ),
                    proxy_auth=found.raw_auth,
                    ssl_context=ssl_context,
                    proxy_ssl_context=ssl_context if found.url.scheme == "https" else None,
                    network_backend=Backend(),
                )

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent = httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
            answer = self.pool.handle_request(sent)
            return httpx.Response(
                status_code=answer.status,
                headers=answer.headers,
                # httpcore types a response's stream for both its sync and async pools; this pool's is sync
                stream=Body(cast("_Parts", answer.stream)),
                extensions=answer.extensions,
            )

        def close(self) -> None:
            self.pool.close()

    return Transport()


def error_classes() -> dict[str, tuple[type[Exception], ...]]:
    """Exception classes by what they mean, from httpx (which tests' mock transports
    raise) and httpcore (which the network transport lets through)."""
    import httpcore

    _import_httpx()  # first: the shim
    import httpx

    return {
        "proxy": (httpx.ProxyError, httpcore.ProxyError),
        "connect_timeout": (httpx.ConnectTimeout, httpcore.ConnectTimeout),
        "timeout": (httpx.TimeoutException, httpcore.TimeoutException),
        "connect": (httpx.ConnectError, httpcore.ConnectError),
        "cannot_send": (
            httpx.UnsupportedProtocol,
            httpx.InvalidURL,
            httpcore.UnsupportedProtocol,
            httpcore.LocalProtocolError,
        ),
        "any": (
            httpx.HTTPError,
            httpx.InvalidURL,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.TimeoutException,
            httpcore.ProxyError,
            httpcore.UnsupportedProtocol,
        ),
    }


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


class _Decoder:
    """Content-Encoding decoded a chunk at a time, never producing more than
    asked; gzip may hold several members and must end whole."""

    def __init__(self, encoding: str):
        self.encoding = encoding.strip().lower()
        self.z: zlib._Decompress | None = None
        self.pending = b""  # deflate: the first bytes, until the format is known
        if self.encoding in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding not in ("", "identity", "deflate"):
            raise _Stop(
                Failure(
                    Trouble.ENCODING,
                    f"the portal answered with Content-Encoding {encoding!r}, which was not asked for",
                    maybe_applied=True,
                )
            )

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
            raise _Stop(
                Failure(Trouble.ENCODING, f"the portal's {self.encoding} answer is corrupt ({exc})", maybe_applied=True)
            ) from None

    def finish(self) -> None:
        if self.encoding in ("", "identity"):
            return
        if self.z is None or not self.z.eof:
            raise _Stop(
                Failure(Trouble.ENCODING, f"the portal's {self.encoding} answer is truncated", maybe_applied=True)
            )


class LeakyBucket:
    """The portal's own limit, kept on our side: a burst of `capacity`, then
    `rate` requests a second. One request of headroom below the portal's 50:
    the portal measures at arrival, a few milliseconds after we send."""

    def __init__(self, capacity: float = bounds.PORTAL_BURST - 1, rate: float = bounds.PORTAL_RATE):
        self.capacity, self.rate = capacity, rate
        self.level, self.stamp = 0.0, time.monotonic()

    def acquire(self, pause: Callable[[float], bool] | None = None) -> float | None:
        """Room for one request: the wait it took; None when `pause` (time.sleep by default) was cut short
        by a stop, and no request may go."""
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        wait = max(0.0, (self.level + 1 - self.capacity) / self.rate)
        if wait:
            if pause is None:
                time.sleep(wait)
            elif not pause(wait):
                return None
            self.level = max(0.0, self.level - wait * self.rate)
            self.stamp = time.monotonic()
        self.level += 1
        return wait

    def fill(self) -> None:
        """The portal refused a request as over its limit: its bucket is full,
        whatever ours says (another process, or a run just before, filled it).
        From here on requests go at the drain rate."""
        self.level, self.stamp = float(self.capacity), time.monotonic()


class Client:
    def __init__(
        self,
        settings: Settings,
        target: str,
        log: Callable[[str], None] | None = None,
        transport: "httpx.BaseTransport | None" = None,
        mask: Callable[[str], str] = str,
        moves_with: str | None = None,
        stop: "Stop | None" = None,
    ):
        """`target`: the portal URL (decides whether TLS is needed at all);
        `transport`: an httpx transport to use instead of the network (unit tests);
        `mask`: hides secrets in text that is cut before it is shown;
        `moves_with`: the path that carries the secret (a webhook's), when the
        body carries none: a move to another origin that keeps it is followed;
        `stop`: a run's files.signals.Stop: its deadline cuts an attempt, and it cuts waits short."""
        _import_httpx()  # first: the shim
        import httpx

        self.settings = settings
        self.origin = origin(target)
        self.mask = mask
        self.moves_with = moves_with
        self.log = log or (lambda line: None)
        self.bucket = LeakyBucket()
        self.clock = Clock()
        self.stop = self.clock.stop = stop
        if tls.needed(target, settings.proxy):
            try:
                verify = tls.context(settings.insecure, settings.ca_bundle)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise UsageError(
                    f"cannot load the trusted certificates "
                    f"({tls.describe(settings.insecure, settings.ca_bundle)}): {exc}"
                ) from None
            self.log(f"  TLS trust: {tls.describe(settings.insecure, settings.ca_bundle)}")
        else:
            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used: plain http loads no certificates
        try:
            network = transport or deadline_network(self.clock, verify, settings.proxy)
        except (ValueError, httpx.InvalidURL) as exc:
            raise UsageError(f"--proxy: {exc}") from None
        self.errors = error_classes()
        self.http = httpx.Client(
            transport=network,
            timeout=settings.timeout,
            follow_redirects=False,
            trust_env=False,
            headers={
                "User-Agent": f"oint-py/{__version__}",
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            },
        )

    def close(self) -> None:
        self.http.close()

    def pause(self, seconds: float) -> bool:
        """Wait between attempts (the one clock tests replace, with the bucket's): True when waited out,
        False when a stop cut it short (nothing may be sent again)."""
        if self.stop is None:
            time.sleep(seconds)
            return True
        return self.stop.nap(seconds, time.sleep)

    def _stopped(self) -> Failure:
        return Failure(Trouble.STOPPED, "not sent: the run was stopped before it", maybe_applied=False)

    # -- one attempt: a POST, following the moves allowed -------------------
    def attempt(self, url: str, payload: dict[str, Any]) -> "Reply | Failure":
        content: bytes | None
        verb, content = "POST", json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        accepted, moved = False, None  # a 303 said the call was made; a move to another origin was followed
        if self.clock.cut():
            return self._stopped()
        if self.bucket.acquire(None if self.stop is None else self.pause) is None:
            return self._stopped()
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
                except self.errors["any"] as exc:
                    return self._failure(exc, url, accepted)
                if origin(target) != self.origin:
                    moved = "{}://{}".format(*urlsplit(target))
                if resp.status_code == 303:  # See Other: the call was made; fetch its answer, never re-POST
                    verb, content, headers, accepted = "GET", None, {}, True
                url = target
            else:
                return Failure(
                    Trouble.REDIRECT, f"more than {bounds.MAX_REDIRECTS} redirects, last to {url}", accepted, accepted
                )
        except _Stop as stop:
            return stop.failure
        finally:
            self.clock.deadline = None
        self.log(f"< {self.mask(raw.decode('utf-8', 'replace'))[: bounds.MAX_LOGGED_BODY]}")
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        return Reply(resp.status_code, resp.reason_phrase, hdrs, raw, url, accepted, moved)

    def _redirect(self, url: str, resp: "httpx.Response", accepted: bool) -> str | None:
        """Where a redirect leads, if it is to be followed; None when `resp` is the answer."""
        self.log(f"< HTTP {resp.status_code} {resp.reason_phrase}")
        for name, value in resp.headers.items():
            self.log(f"< {name}: {value}")
        location: str | None = resp.headers.get("location")
        if resp.status_code not in REDIRECTS or not location:
            return None
        try:
            target = urljoin(url, location)
            new = origin(target)
        except ValueError:
            raise _Stop(
                Failure(
                    Trouble.REDIRECT, f"the portal redirected to an invalid address {location!r}", accepted, accepted
                )
            ) from None
        done = " The call was accepted before the redirect." if accepted else ""
        if self.origin[0] == "https" and new[0] != "https":
            raise _Stop(
                Failure(
                    Trouble.REDIRECT,
                    f"refused a redirect from https to {target} (would expose credentials).{done}",
                    accepted,
                    accepted,
                )
            )
        if new != self.origin and not self._carries_secret_path(target):
            raise _Stop(
                Failure(
                    Trouble.REDIRECT,
                    f"the portal moved to {target}: not followed, since the webhook "
                    "code or token would go to another address; check the new "
                    f"address and update --url.{done}",
                    accepted,
                    accepted,
                )
            )
        where = "within its address" if new == self.origin else "to another address, keeping the webhook path"
        self.log(f"  portal moved {where}: {'GET' if resp.status_code == 303 else 'POST'} {target}")
        return target

    def _carries_secret_path(self, target: str) -> bool:
        """A move the portal itself announced with the secret already in its Location:
        the same path (the webhook's), over https when the portal was https."""
        if not self.moves_with:
            return False
        parts = urlsplit(target)
        return parts.path.startswith(self.moves_with) and (self.origin[0] == "http" or parts.scheme == "https")

    def _read(self, resp: "httpx.Response") -> bytearray:
        """The whole body, decoded, within --max-answer."""
        limit = self.settings.max_answer
        decoder = _Decoder(resp.headers.get("content-encoding", ""))
        body = bytearray()
        for chunk in resp.iter_raw():
            body += decoder.feed(chunk, limit - len(body) + 1)
            if len(body) > limit:
                raise _Stop(
                    Failure(
                        Trouble.TOO_LARGE,
                        f"the answer is larger than {limit:,} bytes (--max-answer); not read further",
                        maybe_applied=True,
                    )
                )
        decoder.finish()
        return body

    def _failure(self, exc: Exception, url: str, accepted: bool) -> Failure:
        """A transport exception as a Failure, by its type and its causes' types:
        whether the request may have left (anything after the connection was
        made), and whether the far end may still be running it (we stopped waiting)."""
        text = self.mask(str(exc) or type(exc).__name__)
        self.log(f"< {type(exc).__name__}: {text}")
        kinds = self.errors
        causes = list(_causes(exc))
        if self.clock.cut():  # the stop's deadline, not --timeout, ended it
            sent = accepted or not isinstance(exc, kinds["connect_timeout"] + kinds["connect"] + kinds["cannot_send"])
            return Failure(
                Trouble.STOPPED,
                f"the run was stopped, and no whole answer came within "
                f"{bounds.STOP_GRACE - bounds.STOP_WRAP_UP:g} s of the signal"
                if sent
                else "not sent: the run was stopped while connecting to the portal",
                sent,
                sent,
            )
        if isinstance(exc, kinds["proxy"]):
            return Failure(Trouble.PROXY, f"proxy error: {text}", accepted, accepted)
        if isinstance(exc, kinds["connect_timeout"]):
            return Failure(
                Trouble.CONNECT_TIMEOUT,
                f"timed out connecting (--timeout {self.settings.timeout:g} s)",
                accepted,
                accepted,
            )
        if isinstance(exc, kinds["timeout"]):
            return Failure(
                Trouble.TIMEOUT,
                f"timed out: no whole answer within --timeout {self.settings.timeout:g} s ({type(exc).__name__})",
                True,
                True,
            )
        connecting = isinstance(exc, kinds["connect"] + kinds["cannot_send"])
        sent = accepted or not connecting  # the request may have left
        if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
            return Failure(
                Trouble.CERTIFICATE,
                f"TLS certificate verification failed ({text}); for a self-signed "
                "portal give --ca-bundle PATH (or SSL_CERT_FILE), or --insecure",
                sent,
                accepted,
            )
        tls_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        if tls_error is not None:
            hint = (
                "; the portal may speak plain http: try http:// in --url"
                if getattr(tls_error, "reason", None) == "WRONG_VERSION_NUMBER"
                else ""
            )
            return Failure(Trouble.TLS, f"TLS error: {text}{hint}", sent, sent)
        if isinstance(exc, kinds["connect"]):
            if any(isinstance(c, socket.gaierror) for c in causes):
                return Failure(Trouble.RESOLVE, f"cannot resolve {urlsplit(url).hostname}: {text}", accepted, accepted)
            return Failure(Trouble.CONNECT, f"cannot connect: {text}", accepted, accepted)
        if isinstance(exc, kinds["cannot_send"]):
            return Failure(Trouble.CANNOT_SEND, f"cannot send: {text}", accepted, accepted)
        return Failure(Trouble.LOST, f"connection failed: {text}", True, accepted)
