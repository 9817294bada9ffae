"""The command line: `oint LIBRARY METHOD --option value`, as oint has it.

Thin on purpose: commands are generated from the method and option tables;
a method's options go to program.invoke (call.parse checks them all, once;
execute or a background job runs the Call), and `Root.main` ends through
program.finish, the one place where an outcome or an error becomes the
process's exit status (no tracebacks, secrets masked). Click's own errors
become exit 5 here. main.py reads plain method calls without Click.
"""

import os
import sys
from typing import TYPE_CHECKING, Any, ClassVar

import click

from oint_py import __version__
from oint_py.cli.base import Command
from oint_py.methods import BY_KEY, LIBRARIES, METHODS, Method, Option
from oint_py.outcome import ExitStatus, OintError
from oint_py.output import render as output
from oint_py.parse import cmdline
from oint_py.program import Finished, Masking, finish, invoke
from oint_py.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from click.shell_completion import CompletionItem


def _help(page: str, *args: object) -> None:
    """Show a help page; helptext (and rich, on a terminal) load only here."""
    from oint_py.cli import helptext

    helptext.show(getattr(helptext, page)(*args))


def _did_you_mean(typed: str, names: "Iterable[str]") -> str:
    """`; did you mean StopTimekeeping?` for a near miss (any case), as Click says for options."""
    import difflib

    by_key = {name.lower(): name for name in names}
    close = difflib.get_close_matches(typed.lower(), list(by_key), n=1, cutoff=0.6)
    return f": did you mean {by_key[close[0]]}?" if close else ""


class Root(click.Group):
    # command name: its module
    LAZY: ClassVar[dict[str, str]] = {"sandbox": "oint_py.sandbox.command", "jobs": "oint_py.cli.jobs"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """`oint sandbox` loads its module only when it is the command run."""
        if name in self.LAZY and name not in self.commands:
            import importlib

            self.add_command(getattr(importlib.import_module(self.LAZY[name]), name))
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        cmd = self.get_command(ctx, args[0])
        if cmd is None and ctx.resilient_parsing:  # completing: nothing to offer, no error
            return None, None, args
        if cmd is None and not args[0].startswith("-"):
            raise OintError(
                f"unknown library {args[0]!r}{_did_you_mean(args[0], LIBRARIES)} (libraries: "
                f"{', '.join(LIBRARIES)}; names are lowercase)",
                ExitStatus.UNKNOWN_LIBRARY,
            )
        return super().resolve_command(ctx, args)

    def main(  # type: ignore[override]  # returns the exit status where Click's exits: main.main hands it on
        self,
        args: "Sequence[str] | None" = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        **extra: Any,
    ) -> ExitStatus:
        args = list(sys.argv[1:] if args is None else args)
        if os.environ.get("_OINT_COMPLETE"):
            from oint_py.cli import completion  # noqa: F401 - registers the completion classes of every shell

        def body(masking: Masking) -> object:
            try:
                return super(Root, self).main(
                    args,
                    prog_name=prog_name or "oint",
                    complete_var=complete_var,
                    standalone_mode=False,
                    obj=masking,
                    **extra,
                )
            except click.exceptions.Abort:
                raise KeyboardInterrupt from None
            except click.ClickException as exc:
                # The one complaint made before the options are split, which can quote
                # any of argv: masked by a scan of argv itself (redact.Redactor.from_argv).
                masking.redact = masking.redact.merged(Redactor.from_argv(args, os.environ))
                where = exc.ctx if isinstance(exc, click.UsageError) else None  # the only ones with a context
                hint = f" (see '{where.command_path} --help')" if where else ""
                text = " ".join(exc.format_message().split())  # Click's choices come one a line: one line here
                raise OintError(text + hint, ExitStatus.BAD_OPTIONS) from None

        return finish(args, body)


class Library(click.Group):
    """`oint bitrix24`: method names are case-insensitive, as in oint."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [m.name for m in METHODS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        method = BY_KEY.get(name.lower())
        return method_command(method) if method else None

    def shell_complete(self, ctx: click.Context, incomplete: str) -> "list[CompletionItem]":
        from click.shell_completion import CompletionItem

        return [CompletionItem(m.name, help=m.description) for m in METHODS if m.key.startswith(incomplete.lower())]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        cmd = self.get_command(ctx, args[0])
        if cmd is None:
            if args[0].startswith("-") or ctx.resilient_parsing:
                return super().resolve_command(ctx, args)
            raise OintError(
                f"unknown method {args[0]!r} of {ctx.info_name}"
                f"{_did_you_mean(args[0], [m.name for m in METHODS])} "
                f"(run 'oint {ctx.info_name}' for the list)",
                ExitStatus.UNKNOWN_METHOD,
            )
        return cmd.name, cmd, args[1:]


class MethodCommand(Command):
    def __init__(self, method: Method, **kwargs: Any) -> None:
        self.method = method
        super().__init__(**kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if cmdline.shows_help(self.method, args) and not ctx.resilient_parsing:
            _help("method", self.method)
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def get_help(self, ctx: click.Context) -> str:
        from oint_py.cli import helptext

        return helptext.plain(helptext.method(self.method))


def _show_help(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    if value and not ctx.resilient_parsing and isinstance(ctx.command, MethodCommand):  # a method's --help only
        _help("method", ctx.command.method)
        ctx.exit(0)


def _option(option: Option) -> click.Option:
    """A click option from the option table: values stay strings (call.py checks them)."""
    if option.name == "--help":
        return click.Option(
            list(option.spellings),
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_show_help,
            help=option.help,
        )
    names = list(option.spellings)
    if option.kind == "flag":
        return click.Option(names, is_flag=True, default=None, help=option.help)
    return click.Option(
        names,
        metavar=option.metavar,
        help=option.help,
        type=click.Path(readable=False) if option.kind == "path" else None,
    )  # call.py checks


# Environment variables are not Click's envvar=: cmdline.with_environment applies them, for
# Click's path and the quick path alike.


def _options(method: Method) -> list[click.Parameter]:
    params: list[click.Parameter] = [
        click.Option([p.option], help=p.description, metavar=p.type.split(",")[0].upper()) for p in method.params
    ]
    return params + [_option(o) for o in cmdline.options(method)]


_COMMANDS: dict[str, MethodCommand] = {}


def method_command(method: Method) -> MethodCommand:
    if method.name not in _COMMANDS:

        def callback(**kw: str | bool | None) -> "Finished | int":  # int: an auth method's own exit status
            return invoke(method, kw, click.get_current_context().find_root().obj)

        _COMMANDS[method.name] = MethodCommand(
            method,
            name=method.name,
            params=_options(method),
            callback=callback,
            help=method.description,
            add_help_option=False,
        )
    return _COMMANDS[method.name]


@click.group(cls=Root, invoke_without_command=True, add_help_option=False, context_settings={"help_option_names": []})
@click.option("--version", is_flag=True, help="Show the version and exit")
@click.option("--help", "-h", "help_", is_flag=True, help="Show this help")
@click.pass_context
def cli(ctx: click.Context, version: bool, help_: bool) -> None:
    if version:
        output.say(f"oint-py {__version__}")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        _help("root")


@cli.group(cls=Library, name="bitrix24", invoke_without_command=True, add_help_option=False)
@click.option("--help", "-h", "help_", is_flag=True, help="Show the methods")
@click.pass_context
def bitrix24(ctx: click.Context, help_: bool) -> None:
    if ctx.invoked_subcommand is None:
        _help("library", ctx.info_name)


@cli.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish", "powershell"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (see completions/)."""
    from oint_py.cli.completion import script

    output.say(script(cli, shell))
