"""Issue 9's hostile world, each case against a real loopback server and the
working tree's oint as a process: local users who prepared the jobs folder,
portals that redirect, drip, bloat, nest or drop the line, and input that
must be refused before anything is sent."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from conftest import OINT, SECRET_TOKEN, assert_no_secret, clean_env, oint_on, run_oint, wait_for
from scripted import ScriptedPortal

POSIX = os.name != "nt"


# -- background jobs ----------------------------------------------------------
def _job(portal, jobs_env: dict, *extra):
    return run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", 4, "--dontwait", *extra, **jobs_env
    )


@pytest.mark.skipif(not POSIX, reason="POSIX owners and modes")
def test_default_jobs_folder_is_private_and_job_files_are_0600(portal, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = _job(portal, {"HOME": str(home), "XDG_STATE_HOME": ""})
    assert r.code == 0, r.err
    job = r.json()
    folder = home / ".local" / "state" / "oint" / "jobs"
    assert os.path.dirname(job["exit_file"]) == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    wait_for(job["exit_file"])
    for name in ("result_file", "log_file", "exit_file"):
        assert stat.S_IMODE(os.stat(job[name]).st_mode) == 0o600, name
    assert open(job["exit_file"]).read().strip() == "0"
    assert json.loads(open(job["result_file"], encoding="utf-8").read())["result"]["STATUS"] == "CLOSED"
    files = [os.path.basename(job[n]) for n in ("result_file", "log_file", "exit_file")] + [f"{job['job']}.meta"]
    assert sorted(os.listdir(folder)) == sorted(files)
    assert stat.S_IMODE(os.stat(folder / f"{job['job']}.meta").st_mode) == 0o600


@pytest.mark.skipif(not POSIX, reason="POSIX owners and modes")
@pytest.mark.parametrize("prepared", ["symlink", "other-owner", "world-writable", "group-writable"])
def test_a_jobs_folder_another_user_prepared_is_refused(portal, tmp_path, prepared):
    """Another local user pre-creates the folder: oint refuses it and writes nothing there."""
    folder = tmp_path / "jobs"
    if prepared == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir(mode=0o700)
        if prepared == "other-owner":
            if os.geteuid() != 0:
                pytest.skip("needs root to give the folder away")
            os.chown(folder, 65534, 65534)
        else:
            os.chmod(folder, 0o777 if prepared == "world-writable" else 0o770)
    r = _job(portal, {"OINT_JOBS_DIR": str(folder)})
    assert r.code == 5, r.err
    assert r.out == "" and r.err.count("\n") == 1 and "jobs folder" in r.err
    assert os.listdir(folder) == []
    assert portal.calls() == []


@pytest.mark.skipif(not POSIX, reason="O_NOFOLLOW and /proc")
def test_job_secrets_travel_as_data_not_argv(portal, tmp_path):
    folder = tmp_path / "jobs"
    portal.inject("slow:1")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--token",
        portal.token,
        "--dontwait",
        OINT_JOBS_DIR=str(folder),
    )
    job = r.json()
    try:
        with open(f"/proc/{job['pid']}/cmdline", "rb") as fh:
            cmdline = fh.read()
        assert portal.token.encode() not in cmdline and b"--token" not in cmdline
    except FileNotFoundError:
        pass
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "0"
    assert portal.calls("timeman.close")[0]["params"]["auth"] == portal.token
    assert_no_secret(open(job["log_file"], encoding="utf-8").read())


# -- secrets of any length ----------------------------------------------------
def test_short_secrets_are_masked_in_their_known_places(make_portal):
    portal = make_portal(code="ab1", token="xy")
    r = oint_on(portal, "--debug", "--userid", 2)
    assert r.code == 0, r.err
    assert "/rest/1/***/timeman.close" in r.err and "/ab1/" not in r.err
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--token",
        "xy",
        "--test",
        "--proxy",
        "http://u:pw@127.0.0.1:3128",
    )
    assert r.json()["requests"][0]["body"]["auth"] == "***"
    assert r.json()["proxy"] == "http://u:***@127.0.0.1:3128"
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.base, "--token", "xy", "--debug")
    assert '"auth": "***"' in r.err and '"xy"' not in r.err


# -- never applied twice, never lost ------------------------------------------
def test_dropped_close_with_an_unreadable_status_is_sent_once(portal):
    """apply-reset: the portal closes the day and drops the line; the status check
    is dropped too. Before, oint sent the same close four times."""
    portal.inject("apply-reset", "reset")
    r = oint_on(portal, "--userid", 5)
    assert r.code == 4
    assert r.json()["error"] == "OUTCOME_UNKNOWN"
    assert "not sent again" in r.err and "GetTimekeepingStatus" in r.err
    assert len(portal.calls("timeman.close")) == 1
    assert portal.days[5]["STATUS"] == "CLOSED"


def test_batch_users_whose_status_cannot_be_read_are_not_resent(portal):
    portal.inject("apply-reset", "reset")
    r = oint_on(portal, "--userid", "6,7,8")
    assert r.code == 4
    data = r.json()
    assert {uid: v["error"] for uid, v in data.items()} == dict.fromkeys(["6", "7", "8"], "OUTCOME_UNKNOWN")
    assert len(portal.calls("batch")) == 2  # the close, the status check; no second close
    assert [line.split(":")[1].strip() for line in r.err.splitlines()] == ["user 6", "user 7", "user 8"]


@pytest.mark.parametrize("fault", ["status:429", "status:503"])
def test_throttled_answers_mean_not_done_and_are_retried(portal, fault):
    portal.inject(fault)
    r = oint_on(portal, "--userid", 9, "--retries", 2)
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.close")) == 2
    assert portal.calls("timeman.status") == []  # refused before processing: no status check needed


def test_batch_failures_are_one_stderr_line_per_user(portal):
    r = oint_on(portal, "--userid", "20,99999,21,99998")
    assert r.code == 3
    assert r.err.splitlines() == ["oint: user 99999: User not found", "oint: user 99998: User not found"]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_out_that_cannot_be_written_prints_the_answer_and_exits_6(portal, tmp_path):
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    target = tmp_path / "r.json"
    proc = subprocess.run(
        [*OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "11", "--out", str(target)],
        capture_output=True,
        env=clean_env(),
        preexec_fn=small_files,
        timeout=60,
    )
    assert proc.returncode == 6, proc.stderr
    assert json.loads(proc.stdout)["result"]["STATUS"] == "CLOSED"  # the answer is not lost
    assert b"the call was made" in proc.stderr
    assert os.listdir(tmp_path) == []  # no half-written file, no debris
    assert portal.days[11]["STATUS"] == "CLOSED"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_that_fails_exits_6_not_99(portal):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [*OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "12"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=clean_env(),
            timeout=60,
        )
    assert proc.returncode == 6, proc.stderr
    assert b"cannot write the answer to stdout" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.skipif(not POSIX, reason="POSIX umask")
def test_out_files_follow_the_umask(portal, tmp_path):
    target = tmp_path / "r.json"
    proc = subprocess.run(
        [*OINT, "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook(), "--out", str(target)],
        capture_output=True,
        env=clean_env(),
        preexec_fn=lambda: os.umask(0o027),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# -- bounded against a hostile portal -----------------------------------------
def test_timeout_bounds_the_whole_answer_not_each_read(portal):
    """drip: every byte comes quickly, the whole answer would take ~20 s. With
    per-read timeouts the call would succeed; bounded as a whole, it times out."""
    portal.inject("drip:0.2")
    r = oint_on(portal, "--timeout", "1", "--retries", 0, method="GetTimekeepingStatus")
    assert r.code == 4
    assert "no whole answer within --timeout 1 s" in r.err


def _oint_and_its_peak_mb(*args) -> tuple[int, str, float]:
    """(exit status, stderr, peak resident memory in MiB) of `oint ARGS` as a process of its own:
    the memory is that one process's, from wait4 (ru_maxrss is KiB on Linux)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*OINT, *map(str, args)], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=clean_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        return proc.returncode, err.read().decode("utf-8"), usage.ru_maxrss / 1024


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB")
@pytest.mark.parametrize("fault", ["gzip-bomb:256", "huge:256"])
def test_answers_past_the_size_cap_end_in_exit_4_with_little_memory(portal, fault):
    """256 MiB once inflated, 4 times the 64 MiB cap: a client that held the whole answer would pass 256 MiB;
    one that stops at the cap stays under 230 (about 155 here)."""
    portal.inject(fault)
    code, err, peak = _oint_and_its_peak_mb(
        "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook(), "--retries", 0
    )
    assert code == 4
    assert "larger than 67,108,864 bytes (--max-answer)" in err
    assert peak < 230, peak


