"""The `oint` command: a quick path for the plain method call, Click for the rest.

Cron jobs and .bat loops start oint thousands of times, and Click's import
alone is about a seventh of a call. A command line that is nothing but
`oint bitrix24 METHOD` and that method's own long options (`--opt value`,
`--opt=value`, `--flag`) is read here, from the same option tables Click's
commands are built from, into the very keywords Click would pass; anything
else (completion, a typo, an option missing its value) goes to Click, which
gives the full messages. The help pages (`oint`, `oint bitrix24`, a method
alone or with --help) are shown from helptext directly. All end in
ending.finish.
"""

import os
import sys

from .methods import ADVANCED, BY_KEY, GLOBAL, SWEEP, URL, Method


def _names(method: Method) -> tuple[dict, dict, dict]:
    """(options taking a value, flags, environment variables): option spelling -> Click's keyword."""
    valued = {p.option: p.option[2:] for p in method.params}
    flags, env = {}, {p.option[2:]: p.env for p in method.params if p.env}
    for option in (SWEEP if method.changes_state else ()) + ADVANCED + GLOBAL:
        if option.name == "--help":
            continue
        key = option.name[2:].replace("-", "_")
        table = flags if option.kind == "flag" else valued
        for spelling in option.spellings:
            table[spelling] = key
        if option.env:
            env[key] = option.env
    return valued, flags, env


def quick(args: list[str]) -> tuple[Method, dict] | None:
    """The method and Click's keywords for a plain method call; None when Click must read `args`."""
    if len(args) < 3 or args[0] != "bitrix24" or os.environ.get("_OINT_COMPLETE"):
        return None
    method = BY_KEY.get(args[1].lower())
    if method is None:
        return None
    valued, flags, env = _names(method)
    kw: dict = {}
    i = 2
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in flags and not eq:
            kw[flags[name]] = True
            i += 1
        elif name in valued and eq:
            kw[valued[name]] = value
            i += 1
        elif name in valued and i + 1 < len(args) and not args[i + 1].startswith("-"):
            kw[valued[name]] = args[i + 1]
            i += 2
        else:
            return None
    for key, variable in env.items():  # as Click's envvar: the option wins, an empty variable is no value
        if kw.get(key) is None and os.environ.get(variable):
            kw[key] = os.environ[variable]
    return method, kw


def page(args: list[str]):
    """The help page a command line asks for, when that is all it asks; None otherwise.
    The same pages, by the same functions, as Click's commands show."""
    if os.environ.get("_OINT_COMPLETE"):
        return None
    from . import helptext

    if args in ([], ["--help"], ["-h"]):
        return helptext.root()
    if args in (["bitrix24"], ["bitrix24", "--help"], ["bitrix24", "-h"]):
        return helptext.library("bitrix24")
    method = BY_KEY.get(args[1].lower()) if len(args) in (2, 3) and args[0] == "bitrix24" else None
    if method and (args[2:] in (["--help"], ["-h"]) or (len(args) == 2 and not os.environ.get(URL.env))):
        return helptext.method(method)
    return None


def main() -> None:
    args = sys.argv[1:]
    found = quick(args)
    shown = None if found else page(args)
    if found is None and shown is None:
        from .cli import cli

        cli.main(args, prog_name="oint")
        return
    from .ending import finish, invoke

    if shown is not None:
        from .helptext import show

        finish(args, lambda redact: show(shown))
    method, kw = found
    finish(args, lambda redact: invoke(method, kw, redact))
