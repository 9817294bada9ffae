"""`oint sandbox`: run the emulated portal, in the foreground or detached.

Imports only click at module level: the portal and its server load when the
command runs, so registering the command costs `oint` nothing at start-up.
"""

import json
import os
import sys

import click

from oint_py.cli.base import Command
from oint_py.outcome import UsageError
from oint_py.sandbox.portal import CLOSED_CLOSE, DEFAULT_CODE, DEFAULT_TOKEN, FAULTS, SCENARIOS


def _rate(ctx, param, value):
    if value is None or value.strip().lower() == "off":
        return None
    burst, _, per_second = value.partition("/")
    try:
        rate = (float(burst), float(per_second or 2))
    except ValueError:
        raise click.BadParameter(f"expected BURST/RATE such as 50/2, got {value!r}") from None
    if not (rate[0] >= 1 and rate[1] > 0):
        raise click.BadParameter(f"expected a burst of at least 1 and a positive rate, got {value!r}")
    return rate


def _taken_by(host: str, port: int, exc: BaseException) -> str:
    """For a port already in use: whether a sandbox answers there (most likely one started earlier, say the
    quick start's, still running for its --stop-after) and how to go on."""
    import errno

    if getattr(exc, "errno", None) != errno.EADDRINUSE:
        return ""
    from urllib.request import urlopen

    try:
        with urlopen(f"http://{host}:{port}/sandbox/stats", timeout=1) as answer:
            ours = answer.status == 200 and "code_grants" in json.loads(answer.read(65536) or b"{}")
    except (OSError, ValueError):
        ours = False
    where = (
        "an oint sandbox already runs there (one started earlier with --background: the line it printed gives "
        "its PID; stop it with kill PID, or let its --stop-after end it)"
        if ours
        else "another program listens there"
    )
    return f"; {where}; or give another --port (0 picks a free one)"


class SandboxCommand(Command):
    """Option errors read `oint: sandbox: ...` and exit 5, like every option error."""

    def parse_args(self, ctx, args):
        ctx.meta["sandbox_args"] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            raise UsageError(f"sandbox: {exc.format_message()}") from None


