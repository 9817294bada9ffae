"""Helpers for tests that must be able to fail: a loopback portal whose every
answer a test writes (`Script`), and `run_timeless`, which runs the real entry
point `oint_py.main:main` in a child process whose clock moves only when oint
sleeps, recording every sleep (backoff, Retry-After, the leaky bucket): waits
are checked by value, at no cost in wall time and with no timing thresholds.
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import IN_PROCESS, WEBHOOK_CODE, Result, clean_env, run_oint

# The child: time.sleep records and returns at once; time.monotonic moves only by what was slept
# (so the leaky bucket's drain is exact); random draws alternate between the lowest and the highest
# value (so a backoff's jitter shows its whole range, deterministically). All replaced before oint
# is imported.
_TIMELESS = r"""
import atexit, itertools, json, random, sys, time
_log, _now = [], [time.monotonic()]
def _sleep(seconds):
    _log.append(seconds)
    _now[0] += max(0.0, seconds)
time.sleep, time.monotonic = _sleep, lambda: _now[0]
_ends = itertools.cycle((0.0, 1.0))
random.uniform = lambda a, b: a + (b - a) * next(_ends)
random.random = lambda: min(next(_ends), 1.0 - 2**-53)
_path = sys.argv.pop(1)
def _write():
    with open(_path, "w") as fh:
        json.dump(_log, fh)
atexit.register(_write)
sys.argv[0] = "oint"
from oint_py.main import main
sys.exit(main())
"""


def run_timeless(tmp_path, *args, timeout: float = 60, **env_extra) -> tuple[Result, list[float]]:
    """`oint ARGS` through oint_py.main:main with a clock that only sleeping moves; (result, the sleeps).
    In this process (run_oint's) the clock and the draws are put in place of the `time` module of
    oint_py.net.transport (where oint sleeps and reads the monotonic clock) and the `random` of
    oint_py.rest.retry (its one draw); as a process (OINT_TESTS_IN_PROCESS=0) the child's own modules."""
    if IN_PROCESS:
        return _timeless_here(args, timeout, env_extra)
    log = tmp_path / "sleeps.json"
    proc = subprocess.run(
        [sys.executable, "-c", _TIMELESS, str(log), *map(str, args)],
        capture_output=True,
        timeout=timeout,
        env=clean_env(**env_extra),
        stdin=subprocess.DEVNULL,
    )
    sleeps = json.loads(log.read_text()) if log.exists() else []
    return Result(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"), proc.stdout), sleeps


def _timeless_here(args, timeout: float, env_extra: dict) -> tuple[Result, list[float]]:
    import itertools
    import time
    import types

    from oint_py.net import transport
    from oint_py.rest import retry

    log, now = [], [time.monotonic()]

    def sleep(seconds: float) -> None:
        log.append(seconds)
        now[0] += max(0.0, seconds)

    ends = itertools.cycle((0.0, 1.0))
    clock = types.SimpleNamespace(sleep=sleep, monotonic=lambda: now[0], time=time.time)
    draws = types.SimpleNamespace(uniform=lambda a, b: a + (b - a) * next(ends))
    saved = transport.time, retry.random
    transport.time, retry.random = clock, draws
    try:
        return run_oint(*args, timeout=timeout, **env_extra), log
    finally:
        transport.time, retry.random = saved


RESET = "reset"  # an answer: drop the connection without answering


class Script:
    """A loopback server: `respond(request)` gives each answer as (status, [(header, value)], body bytes),
    or RESET. A request is {"method": "timeman.close", "path", "verb", "body": parsed JSON or None}.
    `requests` lists them all. Use as a context manager, or start()/stop()."""

    def __init__(self, respond):
        owner = self
        self.respond = respond
        self.requests: list[dict] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                path = self.path.split("?")[0]
                request = {
                    "method": path.rstrip("/").rsplit("/", 1)[-1],
                    "path": path,
                    "verb": self.command,
                    "body": body,
                    "full": self.path,
                }  # with the query
                with owner.lock:
                    owner.requests.append(request)
                answer = owner.respond(request)
                if answer == RESET:
                    import socket
                    import struct

                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, payload = answer
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/rest/1/{WEBHOOK_CODE}/"

    def calls(self, method: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if method is None or r["method"] == method]

    def start(self) -> "Script":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Script":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ScriptedPortal(Script):
    """A loopback server that answers every request with `answer` = (status, [(header, value)], body),
    whatever was asked: for answers no portal should give. `start()`, then `.url`; `stop()`."""

    def __init__(self):
        self.answer = (200, [], b"{}")
        super().__init__(lambda request: self.answer)


def answer(data, status: int = 200, headers=()) -> tuple:
    """A JSON answer."""
    return status, [("Content-Type", "application/json"), *headers], json.dumps(data).encode()


def batch_answer(
    results: dict, errors: dict | None = None, totals: dict | None = None, nexts: dict | None = None
) -> tuple:
    """A Bitrix24 batch answer: per command key, results and errors, a list method's
    result_total and result_next (PHP's [] for an empty map), and each result's result_time,
    whose date_start is this moment (a close's TIME_FINISH is dated against it)."""
    started = {k: {"date_start": now()} for k in results or {}}
    return answer(
        {
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": totals or [],
                "result_next": nexts or [],
                "result_time": started or [],
            }
        }
    )


def now() -> str:
    """This moment as a portal writes it: YYYY-MM-DDTHH:MM:SS+HH:MM."""
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


def closed() -> dict:
    """The record a close made this moment answers."""
    return {"STATUS": "CLOSED", "TIME_FINISH": now()}


def commands(request: dict) -> dict:
    """A batch request's {key: command}."""
    return (request["body"] or {}).get("cmd") or {}
