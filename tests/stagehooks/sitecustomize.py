"""Test-only faults and pauses at named stages of an auth file's renewal, injected from outside oint.

tests/test_oauth.py puts this folder first on a child's PYTHONPATH, and Python imports this module as
it starts. It wraps oint's own functions (and os.open/os.write/os.replace) and reads variables of its
own: the shipped code reads none and has no hooks.

STAGE_PAUSE_AT=NAME:SECONDS  wait there (after the line "test hook: paused at NAME" on stderr)
STAGE_KILL_AT=NAME           SIGKILL there, as a crash would
  stages: loaded (a Renewing has read the auth file), before-request and after-answer (around the
  token exchange with the OAuth server), during-write (half of the auth file's new copy written)
STAGE_FAIL_REPLACE=NAME      os.replace onto a file named NAME fails with ENOSPC (a disk full at the end)
STAGE_NO_CREATE=FOLDER       creating a file in FOLDER, renaming or removing one there, fails with EACCES
                             (a folder the user may not write to, for a test that runs as root)
"""

import errno
import os
import re
import signal
import sys
import time

_PAUSE = os.environ.get("STAGE_PAUSE_AT", "")
_KILL = os.environ.get("STAGE_KILL_AT", "")
_FAIL_REPLACE = os.environ.get("STAGE_FAIL_REPLACE", "")
_NO_CREATE = os.environ.get("STAGE_NO_CREATE", "")


def _stage(name: str) -> None:
    pause, _, seconds = _PAUSE.partition(":")
    if pause == name:
        sys.stderr.write(f"test hook: paused at {name}\n")
        sys.stderr.flush()
        time.sleep(float(seconds or 1))
    if name == _KILL:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)


def _install() -> None:
    if _PAUSE or _KILL:
        import oint_py.auth.authfile as authfile
        import oint_py.auth.oauth as oauth

        init, token = authfile.Renewing.__init__, oauth.token

        def loaded(self, *args, **kwargs):
            init(self, *args, **kwargs)
            _stage("loaded")

        def exchange(*args, **kwargs):
            _stage("before-request")
            answer = token(*args, **kwargs)
            _stage("after-answer")
            return answer

        authfile.Renewing.__init__, oauth.token = loaded, exchange

        copies: set[int] = set()  # descriptors of an auth file's new copy (not a probe's, not a pending one's)
        real_open, real_write, real_close = os.open, os.write, os.close
        own = re.compile(r"\.(.+)\.[0-9a-f]{12}\.tmp")

        def opening(path, flags, *args, **kwargs):
            fd = real_open(path, flags, *args, **kwargs)
            m = own.fullmatch(os.path.basename(str(path)))
            if m and not m.group(1).endswith((".probe", ".pending")):
                copies.add(fd)
            return fd

        def writing(fd, data):
            if fd in copies and len(data) > 1:
                half = len(data) // 2
                written = real_write(fd, bytes(data[:half]))
                _stage("during-write")
                return written
            return real_write(fd, data)

        def closing(fd):
            copies.discard(fd)
            return real_close(fd)

        os.open, os.write, os.close = opening, writing, closing
    if _FAIL_REPLACE:
        real_replace = os.replace

        def replacing(src, dst, *args, **kwargs):
            if os.path.basename(str(dst)) == _FAIL_REPLACE:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replacing
    if _NO_CREATE:
        folder = os.path.realpath(_NO_CREATE)
        inside = lambda path: os.path.realpath(os.path.dirname(os.path.abspath(str(path)))) == folder
        denied = lambda path: OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real_open2, real_replace2, real_unlink = os.open, os.replace, os.unlink

        def creating(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and inside(path) and not os.path.exists(path):
                raise denied(path)
            return real_open2(path, flags, *args, **kwargs)

        def moving(src, dst, *args, **kwargs):
            if inside(dst) or inside(src):
                raise denied(dst)
            return real_replace2(src, dst, *args, **kwargs)

        def removing(path, *args, **kwargs):
            if inside(path):
                raise denied(path)
            return real_unlink(path, *args, **kwargs)

        os.open, os.replace, os.unlink = creating, moving, removing


_install()
