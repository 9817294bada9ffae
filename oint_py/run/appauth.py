"""The commands that are not portal methods: GetAppAuthLink, GetToken,
RefreshToken (oint's, drop-in) and AuthStatus (an extension).

Each reads its options once (the same converters as call.py: proxy, timeout,
TLS), and returns an Outcome for output/render.py to render; GetAppAuthLink returns
its link as text, as oint prints it. GetToken and RefreshToken send one GET to
the OAuth server (oauth.py), never twice; `--save PATH` keeps the answer in an
auth file (authfile.py) and then prints it with the tokens masked.
"""

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from oint_py import bounds
from oint_py.files.atomic import write_atomic
from oint_py.files.private import PRIVATE_FILE
from oint_py.methods import CONFIG_OPTIONS, DEFAULT_OAUTH_SERVER, Method
from oint_py.outcome import ExitStatus, Outcome, UsageError
from oint_py.output import render as output
from oint_py.redact import MASK, Redactor

if TYPE_CHECKING:
    from oint_py.settings import Settings

# the options split by keyword: a value (str) per option given, True per flag given, None when not given; which
# keyword holds which is the method's table's to say (cmdline), not a type's
Options = dict[str, Any]
# (the outcome, the --out path, the redactor[, quiet, the --out file's mode]): program.Finished's fields
Rendered = tuple[Outcome, str | None, Redactor] | tuple[Outcome, str | None, Redactor, bool, int | None]


def _required(kw: Options, name: str, env: str | None = None) -> str:
    value = (kw.get(name) or "").strip()
    if not value:
        raise UsageError(f"--{name} is required" + (f" (or set {env})" if env else ""))
    return value


def run(method: Method, kw: Options, redact: Redactor) -> ExitStatus | Rendered:
    """(Outcome, --out path, redactor) for program.finish; for GetAppAuthLink the exit status itself."""
    if method.kind == "link":
        return _link(kw)
    if method.kind == "status":
        return _status(kw, redact)
    return _grant(method, kw, redact)


# -- GetAppAuthLink ------------------------------------------------------------------
def _link(kw: Options) -> ExitStatus:
    from oint_py.parse.call import check_host, check_out

    domain = _required(kw, "domain")
    client_id = _required(kw, "clientid", "OINT_BITRIX24_CLIENT_ID")
    scheme = "http" if domain.lower().startswith("http://") else "https"
    host = domain.split("://", 1)[-1].split("/", 1)[0]  # oint breaks on https:// and a trailing slash; we take both
    if not host:
        raise UsageError(f"--domain: no portal in {domain!r}")
    check_host(host.rsplit(":", 1)[0] if host.count(":") == 1 else host, "--domain")
    from urllib.parse import quote

    link = f"{scheme}://{host}/oauth/authorize/?client_id={quote(client_id, safe='.')}"
    out = check_out(kw["out"]) if kw.get("out") else None
    if kw.get("test") or kw.get("debug"):
        output.debug_logger(Redactor())("  nothing is sent: the link is for a browser")
    if out:
        write_atomic(out, link + "\n")
        output.say(f"Result written to {out}")
    else:
        output.say(link)
    return ExitStatus.OK


# -- GetToken, RefreshToken -------------------------------------------------------------
def _grant(method: Method, kw: Options, redact: Redactor) -> Rendered:
    from oint_py.auth import authfile, oauth
    from oint_py.parse.call import check_out, settings

    client_id = _required(kw, "clientid", "OINT_BITRIX24_CLIENT_ID")
    secret = _required(kw, "clientsecret", "OINT_BITRIX24_CLIENT_SECRET")
    refresh = method.name == "RefreshToken"
    grant = _required(kw, "refresh" if refresh else "code")
    redact = redact.adding(secret, grant)
    server = oauth.server_url(kw.get("oauth_server"), DEFAULT_OAUTH_SERVER)
    conf, redact = settings({key: kw.get(key) for key in CONFIG_OPTIONS}, kw.get("config"), server, redact)
    if conf.dontwait:
        raise UsageError(f"{method.name} runs in the foreground: dontwait is for portal methods")
    save = os.path.abspath(kw["save"]) if kw.get("save") else None
    if save:
        authfile.check_private(save, must_exist=False)
    out = check_out(kw["out"]) if kw.get("out") else None
    params = {
        "grant_type": "refresh_token" if refresh else "authorization_code",
        "client_id": client_id,
        "client_secret": secret,
        ("refresh_token" if refresh else "code"): grant,
    }
    if kw.get("test"):
        from urllib.parse import urlencode

        shown = {
            "requests": [{"method": "GET", "url": oauth.masked(f"{server}/oauth/token/?{urlencode(params)}")}],
            "proxy": conf.proxy,
            "timeout": conf.timeout,
            "save": save,
        }
        return Outcome(ExitStatus.OK, redact.data(shown)), out, redact
    log = output.debug_logger(redact) if kw.get("debug") else None
    what = "the refresh token" if refresh else "the code"
    if not save:
        # the live pair: an --out file of it is private, whatever the umask (issue 23 item 1.8)
        return _exchange(server, params, conf, log, what, None), out, redact, False, PRIVATE_FILE
    from oint_py.files.signals import deferred

    # the lock and room for the file are shown before the grant is spent; a signal from the request to the
    # save waits for the save (bounded by --timeout): a pair received and not saved is lost for good
    with authfile.locked(save, authfile.lock_wait(conf)):
        authfile.check_room(save, what)
        existed = os.path.lexists(save)
        with deferred():
            answer = _exchange(server, params, conf, log, what, save)
            if isinstance(answer, Outcome):
                return answer, out, redact
            try:
                authfile.save(save, authfile.compose(answer, client_id, secret, server))
            except OSError as exc:
                return _unsaved(answer, save, exc, existed, method.name == "RefreshToken"), out, redact
            authfile.drop_pending(save)  # a pair a renewal could not save is older than this one
    redact = redact.adding(answer.get("access_token"), answer.get("refresh_token"))
    return (
        Outcome(
            ExitStatus.OK,
            oauth.masked_answer(answer),
            (f"saved to the auth file {save}; use it with --auth-file {save}",),
        ),
        out,
        redact,
    )


