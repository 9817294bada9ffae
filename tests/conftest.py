"""Shared fixtures: the working tree's `oint` (run_oint: in this process by
default, a real process where the process itself is under test), a loopback
Bitrix24 portal (the package's own sandbox), real TLS certificates from a
throwaway CA, and a real proxy process.

Every subprocess runs `python -m oint_py` with this checkout first on
PYTHONPATH: a change under oint_py/ is what the tests run, with no reinstall
(and whether the package is also installed, and how, does not matter).
OINT_TESTS_IN_PROCESS=0 makes every run_oint call a process."""

import atexit
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from oint_py.sandbox.server import Portal

# -- no test touches the real home (issue 23 item 4.10) --------------------------------------------
# One private folder per test session (per xdist worker) stands for the home and the XDG folders, in this
# process (in-process tests run oint's code here) and, through clean_env, in every process the tests start.
# A test that needs its own home sets HOME and the others itself.
SESSION_HOME = Path(tempfile.mkdtemp(prefix="oint-tests-"))  # 0700
HOME_VARIABLES = {
    "HOME": str(SESSION_HOME / "home"),
    "XDG_STATE_HOME": str(SESSION_HOME / "state"),
    "XDG_CONFIG_HOME": str(SESSION_HOME / "config"),
    "LOCALAPPDATA": str(SESSION_HOME / "AppData" / "Local"),
}
for _folder in HOME_VARIABLES.values():
    os.makedirs(_folder, mode=0o700, exist_ok=True)
# Python finds `pip install --user` packages under HOME: the children keep this process's user site
os.environ.setdefault("PYTHONUSERBASE", site.getuserbase())
os.environ.update(HOME_VARIABLES)
atexit.register(shutil.rmtree, SESSION_HOME, ignore_errors=True)

# -- children start with SIGINT's default action ----------------------------------------------------
# Started with SIGINT ignored (`cmd &` in a script, nohup), this process would pass the ignore on to every
# process it starts, and the signal tests' `oint` would shrug SIGINT off. A handled signal is reset to its
# default at exec, an ignored one is not: handling it here gives every child the default.
if hasattr(signal, "SIGINT") and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HERE = Path(__file__).parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
CHECKOUT_PATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # every child's PYTHONPATH
OINT = [sys.executable, "-m", "oint_py"]  # the working tree's oint (see clean_env's PYTHONPATH)
SECRET_TOKEN = "tok-3f9a1c77e2b54d10"
WEBHOOK_CODE = "wh5k2m9q7x1z8p4r"


@dataclass
class Result:
    code: int
    out: str
    err: str
    raw: bytes

    def json(self):
        return json.loads(self.out)