def test_max_answer_option_lowers_the_cap(portal):
    portal.inject("huge:1")
    r = oint_on(portal, "--retries", 0, "--max-answer", "64K", method="GetTimekeepingStatus")
    assert r.code == 4 and "larger than 65,536 bytes" in r.err


def test_deeply_nested_answer_is_a_request_failure(portal):
    portal.inject("deep:100000")
    r = oint_on(portal, "--retries", 0, method="GetTimekeepingStatus")
    assert r.code == 4, r.err
    assert "nested deeper than 64 levels" in r.err and "Traceback" not in r.err


DEEP = '{"a":' * 15000 + "1" + "}" * 15000  # far past the recursion limit, within one argv string's limit


@pytest.mark.parametrize("option", ["--config", "--proxy"])
def test_deeply_nested_json_options_exit_5(option):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", option, DEEP)
    assert r.code == 5 and "nested deeper" in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["bitrix24", "StopTimekeeping", "--help"]])
def test_version_and_help_work_whatever_oint_config_holds(args):
    r = run_oint(*args, OINT_CONFIG=DEEP)
    assert r.code == 0, r.err
    assert r.err == ""


def test_deep_oint_config_on_a_call_exits_5():
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", OINT_CONFIG=DEEP)
    assert r.code == 5 and "nested deeper" in r.err


