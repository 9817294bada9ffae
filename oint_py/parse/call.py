"""The edge: every option, environment variable and --config key is parsed and
checked here, once, into an immutable Call (or a UsageError, exit 5, before
anything is sent). Nothing below this layer validates user input again.
"""

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

from oint_py import bounds
from oint_py.methods import CONFIG_OPTIONS, URL, Method, Option
from oint_py.model import ALL_USERS, Call, Endpoint
from oint_py.outcome import UsageError
from oint_py.redact import Redactor, url_secrets
from oint_py.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

_WEBHOOK_PATH = re.compile(r"^(.*?/rest/\d+/[^/]+)(?:/|$)")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


# -- small converters: each raises UsageError naming the option --------------
def reject_blanks(value: str, option: str) -> None:
    """URLs (portal and proxy) may hold no spaces or control characters."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise UsageError(f"{option} contains spaces or control characters")


def check_host(host: str, option: str) -> None:
    """A host the resolver can take: an IP literal, or labels of 1-63 characters
    (253 in all); non-ASCII names and `xn--` labels must be valid IDNA."""
    if ":" in host or host.replace(".", "").isdigit():  # an IP literal (ipaddress loads only for these)
        import ipaddress

        try:
            ipaddress.ip_address(host.strip("[]"))
            return
        except ValueError:
            pass
    name = host.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(labels):
        raise UsageError(f"{option}: {host!r} is not a valid host name (empty label or too long)")
    if name.isascii() and not any(label.lower().startswith("xn--") for label in labels):
        bad = next((label for label in labels if not _HOST_LABEL.match(label)), None)
        if bad is not None:
            raise UsageError(f"{option}: {host!r} is not a valid host name (label {bad[:70]!r})")
        return
    import idna

    try:
        idna.encode(name.lower())  # as strict as httpx, which sends the request
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise UsageError(f"{option}: {host!r} is not a valid host name ({exc})") from None


def _split_url(raw: str, option: str, redactor: Redactor) -> SplitResult:
    if len(raw) > bounds.MAX_URL:
        raise UsageError(f"{option} is longer than {bounds.MAX_URL} characters")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:  # its text can hold a password cut at a / ? or #: never echoed
        raise UsageError(
            f"{option}: not a valid URL (a bad port, or a password with /, ? or # not percent-encoded)"
        ) from None
    if not parts.hostname:
        raise UsageError(f"{option}: no host in {redactor(raw)!r}")
    check_host(parts.hostname, option)
    return parts


def number(option: Option, value: object, label: str | None = None) -> int | float:
    """An option of kind number or integer, within its range."""
    name = label or option.config or option.name
    integer = option.kind == "integer"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{name}: expected a number, got {value!r}")
    try:
        if integer and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        result = int(value) if integer else float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{name}: expected {'a whole number' if integer else 'a number'}, got {value!r}") from None
    if not (option.low <= result <= option.high):  # also refuses NaN
        low, high = (int(option.low), int(option.high)) if integer else (f"{option.low:g}", f"{option.high:g}")
        raise UsageError(f"{name}: {result} is out of range {low}..{high}")
    return result


def flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise UsageError(f"{name}: expected true or false, got {value!r}")


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}


def size(option: Option, value: object) -> int:
    """Bytes, or a number with K, M or G (powers of 1024)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not m or m[2].lower() not in _UNITS:
            raise UsageError(f"{option.config}: expected a size such as 64M, got {value!r}")
        try:
            count = int(float(m[1]) * _UNITS[m[2].lower()])
        except (OverflowError, ValueError):
            raise UsageError(f"{option.config}: {value[:40]!r} is out of range") from None
        value = count
    return int(number(option.replace(kind="integer"), value))


