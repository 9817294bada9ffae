"""A stop is a real bound (issue 23, section 2): after SIGTERM, SIGINT or SIGHUP a run over many users ends
within bounds.STOP_GRACE whatever it is doing, and its record says what was applied.

Real `oint` processes against the sandbox portal, since the signal and the process's end are what is under
test. Each signal is fired at a named moment (the portal has received the request that is to be in flight, the
run holds the lock file open, the answer has begun on stdout), never after a sleep; the time from the signal
to the process's end is measured against STOP_GRACE, the bound the product promises, with a generous margin
for a loaded machine.
"""

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest
from conftest import OINT, WEBHOOK_CODE, clean_env

from oint_py import bounds
from oint_py.files import lock

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals to a child process")

MARGIN = 5.0  # seconds on top of a bound, for a loaded machine: the bound is the product's, not this
_SIGNALS = (("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129))
CODES = {getattr(signal, name): code for name, code in _SIGNALS if hasattr(signal, name)}  # Windows: no SIGHUP


def ids(n: int) -> str:
    return ",".join(str(uid) for uid in range(1, n + 1))


def start(portal, state, *args, method: str = "StopTimekeeping", **env) -> subprocess.Popen:
    return start_at(portal.webhook(), state, *args, method=method, **env)


def start_at(url: str, state, *args, method: str = "StopTimekeeping", **env) -> subprocess.Popen:
    return subprocess.Popen(
        [*OINT, "bitrix24", method, "--url", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(XDG_STATE_HOME=str(state), **env),
        # the signal under test must reach oint even when the tests were started with it ignored (`cmd &`)
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in CODES],
    )


def until(what, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "the named moment never came"
        time.sleep(0.01)


def stop_and_time(proc: subprocess.Popen, sig: int, timeout: float = 120) -> tuple[float, bytes, bytes]:
    """Send `sig`; (seconds until the process ended, its stdout, its stderr)."""
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return time.monotonic() - sent, out, err


def test_a_stop_cuts_a_request_the_portal_is_slow_to_answer_within_the_grace(make_portal, tmp_path):
    """The request in flight gets the grace, not --timeout: it is cut, and its users are not known (the portal
    may apply it later: here it does); the users after it are not reached; nothing more is sent."""
    portal = make_portal(users=300)
    portal.inject("slow:40")  # the first batch of closes: answered (and applied) after 40 s
    proc = start(portal, tmp_path, "--userid", ids(300), "--timeout", "600")
    until(lambda: len(portal.calls()) == 1)  # the first batch is in flight
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert Counter(e.get("error") or e.get("action") for e in data.values()) == Counter(
        {"OUTCOME_UNKNOWN": 50, "not reached": 250}
    )
    assert "may have reached the portal" in data["1"]["error_description"]
    assert len(portal.calls()) == 1
    assert err.decode().splitlines()[-1] == (
        "oint: stopped by SIGTERM: 0 sent, 0 skipped, 50 failed, 250 not reached; run the same command with "
        "--if-needed again to finish the job"
    )


def test_no_change_is_sent_after_a_stop(make_portal, tmp_path):
    """The status read in flight is answered within the grace; the closes it would lead to are not sent."""
    portal = make_portal(users=300)
    portal.inject("slow:2")
    proc = start(portal, tmp_path, "--userid", ids(300), "--if-needed", method="PauseTimekeeping")
    until(lambda: len(portal.calls()) == 1)  # the first batch's status read is in flight
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert all(data[str(uid)]["action"] == "not reached" for uid in range(1, 301)), "no change after the signal"
    assert [c["method"] for c in portal.calls()] == ["batch"]  # the read; no close sent after the signal
    assert all(day["STATUS"] == "OPENED" for day in portal.days.values())


def test_an_answer_to_a_change_within_the_grace_is_recorded_as_applied(make_portal, tmp_path):
    portal = make_portal(users=300)
    portal.inject("slow:2")  # the first batch of closes, answered 2 s after it was sent
    proc = start(portal, tmp_path, "--userid", ids(300))
    until(lambda: len(portal.calls()) == 1)
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == 143, err
    data = json.loads(out)
    closed = [uid for uid, e in data.items() if "error" not in e and e.get("action") != "not reached"]
    assert closed == [str(uid) for uid in range(1, 51)]
    assert [uid for uid, day in portal.days.items() if day["STATUS"] == "CLOSED"] == list(range(1, 51))
    assert all(data[str(uid)] == {"action": "not reached"} for uid in range(51, 301))


@pytest.mark.parametrize("sig", list(CODES))
def test_a_stop_ends_a_retry_after_wait_at_once_and_the_throttled_batch_is_not_reached(make_portal, tmp_path, sig):
    """The portal refused the batch (503 QUERY_LIMIT_EXCEEDED, Retry-After 45): nothing of it was applied. A
    stop during the wait ends it: the batch is known not applied ("not reached"), never sent again."""
    portal = make_portal(users=300)
    portal.inject("retry-after:45")
    proc = start(portal, tmp_path, "--userid", ids(300), "--out", tmp_path / "record.json")
    until(lambda: len(portal.calls()) == 1)  # answered at once: oint waits out the 45 s, or reads the answer
    took, out, err = stop_and_time(proc, sig)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == CODES[sig], err
    record = json.loads((tmp_path / "record.json").read_text())
    assert list(record) == [str(uid) for uid in range(1, 301)]
    assert all(entry == {"action": "not reached"} for entry in record.values()), record["1"]
    assert len(portal.calls()) == 1 and all(day["STATUS"] == "OPENED" for day in portal.days.values())
    assert (
        err.decode()
        .splitlines()[-1]
        .startswith(f"oint: stopped by {signal.Signals(sig).name}: 0 sent, 0 skipped, 0 failed, 300 not reached;")
    )


def test_a_stop_that_keeps_the_last_batch_from_being_sent_ends_the_run_as_stopped(make_portal, tmp_path):
    """One batch only, kept from being sent by the stop (here in its Retry-After wait): the run is stopped
    (exit 143, the summary line), not done with exit 0 as it was when no batch came after to see the signal."""
    portal = make_portal(users=3)
    portal.inject("retry-after:45")
    proc = start(portal, tmp_path, "--userid", ids(3))
    until(lambda: len(portal.calls()) == 1)
    _, out, err = stop_and_time(proc, signal.SIGTERM)
    _not_reached(out, err, proc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _opened(pid: int, path: str) -> bool:
    """Whether process `pid` holds `path` open (Linux's /proc)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd") if fd.isdigit())
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc to see the wait begin")
def test_a_signal_while_waiting_for_another_runs_lock_ends_the_run_at_once(make_portal, tmp_path, monkeypatch):
    """Nothing was sent while it waited: it ends at once (not at the grace), as stopped, with nothing changed."""
    portal = make_portal(users=10)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with lock.held(portal.webhook()):  # another run is changing days on this portal
        (path,) = [os.path.join(lock.folder(), name) for name in os.listdir(lock.folder())]
        proc = start(portal, tmp_path, "--userid", ids(10), OINT_LOCK_WAIT="600")
        until(lambda: _opened(proc.pid, path))  # it waits for the lock
        took, out, err = stop_and_time(proc, signal.SIGTERM)
    # "at once": well under the grace the old code waited for; a margin of seconds for a loaded machine
    assert took < bounds.STOP_GRACE / 2, (took, err)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM before any change was sent: nothing was changed" in err.decode()
    assert portal.calls() == []


def test_the_lock_held_message_names_the_portal_by_host_and_port(make_portal, tmp_path, monkeypatch):
    """The lock is per host and port: two sandboxes on one host are two portals, and the message says which."""
    portal = make_portal(users=10)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with lock.held(portal.webhook()):
        proc = start(portal, tmp_path, "--userid", ids(10), OINT_LOCK_WAIT="0")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    port = portal.webhook().split(":")[2].split("/")[0]
    assert f"is changing days on 127.0.0.1:{port} and holds its lock" in err.decode()


def test_a_signal_while_the_answer_is_written_leaves_the_record_whole(make_portal, tmp_path):
    """The handlers stay until the record is final: a SIGTERM that comes once the sending is over (here while
    the answer is being written to a stdout nobody reads yet) changes nothing. It used to kill the process
    with SIGTERM's default action half way through the JSON."""
    portal = make_portal(users=1000)
    proc = start(portal, tmp_path, "--userid", ids(1000))
    first = os.read(proc.stdout.fileno(), 1)  # the answer has begun: every batch was sent; the rest waits for the pipe
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    data = json.loads(first + out)
    assert len(data) == 1000 and all("error" not in e for e in data.values())
    assert err.decode().splitlines() == []


def test_a_sigterm_while_a_job_writes_its_answer_leaves_its_exit_file(make_portal, tmp_path):
    """A --dontwait job that a shutdown signals once its sending is over still writes its whole answer and
    its .exit: it used to die half way through with SIGTERM's default action, and `oint jobs` said "lost"."""
    portal = make_portal(users=1000)
    fifo = tmp_path / "answer"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the job's answer goes through a pipe the test reads
    started = start(portal, tmp_path, "--userid", ids(1000), "--out", fifo, "--dontwait", OINT_JOBS_DIR=tmp_path)
    out, err = started.communicate(timeout=60)
    assert started.returncode == 0, err
    job = json.loads(out)

    def read(size: int) -> bytes | None:
        """Up to `size` bytes; None while the job writes nothing, b"" before it opens the pipe and after it
        closes it."""
        try:
            return os.read(reader, size)
        except BlockingIOError:
            select.select([reader], [], [], 1)
            return None

    until(lambda: read(1) == b"{")  # the answer has begun: the sending is over; the rest waits for the pipe
    os.kill(job["pid"], signal.SIGTERM)
    chunks = [b"{"]
    while (chunk := read(65536)) != b"":
        chunks.append(chunk or b"")
    os.close(reader)
    until(lambda: not _alive(job["pid"]))
    assert os.path.exists(job["exit_file"]), "the job ended without its .exit"
    with open(job["exit_file"], encoding="utf-8") as fh:
        assert fh.read() == "0\n"
    assert len(json.loads(b"".join(chunks))) == 1000


def test_a_stop_cuts_a_slow_request_over_tls_too_and_an_answer_read_in_slices_is_whole(tls_portal, certs, tmp_path):
    """Over TLS the reads wait in slices too (a TLS read that timed out is read again): a slow answer that
    comes before the signal is read whole, and one still missing at the grace is cut."""
    tls_portal.inject("slow:1", "slow:40")  # the first batch: answered after 1 s (several slices); the second cut
    proc = start(tls_portal, tmp_path, "--userid", ids(300), "--timeout", "600", "--ca-bundle", certs["ca"])
    until(lambda: len(tls_portal.calls()) == 2)  # the first batch answered and recorded, the second in flight
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert Counter(e.get("error") or e.get("action") for e in data.values()) == Counter(
        {None: 50, "OUTCOME_UNKNOWN": 50, "not reached": 200}
    )
    assert all(data[str(uid)]["result"]["STATUS"] == "CLOSED" for uid in range(1, 51))


def test_a_stop_during_the_last_batch_ends_as_stopped(make_portal, tmp_path):
    """A review found it: a signal while the only (last) batch was in flight ended with exit 4 and no
    "stopped by" summary, as if the portal had failed, though the run was stopped."""
    portal = make_portal(users=3)
    portal.inject("slow:30")  # the one batch's answer does not come within the grace
    proc = start(portal, tmp_path, "--userid", ids(3), "--timeout", "600")
    until(lambda: len(portal.calls()) == 1)
    took, out, err = stop_and_time(proc, signal.SIGTERM)
    assert took < bounds.STOP_GRACE + MARGIN, (took, err)
    assert proc.returncode == 143, err
    assert err.decode().splitlines()[-1].startswith("oint: stopped by SIGTERM: "), err


# -- a connect or a TLS handshake in progress when the signal comes ------------
def _connecting(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP socket to 127.0.0.1:`port` still in SYN_SENT (Linux's /proc)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd") if fd.isdigit()}
        with open("/proc/net/tcp", encoding="ascii") as fh:
            rows = [line.split() for line in fh.readlines()[1:]]
    except OSError:
        return False
    return any(
        int(row[2].split(":")[1], 16) == port and row[3] == "02" and f"socket:[{row[9]}]" in inodes for row in rows
    )


def _ended_within_the_grace(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    """SIGTERM now; the process's stdout and stderr once it ended within STOP_GRACE (and the margin): it is
    killed, and the test fails, when it is still running then."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=bounds.STOP_GRACE + MARGIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {bounds.STOP_GRACE + MARGIN:g} s after SIGTERM")


def _not_reached(out: bytes, err: bytes, proc: subprocess.Popen) -> None:
    assert proc.returncode == 143, err
    assert json.loads(out) == {uid: {"action": "not reached"} for uid in ("1", "2", "3")}, err
    assert err.decode().splitlines()[-1].startswith("oint: stopped by SIGTERM: 0 sent, 0 skipped, 0 failed, 3 not")


@pytest.mark.skipif(not os.path.isfile("/proc/net/tcp"), reason="needs Linux's /proc to see the connect begin")
def test_a_stop_cuts_a_connect_the_portal_never_answers_and_its_users_are_not_reached(tmp_path):
    """A portal whose accept queue is full drops the SYNs: the connect waits for --timeout (120 s here). The
    stop's deadline cuts it (issue 23, 2.1): no connection was made, so nothing was sent: "not reached"."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):  # the queue is full (one connection waits to be accepted): further SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            url = f"http://127.0.0.1:{port}/rest/1/{WEBHOOK_CODE}/"
            proc = start_at(url, tmp_path, "--userid", "1,2,3", "--timeout", "120")
            until(lambda: _connecting(proc.pid, port))  # its SYN was dropped: it waits for the SYN-ACK
            out, err = _ended_within_the_grace(proc)
        finally:
            for filler in fillers:
                filler.close()
    _not_reached(out, err, proc)


def test_a_stop_cuts_a_tls_handshake_the_portal_never_answers_and_its_users_are_not_reached(tmp_path):
    """A portal that accepts the connection and never speaks: the TLS handshake waits for --timeout. The stop's
    deadline cuts it (issue 23, 2.1): the request was never sent (the portal got a ClientHello, nothing
    more), so its users are "not reached"."""
    hello, received, conns = threading.Event(), [], []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]

        def mute() -> None:
            conn, _ = server.accept()
            conns.append(conn)
            received.append(conn.recv(65536))
            hello.set()
            while data := conn.recv(65536):  # until oint closes the connection
                received.append(data)

        threading.Thread(target=mute, daemon=True).start()
        proc = start_at(
            f"https://127.0.0.1:{port}/rest/1/{WEBHOOK_CODE}/", tmp_path, "--userid", "1,2,3", "--timeout", "120"
        )
        until(hello.is_set)  # the handshake has begun: oint waits for the ServerHello
        out, err = _ended_within_the_grace(proc)
        for conn in conns:
            conn.close()
    _not_reached(out, err, proc)
    assert received[0][:1] == b"\x16"  # a TLS handshake record; the request itself never went