# -- bad input: exit 5, nothing sent ------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_option_files_are_capped(portal):
    r = oint_on(portal, "--userid", "@/dev/zero")
    assert r.code == 5 and "larger than 4096 KiB" in r.err
    r = oint_on(portal, "--config", "/dev/zero")
    assert r.code == 5 and "larger than" in r.err
    assert portal.calls() == []


def test_option_files_that_are_not_utf8_are_named(portal, tmp_path):
    ansi = tmp_path / "ids.txt"
    ansi.write_bytes("# сотрудники\n5\n".encode("cp1251"))
    r = oint_on(portal, "--userid", f"@{ansi}")
    assert r.code == 5 and str(ansi) in r.err and "not UTF-8" in r.err
    assert portal.calls() == []


def test_utf16_files_from_powershell_are_read(portal, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_bytes("\ufeff# отдел\r\n13\r\n14\r\n".encode("utf-16-le"))
    conf = tmp_path / "oint.json"
    conf.write_bytes('\ufeff{"retries": 0}'.encode("utf-16-le"))
    r = oint_on(portal, "--userid", f"@{ids}", "--config", str(conf))
    assert r.code == 0, r.err
    assert list(r.json()) == ["13", "14"]


@pytest.mark.skipif(not POSIX or not os.path.exists("/bin/bash"), reason="process substitution needs bash")
def test_userid_from_process_substitution(portal):
    script = 'exec "$@" --userid @<(printf "15\\n16\\n")'
    proc = subprocess.run(
        ["bash", "-c", script, "bash", *OINT, "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()],
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)) == ["15", "16"]


@pytest.mark.parametrize("host", ["a..b", "xn--", "x" * 64 + ".example", "xn--zz.com", "-a.example"])
def test_hosts_that_cannot_be_encoded_exit_5(host):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", f"https://{host}/rest/1/abcd/")
    assert r.code == 5, r.err
    assert "not a valid host name" in r.err


def test_empty_userid_is_refused_not_the_webhook_owner(portal):
    r = oint_on(portal, "--userid", "")
    assert r.code == 5 and "--userid is empty" in r.err
    assert portal.calls() == []


def test_zero_padded_ids_are_one_user_sent_once(portal):
    r = oint_on(portal, "--userid", "51,051,0051")
    assert r.code == 0, r.err
    assert list(r.json()) == ["51"]
    (call,) = portal.calls("batch")
    assert list(call["params"]["cmd"]) == ["u51"]


@pytest.mark.parametrize(
    "typed,words",
    [
        ("2026-03-29T02:30:00", ["does not exist in Europe/Berlin", "+01:00 to +02:00"]),
        (
            "2026-10-25T02:30:00",
            ["happens twice in Europe/Berlin", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"],
        ),
    ],
)
def test_naive_times_in_a_dst_gap_or_overlap_are_refused(typed, words):
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--time", typed, "--test", TZ="Europe/Berlin"
    )
    assert r.code == 5, r.out
    for word in words:
        assert word in r.err
    assert "explicit offset" in r.err or "the offset you mean" in r.err


def test_secret_token_never_in_any_failure(portal):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "a..b", "--token", SECRET_TOKEN)
    assert r.code == 5
    assert_no_secret(r.out, r.err)


