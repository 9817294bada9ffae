"""--dontwait: run a checked Call in a detached background process.

The parent prints the job's ID and file names at once and exits 0. The child
receives the Call as JSON on its standard input (a pipe: never its command
line, which `ps` shows to everyone, nor a file, nor its environment, from
which every OINT_ variable it does not read itself is taken out), executes
it and writes:
`<job>.json` the answer (or the --out file), `<job>.log` what it printed on
stderr, `<job>.exit` its exit code.

The jobs folder is private: `$OINT_JOBS_DIR`, else `$XDG_STATE_HOME/oint/jobs`
(`~/.local/state/oint/jobs`), or `%LOCALAPPDATA%\\oint\\jobs` on Windows,
created 0700 at every level (files.private). A folder that is a symbolic link, belongs to another user, or
is writable by group or others is refused (exit 5) and nothing is written
into it; so is one below a folder that is group- or world-writable (unless
sticky and root's, as /tmp) or another user's (check_parents, as ssh does).
Job files are created 0600 with O_EXCL|O_NOFOLLOW, under names no one can
guess; results and the .meta are written whole (files.atomic). A
`<job>.meta` (method, start time, PID, result file; never a secret) lets
`oint jobs` list, wait for and clean jobs.
"""

import json
import os
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Mapping
from typing import IO, Any, cast

from oint_py.files.atomic import write_atomic
from oint_py.files.lock import WAIT_ENV
from oint_py.files.private import PRIVATE_FILE, open_private, private_dir, state_dir
from oint_py.files.spawn import detached, module_argv
from oint_py.methods import ALLOW_HTTP_ENV, JOBS_ENV
from oint_py.model import Call
from oint_py.outcome import ExitStatus, Outcome, UsageError
from oint_py.output import render as output

CHILD_READS = frozenset({WAIT_ENV, ALLOW_HTTP_ENV})  # the OINT_ variables a job's child reads itself (no secret)


def default_dir() -> str:
    return os.path.join(state_dir(), "jobs")


