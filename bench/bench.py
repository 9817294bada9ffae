"""Whole-process timings, side by side in one run (not a test: nothing here passes or fails).

    python bench/bench.py [--runs 15] [--only CASE,CASE] [--many N] [--tenk]

Each case is a separate process, started --runs times, interleaved (A B C ...
A B C ...) after --warmup rounds, so that drift (CPU frequency, caches, other
load) hits every case alike. For each: median and min of wall time and of CPU
time (user + system of the child, from os.wait4), the child's peak RSS, and the
ratios of the medians to `python -c pass`. The far end is bench/portal.py, a
loopback portal that answers at once; every answer is checked, and so is the
number of HTTP requests each run made.

Cases (--only takes their keys; `pass` always runs, as the floor):
  pass         python -c pass                the floor: starting this Python at all
  help         oint --help                   cold start of the CLI
  oint-http    oint bitrix24 StopTimekeeping over http
  oint-tls     the same over TLS (--ca-bundle)
  stdlib-http  bench/stdlib_client.py        http.client, json: the floor for a Python tool
  stdlib-tls   the same over TLS
  httpx-http   bench/httpx_client.py         the floor of oint's own stack: httpx imported as oint does
  httpx-tls    the same over TLS             (no CLI module), one POST; above it is oint's own share
  sdk-tls      bench/sdk_client.py           b24pysdk (https only; REQUESTS_CA_BUNDLE)
  curl-http    curl POSTing the same JSON
  curl-tls     the same over TLS (--cacert)

--many N: N users' days closed once by one `oint --userid 1,...,N` (batch, 50 a
request) and once by N `oint` processes, with the requests the portal saw.
--tenk: 10,000 users in one `oint` call against a portal with Bitrix24's leaky
bucket (50 burst, 2 a second; 503 QUERY_LIMIT_EXCEEDED over it).

Needs the test extras (trustme, b24pysdk): pip install '.[test]'. CPU time and
peak RSS need os.posix_spawn and os.wait4 (POSIX); elsewhere only wall time is
measured. Children are started by bench/spawner.py, a lean process: see there
why RSS would be wrong if they were started from here.
"""

import argparse
import json
import marshal
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from portal import BenchPortal  # noqa: E402

PYTHON = sys.executable
BIN = Path(sys.executable).parent
OINT = str(BIN / ("oint.exe" if os.name == "nt" else "oint"))
CURL = shutil.which("curl")
MEASURES = hasattr(os, "posix_spawn") and hasattr(os, "wait4")  # CPU and RSS too, not only wall
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
JSON_TYPE = "Content-Type: application/json; charset=utf-8"
TENK = 10_000


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float | None = None  # user + system seconds of the child
    rss: int | None = None  # bytes
    requests: int = 0  # HTTP requests the portal saw during the run


@dataclass
class Case:
    key: str
    label: str
    argv: object  # user id -> argv
    expect: bytes | None  # must appear in stdout
    requests: int  # HTTP requests one run must make
    samples: list = field(default_factory=list)


