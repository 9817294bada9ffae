"""`oint jobs`: list, wait for and clean this user's --dontwait jobs.

Loaded only when the command runs (cli.Root.LAZY). The work is in jobs.py;
answers are rendered like a method's: JSON on stdout, one line per message
on stderr, the exit status from the Outcome (for `wait`, the job's own)."""

import re

import click

from oint_py.cli.base import Command
from oint_py.outcome import Outcome, UsageError
from oint_py.program import Finished

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str, option: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `7d`, `2w` in seconds."""
    found = _DURATION.fullmatch(value.strip().lower())
    if not found or len(value) > 20:
        raise UsageError(f"{option}: expected a duration such as 30s, 15m, 12h or 7d, got {value!r}")
    return float(found.group(1)) * _SECONDS[found.group(2)]


def _done(outcome: Outcome) -> Finished:
    return Finished(outcome, None, click.get_current_context().find_root().obj.redact)  # the root's Masking


@click.group("jobs", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def jobs(ctx: click.Context) -> Finished | None:
    """List this user's --dontwait jobs: state (running; done, with its exit code; lost: ended without one),
    start time, method and files. Never a secret: jobs record none."""
    if ctx.invoked_subcommand is None:
        from oint_py.jobs.store import listing

        return _done(listing())
    return None  # a subcommand runs


@jobs.command("wait", cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("job")
@click.option(
    "--timeout",
    metavar="DURATION",
    help="Stop waiting after so long (30s, 15m, 2h; default: until the job ends): exit 4",
)
def wait(job: str, timeout: str | None) -> Finished:
    """Wait for JOB to end; print its result and log, and exit with its exit code."""
    from oint_py.jobs.store import wait as wait_for

    return _done(wait_for(job, None if timeout is None else seconds(timeout, "--timeout")))


@jobs.command("clean", cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--older-than", metavar="DURATION", default="0", help="Only jobs that ended at least so long ago (7d, 12h)"
)
def clean(older_than: str) -> Finished:
    """Remove the files of jobs that ended (an --out file is yours and stays); running jobs stay."""
    from oint_py.jobs.store import clean as clean_up

    return _done(clean_up(seconds(older_than, "--older-than")))
