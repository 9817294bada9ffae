"""Issue 16: runs a person can trust at 3 a.m. `--quiet` for cron, `-h`, and the
everyday rough edges, each against the sandbox portal as a real process."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, clean_env, forgotten_sandbox, oint_on, run_oint, user_docs

from oint_py.sandbox.portal import forgotten_kind


# -- --quiet and -h (item 3) ---------------------------------------------------------
@pytest.mark.parametrize("quiet", ["--quiet", "-q"])
def test_quiet_success_prints_nothing_and_still_writes_out(portal, tmp_path, quiet):
    out = tmp_path / "close.json"
    r = oint_on(portal, "--userid", "all", "--if-needed", "--out", out, quiet)
    assert (r.code, r.raw, r.err) == (0, b"", "")
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 300
    r = oint_on(portal, "--userid", 7, quiet, method="GetTimekeepingStatus")  # no --out: nothing at all
    assert (r.code, r.raw, r.err) == (0, b"", "")


def test_quiet_failure_shows_the_summary_and_at_most_20_failure_lines(portal, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(map(str, [*range(1, 6), *range(90001, 90031)])))  # 5 users, 30 who are not
    out = tmp_path / "close.json"
    loud = oint_on(portal, "--userid", f"@{ids}", "--if-needed", "--plan", "--out", out)
    r = oint_on(portal, "--userid", f"@{ids}", "--if-needed", "--out", out, "--quiet")
    assert r.code == loud.code == 3
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 22, r.err
    assert lines[:20] == [f"oint: user {uid}: User not found" for uid in range(90001, 90021)]
    assert lines[20] == f"oint: and 10 more: see {out}"
    assert lines[21] == "oint: 5 closed, 0 skipped, 30 failed"
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 35


def test_quiet_failure_without_out_keeps_the_answer_on_stdout(portal):
    r = oint_on(portal, "--userid", 99999, "-q")
    assert r.code == 3 and r.json()["error_description"] == "User not found"
    assert r.err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["-h"],
        ["bitrix24", "-h"],
        ["bitrix24", "StopTimekeeping", "-h"],
        ["bitrix24", "StopTimekeeping", "--userid", "1", "-h"],
        ["jobs", "-h"],
    ],
)
def test_h_is_help(args):
    r = run_oint(*args)
    long = run_oint(*[a if a != "-h" else "--help" for a in args])
    assert r.code == 0 and r.err == "" and r.out == long.out and "usage" in r.out.lower()


# -- recipes that run (item 4) ---------------------------------------------------------
def _readme() -> str:
    return user_docs()


def _crontab_lines() -> list[tuple[list[str], str]]:
    """Each job line of the README's crontab blocks, with the variable lines above it in its block."""
    found = []
    for block in re.findall(r"```cron\n(.*?)```", _readme(), re.S):
        variables = []
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if re.match(r"[A-Za-z_][A-Za-z0-9_]*=", line):
                variables.append(line)
            else:
                found.append((list(variables), line))
    return found


def test_the_readme_has_its_crontab_lines():
    lines = _crontab_lines()
    assert len(lines) == 4
    for _, line in lines:  # the --auth-file one runs under env -i in tests/test_oauth.py, after its OAuth set-up
        program = line.split(None, 5)[5].split()[0]
        assert os.path.isabs(program) and program.endswith("/oint") and "--quiet" in line.split(), line


