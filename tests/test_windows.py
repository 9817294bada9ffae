"""Windows behaviour, reproduced on any machine by patching what Python does
there: consoles that are not consoles (`>nul`), pythonw's missing streams,
pipes that close with EINVAL, years localtime_s refuses, the registry proxy,
and SO_REUSEADDR. What still needs a real Windows machine is listed in the
README's Windows section."""

import ctypes
import errno
import io
import json
import os
import subprocess
import sys
import types

import pytest
from conftest import ROOT, clean_env, run_oint

from oint_py.outcome import ExitStatus, Outcome
from oint_py.output import render as output
from oint_py.parse import timeparse

CYRILLIC = {"result": {"REPORT": "Отгул — по семейным"}}


class Tty(io.BytesIO):
    """A byte stream that says it is a terminal, as NUL does to isatty() on Windows."""

    def isatty(self):
        return True

    def fileno(self):
        return 1


def console(stream_bytes: Tty, encoding: str):
    return io.TextIOWrapper(stream_bytes, encoding=encoding, errors="strict", write_through=True)


@pytest.fixture
def windows(monkeypatch):
    """os.name is "nt", with msvcrt and kernel32.GetConsoleMode stand-ins; returns the mode switch."""
    answer = {"console": False}
    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(get_osfhandle=lambda fd: 1000 + fd))
    kernel32 = types.SimpleNamespace(GetConsoleMode=lambda handle, mode: int(answer["console"]))
    monkeypatch.setattr(ctypes, "windll", types.SimpleNamespace(kernel32=kernel32), raising=False)
    monkeypatch.setattr(output.os, "name", "nt")
    return answer


@pytest.mark.parametrize("encoding", ["cp1252", "cp866"])
def test_nul_is_not_a_console_and_a_cyrillic_answer_is_not_lost(windows, monkeypatch, encoding):
    raw = Tty()
    monkeypatch.setattr(sys, "stdout", console(raw, encoding))
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert output.render(Outcome(ExitStatus.OK, CYRILLIC)) == ExitStatus.OK
    assert json.loads(raw.getvalue().decode("utf-8")) == CYRILLIC  # plain UTF-8, not rich in a code page
    assert b"\x1b[" not in raw.getvalue()


def test_a_real_console_that_cannot_show_the_answer_falls_back_to_utf8(windows, monkeypatch):
    windows["console"] = True
    raw = Tty()
    monkeypatch.setattr(sys, "stdout", console(raw, "cp866"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert output.use_colour(sys.stdout)
    assert output.render(Outcome(ExitStatus.OK, CYRILLIC)) == ExitStatus.OK
    assert "Отгул — по семейным".encode() in raw.getvalue()


class ClosedPipe(io.BytesIO):
    def write(self, data):
        raise OSError(errno.EINVAL, "Invalid argument")


def test_a_closed_pipe_on_windows_is_quiet_and_keeps_the_exit_code(windows, monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(ClosedPipe()))
    assert output.render(Outcome(ExitStatus.API_ERROR, CYRILLIC)) == ExitStatus.API_ERROR


def test_einval_elsewhere_is_a_write_failure(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(ClosedPipe()))
    assert output.render(Outcome(ExitStatus.OK, CYRILLIC)) == ExitStatus.NOT_WRITTEN


PYTHONW = """
import sys
sys.stdout = sys.stderr = None  # pythonw.exe: no console, no streams
from oint_py.main import main
sys.exit(main())
"""


@pytest.mark.parametrize("userid,code", [("3", 0), ("99999", 3)])
def test_pythonw_without_streams_still_writes_out_and_exits_honestly(portal, tmp_path, userid, code):
    target = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PYTHONW,
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            userid,
            "--out",
            str(target),
        ],
        capture_output=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == b"" and proc.stderr == b""
    assert json.loads(target.read_text("utf-8")) != {}


def test_pythonw_help_and_errors_exit_without_streams(tmp_path):
    for args, code in (
        (["bitrix24", "StopTimekeeping", "--help"], 0),
        (["bitrix24", "StopTimekeeping", "--url", "a..b"], 5),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", PYTHONW, *args], capture_output=True, env=clean_env(), cwd=ROOT, timeout=60
        )
        assert proc.returncode == code, (args, proc.stderr)


def test_years_localtime_s_refuses_are_option_errors(monkeypatch):
    """Windows' localtime_s refuses years before 1970 (a typo like 0206-05-26) with OSError."""

    class WindowsDatetime(timeparse.datetime):
        def astimezone(self, tz=None):
            if tz is None and self.year < 1970:
                raise OSError(errno.EINVAL, "Invalid argument")
            return super().astimezone(tz)

    monkeypatch.setattr(timeparse, "datetime", WindowsDatetime)
    monkeypatch.setattr(timeparse, "local_zone", lambda: None)
    with pytest.raises(ValueError, match="invalid --time '0206-05-26T10:00:00'"):
        timeparse.to_atom("0206-05-26T10:00:00")


REGISTRY_PROXY = r"""
import sys, urllib.request
# What urllib answers on Windows, where getproxies() adds the registry's (Internet Options) proxy
# to the environment's; replaced before oint (and httpx, which imports getproxies by name) loads.
registry = {"http": sys.argv.pop(1)}
urllib.request.getproxies = lambda: {**urllib.request.getproxies_environment(), **registry}
urllib.request.getproxies_registry = lambda: dict(registry)
sys.argv[0] = "oint"
from oint_py.main import main
sys.exit(main())
"""


def test_the_registry_proxy_is_not_used(portal, proxy_factory):
    """urllib's getproxies() reads the Windows registry; oint reads only the environment. The
    registry here names a real proxy: a call that went through it (trust_env, or getproxies()
    instead of getproxies_environment()) shows in its log."""
    proxy = proxy_factory()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            REGISTRY_PROXY,
            proxy.url,
            "bitrix24",
            "GetTimekeepingStatus",
            "--url",
            portal.webhook(),
        ],
        capture_output=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proxy.log() == []
    assert len(portal.calls()) == 1


def test_no_proxy_keeps_loopback_direct(portal, proxy_factory):
    proxy = proxy_factory()
    r = run_oint(
        "bitrix24",
        "GetTimekeepingStatus",
        "--url",
        portal.webhook(),
        env=clean_env(HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1,localhost"),
    )
    assert r.code == 0, r.err
    assert proxy.log() == []
    assert len(portal.calls()) == 1


def test_sandbox_does_not_share_its_port_on_windows(monkeypatch):
    from oint_py.sandbox.server import _Server

    server = _Server.__new__(_Server)
    assert server.allow_reuse_address is (os.name != "nt")
    monkeypatch.setattr(os, "name", "nt")
    assert server.allow_reuse_address is False