# -- found by the attacker's review -------------------------------------------
def test_a_call_still_running_on_a_slow_portal_is_not_sent_again(make_portal):
    """The open times out while the portal is still working on it; the status read at once says
    CLOSED. Re-sending would open the day twice when the first open lands."""
    import time

    portal = make_portal(opened=False)
    portal.inject("slow:2")
    r = oint_on(portal, "--userid", 5, "--timeout", "0.5", method="StartTimekeeping")
    assert r.code == 4
    assert r.json()["error"] == "OUTCOME_UNKNOWN" and "may still be running" in r.err
    deadline = time.monotonic() + 10
    while portal.days.get(5, {}).get("STATUS") != "OPENED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(portal.calls("timeman.open")) == 1
    assert portal.days[5]["STATUS"] == "OPENED"


def test_a_call_a_303_said_was_made_is_never_reposted(make_portal):
    portal = make_portal(opened=False)
    portal.inject("see-other", "status:429")  # the GET of the answer is throttled
    r = oint_on(portal, "--userid", 5, method="StartTimekeeping")
    assert len(portal.calls("timeman.open")) == 1
    assert r.code == 0, r.err  # the status check shows the day open: settled
    assert r.json()["result"]["STATUS"] == "OPENED"


def test_odd_batch_errors_are_reported_not_crashed(portal):
    from oint_py.rest.client import error_entry as _error_entry

    assert _error_entry("error here")["error"] == "BAD_ANSWER"
    assert _error_entry(None)["error"] == "BAD_ANSWER"
    assert _error_entry({"error": "X", "error_description": "y"}) == {"error": "X", "error_description": "y"}


@pytest.mark.parametrize("token", ["null", "30.0", "true", 'a"b'])
def test_test_flag_with_tokens_that_look_like_json(portal, token):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.base, "--token", token, "--test")
    assert r.code == 0, r.err
    assert r.json()["requests"][0]["body"]["auth"] == "***" and r.json()["proxy"] is None


@pytest.mark.parametrize(
    "proxy,secret",
    [
        ("http://bob:Secr3tPart/rest@127.0.0.1:3128", "Secr3tPart"),
        ("http://bob:pa?ss#word1@127.0.0.1:3128", "ss#word1"),
    ],
)
def test_passwords_that_break_url_parsing_are_not_echoed(proxy, secret):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h.example/rest/1/abcd/", "--test", "--proxy", proxy)
    assert secret not in r.err + r.out
    assert r.code in (0, 5)


def test_webhook_code_with_a_quote_is_masked_whole():
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h.example/rest/1/ab'cdefgh/", "--test")
    assert "cdefgh" not in r.out


@pytest.mark.parametrize(
    "args",
    [
        ["--max-answer", "1" * 400],
        ["--url", "http://\u2460.example/rest/1/abcdefgh/"],
        ["--url", "https://h.example/rest/1/" + "a" * 70000 + "/"],
    ],
)
def test_inputs_that_crashed_are_option_errors(args):
    args = args if args[0] == "--url" else ["--url", "https://h.example/rest/1/abcd/", *args]
    r = run_oint("bitrix24", "StopTimekeeping", *args, "--test")
    assert r.code == 5, r.err
    assert "Traceback" not in r.err and r.err.count("\n") == 1


@pytest.fixture
def scripted():
    portal = ScriptedPortal().start()
    yield portal
    portal.stop()


def test_a_lone_surrogate_in_an_answer_is_printed_escaped(scripted):
    scripted.answer = (200, [], b'{"result": {"NAME": "\\ud800 and \\u00e9"}}')
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url)
    assert r.code == 0, r.err
    assert r.raw.count(b"\\ud800") == 1 and "é".encode() in r.raw
    assert json.loads(r.raw)["result"]["NAME"].startswith("\ud800")


