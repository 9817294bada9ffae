"""Starting a detached Python process that runs one of oint_py's modules
(`--dontwait` jobs, `oint sandbox --background`)."""

import os
import subprocess
import sys

# Not `python -m`: it puts the current folder first on sys.path, so an oint_py/
# (or a json.py) planted there would run instead, and read the job's secrets.
_LAUNCH = ("import sys, runpy; sys.path[0] = sys.argv[1]; module = sys.argv[2]; del sys.argv[1:3]; "
           "runpy.run_module(module, run_name='__main__', alter_sys=True)")


def module_argv(module: str, *args: str) -> list[str]:
    """A command line that runs `module` of this very oint_py, from where it was imported."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-c", _LAUNCH, root, module, *args]


def detached() -> dict:
    """Popen arguments for a process that outlives its parent and its terminal."""
    if os.name == "nt":
        return {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}
