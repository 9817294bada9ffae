"""The `oint` command: a quick path for the plain method call, Click for the rest.

Cron jobs and .bat loops start oint thousands of times, and Click's import
alone is about a seventh of a call. A command line that is nothing but
`oint bitrix24 METHOD` and that method's own long options (`--opt value`,
`--opt=value`, `--flag`) is read here, from the same option tables Click's
commands are built from, into the very keywords Click would pass; anything
else (completion, a typo, an option missing its value) goes to Click, which
gives the full messages. The help pages (`oint`, `oint bitrix24`, a method
alone or with --help) are shown from helptext directly. All end in
program.finish.
"""

import os
import sys
from typing import TYPE_CHECKING

from oint_py.methods import BY_KEY, Method
from oint_py.outcome import ExitStatus
from oint_py.parse import cmdline

if TYPE_CHECKING:
    from oint_py.cli.helptext import Page


def quick(args: list[str]) -> tuple[Method, dict[str, str | bool]] | None:
    """The method and its options split by keyword for a plain method call; None
    when Click must read `args`. Only splits: cmdline gives the meaning."""
    if len(args) < 3 or args[0] != "bitrix24" or os.environ.get("_OINT_COMPLETE"):
        return None
    method = BY_KEY.get(args[1].lower())
    if method is None:
        return None
    valued, flags = cmdline.spellings(method)
    kw: dict[str, str | bool] = {}
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
    return method, kw


def page(args: list[str]) -> "Page | None":
    """The help page a command line asks for, when that is all it asks; None otherwise.
    The same pages, by the same functions, as Click's commands show."""
    if os.environ.get("_OINT_COMPLETE"):
        return None
    from oint_py.cli import helptext

    if args in ([], ["--help"], ["-h"]):
        return helptext.root()
    if args in (["bitrix24"], ["bitrix24", "--help"], ["bitrix24", "-h"]):
        return helptext.library("bitrix24")
    method = BY_KEY.get(args[1].lower()) if len(args) in (2, 3) and args[0] == "bitrix24" else None
    if method and (args[2:] in (["--help"], ["-h"]) or cmdline.shows_help(method, args[2:])):
        return helptext.method(method)
    return None


def main(args: list[str] | None = None) -> ExitStatus:
    """The console script's entry point: the exit status of `oint ARGS` (the
    shim that calls it exits with it; nothing below exits the process)."""
    args = sys.argv[1:] if args is None else list(args)
    found = quick(args)
    if found is not None:
        from oint_py.program import finish, invoke

        method, kw = found
        return finish(args, lambda masking: invoke(method, kw, masking))
    shown = page(args)
    if shown is not None:
        from oint_py.cli.helptext import show
        from oint_py.program import finish

        return finish(args, lambda masking: show(shown))
    from oint_py.cli.app import cli

    return cli.main(args, prog_name="oint")
