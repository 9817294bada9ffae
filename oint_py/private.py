"""oint's private state folder and the rules for every folder in it (jobs,
locks): `$XDG_STATE_HOME/oint`, else `~/.local/state/oint`, or
`%LOCALAPPDATA%\\oint` on Windows. A folder is created 0700; one that is a
symbolic link, belongs to another user, or is writable by group or others is
refused (exit 5) and nothing is written into it; so is one under a folder
another user owns or can write to (but a sticky folder of root's, as /tmp)."""

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
    setting = _setting(what)
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"{what} {folder} belongs to another user (uid {info.st_uid}); set {setting} to a folder of your own"
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"{what} {folder} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); make it 0700 or set {setting}"
        )


def _setting(what: str) -> str:
    return JOBS_ENV if what == "jobs folder" else "XDG_STATE_HOME"


def _elsewhere(what: str, where: str) -> str:
    """What to do about a folder above `what`: set the variable that names it, or (an auth file, named
    by the user) keep it elsewhere."""
    if what.startswith("auth file"):
        return f"keep the auth file in a folder under {where}"
    return f"set {_setting(what)} to a folder under {where}"


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


def check_parents(folder: str, what: str = "jobs folder") -> None:
    """As ssh checks the folders above its files: none may be writable by group or others (unless sticky
    and owned by root, as /tmp is) or belong to someone else, or another user could swap the jobs folder
    while a job runs and have the job write into theirs (or swap a lock). Folders not made yet are skipped (we
    make them 0700)."""
    if os.name == "nt":  # no POSIX owners or modes: the default lives in the user's own profile
        return
    me = os.geteuid()
    for path in _ancestors(folder):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(f"{what} {folder}: cannot check {path}: {exc.strerror or exc}") from None
        if info.st_uid not in (me, 0):
            raise UsageError(
                f"{what} {folder}: {path} above it belongs to another user (uid {info.st_uid}), "
                f"who could swap the {what}; {_elsewhere(what, 'your own')}"
            )
        if info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and info.st_uid == 0):
            raise UsageError(
                f"{what} {folder}: {path} above it is writable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}), who could swap the {what}; "
                f"{_elsewhere(what, 'private ones')}"
            )


def private_dir(folder: str, what: str = "jobs folder") -> str:
    """`folder`, its parents checked, created 0700 when missing, and checked by check_private."""
    check_parents(folder, what)  # before making anything in them
    if not os.path.lexists(folder):
        try:
            os.makedirs(folder, mode=0o700)
        except FileExistsError:  # made meanwhile: checked below like any other
            pass
        except OSError as exc:
            raise UsageError(f"cannot create the {what} {folder}: {exc.strerror or exc}") from None
    check_private(folder, what)
    return folder
