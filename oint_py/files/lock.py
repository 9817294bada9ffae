"""One state-changing run over many users per portal at a time.

Two cron lines, or a slow 23:55 run still going at 00:10, would otherwise
send every change twice. The lock is a file in the private state folder
(`$XDG_STATE_HOME/oint/locks`, `~/.local/state/oint/locks`, or
`%LOCALAPPDATA%\\oint\\locks` on Windows), named by a hash of the portal's
address (never the webhook code), created 0600 with O_NOFOLLOW in a folder
created 0700 and held with fcntl (POSIX) or msvcrt.locking (Windows). The
operating system releases it when the process ends, however it ends.

A second run waits for it at most OINT_LOCK_WAIT seconds (default
bounds.LOCK_WAIT), then ends with exit 4 naming the run that holds it and the
portal (host:port) it is held for. A stop (a signal) ends the wait at once.
"""

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from oint_py import bounds
from oint_py.files.private import open_private, private_dir, state_dir
from oint_py.outcome import RequestFailure, UsageError

if TYPE_CHECKING:
    from oint_py.files.signals import Stop

WAIT_ENV = "OINT_LOCK_WAIT"


def folder() -> str:
    return private_dir(os.path.join(state_dir(), "locks"), "locks folder")


def wait_bound() -> float:
    raw = os.environ.get(WAIT_ENV)
    if not raw:
        return bounds.LOCK_WAIT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= bounds.MAX_LOCK_WAIT:  # also refuses NaN
        raise UsageError(f"{WAIT_ENV}: expected seconds from 0 to {bounds.MAX_LOCK_WAIT:g}, got {raw[:40]!r}")
    return value


def _try(fd: int) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]  # Windows only: mypy runs on POSIX
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _release(fd: int) -> None:
    """Unlock before the close: Windows frees a lock left at close only when it gets round to it."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]  # Windows only: mypy runs on POSIX
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:  # not ours (we never got it)
        pass


@contextmanager
def exclusive(
    path: str,
    wait: float,
    busy: Callable[[int], Exception],
    what: str = "lock file",
    step: float = 0.05,
    stop: "Stop | None" = None,
) -> Iterator[int]:
    """Hold an exclusive lock on the private lock file `path` within the block (the block gets its
    descriptor), waiting at most `wait` seconds; then raise `busy(fd)`. A `stop` (files.signals.Stop) ends the wait
    at once: files.signals.NotReached. The operating system releases it when the process ends, however it ends."""
    fd = open_private(path, new=False, what=what)
    try:
        deadline = time.monotonic() + wait
        while not _try(fd):
            if time.monotonic() >= deadline:
                raise busy(fd)
            if stop is None:
                time.sleep(step)
            elif not stop.nap(step):
                from oint_py.files.signals import NotReached

                raise NotReached("stopped while waiting for another run's lock: nothing was sent")
        yield fd
    finally:
        _release(fd)
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def held(base: str, stop: "Stop | None" = None) -> Iterator[None]:
    """Hold the lock of the portal at `base` within the block; a `stop` ends the wait for it (NotReached)."""
    parts = urlsplit(base)
    default: dict[str, int | str] = {"http": 80, "https": 443}
    port = parts.port or default.get(parts.scheme.lower(), "")  # https://h is https://h:443
    host = (parts.hostname or "").lower().rstrip(".")
    where = f"{parts.scheme.lower()}://{host}:{port}"
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # the lock is per host and port
    name = hashlib.sha256(where.encode("utf-8")).hexdigest()[:32] + ".lock"
    bound = wait_bound()

    def busy(fd: int) -> Exception:
        return RequestFailure(
            f"another oint run{_holder(fd)} is changing days on {shown} and holds "
            f"its lock; waited {bound:g} s ({WAIT_ENV}). Nothing was sent"
        )

    with exclusive(os.path.join(folder(), name), bound, busy, step=0.2, stop=stop) as fd:
        if os.name != "nt":  # a Windows lock bars reading the byte: no pid there
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
