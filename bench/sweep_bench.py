"""Issue 17's measurements on 10,000 users against the sandbox with Bitrix24's leaky bucket (50 burst, 2 a
second): not a test, nothing here passes or fails.

    python bench/sweep_bench.py listing   # batched offset pages (with the cross-checks) vs paging by ID
    python bench/sweep_bench.py sweep     # StopTimekeeping --userid all --if-needed --out as a process (what oint
                                          # does: close first), wall time, requests, peak RSS
    python bench/sweep_bench.py first     # close-first-and-classify-by-record, the first prototype, in this process

Each run starts a fresh portal (an empty bucket). BENCH_USERS (default 10000) sets the users; BENCH_CLOSED_CLOSE
(record, the default, or refuse) how the portal answers a close of a closed day."""

import os
import subprocess
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from oint_py.methods import BY_KEY  # noqa: E402
from oint_py.net.transport import Client  # noqa: E402
from oint_py.parse.call import parse  # noqa: E402
from oint_py.rest import batch  # noqa: E402
from oint_py.rest.client import RestClient, Shown, send_batch, shown  # noqa: E402
from oint_py.run import sweep  # noqa: E402
from oint_py.sandbox.server import Portal  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "10000"))


def portal(**kw):
    closed_close = os.environ.get("BENCH_CLOSED_CLOSE", "record")
    return Portal(users=USERS, rate_limit=(50, 2), closed_close=closed_close, **kw).start()


def client_for(p, method="StopTimekeeping"):
    call = parse(BY_KEY[method.lower()], {"--url": p.webhook(), "--userid": "all"}, {}, if_needed=True)
    return call, RestClient(Client(call.settings, call.endpoint.base, mask=call.redactor))  # as execute builds it


def listing():
    for name in ("offset", "by ID"):
        p = portal()
        call, client = client_for(p)
        t = time.monotonic()
        if name == "offset":
            pages = sweep._offset_pages(call, client, None)
            assert not sweep._mismatch(pages)
            n = sum(len(page) for _, page, _, _ in pages)
        else:
            n = len(sweep._by_id(call, client))
        took = time.monotonic() - t
        print(f"listing {name}: {n} users, {len(p.calls())} requests, {took:.1f} s, throttled {p.throttled}")
        p.stop()


def run_sweep():
    p = portal(scenario="forgotten")
    env = {**os.environ, "PYTHONPATH": ROOT, "XDG_STATE_HOME": "/tmp/sweep-bench-state"}
    t = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oint_py",
            "bitrix24",
            "StopTimekeeping",
            "--url",
            p.webhook(),
            "--userid",
            "all",
            "--if-needed",
            "--out",
            "/tmp/sweep-bench.json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - t
    print(
        f"oint sweep: exit {os.waitstatus_to_exitcode(status)}, {len(p.calls())} requests, {took:.1f} s, "
        f"peak RSS {usage.ru_maxrss / 1024:.1f} MiB, throttled {p.throttled}; {err.decode().strip()}"
    )
    p.stop()


def close_first():
    p = portal(scenario="forgotten")
    call, client = client_for(p)
    method, status = call.method, BY_KEY["gettimekeepingstatus"]
    t = time.monotonic()
    found, _ = sweep.active_users(call, client)
    counts, refused = Counter(), []
    for at in range(0, len(found.ids), 50):
        clocks: dict = {}
        cmd = batch.commands(method.rest, found.ids[at : at + 50], {})[0]
        results, _ = send_batch(client, call, method, cmd, clocks)
        for uid, entry in results.items():
            verdict = shown(method, entry.get("result"), None, clocks.get(uid))[0] if "error" not in entry else None
            if verdict is Shown.MADE:
                counts["closed"] += 1
            elif verdict is Shown.ALREADY:
                counts["skipped"] += 1
            else:
                refused.append(uid)  # WD_EXPIRED and the like: read its status, close it on its own date
    for at in range(0, len(refused), 50):
        chunk = refused[at : at + 50]
        read, _ = send_batch(client, call, status, batch.commands(status.rest, chunk, {})[0])
        steps = {uid: sweep.decide(call, read[uid]) for uid in chunk}
        todo = {
            uid: batch.user_line(method.rest, uid, s.params) for uid, s in steps.items() if s.kind is sweep.Decision.ACT
        }
        results, _ = send_batch(client, call, method, batch.chunks(todo)[0])
        counts.update("closed" if "error" not in e else "failed" for e in results.values())
    took = time.monotonic() - t
    print(f"close-first: {dict(counts)}, {len(p.calls())} requests, {took:.1f} s, throttled {p.throttled}")
    p.stop()


if __name__ == "__main__":
    {"listing": listing, "sweep": run_sweep, "first": close_first}[sys.argv[1]]()
