"""Keep secrets (webhook codes, tokens, proxy passwords) out of everything we print.

A `Redactor` is an immutable set of secrets plus the places secrets stand in
text. It masks, in every line written to stderr, in --debug and in --test:
- in their known places, whatever their length: the code of a webhook path
  (`/rest/<user>/<code>/`), the password of a URL (`scheme://user:PASSWORD@`),
  and the values of JSON keys `auth` and `password`;
- anywhere else, each registered secret of `MIN_SECRET_LEN` characters or
  more (shorter strings would mask ordinary words).

program.invoke builds one from the options' values (`of_options`) as soon as
they are split, before anything checks them, so even a complaint about a
malformed value is masked; call.py adds what only parsing finds and the Call
carries the result. The one complaint made before the options are split,
Click's own, is masked by a scan of argv (`from_argv`), in cli/app.py. The
portal's JSON answer on stdout is masked only for the registered secrets
(`literal`): it is the user's data, where a key named password or a /rest/
path is theirs, not ours.
"""

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from oint_py.record import Record

if TYPE_CHECKING:
    from collections.abc import Mapping

MASK = "***"
MIN_SECRET_LEN = 4

# /rest/<user id>/<webhook code>/ : the code is the secret part of a webhook URL
WEBHOOK_RE = re.compile(r"(/rest/\d+/)([^/?#\s\"']+)")
_WEBHOOK_CODE = re.compile(r"/rest/\d+/([^/?#\s]+)")  # the whole code, quotes and all, to register it
_URL_PASSWORD_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s\"']*:)([^@/\s\"']*)(@)")
# the value of a JSON key auth or password, also when a cut left the string unterminated
_JSON_SECRET_RE = re.compile(r"(\"(?:auth|password)\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\"|\\?$)", re.IGNORECASE)
SECRET_KEYS = ("auth", "password")


def _forms(value: str) -> set[str]:
    """The ways a secret shows up in text: as is, percent-encoded, percent-decoded (a
    webhook code given as `%53ecret` is `Secret` to the server, and in its pages), and
    inside JSON (ASCII-escaped as in requests, UTF-8 as in answers); bytes that are
    not UTF-8 (from argv) are encoded as they came."""
    raw = value.encode("utf-8", "surrogateescape")
    plain = [value] + ([unquote(value)] if "%" in value else [])
    forms = {
        form for text in plain for form in (text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1])
    }
    forms.add(quote(raw, safe=""))
    return {form for form in forms if len(form) >= MIN_SECRET_LEN}