@click.command("sandbox", cls=SandboxCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on")
@click.option("--port", type=int, default=8024, show_default=True, help="Port (0 picks a free one)")
@click.option("--code", default=DEFAULT_CODE, show_default=True, help="Webhook code (URL /rest/<user>/<code>/)")
@click.option("--token", default=DEFAULT_TOKEN, show_default=True, help="Accepted OAuth token")
@click.option(
    "--users",
    type=int,
    default=1000,
    show_default=True,
    help="Users 1..N exist, each with today's day open (unless --closed or --scenario)",
)
@click.option("--closed", is_flag=True, help="Start with every day closed")
@click.option(
    "--scenario",
    type=click.Choice(sorted(SCENARIOS)),
    help="Start with a mix of days: " + "; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()),
)
@click.option(
    "--no-user-scope", is_flag=True, help="The webhook lacks the user scope: user.get answers insufficient_scope"
)
@click.option(
    "--free-schedule",
    is_flag=True,
    help="No REPORT needed when TIME is given (a forgotten, EXPIRED day still wants one), and no change "
    "awaits the supervisor's confirmation",
)
@click.option(
    "--closed-close",
    type=click.Choice(CLOSED_CLOSE),
    default="record",
    show_default=True,
    help="A close of a day that is not open: record answers 200 with the status unchanged (as the server code "
    "does), refuse answers 400 with an error",
)
@click.option(
    "--rate-limit",
    metavar="BURST/RATE|off",
    default="50/2",
    show_default=True,
    callback=_rate,
    help="Leaky bucket as on a cloud portal (503 QUERY_LIMIT_EXCEEDED past it): 50/2 on standard plans, "
    "250/5 on Enterprise; off: none",
)
@click.option(
    "--fail", multiple=True, metavar="FAULT", help="Inject a fault into the next request (repeatable): " + FAULTS
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate: serve https")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM key for --tls-cert")
@click.option(
    "--token-ttl",
    type=click.FloatRange(min=1),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="Seconds an access token from the sandbox's OAuth server lives (Bitrix24: 3600)",
)
@click.option("--stop-after", type=float, default=0, help="Exit after so many seconds (0: never)")
@click.option("--background", is_flag=True, help="Start detached, print the URLs, return")
@click.pass_context
def sandbox(ctx, background, **options):
    """Run a local Bitrix24 portal emulator: webhook, token and OAuth auth, user.get, timeman.*, batch,
    the rate and operating-time limits, injected faults. docs/sandbox.md says where each behaviour
    comes from (the REST docs, the server code, or inferred)."""
    if background:
        return _background([a for a in ctx.meta["sandbox_args"] if a != "--background"], options["stop_after"])
    return serve(**options)


def serve(
    *,
    host,
    port,
    code,
    token,
    users,
    closed,
    scenario,
    no_user_scope,
    free_schedule,
    rate_limit,
    fail,
    closed_close="record",
    tls_cert,
    tls_key,
    stop_after,
    token_ttl=3600,
) -> None:
    """Run a portal in the foreground until Ctrl-C or --stop-after; its first
    stdout line is JSON: the URLs, or why it could not listen."""
    import ssl
    import threading

    from oint_py.sandbox.server import Portal

    try:
        portal = Portal(
            host=host,
            port=port,
            code=code,
            token=token,
            users=users,
            free_schedule=free_schedule,
            rate_limit=rate_limit,
            certfile=tls_cert,
            keyfile=tls_key,
            opened=not closed,
            scenario=scenario,
            user_scope=not no_user_scope,
            token_ttl=token_ttl,
            closed_close=closed_close,
        )
    except (OSError, ssl.SSLError) as exc:
        text = f"cannot listen on {host}:{port}: {exc}{_taken_by(host, port, exc)}"
        print(json.dumps({"error": text}), flush=True)
        raise UsageError(f"sandbox: {text}") from None
    portal.inject(*fail)
    print(
        json.dumps(
            {
                "sandbox": portal.base,
                "webhook": portal.webhook(1),
                "token": token,
                "users": users,
                "scenario": scenario,
                "oauth_server": portal.base,
                "client_id": portal.oauth.client_id,
                "client_secret": portal.oauth.client_secret,
                "token_ttl": token_ttl,
                "auth_link": f"{portal.base}/oauth/authorize/?client_id={portal.oauth.client_id}",
            }
        ),
        flush=True,
    )
    if stop_after:
        threading.Timer(stop_after, portal.server.shutdown).start()
    try:
        portal.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        portal.server.server_close()


def _background(args: list[str], stop_after: float) -> None:
    import subprocess

    from oint_py.files.spawn import detached, module_argv

    if "--stop-after" not in args and not any(a.startswith("--stop-after=") for a in args):
        stop_after = 3600  # a forgotten background sandbox does not outlive the hour
        args += ["--stop-after", "3600"]
    proc = subprocess.Popen(
        module_argv("oint_py.sandbox", *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        **detached(),
    )
    line = proc.stdout.readline().decode("utf-8", "replace")  # one JSON line once it listens, or why not
    proc.stdout.close()
    try:
        info = json.loads(line)
    except ValueError:
        info = {"error": "the sandbox exited without a word"}
    if "error" in info:
        raise UsageError(f"sandbox: {info['error']}")
    info["pid"] = proc.pid
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    stop = f"taskkill /PID {proc.pid} /F" if os.name == "nt" else f"kill {proc.pid}"
    until = f"for {stop_after:g} s" if stop_after else "until stopped"
    sys.stderr.write(f"oint: sandbox running as PID {proc.pid} {until}; stop it with: {stop}\n")
