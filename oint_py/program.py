"""Where every run ends: a method's options become a Call and an Outcome, and
the Outcome (or whatever went wrong) becomes one exit status.

Click-free, so that the quick path of main.py and the Click commands of
cli/app.py end the same way: one place maps errors to exit codes, masks secrets
and never shows a traceback.
"""

from typing import TYPE_CHECKING, Any

from oint_py.methods import CONFIG_OPTIONS, Method
from oint_py.outcome import ExitStatus, OintError, Outcome
from oint_py.output import render as output
from oint_py.parse import cmdline
from oint_py.record import Record
from oint_py.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from oint_py.model import Call


class Finished(Record):
    """What a method run hands back to be rendered."""

    outcome: Outcome
    out: str | None
    redact: Redactor
    quiet: bool = False
    mode: int | None = None  # of a new --out file, as render's (0o600: it holds a live token pair)


class Masking:
    """What finish() masks its last line with. It starts with the known places
    of secrets only; invoke() adds the secrets the options hold as soon as
    their values are known, before anything checks them, so that even a
    complaint about a malformed value is masked."""

    def __init__(self) -> None:
        self.redact = Redactor()


def invoke(method: Method, given: "Mapping[str, str | bool | None]", masking: Masking) -> "Finished | int":
    """Run `method` with its options split by keyword (`url`, `adv_response`;
    None when not given), by main.quick or by Click: give them their meaning
    (cmdline), parse them into a Call, then execute it or start it as a
    background job."""
    from oint_py.parse.call import parse

    # a value (str) per option, True per flag, None when not given: which is which, the method's table says
    kw: dict[str, Any] = cmdline.with_environment(method, given)
    masking.redact = Redactor.of_options(kw)
    if method.kind != "rest":  # GetAppAuthLink, GetToken, RefreshToken, AuthStatus: no portal method
        from oint_py.run.appauth import run

        result = run(method, kw, masking.redact)
        return result if isinstance(result, int) else Finished(*result)
    call = parse(
        method,
        {p.option: kw.get(cmdline.keyword(p.option)) for p in method.params},
        {key: kw.get(key) for key in CONFIG_OPTIONS},
        config=kw.get("config"),
        out=kw.get("out"),
        debug=bool(kw.get("debug")),
        test=bool(kw.get("test")),
        if_needed=bool(kw.get("if_needed")),
        plan=bool(kw.get("plan")),
        quiet=bool(kw.get("quiet")),
        redactor=masking.redact,
        auth_file=kw.get("auth_file"),
    )
    masking.redact = call.redactor
    if call.settings.dontwait and not call.test:
        from oint_py.jobs.store import start

        return Finished(start(call), None, call.redactor, call.quiet)  # the job's own answer goes to --out
    # a bar for the runs that read users and statuses first; --debug's lines would tear it
    bar = (call.all_users or call.reads_first) and not call.debug and not call.quiet
    return run_call(call, out=call.out, bar=bar)


def run_call(
    call: "Call",
    *,
    out: str | None,
    mode: int | None = None,
    bar: bool = False,
    then: "Callable[[ExitStatus], None] | None" = None,
) -> ExitStatus:
    """Execute `call` in the foreground or as a --dontwait job's child, the same way, and render its
    outcome; the exit status. A run over many users goes batch by batch, each batch's answer written to
    `out` at once (so the file is true at any moment), and SIGINT/SIGTERM/SIGHUP stop it within
    bounds.STOP_GRACE (files/signals.py). Their handlers stay until the record is final: a signal after the
    sending ends changes nothing. `mode`: of `out`, as render's. `bar`: show the progress bar. `then(status)`:
    what is left to do under the handlers (a job's .exit file)."""
    from contextlib import nullcontext

    from oint_py.run.execute import execute

    log = output.debug_logger(call.redactor) if call.debug else None
    many = call.many or call.reads_first
    record = output.recorder(out, call.redactor, mode) if out and call.many else None
    if many:
        from oint_py.files.signals import on_signals
    with on_signals() if many else nullcontext() as stop:
        with output.progress_bar(wanted=bar) as progress:
            outcome = execute(call, log=log, progress=progress, record=record, stop=stop)
        if stop is not None:
            stop.finish()
        status = output.render(outcome, out=out, redact=call.redactor, mode=mode, quiet=call.quiet)
        if then is not None:
            then(status)
        return status


def finish(args: list[str], body: "Callable[[Masking], object]") -> ExitStatus:
    """Run `body(masking)` and return the status it ends in: a Finished is
    rendered, an int is the status itself, an OintError is one masked line.
    Never raises (a bug is one masked line and INTERNAL) and never exits: the
    console-script shim does, with what main() returns."""
    masking = Masking()
    code: int
    try:
        result = body(masking)
        if isinstance(result, Finished):
            code = output.render(
                result.outcome, out=result.out, redact=result.redact, mode=result.mode, quiet=result.quiet
            )
        else:
            code = result if isinstance(result, int) else ExitStatus.OK
    except KeyboardInterrupt:
        output.warn("interrupted")
        code = ExitStatus.INTERRUPTED
    except OintError as exc:
        output.warn(exc.message, masking.redact)
        code = exc.status
    except Exception as exc:  # a bug: one line, masked, never a traceback
        output.warn(f"internal error: {type(exc).__name__}: {exc}", masking.redact)
        if "--debug" in args:
            import traceback

            output.debug_logger(masking.redact)("".join(traceback.format_exc()))
        code = ExitStatus.INTERNAL
    return ExitStatus(code)
