"""The HTTP core: URL and auth building, retries, redirects, proxy, timeout, TLS.

One `Client.call()` sends one REST method and returns an `Answer`: the status,
headers and parsed body of the last HTTP response, and how to read it
(`ok`, `api_error`, `failed`). Transport failures with no answer at all raise
`RequestFailure`. httpx is imported only when a request is really made.
"""

import email.utils
import json
import random
import re
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

from . import __version__, redact
from .errors import RequestFailure, UsageFailure
from .settings import Settings, reject_blanks

MAX_REDIRECTS = 5
BACKOFF_BASE = 0.25  # seconds; doubles each attempt, full jitter in [50%, 100%]
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0  # a longer Retry-After ends the retries instead of blocking a cron job
THROTTLED = ("QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT")  # refused before processing: safe to re-send
REDIRECTS = (301, 302, 303, 307, 308)
_WEBHOOK_PATH = re.compile(r"^(.*?/rest/\d+/[^/]+)(?:/|$)")


def _httpx():
    """Import httpx without its own command-line tool: httpx/__init__ imports
    httpx._main, which pulls in rich and click's console code we never use
    (about 35 ms of every call, measured with bench/bench.py). A stand-in
    module with a `main` keeps httpx's namespace complete."""
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        stub = types.ModuleType("httpx._main")

        def main():  # pragma: no cover - httpx's CLI is not part of oint
            raise SystemExit("the httpx command-line tool is not loaded inside oint")

        stub.main = main
        sys.modules["httpx._main"] = stub
    import httpx

    return httpx


@dataclass(frozen=True)
class Endpoint:
    base: str  # ends with "/": the REST method name is appended
    token: str | None = None

    def url(self, rest_method: str) -> str:
        return self.base + rest_method

    def payload(self, params: dict) -> dict:
        """The JSON body: empty fields left out, the token (if any) as `auth`."""
        body = {k: v for k, v in params.items() if v not in (None, "")}
        return {**body, "auth": self.token} if self.token else body


def endpoint(url: str, token: str | None) -> Endpoint:
    """Where to send: a webhook URL (`https://host/rest/1/<code>/`), or a portal
    address plus --token (then `https://host/rest/<method>` and `auth` in the body).
    A bare domain means https, as in oint; an explicit http:// is kept for
    self-hosted portals."""
    raw = (url or "").strip()
    if not raw:
        raise UsageFailure("--url is empty")
    reject_blanks(raw, "--url")
    if "://" not in raw:
        raw = "https://" + raw.lstrip("/")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UsageFailure(f"--url: {redact.redact(str(exc))}") from None
    if parts.password:
        redact.add_secret(parts.password)
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageFailure(f"--url: only http:// and https:// portals are supported, not {parts.scheme}://")
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise UsageFailure(f"--url: no valid host in {redact.redact(url)!r}")
    origin = f"{parts.scheme.lower()}://{parts.netloc}"
    if token:
        redact.add_secret(token)
        prefix = parts.path.split("/rest/")[0] if "/rest/" in parts.path else ""
        return Endpoint(f"{origin}{prefix.rstrip('/')}/rest/", token)
    hook = _WEBHOOK_PATH.match(parts.path)
    if not hook:
        raise UsageFailure(
            "--url is not a webhook URL (https://HOST/rest/USER_ID/CODE/) and no --token was given"
        )
    redact.add_secret(hook.group(1).rsplit("/", 1)[1])
    return Endpoint(f"{origin}{hook.group(1)}/")


@dataclass
class Answer:
    code: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON
    url: str
    kind: str = "ok"  # ok | api_error | failed
    problem: str = ""  # one line for stderr when kind != ok
    notes: list[str] = field(default_factory=list)

    def adv(self) -> dict:
        return {"code": self.code, "body": self.body, "headers": self.headers}


def classify(code: int, content: bytes, content_type: str) -> tuple[Any, str, str]:
    """Parse a body and say what it is: (body, kind, problem)."""
    text = content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
        is_json = False
    else:
        is_json = body is not None
    if not is_json:
        what = "an empty body" if not text.strip() else f"{content_type or 'no content type'}, not JSON"
        snippet = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", text)).strip()[:120]
        return text, "failed", f"the portal answered HTTP {code} with {what}" + (f": {snippet}" if snippet else "")
    if isinstance(body, dict) and "error" in body:
        desc = body.get("error_description") or ""
        problem = f"the portal answered HTTP {code} error {body.get('error')!r}" + (f": {desc}" if desc else "")
        return body, "api_error", problem
    if isinstance(body, dict) and "result" in body:
        return body, "ok", ""
    return body, "failed", f"the portal answered HTTP {code} with JSON that is not a Bitrix24 answer"


def retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)


PORTAL_BURST, PORTAL_RATE = 50, 2.0  # Bitrix24's leaky bucket on standard plans


class LeakyBucket:
    """The portal's own limit, kept on our side: a burst of `capacity`, then
    `rate` requests a second. One request of headroom below the portal's 50:
    the portal measures at arrival, a few milliseconds after we send."""

    def __init__(self, capacity: float = PORTAL_BURST - 1, rate: float = PORTAL_RATE):
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


