"""The OAuth server's token endpoint: one GET, bounded, never re-sent.

`GET <server>/oauth/token/?grant_type=...&client_id=...&client_secret=...&code=...|refresh_token=...`
as oint sends it. A refresh token is single-use, so a request that may have
reached the server is never sent again: `token()` either returns the server's
JSON answer (a new pair, or {"error": ...} with any HTTP status, 200
included), or raises
- NotSent: the connection was never made, nothing reached the server;
- NoAnswer: the request may have reached the server and no usable answer came
  (timeout, dropped connection, HTML, a 5xx, a body that is not a token
  answer, larger than MAX_TOKEN_ANSWER): a refresh token may have been used.
Bounds: `--timeout` for the whole exchange (checked at every chunk read, so a
server dripping bytes is cut off), MAX_TOKEN_ANSWER bytes, no compression
asked or accepted, no redirects followed (the query holds the client secret).
Secrets never reach `log`: the query's secrets and the answer's tokens are masked.
The query holds the client secret and the code or refresh token: a server on plain http is refused
(exit 5, nothing sent) unless it is on this machine (loopback) or ALLOW_HTTP_ENV is 1 (check_server).
"""

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from oint_py import bounds
from oint_py.methods import ALLOW_HTTP_ENV
from oint_py.net import tls
from oint_py.outcome import UsageError
from oint_py.settings import Settings

SECRET_FIELDS = ("client_secret", "code", "refresh_token", "access_token")
_QUERY_SECRET = re.compile(r"((?:client_secret|code|refresh_token)=)[^&\s]*")


class NotSent(Exception):
    """Nothing reached the OAuth server."""


class NoAnswer(Exception):
    """The request may have reached the OAuth server, and no usable answer came."""


def server_url(value: str | None, default: str) -> str:
    """--oauth-server as a base URL without a trailing slash; a bare host means https."""
    raw = (value or default).strip().rstrip("/")
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--oauth-server: expected an http(s) address such as {default}, got {value!r}")
    check_server(raw, "--oauth-server")
    return raw


def _loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_server(url: str, what: str) -> None:
    """Refuse an OAuth server on plain http that is not this machine: the client secret and the code or
    refresh token would cross the network in cleartext. ALLOW_HTTP_ENV=1 is the explicit opt-in."""
    import os

    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http" or _loopback(parts.hostname or "") or os.environ.get(ALLOW_HTTP_ENV) == "1":
        return
    raise UsageError(
        f"{what} {parts.scheme}://{parts.hostname} is plain http on another machine: the client secret and the "
        "code or refresh token would travel unencrypted, so nothing was sent. Use https, or, if you must, "
        f"set {ALLOW_HTTP_ENV}=1"
    )


def masked(text: str) -> str:
    """A token URL or text with the query's secrets hidden."""
    return _QUERY_SECRET.sub(lambda m: m.group(1) + "***", text)


def masked_answer(answer: object) -> object:
    if not isinstance(answer, dict):
        return answer
    return {k: ("***" if k in SECRET_FIELDS and isinstance(v, str) and v else v) for k, v in answer.items()}


def token(
    server: str, params: dict[str, str], settings: Settings, log: Callable[[str], None] | None = None
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the JSON object answered) for a token request; NotSent or NoAnswer."""
    import ssl

    from oint_py.net.transport import Clock, _import_httpx, deadline_network, error_classes

    _import_httpx()  # first: the shim
    import httpx

    errors = error_classes()
    log = log or (lambda line: None)
    url = f"{server}/oauth/token/?{urlencode(params)}"
    verify = (
        tls.context(settings.insecure, settings.ca_bundle)
        if tls.needed(url, settings.proxy)
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )  # plain http: never used
    # the whole exchange within --timeout, at every socket operation (headers dripped a byte at a time too)
    clock = Clock()
    clock.deadline = deadline = time.monotonic() + settings.timeout
    log(f"> GET {masked(url)}")
    try:
        with (
            httpx.Client(
                transport=deadline_network(clock, verify, settings.proxy),
                timeout=settings.timeout,
                follow_redirects=False,
                trust_env=False,
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            ) as http,
            http.stream("GET", url) as resp,
        ):
            body = bytearray()
            if resp.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
                raise NoAnswer(
                    f"the OAuth server answered with Content-Encoding "
                    f"{resp.headers['content-encoding']!r}, which was not asked for"
                )
            for chunk in resp.iter_raw():
                body += chunk
                if len(body) > bounds.MAX_TOKEN_ANSWER:
                    raise NoAnswer(
                        f"the OAuth server's answer is larger than {bounds.MAX_TOKEN_ANSWER:,} bytes; not read further"
                    )
                if time.monotonic() > deadline:
                    raise NoAnswer(f"no whole answer from the OAuth server within --timeout {settings.timeout:g} s")
    except (*errors["connect"], *errors["connect_timeout"]) as exc:
        log(f"< {type(exc).__name__}")
        raise NotSent(f"cannot connect to the OAuth server {server}: {exc}") from None
    except errors["timeout"] as exc:
        log(f"< {type(exc).__name__}")
        raise NoAnswer(f"no whole answer from the OAuth server within --timeout {settings.timeout:g} s") from None
    except errors["any"] + (OSError,) as exc:
        log(f"< {type(exc).__name__}")
        raise NoAnswer(
            f"the OAuth server {server} gave no whole answer ({type(exc).__name__}: {masked(str(exc)) or 'no detail'})"
        ) from None
    log(f"< HTTP {resp.status_code} ({len(body)} bytes)")
    if resp.status_code in (301, 302, 303, 307, 308):
        raise NoAnswer(
            f"the OAuth server answered a redirect (HTTP {resp.status_code}) to "
            f"{masked(resp.headers.get('location', '?'))}; not followed (the request holds the client "
            "secret); check --oauth-server"
        )
    try:
        answer = bounds.load_json(bytes(body), "the OAuth server's answer")
    except bounds.BoundError:
        kind = resp.headers.get("content-type", "no content type")
        raise NoAnswer(f"the OAuth server answered HTTP {resp.status_code} with {kind}, not JSON") from None
    if not isinstance(answer, dict):
        raise NoAnswer(f"the OAuth server answered HTTP {resp.status_code} with JSON that is not an object")
    log(f"< {json.dumps(masked_answer(answer), ensure_ascii=False)[: bounds.MAX_LOGGED_BODY]}")
    if resp.status_code >= 500:  # the server failed somewhere: whether the grant was used, nobody can say
        raise NoAnswer(f"the OAuth server answered HTTP {resp.status_code} ({str(answer.get('error'))[:100]})")
    if "error" in answer:
        return resp.status_code, answer
    if resp.status_code != 200 or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise NoAnswer(f"the OAuth server answered HTTP {resp.status_code} without an access_token")
    return resp.status_code, answer