class Runner:
    """Starts commands and measures them: through bench/spawner.py where the OS
    has posix_spawn and wait4, else with subprocess here (wall time only)."""

    def __init__(self, env: dict, scratch: Path):
        self.env, self.out, self.err = env, scratch / "stdout", scratch / "stderr"
        self.spawner = None
        if MEASURES:
            self.spawner = subprocess.Popen(
                [PYTHON, "-I", "-S", str(HERE / "spawner.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )

    def close(self) -> None:
        if self.spawner:
            self.spawner.stdin.close()
            self.spawner.wait()

    def run(self, argv: list[str], env: dict | None = None) -> tuple[Sample, bytes]:
        env = env or self.env
        if self.spawner:
            job = marshal.dumps({"argv": argv, "env": env, "out": str(self.out), "err": str(self.err)})
            self.spawner.stdin.write(len(job).to_bytes(8, "little") + job)
            self.spawner.stdin.flush()
            head = self.spawner.stdout.read(8)
            if len(head) < 8:
                raise SystemExit(f"bench/spawner.py ended ({self.spawner.wait()})")
            size = int.from_bytes(head, "little")
            reply = marshal.loads(self.spawner.stdout.read(size))
            if "error" in reply:
                raise SystemExit(f"cannot start {reply['error']}")
            code = reply["code"]
            sample = Sample(reply["wall"], reply["utime"] + reply["stime"], reply["maxrss"] * RSS_UNIT)
        else:
            with open(self.out, "wb") as out, open(self.err, "wb") as err:
                start = time.perf_counter()
                code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err).returncode
                sample = Sample(time.perf_counter() - start)
        if code != 0:
            raise SystemExit(f"{' '.join(argv)[:200]}\nfailed ({code}): {self.err.read_bytes().decode()[-500:]}")
        return sample, self.out.read_bytes()


def make_cases(http: BenchPortal, tls: BenchPortal, ca: str) -> list[Case]:
    def oint(portal, *extra):
        return lambda uid: [OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", uid, *extra]

    def curl(portal, *extra):
        return lambda uid: [
            CURL,
            "-sS",
            "--fail",
            "-H",
            JSON_TYPE,
            "--data",
            json.dumps({"USER_ID": uid}),
            portal.webhook() + "timeman.close",
            *extra,
        ]

    stdlib = str(HERE / "stdlib_client.py")
    floor = str(HERE / "httpx_client.py")
    cases = [
        Case("pass", "`python -c pass`", lambda uid: [PYTHON, "-c", "pass"], None, 0),
        Case("help", "`oint --help`", lambda uid: [OINT, "--help"], b"Usage", 0),
        Case("oint-http", "`oint` StopTimekeeping, http", oint(http), b"CLOSED", 1),
        Case("oint-tls", "`oint` StopTimekeeping, TLS", oint(tls, "--ca-bundle", ca), b"CLOSED", 1),
        Case(
            "stdlib-http", "stdlib http.client, http", lambda uid: [PYTHON, stdlib, http.webhook(), uid], b"CLOSED", 1
        ),
        Case(
            "stdlib-tls", "stdlib http.client, TLS", lambda uid: [PYTHON, stdlib, tls.webhook(), uid, ca], b"CLOSED", 1
        ),
        Case("httpx-http", "httpx floor script, http", lambda uid: [PYTHON, floor, http.webhook(), uid], b"CLOSED", 1),
        Case("httpx-tls", "httpx floor script, TLS", lambda uid: [PYTHON, floor, tls.webhook(), uid, ca], b"CLOSED", 1),
    ]
    try:
        metadata.version("b24pysdk")
    except metadata.PackageNotFoundError:
        print("b24pysdk is not installed: its case is left out", file=sys.stderr)
    else:
        cases.append(
            Case(
                "sdk-tls",
                "b24pysdk timeman.close, TLS",
                lambda uid: [PYTHON, str(HERE / "sdk_client.py"), tls.webhook(), uid],
                b"CLOSED",
                1,
            )
        )
    if CURL:
        cases += [
            Case("curl-http", "curl, http", curl(http), b"CLOSED", 1),
            Case("curl-tls", "curl, TLS", curl(tls, "--cacert", ca), b"CLOSED", 1),
        ]
    else:
        print("curl is not on PATH: its cases are left out", file=sys.stderr)
    return cases


def measure(runner: Runner, case: Case, uid: int, portals) -> Sample:
    before = sum(p.requests for p in portals)
    sample, out = runner.run(case.argv(str(uid)))
    sample.requests = sum(p.requests for p in portals) - before
    if case.expect and case.expect not in out:
        raise SystemExit(f"{case.key}: no {case.expect!r} in its output: {out[:300]!r}")
    if sample.requests != case.requests:
        raise SystemExit(f"{case.key}: {sample.requests} HTTP requests in one run, expected {case.requests}")
    return sample


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f}"


def mib(size: int | None) -> str:
    return "–" if size is None else f"{size / 2**20:.1f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def header(runs: int, warmup: int) -> str:
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    curl = "absent"
    if CURL:
        curl = subprocess.run([CURL, "--version"], capture_output=True, text=True).stdout.split()[1]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when} · Python {platform.python_version()} ({platform.python_implementation()}) · "
        f"{platform.platform()} · {os.cpu_count()} CPUs · oint-py {version('oint-py')} · "
        f"httpx {version('httpx')} · b24pysdk {version('b24pysdk')} · curl {curl} · {ssl.OPENSSL_VERSION} · "
        f"{runs} run{'s' if runs != 1 else ''} each, interleaved, "
        f"after {warmup} warm-up round{'s' if warmup != 1 else ''}"
    )


def editable() -> bool:
    """Whether oint-py is installed in development mode (pip install -e): a .pth file that runs at startup."""
    import site
    import sysconfig

    folders = {sysconfig.get_paths()["purelib"], *getattr(site, "getsitepackages", list)()}
    return any(any(Path(f).glob("__editable__*oint*.pth")) for f in folders if Path(f).is_dir())


def load() -> str:
    """The load average, where the OS has one: wall times above CPU times mean the child waited."""
    try:
        return ", load average %.2f %.2f %.2f" % os.getloadavg()
    except (AttributeError, OSError):
        return ""