def user_docs() -> str:
    """README.md and every page under docs/, as one text: each recipe, table and marked block is read where a
    user reads it, whichever page it stands on."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def clean_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OINT_")
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir")
    }
    env.update(
        {
            **HOME_VARIABLES,
            "NO_COLOR": "1",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONPATH": CHECKOUT_PATH,
        }
    )
    env.update(extra)
    return env


def cli_runner():
    """Click's CliRunner with stderr apart from stdout, on every click the project allows
    (8.1 mixes them unless told; 8.2 and later keep them apart and took the flag away)."""
    import inspect

    from click.testing import CliRunner

    return CliRunner(mix_stderr=False) if "mix_stderr" in inspect.signature(CliRunner).parameters else CliRunner()


class ConsoleScript:
    """What the installed `oint` script does, for Click's CliRunner (which captures the streams
    in-process): exit with what `oint_py.main:main` returns."""

    name = "oint"

    def main(self, args=(), prog_name=None, **_):
        from oint_py.main import main

        raise SystemExit(int(main(list(args))))


# OINT_TESTS_IN_PROCESS=0 runs every call of run_oint/oint_on as a process, so the whole suite can be run
# both ways (clean_env drops OINT_* names, so the switch never reaches oint itself).
IN_PROCESS = os.environ.get("OINT_TESTS_IN_PROCESS", "1") != "0"


def run_oint(*args, env: dict | None = None, timeout: float = 60, process: bool = False, **env_extra) -> Result:
    """`oint ARGS` with `env` (clean_env(**env_extra) unless given) as its whole environment, stdin the
    null device, stdout and stderr pipes. In this process through oint_py.main:main (the console
    script's entry) unless `process` is true, or OINT_TESTS_IN_PROCESS=0: a real `python -m oint_py`
    only where the process itself is under test (signals, kill -9, its start-up, its umask or limits)."""
    argv = list(map(str, args))
    env = env or clean_env(**env_extra)
    # a PYTHONPATH with more than the checkout (tests/stagehooks' sitecustomize, say) is for a child to import
    extra_path = env.get("PYTHONPATH", "") != CHECKOUT_PATH
    if process or extra_path or not IN_PROCESS:
        proc = subprocess.run([*OINT, *argv], capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"), proc.stdout)
    return _in_process(argv, env, timeout)


_ABSENT = object()


def _local_zone_changed(before: dict, after: dict) -> None:
    """A process reads TZ when it starts; here the C library (time.tzset) and tzlocal (its public
    reload_localzone, once loaded) must be told when a call's TZ differs from the last one's."""
    if before.get("TZ") != after.get("TZ"):
        import time

        time.tzset()
        if "tzlocal" in sys.modules:
            sys.modules["tzlocal"].reload_localzone()


def _in_process(argv: list[str], env: dict, timeout: float) -> Result:
    """What `python -m oint_py ARGV` would give, run here: os.environ is exactly `env` for the
    call, stdin reads the null device, stdout and stderr are text layers over memory in the encoding
    PYTHONIOENCODING names (no terminal, no file descriptor: like pipes), TZ is applied, and all of it
    is put back afterwards. A run that outlives `timeout` ends this worker with a traceback of
    every thread (faulthandler) instead of hanging the suite."""
    import faulthandler
    import io

    from oint_py.main import main

    out, err = io.BytesIO(), io.BytesIO()
    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_httpx_main = sys.modules.get("httpx._main", _ABSENT)  # transport's shim may set it to None
    try:
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.__stderr__)
        watchdog = True
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        watchdog = False
    stdin = open(os.devnull, encoding="utf-8")  # closed below
    sys.stdin = stdin
    # PYTHONIOENCODING as Python reads it at start-up: ENCODING[:ERRORS], stdout strict, stderr backslashreplace
    encoding, _, errors = env.get("PYTHONIOENCODING", "").partition(":")
    sys.stdout = io.TextIOWrapper(out, encoding=encoding or "utf-8", errors=errors or "strict")
    sys.stderr = io.TextIOWrapper(err, encoding=encoding or "utf-8", errors=errors or "backslashreplace")
    os.environ.clear()
    os.environ.update(env)
    _local_zone_changed(saved_env, env)
    try:
        try:
            code = int(main(argv))
        except SystemExit as exc:  # the Click path may still exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        raw, said = out.getvalue(), err.getvalue()
    finally:
        if watchdog:
            faulthandler.cancel_dump_traceback_later()
        os.environ.clear()
        os.environ.update(saved_env)
        _local_zone_changed(env, saved_env)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        stdin.close()
        if saved_httpx_main is _ABSENT:
            sys.modules.pop("httpx._main", None)
        else:
            sys.modules["httpx._main"] = saved_httpx_main
    return Result(code, raw.decode("utf-8"), said.decode("utf-8"), raw)


def forgotten_sandbox() -> Result:
    """`oint sandbox` as a process of its own, in the background for 60 s: 1,000 users in the forgotten mix, no
    rate limit, as the recipes' tests run them (its JSON: the webhook, the port, the pid)."""
    args = ("--port", 0, "--users", 1000, "--scenario", "forgotten", "--background", "--stop-after", 60)
    return run_oint("sandbox", *args, "--rate-limit", "off")


def oint_on(portal, *args, method: str = "StopTimekeeping", **kwargs) -> Result:
    """`oint bitrix24 METHOD --url <portal's webhook> ARGS`: the set-up most tests share."""
    return run_oint("bitrix24", method, "--url", portal.webhook(), *args, **kwargs)


def wait_for(path, seconds: float = 30) -> None:
    """Until a file exists (a background job's), at most `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def run_in_terminal(*args, stdout=None, timeout: float = 10) -> bytes:
    """Run oint with a pseudo-terminal as stderr, and as stdout unless a file is given for it,
    as a person at a console would; return what the terminal showed."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX")
    import select

    master, slave = pty.openpty()
    env = clean_env(TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR")
    proc = subprocess.Popen(
        [*OINT, *map(str, args)], stdout=stdout or slave, stderr=slave, stdin=subprocess.DEVNULL, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(master)
    return b"".join(chunks)


def _portal(**kwargs):
    kwargs.setdefault("code", WEBHOOK_CODE)
    kwargs.setdefault("token", SECRET_TOKEN)
    kwargs.setdefault("users", 300)
    kwargs.setdefault("rate_limit", None)  # `oint sandbox` has the cloud's 50/2: tests of the limit set their own
    return Portal(**kwargs).start()


@pytest.fixture
def portal():
    p = _portal()
    yield p
    p.stop()


@pytest.fixture
def make_portal():
    made = []

    def make(**kwargs):
        made.append(_portal(**kwargs))
        return made[-1]

    yield make
    for p in made:
        p.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    import trustme

    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


@pytest.fixture
def tls_portal(certs):
    p = _portal(certfile=str(certs["cert"]), keyfile=str(certs["key"]))
    yield p
    p.stop()


class ProxyProcess:
    def __init__(self, auth: str | None = None):
        cmd = [sys.executable, "-u", str(HERE / "proxy_server.py")] + (["--auth", auth] if auth else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> list[dict]:
        """Stop the proxy and return what it handled."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def proxy_factory():
    made = []

    def make(auth=None):
        made.append(ProxyProcess(auth))
        return made[-1]

    yield make
    for p in made:
        p.stop()


def clock_without_sleep(record=None):
    """A stand-in for the `time` module inside oint_py.net.transport only: backoff
    and the leaky bucket do not wait. (Patching time.sleep itself would also stop
    the sandbox portal's slow answers in this process.)"""
    import time
    import types

    return types.SimpleNamespace(sleep=record or (lambda seconds: None), monotonic=time.monotonic, time=time.time)


class SharedClock:
    """One monotonic clock for an in-process oint and the sandbox portal it calls: it moves only when
    oint sleeps (backoff, Retry-After, the leaky bucket), by exactly what was slept, and every sleep is
    in `slept`. `install(monkeypatch)` puts it in place of the `time` module of oint_py.net.transport and
    of the sandbox portal (its rate limit), when oint runs in this process; with OINT_TESTS_IN_PROCESS=0
    nothing is replaced and both wait on the real clock."""

    def __init__(self):
        import time

        self.now, self.slept, self.time = time.monotonic(), [], time.time

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)

    def __getattr__(self, name: str):  # the rest of the time module (time(), perf_counter(), ...), as it is
        import time

        return getattr(time, name)

    def install(self, monkeypatch) -> "SharedClock":
        if IN_PROCESS:
            monkeypatch.setattr("oint_py.net.transport.time", self)
            monkeypatch.setattr("oint_py.sandbox.portal.time", self)
        return self


def assert_no_secret(*texts: str):
    for text in texts:
        assert SECRET_TOKEN not in text
        assert WEBHOOK_CODE not in text
        assert "Traceback" not in text


class Clock:
    """A portal's clock (`make_portal(now=Clock(...))`) that moves only when told: `advance(seconds)`, or by
    `tick` seconds at each reading, so that every event on the portal has a moment of its own."""

    def __init__(self, start=None, tick: float = 0):
        import threading
        from datetime import datetime, timedelta

        moment = start or datetime.now().astimezone().replace(hour=15, minute=0, second=0, microsecond=0)
        self.moment, self.tick, self.lock, self._step = moment, tick, threading.Lock(), timedelta

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.moment += self._step(seconds=seconds)

    def __call__(self):
        with self.lock:
            now = self.moment
            self.moment += self._step(seconds=self.tick)
            return now
