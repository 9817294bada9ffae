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
into it; so is one below a folder that is group- or world-writable (unless
sticky and root's, as /tmp) or another user's (check_parents, as ssh does). Job files are created 0600 with O_EXCL|O_NOFOLLOW, under names no
one can guess; results are renamed into place from random temporary names.
"""

import json
import os
import secrets
import stat
import subprocess
import sys
import time

from . import output
from .call import Call
from .methods import JOBS_ENV
from .outcome import ExitStatus, Outcome, UsageError
from .redact import Redactor
from .spawn import detached, module_argv

PRIVATE = 0o600


def default_dir() -> str:
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(base, "oint", "jobs")
    state = os.environ.get("XDG_STATE_HOME")
    if not state or not os.path.isabs(state):  # the XDG spec: a relative value is to be ignored
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "oint", "jobs")


def check_private(folder: str) -> None:
    """Refuse a jobs folder another local user could read into or write into."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise UsageError(f"jobs folder {folder}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(f"jobs folder {folder} is a symbolic link; refusing to write job files through it")
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"jobs folder {folder} is not a folder")
    if os.name == "nt":  # no POSIX owners or modes: the folder lives in the user's own profile
        return
    if info.st_uid != os.geteuid():
        raise UsageError(f"jobs folder {folder} belongs to another user (uid {info.st_uid}); "
                         f"set {JOBS_ENV} to a folder of your own")
    if info.st_mode & 0o022:
        raise UsageError(f"jobs folder {folder} is writable by group or others "
                         f"(mode {stat.S_IMODE(info.st_mode):04o}); make it 0700 or set {JOBS_ENV}")


def _ancestors(folder: str) -> list[str]:
    """Every folder above `folder`, as written and as it really is (a link on the way is checked both ways)."""
    seen: list[str] = []
    for start in (os.path.dirname(folder), os.path.realpath(os.path.dirname(folder))):
        path = start
        while True:
            if path not in seen:
                seen.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return seen


def check_parents(folder: str) -> None:
    """As ssh checks the folders above its files: none may be writable by group or others (unless sticky
    and owned by root, as /tmp is) or belong to someone else, or another user could swap the jobs folder
    while a job runs and have the job write into theirs. Folders not made yet are skipped (we make them 0700)."""
    if os.name == "nt":  # no POSIX owners or modes: the default lives in the user's own profile
        return
    me = os.geteuid()
    for path in _ancestors(folder):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(f"jobs folder {folder}: cannot check {path}: {exc.strerror or exc}") from None
        if info.st_uid not in (me, 0):
            raise UsageError(f"jobs folder {folder}: {path} above it belongs to another user (uid {info.st_uid}), "
                             f"who could swap the jobs folder; set {JOBS_ENV} to a folder under your own")
        if info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and info.st_uid == 0):
            raise UsageError(f"jobs folder {folder}: {path} above it is writable by group or others "
                             f"(mode {stat.S_IMODE(info.st_mode):04o}), who could swap the jobs folder; "
                             f"set {JOBS_ENV} to a folder under private ones")


def jobs_dir() -> str:
    folder = os.path.abspath(os.environ.get(JOBS_ENV) or default_dir())
    check_parents(folder)  # before making anything in them
    if not os.path.lexists(folder):
        try:
            os.makedirs(folder, mode=0o700)
        except FileExistsError:  # made meanwhile: checked below like any other
            pass
        except OSError as exc:
            raise UsageError(f"cannot create the jobs folder {folder}: {exc.strerror or exc}") from None
    check_private(folder)
    return folder


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
