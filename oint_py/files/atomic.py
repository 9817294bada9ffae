"""The one atomic writer: `--out` files and run records, the job files and the auth file.

A file is written to a temporary file beside it, `.NAME.<12 hex>.tmp`, made by the
one private opener (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), synced, given its mode, and
renamed over the file with `os.replace` (retried for up to about 2 s on Windows,
where another process holding the file, an antivirus or a second oint, makes the
rename fail with PermissionError); then the folder is synced (POSIX), so the rename
survives a power cut. A reader sees the old file or the new one, never half; a
failed write leaves the old file as it was and removes its temporary file.
`os.replace` appears in this module only.
"""

import os
import re
import secrets
import stat
import time
from collections.abc import Iterable

from oint_py.bounds import REPLACE_STEP, REPLACE_TRIES
from oint_py.files.private import open_private


def umask_mode() -> int:
    """The mode a new file gets from shell redirection or `curl -o`: 0666 less the umask."""
    mask = os.umask(0o077)
    os.umask(mask)
    return 0o666 & ~mask


def _prefix(path: str) -> str:
    """The start of the temporary names of `path`'s writes (a long name cut, to stay a legal name)."""
    return f".{os.path.basename(path)[:100]}."


def write_atomic(path: str, data: str | bytes | Iterable[bytes], mode: int | None = None) -> None:
    """Write `data` (a str, bytes, or blocks of bytes, each written before the next is asked for) to `path`
    all or nothing. `mode`: the file's mode whatever the umask (0o600: private). None (a user's --out): an
    existing file keeps its own, a new one follows the umask, as `>` and `curl -o` do. A path that is a
    device or a pipe (`--out /dev/null`, a FIFO) is written through, never replaced (a FIFO nobody reads is
    not waited for: OSError ENXIO). A symbolic link is replaced, never followed. OSError when it cannot be
    written."""
    if isinstance(data, str):
        data = [data.encode("utf-8", "backslashreplace")]
    elif isinstance(data, bytes):
        data = [data]
    try:
        info: os.stat_result | None = os.lstat(path)
    except OSError:
        info = None
    if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        _write_through(path, data)
        return
    if mode is None and info is not None and stat.S_ISREG(info.st_mode):
        mode = stat.S_IMODE(info.st_mode)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f"{_prefix(path)}{secrets.token_hex(6)}.tmp")
    fd = open_private(tmp)
    try:
        try:
            for block in data:
                _write_all(fd, block)
            if os.name != "nt":
                os.fchmod(fd, umask_mode() if mode is None else mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    sync_folder(folder)


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]


def _write_through(path: str, data: Iterable[bytes]) -> None:
    """Write into a FIFO or device: O_NONBLOCK to open (a FIFO nobody reads would block for ever: ENXIO)."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as fh:
        fh.writelines(data)


def replace(tmp: str, path: str) -> None:
    """os.replace; on Windows retried REPLACE_TRIES times REPLACE_STEP s apart while it fails with
    PermissionError (another process has the file open). Elsewhere, or at the last try, that error is raised."""
    for attempt in range(REPLACE_TRIES):
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            if os.name != "nt" or attempt == REPLACE_TRIES - 1:
                raise
            time.sleep(REPLACE_STEP)


def sync_folder(folder: str) -> None:
    """fsync a folder, so that a rename in it survives a power cut (POSIX; a file system that cannot is let be)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_leftovers(path: str) -> None:
    """Remove the temporary files that writes of `path` killed midway left (each, for an auth file, a 0600
    copy of secrets, whole or torn). Only where no other write of `path` can be going on (under its lock)."""
    folder = os.path.dirname(os.path.abspath(path))
    own = re.compile(re.escape(_prefix(path)) + r"[0-9a-f]{12}\.tmp")
    try:
        names = [name for name in os.listdir(folder) if own.fullmatch(name)]
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass
