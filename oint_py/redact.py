"""Keep secrets (webhook codes, tokens, proxy passwords) out of everything we print.

Secrets are registered from the raw command line and environment before Click
parses anything (`register_argv`), and again where options are read; every line
written to stderr (errors, --debug) and the --test output pass through
`redact()`, which also masks any `/rest/<user>/<code>/` webhook path. The JSON
answer of the portal on stdout is not redacted: it is the user's data and
Bitrix24 never echoes the credentials.
"""

import json
import re
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LEN = 4  # shorter strings would mask ordinary words

_secrets: set[str] = set()

# /rest/<user id>/<webhook code>/ : the code is the secret part of a webhook URL
WEBHOOK_RE = re.compile(r"(/rest/\d+/)([^/?#\s\"']+)")


def add_secret(value: str | None) -> None:
    if not value or len(value) < MIN_SECRET_LEN:
        return
    for form in (value, quote(value, safe=""), json.dumps(value)[1:-1]):
        if len(form) >= MIN_SECRET_LEN:
            _secrets.add(form)


def clear() -> None:
    _secrets.clear()


def redact(text: str) -> str:
    text = WEBHOOK_RE.sub(lambda m: m.group(1) + MASK, text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def register_argv(args: list[str], environ) -> None:
    """Register the secrets of a command line before anything parses it, so that
    even a parser's complaint ("unexpected extra argument ...") is masked: tokens,
    webhook codes in URLs, and passwords in URLs (the proxy's)."""
    from .methods import TOKEN, URL
    from .settings import CONFIG_ENV

    tokens = [environ.get(TOKEN.env)]
    urls = [environ.get(URL.env)]
    structures = [environ.get(CONFIG_ENV)]
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in ("--token", "--url", "--proxy", "--config"):
            value = value if eq else (args[i + 1] if i + 1 < len(args) else None)
            {"--token": tokens, "--url": urls, "--proxy": urls, "--config": structures}[name].append(value)
            if name == "--proxy":
                structures.append(value)
    for token in tokens:
        add_secret(token)
    for text in filter(None, structures):
        _register_json_passwords(text)
    for url in filter(None, urls):
        hook = WEBHOOK_RE.search(url)
        if hook:
            add_secret(hook.group(2))
        userinfo = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
        add_secret(userinfo.partition(":")[2])


def _register_json_passwords(text: str) -> None:
    """oint's proxy structure, alone or inside --config JSON: its Password is a secret."""
    try:
        stack = [json.loads(text)]
    except ValueError:
        return
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if str(key).lower() == "password" and isinstance(value, str):
                    add_secret(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
