"""Whole-process timings, side by side in one run (not a test: nothing here passes or fails).

    python bench/bench.py [--runs 15] [--many 1000]

Times, as separate processes, each --runs times:
  python -c pass                  the floor: starting this Python at all
  oint --help                     cold start of the CLI
  oint ... StopTimekeeping        a full call against the loopback portal over TLS
  b24pysdk close script           the official SDK doing the same call
and prints median and min wall times with ratios. With --many N it also
closes N users' days once as one `oint --userid 1,2,...` (batch) and once as N
separate `oint` processes, and counts the HTTP requests the portal saw.
Needs the test extras (trustme, b24pysdk): pip install '.[test]'.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oint_py.sandbox import Portal

BIN = Path(sys.executable).parent
OINT = str(BIN / ("oint.exe" if os.name == "nt" else "oint"))
SDK_SCRIPT = """
import sys
from b24pysdk import BitrixWebhook, Client
client = Client(BitrixWebhook(domain=sys.argv[1], webhook_token=sys.argv[2]))
print(client.timeman.close(user_id=int(sys.argv[3])).result["STATUS"])
"""


def timed(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr.decode()[-300:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--many", type=int, default=0, help="also time N users: one batch call vs N processes")
    ns = ap.parse_args()

    import trustme

    folder = Path(tempfile.mkdtemp(prefix="oint-bench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    users = ns.runs * 3 + ns.many * 2 + 10
    portal = Portal(users=users, certfile=str(folder / "cert.pem"), keyfile=str(folder / "key.pem")).start()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(REQUESTS_CA_BUNDLE=str(folder / "ca.pem"), NO_COLOR="1")
    domain = portal.base.split("://")[1]
    next_user = iter(range(1, users + 1))

    cases = {
        "python -c pass": lambda: [sys.executable, "-c", "pass"],
        "oint --help": lambda: [OINT, "--help"],
        "oint StopTimekeeping (TLS)": lambda: [OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(),
                                               "--ca-bundle", str(folder / "ca.pem"), "--userid", str(next(next_user))],
        "b24pysdk timeman.close (TLS)": lambda: [sys.executable, "-c", SDK_SCRIPT, domain, f"1/{portal.code}",
                                                 str(next(next_user))],
    }
    for make in cases.values():  # warm the OS caches and .pyc files once
        timed(make(), env)
    samples = {name: [] for name in cases}
    for _ in range(ns.runs):  # interleaved, so drift hits every case alike
        for name, make in cases.items():
            samples[name].append(timed(make(), env))

    floor = statistics.median(samples["python -c pass"])
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {ns.runs} runs each, interleaved\n")
    print(f"{'command':32} {'median ms':>10} {'min ms':>8} {'x python':>9}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:32} {med * 1000:10.1f} {min(values) * 1000:8.1f} {med / floor:9.2f}")
    oint_call = statistics.median(samples["oint StopTimekeeping (TLS)"])
    sdk_call = statistics.median(samples["b24pysdk timeman.close (TLS)"])
    print(f"\noint call / b24pysdk call: {oint_call / sdk_call:.2f}")

    if ns.many:
        ids = [str(next(next_user)) for _ in range(ns.many)]
        before = len(portal.calls())
        start = time.perf_counter()
        timed([OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--ca-bundle",
               str(folder / "ca.pem"), "--userid", ",".join(ids)], env)
        batch_time, batch_requests = time.perf_counter() - start, len(portal.calls()) - before
        ids = [str(next(next_user)) for _ in range(ns.many)]
        before = len(portal.calls())
        start = time.perf_counter()
        for uid in ids:
            timed([OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--ca-bundle",
                   str(folder / "ca.pem"), "--userid", uid], env)
        each_time, each_requests = time.perf_counter() - start, len(portal.calls()) - before
        print(f"\n{ns.many} users, one oint call (batch): {batch_requests} HTTP requests, {batch_time:.2f} s")
        print(f"{ns.many} users, {ns.many} oint processes: {each_requests} HTTP requests, {each_time:.2f} s")
        print(f"speed-up: {each_time / batch_time:.1f}x")
    portal.stop()


if __name__ == "__main__":
    main()