def _describe(exc: Exception, settings: Settings) -> tuple[str, bool]:
    """A one-line message for a transport failure, and whether re-sending may help
    (TLS and proxy refusals will not change on a second try)."""
    httpx = _httpx()

    text = redact.redact(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ProxyError):
        return f"proxy error: {text}", False
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {settings.timeout:g} s ({type(exc).__name__})", True
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (f"TLS certificate verification failed ({text}); "
                "for a self-signed portal give --ca-bundle PATH or --insecure"), False
    if "SSL" in text or "TLS" in text:
        return f"TLS error: {text}", False
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text}", True
    return f"connection failed: {text}", True


class Client:
    def __init__(self, settings: Settings, log: Callable[[str], None] | None = None, transport=None):
        """`transport`: an httpx transport to use instead of the network (unit tests)."""
        httpx = _httpx()

        self.settings = settings
        self.log = log or (lambda line: None)
        self.bucket = LeakyBucket()
        verify: Any = not settings.insecure
        if settings.ca_bundle:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=settings.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise UsageFailure(f"--ca-bundle {settings.ca_bundle!r}: {exc}") from None
        try:
            self.http = httpx.Client(
                proxy=settings.proxy,
                verify=verify,
                timeout=settings.timeout,
                follow_redirects=False,
                transport=transport,
                headers={"User-Agent": f"oint-py/{__version__}", "Accept": "application/json"},
            )
        except (ValueError, httpx.InvalidURL) as exc:
            raise UsageFailure(f"--proxy: {redact.redact(str(exc))}") from None

    def close(self) -> None:
        self.http.close()

    # -- one POST, following portal moves by re-POSTing the same body --------
    def post(self, url: str, payload: dict) -> Answer:
        httpx = _httpx()

        content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        for _hop in range(MAX_REDIRECTS + 1):
            self.bucket.acquire()
            self.log(f"> POST {url}")
            self.log(f"> {json.dumps(payload, ensure_ascii=False)}")
            try:
                resp = self.http.post(url, content=content, headers=headers)
            except httpx.InvalidURL as exc:  # only a redirect can bring one: --url was checked
                raise RequestFailure(f"the portal redirected to an invalid URL: {redact.redact(str(exc))}") from None
            except httpx.HTTPError as exc:
                self.log(f"< {type(exc).__name__}: {exc}")
                raise
            self.log(f"< HTTP {resp.status_code} {resp.reason_phrase}")
            for name, value in resp.headers.items():
                self.log(f"< {name}: {value}")
            self.log(f"< {resp.text[:2000]}")
            location = resp.headers.get("location")
            if resp.status_code not in REDIRECTS or not location:
                break
            target = urljoin(url, location)
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise RequestFailure(f"refused a redirect from https to {redact.redact(target)} (would expose credentials)")
            self.log(f"  portal moved: re-POSTing to {target}")
            url = target
        else:
            raise RequestFailure(f"more than {MAX_REDIRECTS} redirects, last to {redact.redact(url)}")
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        body, kind, problem = classify(resp.status_code, resp.content, hdrs.get("content-type", ""))
        return Answer(resp.status_code, hdrs, body, url, kind, redact.redact(problem))

    # -- a REST call with retries -------------------------------------------
    def call(self, ep: Endpoint, rest_method: str, params: dict,
             confirm: Callable[[dict], "Answer | dict | None"] | None = None, retries: int | None = None) -> Answer:
        """Send `rest_method`; re-send on 5xx, throttling and connection errors.

        `confirm(payload)` is asked after an ambiguous failure (the request may
        have been applied) and before re-sending. It returns an Answer (the call
        took effect: stop), a new payload (re-send that instead), or None
        (re-send unchanged). `retries` overrides the settings' number."""
        httpx = _httpx()

        retries = self.settings.retries if retries is None else retries
        payload = ep.payload(params)
        url = ep.url(rest_method)
        attempt = 0
        while True:
            answer, failure, ambiguous = None, None, False
            try:
                answer = self.post(url, payload)
            except httpx.HTTPError as exc:
                failure, retryable = _describe(exc, self.settings)
                if not retryable:
                    raise RequestFailure(failure) from None
                # refused connections never reached the portal; anything later may have
                ambiguous = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            else:
                error = answer.body.get("error") if isinstance(answer.body, dict) else None
                if answer.code < 500 and error not in THROTTLED:
                    return answer
                ambiguous = answer.code >= 500 and error not in THROTTLED
            wait = backoff(attempt)
            asked = retry_after(answer.headers) if answer else None
            if asked is not None:
                wait = max(wait, asked)
            if attempt >= retries or (asked or 0) > RETRY_AFTER_CAP:
                why = "" if attempt >= retries else f" (the portal asked to wait {asked:g} s)"
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                if answer is None:
                    raise RequestFailure(f"{failure} [{tries}]{why}")
                answer.kind = "failed"
                answer.problem = f"{answer.problem or f'HTTP {answer.code}'} [{tries}]{why}"
                return answer
            if ambiguous and confirm is not None:
                confirmed = confirm(payload)
                if isinstance(confirmed, Answer):
                    return confirmed
                if confirmed is not None:
                    payload = confirmed
            attempt += 1
            self.log(f"  retry {attempt}/{retries} in {wait:.2f} s: {failure or answer.problem}")
            time.sleep(wait)