def table(cases: list[Case]) -> str:
    floor = next(c for c in cases if c.key == "pass")
    wall0, cpu0 = median(s.wall for s in floor.samples), median(s.cpu for s in floor.samples)
    lines = [
        "| case | wall median ms | wall min ms | CPU median ms | CPU min ms | peak RSS MiB "
        "| wall × pass | CPU × pass |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        walls, cpus = [s.wall for s in case.samples], [s.cpu for s in case.samples]
        wall, cpu = median(walls), median(cpus)
        lines.append(
            f"| {case.label} | {ms(wall)} | {ms(min(walls))} | {ms(cpu)} "
            f"| {ms(min(cpus) if cpu is not None else None)} | {mib(median(s.rss for s in case.samples))} "
            f"| {wall / wall0:.2f} | {f'{cpu / cpu0:.2f}' if cpu is not None else '–'} |"
        )
    return "\n".join(lines)


def compare(cases: list[Case]) -> str:
    """Ratios of medians between the Python tools that make the same request."""
    by_key = {c.key: c for c in cases}
    lines = []
    for mine, other in (
        ("oint-http", "httpx-http"),
        ("oint-tls", "httpx-tls"),
        ("oint-tls", "sdk-tls"),
        ("oint-tls", "stdlib-tls"),
        ("oint-http", "stdlib-http"),
    ):
        if mine in by_key and other in by_key:
            a, b = by_key[mine].samples, by_key[other].samples
            cpu = median(s.cpu for s in a)
            wall = median(s.wall for s in a) / median(s.wall for s in b)
            text = f"{mine} / {other}: wall {wall:.2f}"
            if cpu is not None:
                text += f", CPU {cpu / median(s.cpu for s in b):.2f}"
            lines.append(text)
    return "\n".join(lines)


def userid_arg(ids: list[int], scratch: Path) -> str:
    """A comma list, or @file where the command line would get too long (Windows: 32,767 characters)."""
    text = ",".join(map(str, ids))
    if len(text) < 30_000:
        return text
    path = scratch / f"users-{len(ids)}.txt"
    path.write_text("\n".join(map(str, ids)) + "\n", encoding="utf-8")
    return "@" + str(path)


def closed(out: bytes, ids: list[int]) -> int:
    data = json.loads(out)
    return sum(1 for uid in ids if (data.get(str(uid)) or {}).get("result", {}).get("STATUS") == "CLOSED")


def many(runner: Runner, portal: BenchPortal, ca: str, n: int, scratch: Path) -> str:
    ids = list(range(1, n + 1))
    oint = [OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--ca-bundle", ca, "--userid"]
    before, links = portal.requests, portal.connections
    one, out = runner.run(oint + [userid_arg(ids, scratch)])
    one.requests, one_links = portal.requests - before, portal.connections - links
    done = closed(out, ids)

    before, links, each = portal.requests, portal.connections, []
    start = time.perf_counter()
    for uid in ids:
        sample, out = runner.run(oint + [str(uid)])
        if b"CLOSED" not in out:
            raise SystemExit(f"oint --userid {uid}: no CLOSED in {out[:300]!r}")
        each.append(sample)
    total = Sample(
        time.perf_counter() - start,
        None if each[0].cpu is None else sum(s.cpu for s in each),
        max((s.rss or 0) for s in each) or None,
        portal.requests - before,
    )
    each_links = portal.connections - links

    def secs(value):
        return "–" if value is None else f"{value:.2f}"

    return "\n".join(
        [
            f"{n} users over TLS, against the portal without a rate limit:",
            "",
            "| how | processes | HTTP requests | connections | wall s | CPU s (children) | peak RSS MiB | closed |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| one `oint --userid 1,...,{n}` (batch) | 1 | {one.requests} | {one_links} | {secs(one.wall)} "
            f"| {secs(one.cpu)} | {mib(one.rss)} | {done} |",
            f"| {n} `oint --userid N` processes | {n} | {total.requests} | {each_links} | {secs(total.wall)} "
            f"| {secs(total.cpu)} | {mib(total.rss)}{' (max)' if total.rss else ''} | {n} |",
            "",
            f"one call is {total.wall / one.wall:.0f}x faster in wall time"
            + (f" and uses {total.cpu / one.cpu:.0f}x less CPU" if one.cpu else "")
            + f". A real portal's limit (50 burst, then 2 requests/s) would hold {n} processes to at least "
            f"{max(0, n - 50) / 2:.0f} s, and the batch to {max(0, one.requests - 50) / 2:.0f} s.",
        ]
    )


def tenk(runner: Runner, ca_files: dict, scratch: Path) -> str:
    portal = BenchPortal(certfile=ca_files["cert"], rate_limit=(50, 2)).start()
    try:
        ids = list(range(1, TENK + 1))
        record = scratch / "tenk.json"  # with --out: its record is written batch by batch as the run goes
        sample, _ = runner.run(
            [
                OINT,
                "bitrix24",
                "StopTimekeeping",
                "--url",
                portal.webhook(),
                "--ca-bundle",
                ca_files["ca"],
                "--userid",
                userid_arg(ids, scratch),
                "--out",
                str(record),
            ]
        )
        done = closed(record.read_bytes(), ids)
        cpu = "–" if sample.cpu is None else f"{sample.cpu:.2f}"
        return "\n".join(
            [
                f"{TENK:,} users in one `oint` call over TLS with `--out`, the portal limiting to 50 burst + 2 "
                "requests/s:",
                "",
                "| HTTP requests | throttled (503) | connections | wall s | CPU s | peak RSS MiB | closed |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                f"| {portal.requests} | {portal.throttled} | {portal.connections} | {sample.wall:.1f} | {cpu} "
                f"| {mib(sample.rss)} | {done:,} |",
                "",
                f"{portal.requests - portal.throttled} requests need at least "
                f"{max(0, portal.requests - portal.throttled - 50) / 2:.1f} s at 2/s after a burst of 50.",
            ]
        )
    finally:
        portal.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each case (default 15)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--only", metavar="CASE,CASE", help="run only these cases (and `pass`, the floor)")
    ap.add_argument("--many", type=int, default=0, metavar="N", help="also N users: one batch call vs N processes")
    ap.add_argument("--tenk", action="store_true", help=f"also {TENK:,} users in one call, rate-limited (~80 s)")
    ns = ap.parse_args()
    if ns.runs < 1 or ns.warmup < 0 or ns.many < 0:
        ap.error("--runs must be at least 1, --warmup and --many at least 0")
    if not Path(OINT).exists():
        raise SystemExit(f"no {OINT}: install the project into this Python first (pip install -e '.[test]')")
    try:
        import trustme
    except ImportError:
        raise SystemExit("trustme is missing: pip install '.[test]'") from None

    scratch = Path(tempfile.mkdtemp(prefix="oint-bench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {"ca": str(scratch / "ca.pem"), "cert": str(scratch / "cert.pem")}  # cert.pem: key and chain
    ca.cert_pem.write_to_path(files["ca"])
    cert.private_key_and_cert_chain_pem.write_to_path(files["cert"])
    http = BenchPortal().start()
    tls = BenchPortal(certfile=files["cert"]).start()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(REQUESTS_CA_BUNDLE=files["ca"], NO_COLOR="1")
    # Bytecode as an installed tool has it: compiled once (in the warm-up), then read. Kept under the
    # scratch folder, so neither the source tree nor site-packages is written to; without this an
    # environment with PYTHONDONTWRITEBYTECODE would recompile oint_py (an editable install) every run.
    no_pyc = env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    runner = Runner(env, scratch)
    try:
        cases = make_cases(http, tls, files["ca"])
        if ns.only:
            wanted = {k.strip() for k in ns.only.split(",") if k.strip()}
            unknown = wanted - {c.key for c in cases}
            if unknown:
                known = ", ".join(c.key for c in cases)
                ap.error(f"--only: no case {', '.join(sorted(unknown))}; the cases: {known}")
            cases = [c for c in cases if c.key in wanted | {"pass"}]

        print(header(ns.runs, ns.warmup), flush=True)
        if editable():
            print(
                "(oint-py is an editable install: every Python process here, `python -c pass` included, imports "
                "its path finder at startup, pathlib and re with it; a regular install has no such cost)"
            )
        if no_pyc:
            print(
                "(PYTHONDONTWRITEBYTECODE was set: dropped for the children, whose bytecode goes to a "
                "private PYTHONPYCACHEPREFIX)"
            )
        if not MEASURES:
            print("(no os.posix_spawn/os.wait4 here: wall time only)")
        true = shutil.which("true")
        floor = runner.run([true])[0].rss if MEASURES and true else None
        uid = 0
        for _ in range(ns.warmup):
            for case in cases:
                uid += 1
                measure(runner, case, uid, (http, tls))
        started = time.perf_counter()
        for _ in range(ns.runs):  # interleaved, so drift hits every case alike
            for case in cases:
                uid += 1
                case.samples.append(measure(runner, case, uid, (http, tls)))
        print()
        print(table(cases))
        print()
        ratios = compare(cases)
        if ratios:
            print(ratios + "\n")
        took = time.perf_counter() - started
        print(
            f"{ns.runs} round{'s' if ns.runs != 1 else ''} in {took:.1f} s{load()}. "
            f"CPU is the child's user + system time; peak RSS is the child's ru_maxrss (median)"
            + (
                f", which cannot read below the spawner's own {mib(floor)} MiB (what `true` reads here)"
                if floor
                else ""
            )
            + ". "
            "Every run made the HTTP requests it should "
            "(1 per close, 0 otherwise) and its answer said CLOSED.",
            flush=True,
        )

        if ns.many:
            print()
            print(many(runner, tls, files["ca"], ns.many, scratch), flush=True)
        if ns.tenk:
            print()
            print(tenk(runner, files, scratch), flush=True)
    finally:
        runner.close()
        http.stop()
        tls.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