def jobs_dir() -> str:
    return private_dir(os.path.abspath(os.environ.get(JOBS_ENV) or default_dir()))


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job's child starts with: the parent's, less every OINT_ variable but the one the
    child reads itself (OINT_LOCK_WAIT). The call (webhook, token, client secret, --config's proxy and all)
    arrives on its stdin, checked; OINT_BITRIX24_URL, OINT_BITRIX24_TOKEN, OINT_BITRIX24_CLIENT_SECRET or
    OINT_CONFIG left in its environment would be readable in /proc/PID/environ as long as the job runs."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if not name.startswith("OINT_") or name in CHILD_READS}


def start(call: Call) -> Outcome:
    folder = jobs_dir()
    now = time.localtime()
    job = time.strftime("%Y%m%d-%H%M%S-", now) + secrets.token_hex(8)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z", now)
    files = {name: os.path.join(folder, f"{job}.{name}") for name in ("json", "log", "exit", "meta")}
    result = call.out or files["json"]
    try:
        log_fd = open_private(files["log"])
    except OSError as exc:
        raise UsageError(f"cannot create {files['log']}: {exc.strerror or exc}") from None
    try:
        proc = subprocess.Popen(
            module_argv("oint_py.jobchild", folder, job),
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=log_fd,
            close_fds=True,
            env=child_environment(),
            **detached(),
        )
    finally:
        os.close(log_fd)
    stdin = cast(IO[bytes], proc.stdin)  # stdin=PIPE: never None, which typeshed's Popen does not tell
    stdin.write(json.dumps(call.to_json()).encode("utf-8"))
    stdin.close()
    meta = {"job": job, "method": call.method.name, "started": started, "pid": proc.pid, "result_file": result}
    try:  # what `oint jobs` shows: never a secret (no URL, token or option values)
        write_atomic(files["meta"], json.dumps(meta) + "\n", PRIVATE_FILE)  # whole, as `oint jobs` reads it
    except OSError as exc:
        output.warn(f"cannot write {files['meta']} ({exc.strerror or exc}); `oint jobs` will show less of this job")
    return Outcome(
        ExitStatus.OK,
        {"job": job, "pid": proc.pid, "result_file": result, "log_file": files["log"], "exit_file": files["exit"]},
    )


# -- following jobs: `oint jobs`, `oint jobs wait`, `oint jobs clean` ------------
JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{16}")
SUFFIXES = ("json", "log", "exit", "meta")
MAX_SMALL = 1 << 16  # bytes read of a .meta or .exit file; a bigger one is not ours
WAIT_STEP = 0.2  # seconds between looks at a job being waited for
UNKNOWN_KEPT = 86400  # seconds `oint jobs clean` keeps a job it cannot tell is over
LOG_LINES = 20  # of a job's log, shown by `oint jobs wait`; the rest is counted


def _read_small(folder: str, name: str, tail: bool = False) -> str | None:
    """A job file's text (its first MAX_SMALL bytes, or with `tail` its last), never through a link, None when
    it is missing or not a plain file of ours."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.join(folder, name), flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        if tail and info.st_size > MAX_SMALL:
            fh.seek(info.st_size - MAX_SMALL)
            return fh.read(MAX_SMALL).decode("utf-8", "replace").partition("\n")[2]
        return fh.read(MAX_SMALL).decode("utf-8", "replace")


def _began(job: str) -> float | None:
    """When a job began, from its ID; None for an ID whose date cannot be (month 13)."""
    try:
        return time.mktime(time.strptime(job[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return None


def _log_lines(folder: str, job: str, where: str) -> list[str]:
    """What `jobs wait` shows of a job's log: its first LOG_LINES - 1 lines and its last (the run's summary);
    what lies between is counted, or (a log too big to count, --debug's) only said to be there."""
    head = (_read_small(folder, f"{job}.log") or "").splitlines()
    whole = len("\n".join(head)) < MAX_SMALL - 1  # the head is the whole log
    if whole and len(head) <= LOG_LINES:
        return head
    last = (_read_small(folder, f"{job}.log", tail=True) or "").splitlines()[-1:]
    more = f"{len(head) - LOG_LINES} more" if whole else "more"
    return head[: LOG_LINES - 1] + [f"and {more}: see {where}"] + last


def _exit_code(folder: str, job: str) -> int | None:
    text = _read_small(folder, f"{job}.exit")
    text = text.strip() if text is not None else ""
    return int(text) if text.isdigit() and len(text) <= 3 else None


def alive(pid: int, job: str | None = None) -> bool:
    """Whether process `pid` still runs (and, where /proc tells, is the child of `job`: a PID the system gave
    to another process after the job died is not the job). Windows: asked through a handle (os.kill would end
    it there); the PID alone."""
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        kernel = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]  # Windows
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the number: not our job
        return False
    try:  # Linux: a zombie no one reaped (an init that does not) has ended
        with open(f"/proc/{pid}/stat", "rb") as fh:
            if fh.read(512).rpartition(b")")[2].split()[:1] == [b"Z"]:
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:  # the job's child has its job ID in its argv
            return job is None or job.encode() in fh.read(1 << 16).split(b"\0")
    except OSError:
        return True


def _meta(folder: str, job: str) -> dict[str, Any]:
    try:
        meta = json.loads(_read_small(folder, f"{job}.meta") or "{}")
    except ValueError:
        meta = {}
    return meta if isinstance(meta, dict) else {}


def describe(folder: str, job: str) -> dict[str, Any]:
    """One job as `oint jobs` lists it: running, done (with its exit code) or lost (ended without one)."""
    meta = _meta(folder, job)
    code = _exit_code(folder, job)
    pid = meta["pid"] if isinstance(meta.get("pid"), int) else 0
    if code is not None:
        state = "done"
    elif alive(pid, job):
        state = "running"
    else:
        state = "lost" if pid or os.path.lexists(os.path.join(folder, f"{job}.exit")) else "unknown"
    began = _began(job)
    started = (
        meta.get("started")
        if isinstance(meta.get("started"), str)
        else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(began))
        if began is not None
        else None
    )
    entry = {
        "job": job,
        "state": state,
        "exit_code": code,
        "started": started,
        "method": meta.get("method") if isinstance(meta.get("method"), str) else None,
        "pid": pid or None,
        "result_file": meta.get("result_file")
        if isinstance(meta.get("result_file"), str)
        else os.path.join(folder, f"{job}.json"),
    }
    entry.update({f"{suffix}_file": os.path.join(folder, f"{job}.{suffix}") for suffix in ("log", "exit")})
    return entry


