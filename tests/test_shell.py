"""Shell friendliness: completion scripts, help on a terminal, Windows-minded output."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, OINT, clean_env, run_in_terminal, run_oint

ROOT = Path(__file__).parent.parent
FILES = {"bash": "oint.bash", "zsh": "_oint", "fish": "oint.fish", "powershell": "oint.ps1"}


@pytest.mark.parametrize("shell", FILES)
def test_completion_scripts_are_not_stale(shell):
    r = run_oint("completion", shell)
    assert r.code == 0, r.err
    committed = (ROOT / "completions" / FILES[shell]).read_text(encoding="utf-8")
    assert r.out == committed, (
        f"completions/{FILES[shell]} is stale: regenerate it with "
        f"'oint completion {shell} > completions/{FILES[shell]}'")


def bash_complete(*words: str) -> list[str]:
    """Load completions/oint.bash in a real bash and ask it to complete `words` (the last one incomplete)."""
    quoted = " ".join(f"'{w}'" for w in words)
    script = (
        f"source '{ROOT / 'completions' / 'oint.bash'}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_oint_completion oint 2>/dev/null\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = clean_env(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_libraries_methods_any_case_and_options():
    assert bash_complete("oint", "bi") == ["bitrix24"]
    assert bash_complete("oint", "bitrix24", "stop") == ["StopTimekeeping"]
    assert bash_complete("oint", "bitrix24", "GETTIME") == ["GetTimekeepingStatus", "GetTimekeepingSettings"]
    options = bash_complete("oint", "bitrix24", "StopTimekeeping", "--")
    for option in ("--url", "--userid", "--time", "--report", "--token", "--proxy", "--adv-response", "--out"):
        assert option in options
    assert "--time" not in bash_complete("oint", "bitrix24", "PauseTimekeeping", "--")
    assert bash_complete("oint", "bitrix24", "nosuchmethod", "--u") == []


def test_powershell_completion_protocol():
    env = clean_env(_OINT_COMPLETE="powershell_complete", COMP_LINE="oint bitrix24 pause")
    proc = subprocess.run(OINT, capture_output=True, text=True, env=env, timeout=30)
    assert proc.stdout.split() == ["plain,PauseTimekeeping"]
    env["COMP_LINE"] = "oint bitrix24 PauseTimekeeping --to"
    proc = subprocess.run(OINT, capture_output=True, text=True, env=env, timeout=30)
    assert proc.stdout.split() == ["plain,--token"]


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
    from oint_py import jobs

    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    monkeypatch.setattr(jobs.os, "name", "nt")
    try:
        folder = jobs.default_dir()
    finally:
        monkeypatch.undo()
    assert folder == os.path.join(str(tmp_path), "oint", "jobs")