class Redactor(Record):
    secrets: frozenset[str] = frozenset()

    def adding(self, *values: str | None) -> "Redactor":
        """A redactor that also masks `values` (empty ones are ignored)."""
        found = set(self.secrets)
        for value in values:
            if value:
                found |= _forms(value)
        return Redactor(frozenset(found))

    def __call__(self, text: str) -> str:
        """Every secret masked: the registered ones first (so that a pattern
        cannot mask half of one and leave the rest), then the known places."""
        text = self.literal(text)
        text = WEBHOOK_RE.sub(lambda m: m.group(1) + MASK, text)
        text = _URL_PASSWORD_RE.sub(lambda m: m.group(1) + MASK + m.group(3), text)
        return _JSON_SECRET_RE.sub(lambda m: m.group(1) + MASK + m.group(3), text)

    def literal(self, text: str) -> str:
        """Only the registered secrets masked: for the portal's own data, where a
        key named password or a /rest/ path is the user's, not ours."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def data(self, value: Any) -> Any:
        """A copy of JSON-shaped data with every string masked (never the JSON
        around them: a token `null` must not turn null into ***), and the values
        of `auth` and `password` keys replaced whatever their length."""
        mask = self
        root: list[Any] = [value]
        stack: list[tuple[Any, Any]] = []  # (a copied list or dict, the index or key of an item in it)
        stack.append((root, 0))
        while stack:  # iterative: the depth of JSON we print is bounded, but not by the recursion limit
            holder, key = stack.pop()
            item = holder[key]
            if isinstance(item, dict):
                copy: dict[Any, Any] = {}
                for k, v in item.items():
                    secret = str(k).lower() in SECRET_KEYS and isinstance(v, str)
                    copy[mask(k) if isinstance(k, str) else k] = MASK if secret else v
                    if not secret:
                        stack.append((copy, mask(k) if isinstance(k, str) else k))
                holder[key] = copy
            elif isinstance(item, list):
                holder[key] = items = list(item)
                stack.extend((items, i) for i in range(len(items)))
            elif isinstance(item, str):
                holder[key] = mask(item)
        return root[0]

    def merged(self, other: "Redactor") -> "Redactor":
        return Redactor(self.secrets | other.secrets)

    @classmethod
    def of_options(cls, given: "Mapping[str, str | bool | None]") -> "Redactor":
        """The secrets a method's options hold, by keyword (`token`, `clientsecret`, `code`,
        `refresh`, `url`, `proxy`, `config`; the environment already folded in): tokens, the
        app's secret, authorization codes, webhook codes and
        passwords in URLs, and the Password of a proxy structure (alone or inside
        --config JSON)."""
        from oint_py.methods import SECRET_OPTIONS

        kw = {key: value for key, value in given.items() if isinstance(value, str)}  # a flag holds no secret
        found: list[str | None] = [kw.get(option[2:]) for option in SECRET_OPTIONS]  # token, clientsecret, ...
        for text in filter(None, (kw.get("proxy"), kw.get("config"))):
            found += json_passwords(text)
        for url in filter(None, (kw.get("url"), kw.get("proxy"))):
            found += url_secrets(url)
        return cls().adding(*found)

    @classmethod
    def from_argv(cls, args: list[str], environ: "Mapping[str, str]") -> "Redactor":
        """The secrets of a raw command line and environment: for Click's own
        complaints, made before the options are split (see the module's doc)."""
        from oint_py.methods import CONFIG_ENV, SECRET_OPTIONS, URL

        kw: dict[str, list[str | None]] = {
            "url": [environ.get(URL.env) if URL.env else None],
            "config": [environ.get(CONFIG_ENV)],
            "proxy": [],
            **{option[2:]: [environ.get(env) if env else None] for option, env in SECRET_OPTIONS.items()},
        }
        for i, arg in enumerate(args):
            name, eq, value = arg.partition("=")
            if name in ("--url", "--proxy", "--config", *SECRET_OPTIONS):
                kw[name[2:]].append(value if eq else (args[i + 1] if i + 1 < len(args) else None))
        masks = [cls.of_options({key: value}) for key, values in kw.items() for value in values if value]
        return cls(frozenset().union(*(m.secrets for m in masks)))


def url_secrets(url: str) -> list[str]:
    """The webhook code and the password a URL carries. A password holding `/`,
    `?` or `#` ends a URL's host part early for a parser (and then shows up in
    its complaint), so both readings are registered: up to the first `/` and
    up to the last `@`."""
    found = []
    hook = _WEBHOOK_CODE.search(url)
    if hook:
        found.append(hook.group(1))
    rest = url.split("://", 1)[-1].split()[0] if url.split("://", 1)[-1].split() else ""
    for userinfo in (rest.split("/", 1)[0].rpartition("@")[0], rest.rpartition("@")[0]):
        password = userinfo.partition(":")[2]
        found += [password, password.split("/", 1)[0], re.split(r"[/?#]", password, maxsplit=1)[0]]
    return found


def json_passwords(text: str) -> list[str]:
    """Every string under a key named Password (any case) in JSON text; nothing
    when the text is not JSON (or is too deep to be taken as JSON anyway)."""
    from oint_py.bounds import BoundError, load_json

    try:
        stack = [load_json(text, "secret scan")]
    except BoundError:
        return []
    found = []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if str(key).lower() == "password" and isinstance(value, str):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found