def test_terminal_escapes_from_the_portal_are_shown_not_obeyed(scripted):
    scripted.answer = (
        400,
        [],
        json.dumps({"error": "X", "error_description": "\x1b]0;PWNED\x07\x1b[2J\r\x9b1m"}).encode(),
    )
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url, "--debug")
    assert r.code == 3
    for control in ("\x1b", "\x07", "\r", "\x9b"):
        assert control not in r.err and control not in r.out
    assert "\\x1b]0;PWNED" in r.err


def test_a_secret_echoed_in_an_error_page_is_masked_even_when_cut(scripted):
    token = "SECRETTOKEN1234567890"
    page = "<html>" + "x" * 84 + f'{{"USER_ID": "1", "auth": "{token}"}}</html>'
    scripted.answer = (500, [("Content-Type", "text/html")], page.encode())
    r = run_oint(
        "bitrix24",
        "GetTimekeepingStatus",
        "--url",
        scripted.url.split("/rest/")[0],
        "--token",
        token,
        "--retries",
        0,
        "--debug",
    )
    assert r.code == 4
    assert "SECRETTOKE" not in r.err and token not in r.out


def test_a_percent_encoded_webhook_code_echoed_decoded_is_masked(scripted):
    """The server decodes the path: an error page that quotes it shows the code as the portal read it."""
    page = "<html>Not found: /rest/1/SecretCode9/timeman.status (webhook SecretCode9)</html>"
    scripted.answer = (200, [("Content-Type", "text/html")], page.encode())
    url = scripted.url.split("/rest/")[0] + "/rest/1/%53ecretCode9/"
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", url, "--retries", 0, "--debug")
    assert r.code == 4
    assert "SecretCode9" not in r.out and "SecretCode9" not in r.err


@pytest.mark.parametrize("body", [b'{"result": NaN}', b'{"result": Infinity}'])
def test_not_json_constants_are_not_an_answer(scripted, body):
    scripted.answer = (200, [], body)
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url, "--retries", 0)
    assert r.code == 4 and "not JSON" in r.err


def test_truncated_gzip_is_not_an_answer(scripted):
    import gzip

    whole = gzip.compress(b'{"result": {"STATUS": "CLOSED"}}')
    scripted.answer = (200, [("Content-Encoding", "gzip")], whole[:-8])  # no CRC and length
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url, "--retries", 0)
    assert r.code == 4 and "truncated" in r.err
    scripted.answer = (200, [("Content-Encoding", "gzip")], whole + gzip.compress(b""))  # two members
    assert run_oint("bitrix24", "GetTimekeepingStatus", "--url", scripted.url).code == 0


@pytest.mark.skipif(not POSIX, reason="a planted package in the current folder")
def test_a_package_planted_in_the_current_folder_never_sees_the_job(portal, tmp_path):
    planted = tmp_path / "cwd" / "oint_py"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "jobs.py").write_text(
        f"import sys\nopen({str(tmp_path / 'stolen')!r}, 'wb').write(sys.stdin.buffer.read())\n"
    )
    from oint_py.files.spawn import module_argv

    # started as the console script is: the current folder is not on sys.path (python -m would put it there)
    proc = subprocess.run(
        module_argv(
            "oint_py", "bitrix24", "StopTimekeeping", "--url", portal.base, "--token", portal.token, "--dontwait"
        ),
        capture_output=True,
        env=clean_env(OINT_JOBS_DIR=str(tmp_path / "jobs")),
        cwd=tmp_path / "cwd",
        timeout=60,
    )
    job = json.loads(proc.stdout)
    wait_for(job["exit_file"])
    assert not (tmp_path / "stolen").exists()
    assert open(job["exit_file"]).read().strip() == "0"


