"""Where every run ends: a method's options become a Call and an Outcome, and
the Outcome (or whatever went wrong) becomes one exit status.

Click-free, so that the quick path of main.py and the Click commands of
cli.py end the same way: one place maps errors to exit codes, masks secrets
and never shows a traceback.
"""

import os
import sys
from dataclasses import dataclass

from . import output
from .methods import CONFIG_OPTIONS, Method
from .outcome import ExitStatus, OintError, Outcome
from .redact import Redactor


@dataclass(frozen=True)
class Finished:
    """What a method run hands back to be rendered."""

    outcome: Outcome
    out: str | None
    redact: Redactor
    quiet: bool = False


def invoke(method: Method, kw: dict, redact: Redactor) -> Finished:
    """Run `method` with its options as Click names them (`url`, `adv_response`;
    None when not given): parse them into a Call, then execute it or start it
    as a background job."""
    from .call import parse

    call = parse(method, {p.option: kw.get(p.option[2:]) for p in method.params},
                 {key: kw.get(key) for key in CONFIG_OPTIONS}, config=kw.get("config"), out=kw.get("out"),
                 debug=bool(kw.get("debug")), test=bool(kw.get("test")), if_needed=bool(kw.get("if_needed")),
                 plan=bool(kw.get("plan")), quiet=bool(kw.get("quiet")), redactor=redact)
    if call.settings.dontwait and not call.test:
        from .jobs import start

        return Finished(start(call), None, call.redactor, call.quiet)  # the job's own answer goes to --out
    from .execute import execute

    # a bar for the runs that read users and statuses first; --debug's lines would tear it
    wanted = (call.all_users or call.reads_first) and not call.debug and not call.quiet
    with output.progress_bar(wanted=wanted) as progress:
        outcome = execute(call, log=output.debug_logger(call.redactor) if call.debug else None, progress=progress)
    return Finished(outcome, call.out, call.redactor, call.quiet)


def finish(args: list[str], body) -> None:
    """Run `body(redact)` and exit with the status it ends in: a Finished is
    rendered, an int is the status itself, an OintError is one masked line."""
    redact = Redactor()
    try:
        redact = Redactor.from_argv(args, os.environ)
        result = body(redact)
        if isinstance(result, Finished):
            code = output.render(result.outcome, out=result.out, redact=result.redact, quiet=result.quiet)
        else:
            code = result if isinstance(result, int) else ExitStatus.OK
    except KeyboardInterrupt:
        output.warn("interrupted")
        code = ExitStatus.INTERRUPTED
    except OintError as exc:
        output.warn(exc.message, redact)
        code = exc.status
    except Exception as exc:  # a bug: one line, masked, never a traceback
        output.warn(f"internal error: {type(exc).__name__}: {exc}", redact)
        if "--debug" in args:
            import traceback

            output.debug_logger(redact)("".join(traceback.format_exc()))
        code = ExitStatus.INTERNAL
    sys.exit(int(code))