# -- the pieces of a call ----------------------------------------------------
def load_config(value: str) -> dict[str, Any]:
    """--config (or OINT_CONFIG): a JSON object, or a path to a file holding one."""
    try:
        text = value if value.lstrip().startswith(("{", "[")) else bounds.read_option_file(value, "--config")
        data = bounds.load_json(text, "--config")
    except bounds.BoundError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(data, dict):
        raise UsageError("--config: expected a JSON object with keys " + ", ".join(CONFIG_OPTIONS))
    unknown = sorted(set(data) - set(CONFIG_OPTIONS))
    if unknown:
        raise UsageError(f"--config: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(CONFIG_OPTIONS)}")
    return data


def proxy_url(value: object, redactor: Redactor) -> tuple[str, Redactor]:
    """A proxy URL, or oint's structure {Protocol, Host, Port, User, Password,
    UseOSAuthentication} (as a dict or as JSON text), as a URL httpx takes;
    and the redactor with the proxy's password added."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = bounds.load_json(value, "--proxy")
        except bounds.BoundError as exc:
            raise UsageError(str(exc)) from None
    if isinstance(value, dict):
        fields = {str(k).lower(): v for k, v in value.items()}
        if flag("proxy UseOSAuthentication", fields.get("useosauthentication", False)):
            raise UsageError("--proxy: UseOSAuthentication (NTLM/Kerberos) is not supported; give User and Password")
        host = str(fields.get("host") or "").strip()
        if not host:
            raise UsageError("--proxy: the structure needs Host")
        scheme = str(fields.get("protocol") or "http").lower().rstrip(":/")
        port, user, password = fields.get("port"), fields.get("user"), fields.get("password")
        auth = ""
        if user:
            redactor = redactor.adding(str(password or ""))
            auth = quote(str(user), safe="") + (":" + quote(str(password), safe="") if password else "") + "@"
        port_option = Option("--proxy", "", "integer", "", low=1, high=65535)
        port_part = f":{number(port_option, port, 'proxy Port')}" if port not in (None, "") else ""
        value = f"{scheme}://{auth}{host}{port_part}"
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"--proxy: expected a URL or a structure, got {type(value).__name__}")
    value = value.strip()
    reject_blanks(value, "--proxy")
    if "://" not in value:
        value = "http://" + value
    redactor = redactor.adding(*url_secrets(value))
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"--proxy: {scheme!r} proxies are not supported; use an http:// or https:// proxy")
    _split_url(value, "--proxy", redactor)
    return value, redactor


def environment_proxy(url: str) -> str | None:
    """The proxy HTTP_PROXY / HTTPS_PROXY / ALL_PROXY name for `url`, unless
    NO_PROXY exempts its host. Only the environment counts: not the Windows
    registry, whose bypass list httpx would ignore (see the README)."""
    from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

    proxies = getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass_environment(parts.netloc, proxies):
        return None
    return proxy


def endpoint(url: str, token: str | None, redactor: Redactor) -> Endpoint:
    """Where to send: a webhook URL (`https://host/rest/1/<code>/`), or a portal
    address plus --token (then `https://host/rest/<method>` and `auth` in the body).
    A bare domain means https, as in oint; an explicit http:// is kept for
    self-hosted portals."""
    raw = (url or "").strip()
    if not raw:
        raise UsageError(
            f"--url is empty: give the webhook URL (or, with --token, the portal address) with --url or in {URL.env}"
        )
    reject_blanks(raw, "--url")
    if "://" not in raw:
        raw = "https://" + raw.lstrip("/")
    scheme = raw.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"--url: only http:// and https:// portals are supported, not {scheme}://")
    parts = _split_url(raw, "--url", redactor)
    origin = f"{scheme}://{parts.netloc}"
    if token:
        prefix = parts.path.split("/rest/")[0] if "/rest/" in parts.path else ""
        return Endpoint(f"{origin}{prefix.rstrip('/')}/rest/", token)
    hook = _WEBHOOK_PATH.match(parts.path)
    if not hook:
        raise UsageError("--url is not a webhook URL (https://HOST/rest/USER_ID/CODE/) and no --token was given")
    return Endpoint(f"{origin}{hook.group(1)}/")


def user_ids(value: str | None) -> tuple[tuple[str, ...], bool]:
    """--userid: one ID, a list `1,2,3`, or `@file` (one ID a line, # comments).
    Returns (ids, many): many is True for the list forms, whose output is keyed
    by user. IDs are normalised (`051` is user 51) and each is sent once.
    (`all` is told apart by parse(), before this.)"""
    if value is None:
        return (), False
    text, many = value.strip(), False
    if not text:
        raise UsageError(
            "--userid is empty (an unset shell variable?); leave the option out for the webhook's own user"
        )
    if text.startswith("@"):
        try:
            text = bounds.read_option_file(text[1:], "--userid")
        except bounds.BoundError as exc:
            raise UsageError(str(exc)) from None
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        many = True
    parts = [p for p in text.replace(",", " ").split() if p]
    many = many or "," in value or len(parts) > 1
    long = next((p for p in parts if len(p) > bounds.MAX_ID_DIGITS), None)
    if long is not None:  # before int(): Python refuses over 4,300 digits, and 4,000 cost time and memory
        raise UsageError(f"--userid: {long[:20]!r}... is not a user ID (more than {bounds.MAX_ID_DIGITS} digits)")
    bad = [p for p in parts if not (p.isascii() and p.isdigit() and int(p) > 0)]
    if bad and bad[0].lower() == ALL_USERS:
        raise UsageError("--userid: all stands alone (every active user); it cannot be mixed with IDs or a file")
    if bad:
        raise UsageError(f"--userid: {bad[0][:40]!r} is not a user ID (a positive whole number)")
    if not parts:
        raise UsageError("--userid: no user IDs given")
    return tuple(dict.fromkeys(str(int(p)) for p in parts)), many


def rest_params(method: Method, values: "Mapping[str, str | None]") -> tuple[tuple[str, str], ...]:
    """The REST fields of the call except USER_ID, checked before anything is sent."""
    params: list[tuple[str, str]] = []
    for p in method.params:
        value = values.get(p.option)
        if p.rest and p.rest != "USER_ID" and value not in (None, ""):
            if p.rest == "TIME":
                from oint_py.parse import timeparse  # only a call that names a time needs the zone rules

                try:
                    value = timeparse.to_atom(value)
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
            params.append((p.rest, value))
    return tuple(params)


def check_out(path: str) -> str:
    """--out: its folder must exist and be writable; checked before anything is sent."""
    if not path:
        raise UsageError("--out is empty")
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UsageError(f"--out {path!r} is a directory")
    if os.path.exists(target) and not os.path.isfile(target):  # a device or a pipe: written through
        if not os.access(target, os.W_OK):
            raise UsageError(f"--out: {path!r} is not writable")
        return target
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageError(f"--out: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out: folder {folder!r} is not writable")
    return target


def settings(
    flags: "Mapping[str, object]", config: str | None, target: str, redactor: Redactor
) -> tuple[Settings, Redactor]:
    """Explicit flags (None when not given) over --config over the defaults.
    `target`: the portal URL, for the environment's proxy."""
    merged = load_config(config) if config else {}
    merged.update({k: v for k, v in flags.items() if v is not None})
    given: dict[str, Any] = {}  # each value of its option's type: Settings checks them field by field
    for key, option in CONFIG_OPTIONS.items():
        if key not in merged:
            continue
        value = merged[key]
        if option.kind == "flag":
            given[key] = flag(key, value)
        elif option.kind in ("number", "integer"):
            given[key] = number(option, value)
        elif option.kind == "size":
            given[key] = size(option, value)
        elif key == "proxy" and value not in (None, "", {}):
            given[key], redactor = proxy_url(value, redactor)
        elif key == "ca_bundle" and value:
            given[key] = str(value)
            if not os.path.isfile(given[key]):
                raise UsageError(f"--ca-bundle: no such file {given[key]!r}")
    if given.get("insecure") and given.get("ca_bundle"):
        raise UsageError("--insecure and --ca-bundle contradict each other; give one")
    if not given.get("proxy"):
        env_proxy = environment_proxy(target)
        if env_proxy:
            given["proxy"], redactor = proxy_url(env_proxy, redactor)
    return Settings(**{k: v for k, v in given.items() if v is not None}), redactor


def parse(
    method: Method,
    values: "Mapping[str, str | None]",
    flags: "Mapping[str, object]",
    *,
    config: str | None = None,
    out: str | None = None,
    debug: bool = False,
    test: bool = False,
    if_needed: bool = False,
    plan: bool = False,
    quiet: bool = False,
    redactor: Redactor = Redactor(),  # noqa: B008 - immutable: one empty redactor serves every call
    auth_file: str | None = None,
) -> Call:
    """values: the method's options (`{"--url": ..., "--userid": ...}`, None when
    not given); flags: the --config keys given as flags (None when not given)."""
    given = {**values, **{f"--{k.replace('_', '-')}": v for k, v in flags.items()}, "--config": config, "--out": out}
    for option, value in given.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # argv bytes that are not UTF-8 (a cp1251 script, say) arrive as surrogates
                raise UsageError(
                    f"{option}: not UTF-8 text (save the script as UTF-8, or on Windows run chcp 65001 first)"
                ) from None
    url, token = values.get("--url") or "", values.get("--token") or None
    token_server: str | None = None
    if auth_file is not None:
        url, token, auth_file, token_server, redactor = _auth_file(auth_file, url, token, redactor)
    redactor = redactor.adding(token, *url_secrets(url))
    ep = endpoint(url, token, redactor)
    if (if_needed or plan) and not method.changes_state:
        raise UsageError(f"--if-needed and --plan are for the methods that change a day; {method.name} changes nothing")
    if plan and test:
        raise UsageError("--plan reads the portal and --test sends nothing: give one of them")
    raw = values.get("--userid")
    all_users = raw is not None and raw.strip().lower() == ALL_USERS
    ids, many = ((), True) if all_users else user_ids(raw)
    if all_users and method.rest == "timeman.pause" and not (if_needed or plan):
        raise UsageError(
            "PauseTimekeeping --userid all would resume every closed day (a pause on a closed day "
            "re-opens it): add --if-needed to pause only the open ones"
        )
    params = rest_params(method, values)
    conf, redactor = settings(flags, config, ep.base, redactor)
    if token_server is not None:  # a renewal goes to the OAuth server: the proxy the environment gives that host
        token_conf, redactor = settings(flags, config, token_server, redactor)
        conf = conf.replace(token_proxy=token_conf.proxy)
    target = check_out(out) if out is not None else None
    return Call(
        method=method,
        endpoint=ep,
        user_ids=ids,
        many=many,
        params=params,
        settings=conf,
        out=target,
        debug=debug,
        test=test,
        redactor=redactor,
        all_users=all_users,
        if_needed=if_needed,
        plan=plan,
        auth_file=auth_file,
        quiet=quiet,
    )


def _auth_file(path: str, url: str, token: str | None, redactor: Redactor) -> tuple[str, str, str, str, Redactor]:
    """--auth-file: its access token, and its portal unless --url is given."""
    if token:
        raise UsageError(
            "--token and --auth-file both give the access token: give one (check OINT_BITRIX24_TOKEN "
            "and OINT_BITRIX24_AUTH_FILE too)"
        )
    if not path.strip():
        raise UsageError("--auth-file is empty")
    try:
        webhook = bool(url) and _WEBHOOK_PATH.match(urlsplit(url.strip()).path) is not None
    except ValueError:  # not a URL at all: endpoint() says so
        webhook = False
    if webhook:  # its code would be dropped without a word, and the call made as the app's user
        raise UsageError(
            "--url is a webhook URL and --auth-file an app's token: give one (check OINT_BITRIX24_URL "
            "and OINT_BITRIX24_AUTH_FILE too; with --auth-file, --url is the portal's address)"
        )
    from oint_py.auth.authfile import load

    path = os.path.abspath(path)
    data = load(path)
    redactor = redactor.adding(data["access_token"], data["refresh_token"], data["client_secret"])
    return url or data["client_endpoint"], data["access_token"], path, data["oauth_server"], redactor