@pytest.mark.skipif(os.name == "nt" or not os.path.exists("/bin/sh"), reason="cron's /bin/sh")
@pytest.mark.parametrize("variables,line", [(v, line) for v, line in _crontab_lines() if "--auth-file" not in line])
def test_each_readme_crontab_line_runs_in_crons_bare_environment(variables, line, tmp_path):
    """As cron runs it: `env -i`, PATH=/usr/bin:/bin, /bin/sh -c with the crontab's variables; oint at
    the absolute path the README shows (here: a console script at that path, in this test's folder)."""
    started = forgotten_sandbox()
    info = started.json()
    try:
        fields = line.split(None, 5)
        assert len(fields) == 6 and all(re.fullmatch(r"[\d*,/-]+", f) for f in fields[:5]), line
        command = fields[5]
        assert "%" not in command.replace("\\%", ""), "cron would cut the command at an unescaped %"
        program = command.split()[0]
        assert os.path.isabs(program) and program.endswith("/oint"), "cron's PATH has no venv: an absolute path"
        assert "--quiet" in command.split()
        # the README's paths, moved into this test's folder
        installed = tmp_path / program.lstrip("/")
        installed.parent.mkdir(parents=True)
        installed.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
            "from oint_py.main import main\nsys.exit(main())\n"
        )
        installed.chmod(0o755)
        command = command.replace(program, str(installed), 1)
        for path in sorted(set(re.findall(r"(?<=[\s@])/(?:etc|var|tmp)/[^\s\"']+", command))):
            moved = tmp_path / "files" / path.lstrip("/")
            moved.parent.mkdir(parents=True, exist_ok=True)
            if "/etc/" in path:
                staff = [uid for uid in range(1, 101) if forgotten_kind(uid) == "opened"]  # days open today
                moved.write_text("\n".join(map(str, staff)) + "\n")
            command = command.replace(path, str(moved))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh", "LOGNAME": "cron"}
        for variable in variables:
            name, _, value = variable.partition("=")
            env[name] = info["webhook"] if name == "OINT_BITRIX24_URL" else value.strip("'\"")
        r = subprocess.run(
            ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", command],
            capture_output=True,
            timeout=120,
        )
        assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")  # nothing for cron to mail
        out = re.search(r"--out (\S+)", command).group(1)
        answers = json.loads(open(out, encoding="utf-8").read()).values()
        assert answers and all("error" not in e and e.get("action") != "failed" for e in answers)
        bare = subprocess.run(
            ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", "command -v oint"], capture_output=True
        )
        assert bare.returncode != 0  # a plain `oint` would be "not found" there
    finally:
        os.kill(info["pid"], signal.SIGTERM)


def _bat_blocks() -> list[str]:
    return [b for b in re.findall(r"```bat\n(.*?)```", _readme(), re.S) if "@echo off" in b]


@pytest.mark.parametrize("block", _bat_blocks())
def test_readme_bat_recipes_follow_the_readmes_own_rules(block):
    lines = [line.strip() for line in block.splitlines()]
    assert lines[0] == "@echo off" and "setlocal" in lines[:3] and "chcp 65001 >nul" in lines[:4]
    assert not any(line.lower().startswith("if errorlevel") for line in lines)
    assert all(line.startswith('set "') for line in lines if line.lower().startswith("set "))
    comparisons = re.findall(r'^if "%RC%"=="(\d+)"', block, re.M)
    assert comparisons[0] == "0" and {"3", "4"} <= set(comparisons)
    assert block.count('set "RC=%ERRORLEVEL%"') == sum(
        1 for line in lines if "bitrix24 " in line and not line.startswith("rem")
    )


# -- everyday rough edges (item 6) -------------------------------------------------------
def _plain(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", raw.decode("utf-8", "replace"))


def test_completion_has_help_and_a_one_line_missing_argument_message():
    r = run_oint("completion", "--help")
    assert r.code == 0 and "bash|zsh|fish|powershell" in r.out
    r = run_oint("completion")
    assert r.code == 5 and r.err.count("\n") == 1 and "\\x0a" not in r.err
    assert "Choose from: bash, zsh, fish, powershell" in r.err


def test_no_url_names_the_environment_variable():
    r = run_oint("bitrix24", "StopTimekeeping", "--userid", 1)
    assert r.code == 5 and "OINT_BITRIX24_URL" in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize(
    "args,code,suggestion",
    [
        (["bitrix24", "StopTimekeping", "--url", "x"], 2, "did you mean StopTimekeeping?"),
        (["bitrix24", "gettimekeepingstatsu", "--url", "x"], 2, "did you mean GetTimekeepingStatus?"),
        (["bitrx24", "StopTimekeeping"], 1, "did you mean bitrix24?"),
    ],
)
def test_a_mistyped_method_or_library_gets_a_suggestion(args, code, suggestion):
    r = run_oint(*args)
    assert r.code == code and suggestion in r.err and r.err.count("\n") == 1


def test_a_method_far_from_any_gets_no_suggestion():
    r = run_oint("bitrix24", "Frobnicate", "--url", "x")
    assert r.code == 2 and "did you mean" not in r.err


def test_method_help_example_uses_a_clock_time_not_a_date():
    out = run_oint("bitrix24", "StopTimekeeping", "--help").out
    example = out[out.index("Example (bash)") :]
    assert '--time "18:00"' in example and not re.search(r"--time \"\d{4}-", example)


def test_report_needed_says_to_add_report(portal):
    r = oint_on(portal, "--userid", 3, "--time", "23:59")
    assert r.code == 3 and "REPORT_NEEDED" in r.err and 'add --report "REASON"' in r.err
    r = oint_on(portal, "--userid", "3,4", "--time", "23:59")
    assert r.code == 3 and r.err.count('add --report "REASON"') == 2


def test_an_error_with_an_empty_code_is_said_not_quoted():
    from scripted import ScriptedPortal

    scripted = ScriptedPortal().start()
    try:
        scripted.answer = (
            400,
            [("Content-Type", "application/json")],
            b'{"error": "", "error_description": "nothing to say"}',
        )
        r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url)
    finally:
        scripted.stop()
    assert r.code == 3 and "''" not in r.err and "an error with no code: nothing to say" in r.err


