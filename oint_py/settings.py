"""Advanced call settings: flags, oint's --config JSON, and the proxy forms.

Precedence: an explicit flag wins over --config, which wins over the defaults.
"""

import json
import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from . import redact
from .errors import UsageFailure

DEFAULT_TIMEOUT = 30.0  # seconds per attempt; oint waits 3600 s
DEFAULT_RETRIES = 3  # re-sends after the first attempt
MAX_RETRIES = 20
CONFIG_ENV = "OINT_CONFIG"  # stands for --config
CONFIG_KEYS = ("proxy", "timeout", "adv_response", "retries", "dontwait", "ca_bundle", "insecure")


@dataclass
class Settings:
    proxy: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    adv_response: bool = False
    retries: int = DEFAULT_RETRIES
    dontwait: bool = False
    ca_bundle: str | None = None
    insecure: bool = False


def reject_blanks(value: str, option: str) -> None:
    """URLs (portal and proxy) may hold no spaces or control characters: httpx
    would fail on them later with an error of its own."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise UsageFailure(f"{option} contains spaces or control characters")


def load_config(value: str) -> dict:
    """--config: a JSON object, or a path to a file holding one."""
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            with open(value, encoding="utf-8-sig") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageFailure(f"--config: cannot read {value!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageFailure(f"--config: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageFailure("--config: expected a JSON object with keys " + ", ".join(CONFIG_KEYS))
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageFailure(f"--config: unknown key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    return data


def _number(name: str, value, *, integer: bool, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageFailure(f"{name}: expected a number, got {value!r}")
    try:
        if integer and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        number = int(value) if integer else float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageFailure(f"{name}: expected {'a whole number' if integer else 'a number'}, got {value!r}") from None
    if not (low <= number <= high):
        raise UsageFailure(f"{name}: {number} is out of range {low:g}..{high:g}")
    return number


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise UsageFailure(f"{name}: expected true or false, got {value!r}")


def proxy_url(value) -> str:
    """A proxy URL, or oint's structure {Protocol, Host, Port, User, Password, UseOSAuthentication}
    (as a dict or as JSON text), turned into a URL httpx takes."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise UsageFailure(f"--proxy: not valid JSON ({exc})") from None
    if isinstance(value, dict):
        fields = {k.lower(): v for k, v in value.items()}
        if _flag("proxy UseOSAuthentication", fields.get("useosauthentication", False)):
            raise UsageFailure("--proxy: UseOSAuthentication (NTLM/Kerberos) is not supported; give User and Password")
        host = str(fields.get("host") or "").strip()
        if not host:
            raise UsageFailure("--proxy: the structure needs Host")
        scheme = str(fields.get("protocol") or "http").lower().rstrip(":/")
        port = fields.get("port")
        user, password = fields.get("user"), fields.get("password")
        auth = ""
        if user:
            redact.add_secret(str(password or ""))
            auth = quote(str(user), safe="") + (":" + quote(str(password), safe="") if password else "") + "@"
        port_part = f":{_number('proxy Port', port, integer=True, low=1, high=65535)}" if port not in (None, "") else ""
        value = f"{scheme}://{auth}{host}{port_part}"
    if not isinstance(value, str) or not value.strip():
        raise UsageFailure(f"--proxy: expected a URL or a structure, got {value!r}")
    value = value.strip()
    reject_blanks(value, "--proxy")
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise UsageFailure(f"--proxy: {redact.redact(str(exc))}") from None
    if parts.password:
        redact.add_secret(parts.password)
    if parts.scheme not in ("http", "https"):
        raise UsageFailure(f"--proxy: {parts.scheme!r} proxies are not supported; use an http:// or https:// proxy")
    if not parts.hostname:
        raise UsageFailure(f"--proxy: no host in {redact.redact(value)!r}")
    return value


def build(flags: dict, config: str | None) -> Settings:
    """Merge explicit flags (None when not given) over --config over defaults."""
    merged = load_config(config) if config else {}
    merged.update({k: v for k, v in flags.items() if v is not None})
    s = Settings()
    if merged.get("proxy") not in (None, "", {}):
        s.proxy = proxy_url(merged["proxy"])
    if "timeout" in merged:
        s.timeout = _number("timeout", merged["timeout"], integer=False, low=0.001, high=86400)
    if "retries" in merged:
        s.retries = _number("retries", merged["retries"], integer=True, low=0, high=MAX_RETRIES)
    for name in ("adv_response", "dontwait", "insecure"):
        if name in merged:
            setattr(s, name, _flag(name, merged[name]))
    if merged.get("ca_bundle"):
        s.ca_bundle = str(merged["ca_bundle"])
        if not os.path.isfile(s.ca_bundle):
            raise UsageFailure(f"--ca-bundle: no such file {s.ca_bundle!r}")
    if s.insecure and s.ca_bundle:
        raise UsageFailure("--insecure and --ca-bundle contradict each other; give one")
    return s