@overload
def _exchange(
    server: str, params: dict[str, str], conf: "Settings", log: Callable[[str], None] | None, what: str, save: None
) -> Outcome: ...


@overload
def _exchange(
    server: str, params: dict[str, str], conf: "Settings", log: Callable[[str], None] | None, what: str, save: str
) -> "dict[str, Any] | Outcome": ...


def _exchange(
    server: str,
    params: dict[str, str],
    conf: "Settings",
    log: Callable[[str], None] | None,
    what: str,
    save: str | None,
) -> "dict[str, Any] | Outcome":
    """The OAuth server's answer (a dict) for --save, else an Outcome to show (also the answer without --save)."""
    from oint_py.auth import oauth

    try:
        status, answer = oauth.token(server, params, conf, log)
    except oauth.NotSent as exc:
        return _failed(f"{exc}; nothing was sent")
    except oauth.NoAnswer as exc:
        return _failed(
            f"{exc}. {what.capitalize()} may have been used" + ("; the auth file was not touched" if save else "")
        )
    if "error" in answer:
        desc = answer.get("error_description") or ""
        return Outcome(
            ExitStatus.API_ERROR,
            answer,
            (f"the OAuth server answered HTTP {status} error {answer['error']!r}" + (f": {desc}" if desc else ""),),
        )
    return answer if save else Outcome(ExitStatus.OK, answer)


def _unsaved(answer: dict[str, Any], save: str, exc: OSError, existed: bool, refresh: bool) -> Outcome:
    """A pair issued and not saved: shown whole (it is the only copy, and the grant is spent), exit 6."""
    kept = "; the file before was kept, and its refresh token still works" if existed and not refresh else ""
    kept = "; the file before was kept" if existed and refresh else kept
    return Outcome(
        ExitStatus.NOT_WRITTEN,
        answer,
        (
            f"the new pair was NOT saved to the auth file {save} ({exc.strerror or exc}){kept}. The answer above "
            "is unmasked and its refresh token is the only live one: keep it. To save it, once the folder can be "
            f"written: oint bitrix24 RefreshToken --refresh REFRESH_TOKEN_ABOVE --save {save}",
        ),
    )


def _failed(text: str) -> Outcome:
    return Outcome(ExitStatus.REQUEST_FAILED, {"error": "REQUEST_FAILED", "error_description": text}, (text,))


# -- AuthStatus -------------------------------------------------------------------------
def _when(moment: object, now: float) -> str | None:
    """A unix time as local ISO time; one that cannot be believed (beyond the refresh token's lifetime from
    now, or not a time at all) is shown as such, never a crash."""
    if not isinstance(moment, (int, float)) or isinstance(moment, bool):
        return None
    if not _believable(moment, now):
        return f"cannot be believed: {str(moment)[:40]} is not a time near now"
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")


def _believable(moment: float, now: float) -> bool:
    """Within ten years before now and the refresh token's lifetime (and a day) after it."""
    try:
        return -86400 * 3650 <= float(moment) - now <= 86400 * (bounds.REFRESH_TOKEN_DAYS + 1)
    except (OverflowError, ValueError):
        return False


def _status(kw: Options, redact: Redactor) -> Rendered:
    from oint_py.auth import authfile
    from oint_py.parse.call import check_out

    if not (kw.get("auth_file") or "").strip():
        raise UsageError("--auth-file is required (or set OINT_BITRIX24_AUTH_FILE)")
    path = os.path.abspath(kw["auth_file"])
    data = authfile.load(path)
    redact = redact.adding(data["access_token"], data["refresh_token"], data["client_secret"])
    now = time.time()
    issued = data.get("refresh_token_issued_at")
    believed = isinstance(issued, (int, float)) and not isinstance(issued, bool) and _believable(issued, now)
    age = round((now - issued) / 86400, 1) if believed and isinstance(issued, (int, float)) else None
    shown = {
        "auth_file": path,
        "portal": data["client_endpoint"],
        "member_id": data.get("member_id"),
        "user_id": data.get("user_id"),
        "scope": data.get("scope"),
        "status": data.get("status"),
        "oauth_server": data["oauth_server"],
        "client_id": data["client_id"],
        "client_secret": MASK,
        "access_token": MASK,
        "access_token_expires": _when(data.get("expires_local") or data["expires"], now),
        "access_token_expired": authfile.expired(data, now),
        "refresh_token": MASK,
        "refresh_token_issued": _when(issued, now),
        "refresh_token_age_days": age,
        "refresh_token_days_left": None if age is None else round(bounds.REFRESH_TOKEN_DAYS - age, 1),
    }
    messages: tuple[str, ...] = ()
    if age is not None and age >= bounds.REFRESH_TOKEN_DAYS:
        messages = (
            f"the refresh token is {age:g} days old, past Bitrix24's {bounds.REFRESH_TOKEN_DAYS} days: "
            "the next renewal will fail; authorise the app again (GetAppAuthLink, the browser, GetToken "
            f"--save {path})",
        )
    if os.path.lexists(authfile.pending(path)):
        messages += (
            f"a renewed pair the auth file could not take waits in {authfile.pending(path)}: the next run "
            "moves it into place (the file itself holds a spent refresh token)",
        )
    out = check_out(kw["out"]) if kw.get("out") else None
    return Outcome(ExitStatus.OK, shown, messages), out, redact
