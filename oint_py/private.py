"""oint's private state folder and the rules for every folder in it (jobs,
locks): `$XDG_STATE_HOME/oint`, else `~/.local/state/oint`, or
`%LOCALAPPDATA%\\oint` on Windows. A folder is created 0700; one that is a
symbolic link, belongs to another user, or is writable by group or others is
refused (exit 5) and nothing is written into it."""

import os
import stat

from .methods import JOBS_ENV
from .outcome import UsageError


def state_dir() -> str:
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(base, "oint")
    state = os.environ.get("XDG_STATE_HOME")
    if not state or not os.path.isabs(state):  # the XDG spec: a relative value is to be ignored
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "oint")


def check_private(folder: str, what: str = "jobs folder") -> None:
    """Refuse a private folder (jobs, locks) another local user could read into or write into."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise UsageError(f"{what} {folder}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(f"{what} {folder} is a symbolic link; refusing to write job files through it")
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {folder} is not a folder")
    if os.name == "nt":  # no POSIX owners or modes: the folder lives in the user's own profile
        return
    setting = JOBS_ENV if what == "jobs folder" else "XDG_STATE_HOME"
    if info.st_uid != os.geteuid():
        raise UsageError(f"{what} {folder} belongs to another user (uid {info.st_uid}); "
                         f"set {setting} to a folder of your own")
    if info.st_mode & 0o022:
        raise UsageError(f"{what} {folder} is writable by group or others "
                         f"(mode {stat.S_IMODE(info.st_mode):04o}); make it 0700 or set {setting}")


def private_dir(folder: str, what: str = "jobs folder") -> str:
    """`folder`, created 0700 when missing, and checked by check_private."""
    if not os.path.lexists(folder):
        try:
            os.makedirs(folder, mode=0o700)
        except FileExistsError:  # made meanwhile: checked below like any other
            pass
        except OSError as exc:
            raise UsageError(f"cannot create the {what} {folder}: {exc.strerror or exc}") from None
    check_private(folder, what)
    return folder


