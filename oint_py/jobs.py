"""--dontwait: run the call in a detached background process.

The parent prints the job's ID and file names at once and exits 0. The child
runs the same method with the same options; the URL, token and settings reach
it through environment variables, never its command line (`ps` would show
them). When it ends, `<job>.json` holds the result (written atomically, as
--out does), `<job>.log` what it printed on stderr, and `<job>.exit` its exit
code.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict

from .methods import Method
from .settings import CONFIG_ENV, Settings


def jobs_dir() -> str:
    folder = os.environ.get("OINT_JOBS_DIR") or os.path.join(tempfile.gettempdir(), f"oint-jobs-{_user()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def _user() -> str:
    try:
        return str(os.getuid())
    except AttributeError:  # Windows
        return os.environ.get("USERNAME", "user")


def start(method: Method, values: dict, settings: Settings, *, debug: bool, out: str | None) -> dict:
    job = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    folder = jobs_dir()
    result = out or os.path.join(folder, job + ".json")
    log = os.path.join(folder, job + ".log")
    argv = ["bitrix24", method.name, "--out", result]
    env = dict(os.environ)
    for p in method.params:
        value = values.get(p.option)
        if value in (None, ""):
            continue
        if p.env:  # the URL and the token travel in the environment, not on the command line
            env[p.env] = value
        else:
            argv += [p.option, value]
    env[CONFIG_ENV] = json.dumps({**asdict(settings), "dontwait": False})
    if debug:
        argv.append("--debug")
    kwargs: dict = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oint_py.jobs", os.path.join(folder, job + ".exit"), *argv],
            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=log_fh, env=env, close_fds=True, **kwargs,
        )
    return {"job": job, "pid": proc.pid, "result_file": result, "log_file": log,
            "exit_file": os.path.join(folder, job + ".exit")}


def _child(exit_file: str, argv: list[str]) -> None:
    from .cli import cli

    code = 99
    try:
        cli.main(argv, prog_name="oint")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 99
    finally:
        with open(exit_file + ".tmp", "w") as fh:
            fh.write(f"{code}\n")
        os.replace(exit_file + ".tmp", exit_file)
    sys.exit(code)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2:])
