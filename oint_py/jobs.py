"""--dontwait: run a checked Call in a detached background process.

The parent prints the job's ID and file names at once and exits 0. The child
receives the Call as JSON on its standard input (a pipe: never its command
line, which `ps` shows to everyone, nor a file), executes it and writes:
`<job>.json` the answer (or the --out file), `<job>.log` what it printed on
stderr, `<job>.exit` its exit code.

The jobs folder is private: `$OINT_JOBS_DIR`, else `$XDG_STATE_HOME/oint/jobs`
(`~/.local/state/oint/jobs`), or `%LOCALAPPDATA%\\oint\\jobs` on Windows,
created 0700. A folder that is a symbolic link, belongs to another user, or
is writable by group or others is refused (exit 5) and nothing is written
into it. Job files are created 0600 with O_EXCL|O_NOFOLLOW, under names no
one can guess; results are renamed into place from random temporary names.
"""

import json
import os
import secrets
import subprocess
import sys
import time

from . import output
from .methods import JOBS_ENV
from .model import Call
from .outcome import ExitStatus, Outcome, UsageError
from .private import check_private, private_dir, state_dir  # noqa: F401 - check_private: jobs' own rule too
from .redact import Redactor
from .spawn import detached, module_argv

PRIVATE = 0o600


def default_dir() -> str:
    return os.path.join(state_dir(), "jobs")


def jobs_dir() -> str:
    return private_dir(os.path.abspath(os.environ.get(JOBS_ENV) or default_dir()))


def create_private(path: str) -> int:
    """A new file only we can read, never through a link, never one that exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    return os.open(path, flags, PRIVATE)


def start(call: Call) -> Outcome:
    folder = jobs_dir()
    job = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(8)
    files = {name: os.path.join(folder, f"{job}.{name}") for name in ("json", "log", "exit")}
    result = call.out or files["json"]
    try:
        log_fd = create_private(files["log"])
    except OSError as exc:
        raise UsageError(f"cannot create {files['log']}: {exc.strerror or exc}") from None
    try:
        proc = subprocess.Popen(module_argv("oint_py.jobs", folder, job), stdin=subprocess.PIPE,
                                stdout=log_fd, stderr=log_fd, close_fds=True, **detached())
    finally:
        os.close(log_fd)
    proc.stdin.write(json.dumps(call.to_json()).encode("utf-8"))
    proc.stdin.close()
    return Outcome(ExitStatus.OK, {"job": job, "pid": proc.pid, "result_file": result, "log_file": files["log"],
                                   "exit_file": files["exit"]})


def _child(folder: str, job: str) -> None:
    from .execute import execute

    code, redact = ExitStatus.INTERNAL, Redactor()
    try:
        call = Call.from_json(json.loads(sys.stdin.buffer.read()))
        redact = call.redactor
        outcome = execute(call, log=output.debug_logger(redact) if call.debug else None)
        result = call.out or os.path.join(folder, f"{job}.json")
        code = output.render(outcome, out=result, redact=redact, mode=None if call.out else PRIVATE)
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: one masked line in the log, never a traceback
        output.warn(f"internal error: {type(exc).__name__}: {exc}", redact)
    finally:
        output.write_atomic(os.path.join(folder, f"{job}.exit"), f"{int(code)}\n", PRIVATE)
    sys.exit(int(code))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