def _jobs(folder: str) -> list[str]:
    found = {name.rpartition(".")[0] for name in os.listdir(folder) if name.rpartition(".")[2] in SUFFIXES}
    return sorted(job for job in found if JOB_ID.fullmatch(job))


def _modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("-inf")


def listing() -> Outcome:
    folder = jobs_dir()
    return Outcome(ExitStatus.OK, [describe(folder, job) for job in _jobs(folder)])


def wait(job: str, timeout: float | None) -> Outcome:
    """Until `job` ends (or `timeout` seconds): its result as the answer, its log lines as messages,
    its exit code as the status."""
    if not JOB_ID.fullmatch(job):
        raise UsageError(f"{job!r} is not a job ID (as `oint jobs` lists them: YYYYMMDD-HHMMSS-16 hex digits)")
    folder = jobs_dir()
    if job not in _jobs(folder):
        raise UsageError(f"no job {job} in {folder}")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        entry = describe(folder, job)
        if entry["state"] != "running":
            break
        if deadline is not None and time.monotonic() >= deadline:
            return Outcome(
                ExitStatus.REQUEST_FAILED,
                None,
                (
                    f"job {job} is still running after {timeout:g} s; its result will be in "
                    f"{entry['result_file']}, its exit code in {entry['exit_file']}",
                ),
            )
        time.sleep(WAIT_STEP if deadline is None else max(0.0, min(WAIT_STEP, deadline - time.monotonic())))
    if entry["state"] != "done":
        return Outcome(
            ExitStatus.REQUEST_FAILED,
            None,
            (f"job {job} ended without an exit code (killed?); see {entry['log_file']}",),
        )
    messages = [line.removeprefix("oint: ") for line in _log_lines(folder, job, entry["log_file"])]
    begun = _began(job)
    data = None if begun is None else _result(entry["result_file"], begun, messages)
    try:
        status = ExitStatus(entry["exit_code"])
    except ValueError:
        status = ExitStatus.INTERNAL
    return Outcome(status, data, tuple(messages))


def _result(path: str, begun: float, messages: list[str]) -> object:
    """A job's result, read only from a regular file written since the job `begun`: a FIFO or a device
    (`--out /dev/null`) would block the open, or the read, for ever, so its place is said instead; an --out
    file of an earlier run is not this job's result. None when there is no result to show."""
    try:
        info = os.stat(path)
    except OSError:  # never written (the job failed before, or wrote its answer to its log)
        return None
    if not stat.S_ISREG(info.st_mode):
        messages.append(f"the job's result went to {path}, which is not a regular file; it is not read here")
        return None
    if info.st_mtime < begun:
        return None
    # O_NONBLOCK: a FIFO put there since the stat does not block the open either; fstat then tells
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        messages.append(f"cannot read the job's result {path}: {exc.strerror or exc}")
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            messages.append(f"the job's result went to {path}, which is not a regular file; it is not read here")
            return None
        try:
            return json.load(fh)
        except (OSError, ValueError) as exc:
            messages.append(f"cannot read the job's result {path}: {getattr(exc, 'strerror', None) or exc}")
            return None


def clean(older_than: float) -> Outcome:
    """Remove the files of jobs that ended (done or lost) at least `older_than` seconds ago; running jobs stay."""
    folder = jobs_dir()
    now, removed, kept = time.time(), [], 0
    for job in _jobs(folder):
        entry = describe(folder, job)
        ended = max((_modified(os.path.join(folder, f"{job}.{suffix}")) for suffix in SUFFIXES), default=now)
        # a job of an older oint (no .meta) may still run: its files stay for a day at least
        at_least = max(older_than, UNKNOWN_KEPT) if entry["state"] == "unknown" else older_than
        if entry["state"] == "running" or now - ended < at_least:
            kept += 1
            continue
        for suffix in SUFFIXES:
            try:
                os.unlink(os.path.join(folder, f"{job}.{suffix}"))  # a link itself, never what it points to
            except FileNotFoundError:
                pass
        removed.append(job)
    return Outcome(ExitStatus.OK, {"removed": removed, "kept": kept, "folder": folder})
