"""Runs bench.py's commands one at a time and reports each one's own cost.

    python -I -S bench/spawner.py      (bench.py starts it; it reads jobs on stdin)

Why a separate, lean process: on Linux a child's ru_maxrss starts at the peak
RSS of the memory image it was exec'd from, that is of whoever forked it. Forked
from bench.py itself (trustme, cryptography, the portal's threads: tens of MiB)
every case, curl included, would read at least that much. Forked from here
(`-S`, nothing imported but built-in modules) the floor is this process's few
MiB, which bench.py measures and prints.

A job and its reply are marshal'd dicts, each after an 8-byte little-endian
length. Job: argv (argv[0] a full path), env, out, err (files for the child's
stdout and stderr; stdin is the null device). Reply: wall (seconds, from
spawning to reaping), utime, stime (seconds), maxrss (as the OS reports it:
KiB on Linux, bytes on macOS) and code, or error.
"""

import marshal
import os
import sys
import time


def run(job: dict) -> dict:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, job["out"], flags, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, job["err"], flags, 0o600),
    ]
    start = time.perf_counter()
    try:
        pid = os.posix_spawn(job["argv"][0], job["argv"], job["env"], file_actions=actions)
    except OSError as exc:
        return {"error": f"{job['argv'][0]}: {exc}"}
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "maxrss": usage.ru_maxrss,
        "code": os.waitstatus_to_exitcode(status),
    }


def main() -> None:
    jobs, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = jobs.read(8)
        if len(head) < 8:
            return
        reply = marshal.dumps(run(marshal.loads(jobs.read(int.from_bytes(head, "little")))))
        replies.write(len(reply).to_bytes(8, "little") + reply)
        replies.flush()


if __name__ == "__main__":
    main()
