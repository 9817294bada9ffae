"""What a method's command line means: one place, for both ways in.

oint reads a plain method call without Click (main.quick: Click's import is a
seventh of a call) and everything else with Click (cli/app.py). Both only *split*
argv by the option table in methods.py; every rule that gives the split
options their meaning lives here, and both call it:

- spellings: `--adv-response` and oint's `--adv_response` are one keyword;
- the environment: an option given wins over its variable; an empty
  variable is no value (OINT_BITRIX24_URL, OINT_BITRIX24_TOKEN, OINT_CONFIG);
- a method named with nothing after it shows its help, as in oint, unless
  the URL (or an auth file) comes from the environment (so cron can call it bare).

Defaults and checks are call.py's, once the meaning is settled.
"""

import os
from typing import TYPE_CHECKING

from oint_py.methods import (
    ADVANCED,
    AUTH_FILE,
    AUTH_FILE_ENV,
    GLOBAL,
    OAUTH,
    OAUTH_ADVANCED,
    SWEEP,
    URL,
    Method,
    Option,
)

if TYPE_CHECKING:
    from collections.abc import Mapping


def options(method: Method) -> tuple[Option, ...]:
    """The shared options a method takes, besides its own parameters, in the order help shows them."""
    if method.kind == "token":  # GetToken, RefreshToken
        return OAUTH + OAUTH_ADVANCED + GLOBAL
    if method.kind == "status":  # AuthStatus
        return (AUTH_FILE,) + GLOBAL
    if method.kind == "link":  # GetAppAuthLink
        return GLOBAL
    return (SWEEP if method.changes_state else ()) + ((AUTH_FILE,) if method.takes_token else ()) + ADVANCED + GLOBAL


def keyword(option_name: str) -> str:
    """The keyword an option's value travels under: `--adv-response` -> `adv_response`."""
    return option_name[2:].replace("-", "_")


def spellings(method: Method) -> tuple[dict[str, str], dict[str, str]]:
    """(options taking a value, flags): every accepted spelling -> its keyword."""
    valued = {p.option: keyword(p.option) for p in method.params}
    flags: dict[str, str] = {}
    for option in options(method):
        if option.name == "--help":
            continue
        table = flags if option.kind == "flag" else valued
        for spelling in option.spellings:
            table[spelling] = keyword(option.name)
    return valued, flags


def variables(method: Method) -> dict[str, str]:
    """keyword -> the environment variable that stands for it."""
    found = {keyword(p.option): p.env for p in method.params if p.env}
    found.update({keyword(o.name): o.env for o in options(method) if o.env})
    return found


def with_environment(
    method: Method, given: "Mapping[str, str | bool | None]", environ: "Mapping[str, str] | None" = None
) -> "dict[str, str | bool | None]":
    """The keywords given (a value, True for a flag given, None for an option not
    given: Click passes them all), plus those an environment variable supplies:
    the option wins, and an empty variable is no value."""
    environ = os.environ if environ is None else environ
    result = dict(given)
    for key, variable in variables(method).items():
        if result.get(key) is None and environ.get(variable):
            result[key] = environ[variable]
    return result


def shows_help(method: Method, rest: list[str], environ: "Mapping[str, str] | None" = None) -> bool:
    """Whether a method named with `rest` after it shows its help instead of calling.
    A portal method's URL or auth file in the environment, or AuthStatus's auth file,
    counts as an option."""
    environ = os.environ if environ is None else environ
    if rest:
        return False
    if method.kind == "status":
        return not environ.get(AUTH_FILE_ENV)
    return method.kind != "rest" or not ((URL.env and environ.get(URL.env)) or environ.get(AUTH_FILE_ENV))
