"""The command line: `oint LIBRARY METHOD --option value`, as oint has it.

Thin on purpose: the commands are generated from the method table, option
values go to `run.execute`, and every way out is mapped to a documented exit
code in `Root.main` (no tracebacks, secrets masked).
"""

import os
import sys

import click

from . import __version__, errors, helptext, output, redact
from .errors import OintError
from .methods import BY_KEY, LIBRARIES, METHODS, URL, Method
from .settings import CONFIG_ENV

class Root(click.Group):
    def resolve_command(self, ctx, args):
        cmd = self.get_command(ctx, args[0])
        if cmd is None and ctx.resilient_parsing:  # completing: nothing to offer, no error
            return None, None, args
        if cmd is None and not args[0].startswith("-"):
            raise OintError(
                f"unknown library {args[0]!r}; libraries: {', '.join(LIBRARIES)} (names are lowercase)",
                errors.UNKNOWN_LIBRARY,
            )
        return super().resolve_command(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        args = list(sys.argv[1:] if args is None else args)
        redact.register_argv(args, os.environ)
        if os.environ.get("_OINT_COMPLETE"):
            from . import completion  # noqa: F401 - registers the PowerShell class
        try:
            code = super().main(args, prog_name=prog_name or "oint", complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.Abort:
            output.warn("interrupted")
            code = errors.INTERRUPTED
        except click.ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            output.warn(exc.format_message() + hint)
            code = errors.BAD_OPTIONS
        except OintError as exc:
            output.warn(exc.message)
            code = exc.exit_code
        except KeyboardInterrupt:
            output.warn("interrupted")
            code = errors.INTERRUPTED
        except Exception as exc:  # a bug: one line, masked, never a traceback
            output.warn(f"internal error: {type(exc).__name__}: {exc}")
            if "--debug" in args:
                import traceback

                output.debug("".join(traceback.format_exc()))
            code = errors.INTERNAL
        sys.exit(code if isinstance(code, int) else 0)


class Library(click.Group):
    """`oint bitrix24`: method names are case-insensitive, as in oint."""

    def list_commands(self, ctx):
        return [m.name for m in METHODS]

    def get_command(self, ctx, name):
        method = BY_KEY.get(name.lower())
        return method_command(method) if method else None

    def shell_complete(self, ctx, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(m.name, help=m.description) for m in METHODS
                if m.key.startswith(incomplete.lower())]

    def resolve_command(self, ctx, args):
        cmd = self.get_command(ctx, args[0])
        if cmd is None:
            if args[0].startswith("-") or ctx.resilient_parsing:
                return super().resolve_command(ctx, args)
            raise OintError(
                f"unknown method {args[0]!r} of {ctx.info_name}; run 'oint {ctx.info_name}' for the list",
                errors.UNKNOWN_METHOD,
            )
        return cmd.name, cmd, args[1:]


class MethodCommand(click.Command):
    def __init__(self, method: Method, **kwargs):
        self.method = method
        super().__init__(**kwargs)

    def parse_args(self, ctx, args):
        # oint: a method called with no options shows its help. A URL in the
        # environment counts as an option, so cron can call it bare.
        if not args and not os.environ.get(URL.env) and not ctx.resilient_parsing:
            helptext.show(helptext.method(self.method))
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def get_help(self, ctx):
        return helptext.plain(helptext.method(self.method))


def _show_help(ctx, param, value):
    if value and not ctx.resilient_parsing:
        helptext.show(helptext.method(ctx.command.method))
        ctx.exit(0)


def _options(method: Method) -> list[click.Parameter]:
    opts = [
        click.Option([p.option], help=p.description, envvar=p.env, show_envvar=bool(p.env),
                     metavar=p.type.split(",")[0].upper())
        for p in method.params
    ]
    for option, metavar, desc in helptext.ADVANCED + helptext.GLOBAL:
        names = [option]
        if option == "--help":
            opts.append(click.Option(names, is_flag=True, expose_value=False, is_eager=True,
                                     callback=_show_help, help=desc))
            continue
        if "-" in option[2:]:
            names.append("--" + option[2:].replace("-", "_"))  # oint's key spelling: --adv_response
        if metavar:
            opts.append(click.Option(names, metavar=metavar, help=desc,
                                     type=click.Path() if "PATH" in metavar else None,
                                     envvar=CONFIG_ENV if option == "--config" else None))
        else:
            opts.append(click.Option(names, is_flag=True, default=None, help=desc))
    return opts


_COMMANDS: dict[str, MethodCommand] = {}


def method_command(method: Method) -> MethodCommand:
    if method.name not in _COMMANDS:
        def callback(**kw):
            return _invoke(method, kw)

        _COMMANDS[method.name] = MethodCommand(
            method, name=method.name, params=_options(method), callback=callback,
            help=method.description, add_help_option=False,
        )
    return _COMMANDS[method.name]


def _invoke(method: Method, kw: dict) -> int:
    from . import run, settings

    values = {p.option: kw.get(p.option[2:]) for p in method.params}
    flags = {key: kw.get(key) for key in settings.CONFIG_KEYS}  # every --config key is also a flag
    conf = settings.build(flags, kw.get("config"))
    return run.execute(method, values, conf, debug=bool(kw.get("debug")), test=bool(kw.get("test")),
                       out=kw.get("out"))


@click.group(cls=Root, invoke_without_command=True, add_help_option=False,
             context_settings={"help_option_names": []})
@click.option("--version", is_flag=True, help="Show the version and exit")
@click.option("--help", "help_", is_flag=True, help="Show this help")
@click.pass_context
def cli(ctx, version, help_):
    if version:
        output.say(f"oint-py {__version__}")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        helptext.show(helptext.root())


@cli.group(cls=Library, name="bitrix24", invoke_without_command=True, add_help_option=False)
@click.option("--help", "help_", is_flag=True, help="Show the methods")
@click.pass_context
def bitrix24(ctx, help_):
    if ctx.invoked_subcommand is None:
        helptext.show(helptext.library(ctx.info_name))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                               "help_option_names": []})
@click.pass_context
def sandbox(ctx):
    """Run a local Bitrix24 portal emulator (oint sandbox --help)."""
    from .sandbox import serve

    serve(ctx.args)


@cli.command(add_help_option=False)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish", "powershell"]))
def completion(shell):
    """Print the completion script for SHELL (see completions/)."""
    from .completion import script

    output.say(script(cli, shell))


def main() -> None:
    cli.main(prog_name="oint")
