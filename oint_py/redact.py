"""Keep secrets (webhook codes, tokens, proxy passwords) out of everything we print.

Secrets are registered as soon as options are parsed; every line written to
stderr (errors, --debug, --test) and every exception message passes through
`redact()`. The JSON answer of the portal on stdout is not redacted: it is the
user's data and Bitrix24 never echoes the credentials.
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
