"""Shell friendliness: completion scripts not stale, help on a terminal, Windows-minded output.

Completion itself is tested in the real shells in tests/test_completion_shells.py.
"""

import os
import re
from pathlib import Path

import pytest
from conftest import run_in_terminal, run_oint

ROOT = Path(__file__).parent.parent
FILES = {"bash": "oint.bash", "zsh": "_oint", "fish": "oint.fish", "powershell": "oint.ps1"}


@pytest.mark.parametrize("shell", FILES)
def test_completion_scripts_are_not_stale(shell):
    r = run_oint("completion", shell)
    assert r.code == 0, r.err
    committed = (ROOT / "completions" / FILES[shell]).read_text(encoding="utf-8")
    assert r.out == committed, (
        f"completions/{FILES[shell]} is stale: regenerate it with "
        f"'oint completion {shell} > completions/{FILES[shell]}'"
    )


def test_help_is_formatted_on_a_terminal_and_plain_when_piped():
    on_terminal = run_in_terminal("bitrix24", "StopTimekeeping", "--help")
    assert b"\x1b[1m" in on_terminal  # bold headings from rich
    text = re.sub(rb"\x1b\[[0-9;]*m", b"", on_terminal).decode()
    assert "Parameters" in text and "\u2500\u2500\u2500" in text  # a rich table, its header ruled
    assert "[user:password@]" in text  # option texts are not taken for rich markup
    piped = run_oint("bitrix24", "StopTimekeeping", "--help")
    assert "\x1b[" not in piped.out


def test_json_is_coloured_only_on_a_terminal(portal):
    on_terminal = run_in_terminal("bitrix24", "GetTimekeepingStatus", "--url", portal.webhook())
    assert b"\x1b[" in on_terminal and b"STATUS" in on_terminal
    assert "\x1b[" not in run_oint("bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()).out


def test_jobs_folder_on_windows_is_in_local_app_data(monkeypatch, tmp_path):
    """Windows has no XDG folders and no POSIX owners: %LOCALAPPDATA%\\oint\\jobs."""
    from oint_py.jobs import store as jobs

    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    monkeypatch.setattr(jobs.os, "name", "nt")
    try:
        folder = jobs.default_dir()
    finally:
        monkeypatch.undo()
    assert folder == os.path.join(str(tmp_path), "oint", "jobs")
