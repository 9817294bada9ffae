"""Private files and folders: the one opener, the one folder maker, and one set of
rules to check them, for the state folder (jobs, locks) and the auth file.

oint's private state folder is `$XDG_STATE_HOME/oint`, else `~/.local/state/oint`, or
`%LOCALAPPDATA%\\oint` on Windows. The rules (POSIX; on Windows only the first two,
as the files live in the user's own profile):
- a private folder is a folder (not a symbolic link), this user's, and writable by no
  one else; a private file is a regular file (not a link), this user's, and open to no
  one else (mode 0600);
- every folder above one (as written and with links resolved) is this user's or root's,
  and writable by no one else, unless it is sticky and root's (/tmp), as ssh checks the
  folders above its files: otherwise another user could swap the folder between a check
  and a write. A folder above that this user owns gets the exact `chmod` that fixes it.
Whatever breaks a rule is refused with one line naming it (UsageError, exit 5).

Folders are made 0700 at every level that is missing, whatever the umask
(`os.makedirs(mode=)` applies the mode to the last level only, and the umask to
the rest: 0775 under umask 002); files are made 0600 with O_EXCL|O_NOFOLLOW,
whatever the umask (fchmod after the open)."""

import os
import shlex
import stat

from oint_py.methods import JOBS_ENV
from oint_py.outcome import UsageError

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def state_dir() -> str:
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(base, "oint")
    state = os.environ.get("XDG_STATE_HOME")
    if not state or not os.path.isabs(state):  # the XDG spec: a relative value is to be ignored
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "oint")


# -- the one opener ----------------------------------------------------------------
def open_private(path: str, *, new: bool = True, what: str = "lock file") -> int:
    """A descriptor on a private file of this user, mode 0600 whatever the umask, never through a link.

    new (the default): a file made now, for writing (O_CREAT|O_EXCL|O_NOFOLLOW): one that exists, or a link
    in its place, is an error (OSError, FileExistsError). Else (a lock file): opened for reading and writing,
    made when missing, never a FIFO (O_NONBLOCK: opening one would hang); one that is not this user's own
    private regular file is refused: UsageError naming `what` (anyone who can open a lock file can hold it)."""
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if new:
        flags |= os.O_WRONLY | os.O_EXCL
        fd = os.open(path, flags, PRIVATE_FILE)
    else:
        flags |= os.O_RDWR | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags, PRIVATE_FILE)
        except OSError as exc:
            raise UsageError(f"cannot open the {what} {path}: {exc.strerror or exc}") from None
        if problem(os.fstat(fd), folder=False) is not None:
            os.close(fd)
            raise UsageError(
                f"the {what} {path} is not a private file of this user (a regular file, mode 0600); "
                "remove it (oint makes it again)"
            )
    if os.name != "nt" and stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
        os.fchmod(fd, PRIVATE_FILE)  # a umask such as 0277 made it 0400: the next run could not write it
    return fd


# -- the rules -------------------------------------------------------------------------
def problem(info: os.stat_result, folder: bool) -> str | None:
    """Which rule a private folder's or file's lstat (or fstat) breaks: "link", "kind", "owner" or "mode";
    None when it keeps them all."""
    if stat.S_ISLNK(info.st_mode):
        return "link"
    if not (stat.S_ISDIR if folder else stat.S_ISREG)(info.st_mode):
        return "kind"
    if os.name == "nt":  # no POSIX owners or modes: it lives in the user's own profile
        return None
    if info.st_uid != os.geteuid():
        return "owner"
    if info.st_mode & (0o022 if folder else 0o077):
        return "mode"
    return None


def _setting(what: str) -> str:
    return JOBS_ENV if what == "jobs folder" else "XDG_STATE_HOME"


def _elsewhere(what: str, where: str) -> str:
    """What to do instead of fixing a folder: set the variable that names it, or (an auth file, named
    by the user) keep it elsewhere."""
    if what.startswith("auth file"):
        return f"keep the auth file in a folder under {where}"
    return f"set {_setting(what)} to a folder under {where}"


def check(path: str, what: str = "jobs folder", *, folder: bool = True, missing: str | None = "") -> None:
    """Refuse a private folder (or, `folder` False, a file) that breaks the rules: UsageError naming it.
    `missing`: None when a path that does not exist is fine; else what to add to the complaint."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if missing is None:
            return
        raise UsageError(f"{what} {path} does not exist{missing}") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    broken = problem(info, folder)
    if broken == "link":
        raise UsageError(f"{what} {path} is a symbolic link; refusing to use it")
    if broken == "kind":
        raise UsageError(f"{what} {path} is not a {'folder' if folder else 'regular file'}")
    if broken == "owner":
        raise UsageError(f"{what} {path} belongs to another user (uid {info.st_uid}); {_elsewhere(what, 'your own')}")
    if broken == "mode":
        fix = f"chmod go-w {shlex.quote(path)}" if folder else f"chmod 600 {shlex.quote(path)}"
        raise UsageError(
            f"{what} {path} is open to {'writing by ' if folder else ''}group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run {fix}"
            + (f", or {_elsewhere(what, 'private ones')}" if folder else "")
        )


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
    """Refuse `folder` when a folder above it belongs to another user (but root) or is writable by group or
    others (unless sticky and root's, as /tmp). Folders not made yet are skipped (private_dir makes them
    0700). Those of this user that others can write to are named all at once, with the chmod that fixes
    them: under umask 002 an older oint made ~/.local, ~/.local/state and ~/.local/state/oint 0775."""
    if os.name == "nt":  # no POSIX owners or modes: the default lives in the user's own profile
        return
    me = os.geteuid()
    mine: dict[tuple[int, int], str] = {}  # (device, inode) -> the first name seen: each folder named once
    modes: list[str] = []
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
            if info.st_uid != me:  # root's, and this user is not root: no chmod of ours can fix it
                raise UsageError(
                    f"{what} {folder}: {path} above it is writable by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}), who could swap the {what}; "
                    f"{_elsewhere(what, 'private ones')}"
                )
            if (info.st_dev, info.st_ino) not in mine:
                mine[(info.st_dev, info.st_ino)] = path
                modes.append(f"{path} (mode {stat.S_IMODE(info.st_mode):04o})")
    if mine:
        paths = list(mine.values())
        raise UsageError(
            f"{what} {folder}: {', '.join(modes)} above it {'is' if len(paths) == 1 else 'are'} writable by "
            f"group or others, who could swap the {what}; run chmod go-w {' '.join(map(shlex.quote, paths))}, "
            f"or {_elsewhere(what, 'private ones')}"
        )


# -- the one folder maker ---------------------------------------------------------------
def make_folders(folder: str) -> None:
    """Make `folder` and every missing folder above it, each 0700 whatever the umask. One that another
    process makes meanwhile is left as it is (the caller checks it). OSError when one cannot be made."""
    missing: list[str] = []
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_FOLDER)
        except FileExistsError:
            continue
        if os.name != "nt":  # the umask may have taken bits away (0277 leaves 0500, where nothing can be made);
            # by name: no one else can write to the folder above to swap it (check_parents, or we made it)
            os.chmod(path, PRIVATE_FOLDER)


def private_dir(folder: str, what: str = "jobs folder") -> str:
    """`folder`, the folders above it checked, made (0700 at every level) when missing, and checked."""
    check_parents(folder, what)  # before making anything in them
    try:
        make_folders(folder)
    except OSError as exc:
        raise UsageError(f"cannot create the {what} {folder}: {exc.strerror or exc}") from None
    check(folder, what)
    return folder
