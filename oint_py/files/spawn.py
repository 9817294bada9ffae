"""Starting a detached Python process that runs one of oint_py's modules
(`--dontwait` jobs, `oint sandbox --background`).

The child never imports anything from the current folder. `python -m` puts
that folder first on sys.path, and so does `python -c` (3.10 has no -P); even
`import runpy` in a -c launcher, or the `importlib`/`types` a venv's start-up
imports, would be found there first, and run as the job's user with its
secrets on stdin. So the child runs isolated (`-I`: no current folder, no
PYTHON* variables, no user site), and its launcher, which imports nothing
but the built-in `sys` before it has done so, sets sys.path to the parent's
own: this very oint_py first, then every absolute entry the parent had (its
PYTHONPATH, venv, editable installs, user site), minus the current folder.
The user site's .pth files are processed again, as the parent's start-up did,
so editable installs there still resolve."""

import json
import os
import subprocess
import sys
from typing import TypedDict

_LAUNCH = (
    "import sys; sys.path[:] = paths = __import__('json').loads(sys.argv[1]); "
    "user = sys.argv[2]; module = sys.argv[3]; del sys.argv[1:4]; "
    "user and __import__('site').addsitedir(user); sys.path[:] = paths + [p for p in sys.path if p not in paths]; "
    "__import__('runpy').run_module(module, run_name='__main__', alter_sys=True)"
)


def child_path() -> list[str]:
    """The parent's sys.path for a child: this oint_py's folder first, nothing relative, not the current folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:  # the current folder was removed: nothing there to import anyway
        here = None
    paths = [root]
    for entry in sys.path:
        if not entry or not os.path.isabs(entry) or entry in paths:
            continue
        if here is not None and os.path.realpath(entry) == here and entry != root:
            continue
        paths.append(entry)
    return paths


def _user_site() -> str:
    """The user site folder when the parent had it (its .pth files ran at the parent's start), else ''."""
    import site

    user = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    return user if user and user in sys.path else ""


def module_argv(module: str, *args: str) -> list[str]:
    """A command line that runs `module` of this very oint_py, as the parent finds it, never the current folder's."""
    flags = ["-I"] + (["-X", "utf8"] if sys.flags.utf8_mode else [])
    return [sys.executable, *flags, "-c", _LAUNCH, json.dumps(child_path()), _user_site(), module, *args]


class Detached(TypedDict, total=False):
    """The Popen arguments detached() gives: one of the two, by platform."""

    creationflags: int
    start_new_session: bool


def detached() -> Detached:
    """Popen arguments for a process that outlives its parent and its terminal."""
    if os.name == "nt":
        # Windows only, where mypy is not run (the attributes exist only in Windows' subprocess)
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined,unused-ignore]
        return {"creationflags": flags}
    return {"start_new_session": True}
