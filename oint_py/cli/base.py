"""The one base of oint's Click commands (methods, `oint sandbox`, `oint jobs wait|clean`): the options are
offered after an option's value too. Click only: imported by every command module, so it loads nothing
else."""

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

_AFTER_DASHES = "oint_py.after_dashes"  # ctx.meta: `--` ended the options of the command being completed


class Command(click.Command):
    """A command whose options are offered after an option's value, as well as after
    a dash (`--userid 1 <TAB>`), through Click's public hook: Click asks the command
    itself (not an option, not an argument) only when no value is due, and here the
    empty word then completes as `-` would. After `--` nothing is an option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # completing
            ctx.meta[_AFTER_DASHES] = "--" in args
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> "list[CompletionItem]":
        if incomplete == "" and not ctx.meta.get(_AFTER_DASHES):
            incomplete = "-"
        return super().shell_complete(ctx, incomplete)