@pytest.mark.skipif(not POSIX or not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_out_to_a_pipe_is_written_through_not_replaced(portal, tmp_path):
    import threading

    fifo = tmp_path / "answer.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = oint_on(portal, "--out", str(fifo), method="GetTimekeepingStatus")
    reader.join(30)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a pipe
    assert json.loads(got[0])["result"]["STATUS"] == "OPENED"


def test_a_token_that_looks_like_json_leaves_the_answer_valid(make_portal):
    """Secrets are masked inside the answer's strings only: a token `null` must not eat its nulls."""
    portal = make_portal(token="null")
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", portal.base, "--token", "null", "--userid", 3)
    assert r.code == 0, r.err
    assert r.json()["result"]["TIME_FINISH"] is None


@pytest.mark.skipif(not POSIX or not os.path.exists("/bin/bash"), reason="POSIX shells close stdout with >&-")
def test_a_closed_stdout_is_an_answer_not_written(portal):
    proc = subprocess.run(
        [
            "bash",
            "-c",
            'exec >&-; exec "$@"',
            "bash",
            *OINT,
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            "13",
        ],
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 6, proc.stderr
    assert b"stdout is closed" in proc.stderr and b"the call was made" in proc.stderr


# -- found by the second review ----------------------------------------------------
@pytest.mark.skipif(not POSIX, reason="argv bytes that are not UTF-8")
@pytest.mark.parametrize(
    "args",
    [
        ["--token", b"t\xffxxxx"],
        ["--report", b"bad\xff", "--time", "23:59"],
        ["--userid", "2,3", "--report", b"bad\xff", "--time", "23:59"],
    ],
)
def test_arguments_that_are_not_utf8_are_option_errors(portal, args):
    proc = subprocess.run(
        [
            *map(os.fsencode, OINT),
            b"bitrix24",
            b"StopTimekeeping",
            b"--url",
            portal.webhook().encode(),
            *[a if isinstance(a, bytes) else a.encode() for a in args],
        ],
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert b"not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    assert portal.calls() == []


def test_a_token_in_the_environment_that_is_not_utf8_is_an_option_error(portal):
    env = {**{k: v for k, v in clean_env().items()}, "OINT_BITRIX24_TOKEN": "t\udcffxxxx"}
    proc = subprocess.run(
        [*OINT, "bitrix24", "GetTimekeepingStatus", "--url", portal.base],
        capture_output=True,
        env={k: os.fsencode(v) for k, v in env.items()},
        timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert b"Traceback" not in proc.stderr


def test_pause_for_every_user_needs_if_needed(portal):
    r = oint_on(portal, "--userid", "all", method="PauseTimekeeping")
    assert r.code == 5 and "--if-needed" in r.err
    assert portal.calls() == []


def test_a_gateway_timeout_of_any_brand_is_never_re_sent(scripted):
    scripted.answer = (524, [("Content-Type", "text/html")], b"<html>A timeout occurred</html>")
    r = run_oint("bitrix24", "StopTimekeeping", "--url", scripted.url, "--userid", 3)
    assert r.code == 4
    assert r.json()["error"] == "OUTCOME_UNKNOWN"


@pytest.mark.parametrize("password", ['"OPEN', 'pä"ss1'])
def test_secrets_with_quotes_are_masked_inside_answers_without_breaking_them(scripted, password):
    scripted.answer = (
        200,
        [],
        json.dumps({"result": {"STATUS": "OPENED", "NOTE": f"x{password}y"}}, ensure_ascii=False).encode(),
    )
    proxy = json.dumps({"Host": "127.0.0.1", "Port": 9, "User": "u", "Password": password})
    r = run_oint(
        "bitrix24",
        "GetTimekeepingStatus",
        "--url",
        scripted.url,
        "--config",
        json.dumps({"proxy": proxy}),
        env=clean_env(NO_PROXY="127.0.0.1"),
    )
    assert password not in r.out
    if r.code == 0:
        assert r.json()["result"]["STATUS"] == "OPENED"


@pytest.mark.skipif(not POSIX or not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_out_to_a_pipe_nobody_reads_does_not_hang(portal, tmp_path):
    fifo = tmp_path / "nobody.fifo"
    os.mkfifo(fifo)
    r = oint_on(portal, "--out", str(fifo), method="GetTimekeepingStatus")
    assert r.code == 6
    assert r.json()["result"]["STATUS"] == "OPENED"


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_out_over_an_existing_file_keeps_its_mode(portal, tmp_path):
    target = tmp_path / "r.json"
    target.write_text("{}")
    os.chmod(target, 0o600)
    r = oint_on(portal, "--out", str(target), method="GetTimekeepingStatus")
    assert r.code == 0, r.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_user_ids_from_user_get_are_normalised_before_dedup():
    """A portal listing "7" on one page and "07" on another lists one user, changed once."""
    from oint_py.run.sweep import _records, _Wrong

    assert _records([{"ID": "7"}, {"ID": "07"}, {"ID": 12}], "a page") == [("7", True), ("7", True), ("12", True)]
    with pytest.raises(_Wrong):
        _records([{"ID": "7\n"}], "a page")