def test_https_to_a_plain_http_portal_says_it_may_speak_http(portal):
    url = portal.webhook().replace("http://", "https://")
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", url)
    assert r.code == 4 and "may speak plain http" in r.err and r.err.count("\n") == 1
    assert portal.calls() == []


def test_an_unresolvable_host_is_said_after_at_most_one_retry():
    r = run_oint(
        "bitrix24", "GetTimekeepingStatus", "--url", "https://no-such-host.invalid/rest/1/abcd1234/", "--debug"
    )
    assert r.code == 4
    assert "cannot resolve no-such-host.invalid" in r.err and "[2 attempts]" in r.err
    assert r.err.count("> POST ") == 2
    r = run_oint(
        "bitrix24", "GetTimekeepingStatus", "--url", "https://no-such-host.invalid/rest/1/abcd1234/", "--retries", 0
    )
    assert r.code == 4 and "[1 attempt]" in r.err


def test_plan_without_if_needed_says_the_status_is_not_checked(portal):
    oint_on(portal, "--userid", 6)  # user 6's day is closed now
    r = oint_on(portal, "--userid", "5,6", "--plan")
    assert r.code == 0
    plan = r.json()
    assert plan["6"]["action"] == "close" and "without --if-needed" in plan["6"]["unchecked"]
    assert "unchecked" not in plan["5"]
    assert "without --if-needed the status is not checked" in r.err and "1 of them" in r.err
    r = oint_on(portal, "--userid", "5,6", "--plan", "--if-needed")
    assert "not checked" not in r.err and "unchecked" not in r.out


@pytest.mark.skipif(os.name == "nt", reason="a pseudo-terminal")
def test_on_a_terminal_a_plan_is_a_short_table_and_the_clock_runs_while_reading_statuses(portal):
    from conftest import run_in_terminal

    # the first page of users, then the other pages, answer at once; the status batches take their time
    portal.inject("slow:0", "slow:0", "slow:1.5", "slow:1.5")
    shown = _plain(
        run_in_terminal(
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            "all",
            "--if-needed",
            "--plan",
            timeout=30,
        )
    )
    assert re.search(r"reading statuses[^\r\n]*0:00:0[1-9]", shown), shown[-2000:]
    assert "300 close (300 users)" in shown
    assert re.search(r"^ *user +action +before +time +detail", shown, re.M)
    assert "... and 280 more" in shown and '"action"' not in shown
    piped = oint_on(portal, "--userid", "all", "--if-needed", "--plan")
    assert len(piped.json()) == 300  # a pipe keeps the JSON


def test_the_root_help_lists_every_tool_and_sandbox_takes_h():
    """Issue 23 4.3: `oint --help` names `jobs` beside `sandbox` and `completion`, and `oint sandbox -h` is its help
    (it was "No such option '-h'")."""
    root = run_oint("--help")
    tools = root.out.split("Tools:", 1)[1].split("\n\n", 1)[0]
    names = [m for line in tools.splitlines() for m in re.findall(r"^  (\S+)  ", line)]  # wrapped lines indent more
    assert names == ["sandbox", "jobs", "completion"], tools
    short, long = run_oint("sandbox", "-h"), run_oint("sandbox", "--help")
    assert short.code == long.code == 0 and short.out == long.out and "--rate-limit" in short.out


def test_a_second_sandbox_on_a_taken_port_says_whose_it_probably_is(portal):
    """Issue 23 4.4: the quick start again while its first sandbox still runs: not a bare "Address already in use"
    but that a sandbox answers there and how to stop it, or to pick another --port."""
    r = run_oint("sandbox", "--port", portal.port, "--stop-after", 1)
    assert r.code == 5
    assert "Address already in use; an oint sandbox already runs there" in r.err
    assert "kill PID" in r.err and "another --port (0 picks a free one)" in r.err


@pytest.mark.parametrize("what", ["listing", "first"])
def test_the_sweep_benchmarks_the_docs_cite_run(what):
    """Issue 23 4.7: `bench/sweep_bench.py listing` and `first`, cited in docs/forgotten-days.md, crashed at once
    (a transport Client where the sweep takes the REST client). On a small portal they run and count."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sweep_bench.py"), what],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(BENCH_USERS="120"),
    )
    assert proc.returncode == 0, proc.stderr
    assert ("listing offset: 120 users" in proc.stdout) if what == "listing" else ("close-first: {" in proc.stdout)
