"""stdout bytes, --out files, --config precedence and --dontwait jobs."""

import json
import os
import time

import pytest
from conftest import assert_no_secret, clean_env, oint_on, run_oint, wait_for

REPORT = "Отгул по семейным обстоятельствам"


@pytest.mark.parametrize("encoding", ["ascii", "cp1251", "cp866", "utf-8"])
def test_stdout_is_utf8_whatever_the_console_encoding(portal, encoding):
    today = time.strftime("%Y-%m-%d")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--time",
        f"{today}T23:00:00",
        "--report",
        REPORT,
        "--test",
        env=clean_env(PYTHONIOENCODING=encoding),
    )
    assert r.code == 0, r.err
    assert REPORT.encode("utf-8") in r.raw  # not escaped, not transcoded
    assert b"\\u04" not in r.raw
    assert b"\x1b[" not in r.raw  # no colour codes when piped
    # and the portal receives the report intact
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--time",
        f"{today}T23:00:00",
        "--report",
        REPORT,
        env=clean_env(PYTHONIOENCODING=encoding),
    )
    assert portal.calls("timeman.close")[-1]["params"]["REPORT"] == REPORT


def test_api_error_text_in_cyrillic_on_an_ascii_console(make_portal):
    """A Russian-language portal's error, on a console that cannot encode it: the JSON and the
    stderr line are UTF-8 bytes, the exit code is the API error's."""
    portal = make_portal(lang="ru")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        "99999",
        env=clean_env(PYTHONIOENCODING="ascii"),
    )
    assert r.code == 3, r.err
    assert r.json()["error_description"] == "Пользователь не найден"
    assert "Пользователь не найден".encode() in r.raw
    assert r.err == "oint: the portal answered HTTP 400 an error with no code: Пользователь не найден\n"


def test_out_writes_the_file_and_prints_one_line(portal, tmp_path):
    target = tmp_path / "result.json"
    r = oint_on(portal, "--out", target)
    assert r.code == 0
    assert r.out == f"Result written to {target}\n"
    assert json.loads(target.read_text("utf-8"))["result"]["STATUS"] == "CLOSED"
    assert os.listdir(tmp_path) == ["result.json"]  # no temporary file left behind


def test_out_keeps_the_exit_code_and_writes_the_error(portal, tmp_path):
    target = tmp_path / "result.json"
    r = oint_on(portal, "--userid", 99999, "--out", target)
    assert r.code == 3
    assert json.loads(target.read_text("utf-8"))["error_description"] == "User not found"


def test_out_into_a_missing_folder_fails_before_sending(portal, tmp_path):
    r = oint_on(portal, "--out", tmp_path / "no" / "r.json")
    assert r.code == 5 and "does not exist" in r.err
    assert portal.calls() == []


def test_out_replaces_an_old_file_whole(portal, tmp_path):
    target = tmp_path / "result.json"
    target.write_text("x" * 100000)
    r = oint_on(portal, "--out", target, method="GetTimekeepingStatus")
    assert r.code == 0
    assert json.loads(target.read_text("utf-8"))["result"]["STATUS"] == "OPENED"


def test_config_json_object_and_flags_win(portal):
    portal.inject("status:503", "status:503", "status:503")
    r = oint_on(portal, "--config", '{"retries": 0}')
    assert r.code == 4 and len(portal.calls()) == 1
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--config", '{"retries": 0}', "--retries", 3)
    assert r.code == 0, r.err  # the explicit flag won: 2 more 503s, then success


def test_config_adv_response_and_env(portal):
    r = run_oint(
        "bitrix24",
        "GetTimekeepingStatus",
        "--url",
        portal.webhook(),
        OINT_CONFIG='{"adv_response": true, "timeout": 5}',
    )
    assert r.code == 0 and r.json()["code"] == 200


@pytest.mark.parametrize(
    "conf,message",
    [
        ("{not json", "not valid JSON"),
        ('{"retry": 2}', "unknown key"),
        ('{"timeout": "soon"}', "timeout"),
        ('{"adv_response": "maybe"}', "adv_response"),
        ("[1, 2]", "JSON object"),
        ("/nonexistent/oint.json", "cannot read"),
    ],
)
def test_bad_config_is_an_option_error(conf, message):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--config", conf)
    assert r.code == 5
    assert message in r.err


def test_dontwait_returns_at_once_and_the_job_writes_its_result(portal, tmp_path):
    portal.inject("slow:1.5")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--token",
        "",
        "--userid",
        4,
        "--dontwait",
        OINT_JOBS_DIR=str(tmp_path),
    )
    assert r.code == 0, r.err
    job = r.json()
    assert set(job) >= {"job", "pid", "result_file", "log_file", "exit_file"}
    assert not os.path.exists(job["result_file"])  # the portal is still thinking
    # the webhook is not on the child's command line (ps would show it)
    try:
        with open(f"/proc/{job['pid']}/cmdline", "rb") as fh:
            assert portal.code.encode() not in fh.read()
    except FileNotFoundError:
        pass
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "0"
    assert json.loads(open(job["result_file"], encoding="utf-8").read())["result"]["STATUS"] == "CLOSED"
    assert_no_secret(r.out, open(job["log_file"], encoding="utf-8").read())


def test_dontwait_job_records_a_failure(portal, tmp_path):
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        99999,
        "--dontwait",
        "--out",
        tmp_path / "r.json",
        OINT_JOBS_DIR=str(tmp_path),
    )
    job = r.json()
    assert job["result_file"] == str(tmp_path / "r.json")
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "3"
    assert "User not found" in open(job["log_file"], encoding="utf-8").read()


def test_the_record_of_a_long_run_writes_each_entry_once_and_is_whole_between_batches(tmp_path):
    """output.recorder, as the sweep calls it after every batch: the file parses to exactly the entries so far
    after each call, stays one file (written in place, not copied), and grows by the new entries only."""
    from oint_py.output.render import recorder
    from oint_py.redact import MASK, Redactor

    path = tmp_path / "record.json"
    path.write_text("old answer\n")
    os.chmod(path, 0o640)
    record = recorder(str(path), Redactor().adding("s3cr3t-token"))
    entries, inodes, sizes = {}, set(), []
    for batch in range(40):
        for uid in range(batch * 50 + 1, batch * 50 + 51):
            entries[str(uid)] = {"action": "closed", "note": "s3cr3t-token" if uid == 77 else "ЖЁ\u2028"}
        record(entries)
        assert json.loads(path.read_text(encoding="utf-8")) == {
            k: {**v, "note": MASK} if k == "77" else v for k, v in entries.items()
        }, batch
        inodes.add(path.stat().st_ino)
        sizes.append(path.stat().st_size)
    assert len(inodes) == 1 and oct(path.stat().st_mode & 0o777) == oct(0o640)
    growth = {b - a for a, b in zip(sizes, sizes[1:])}
    assert max(growth) < 1.1 * min(growth)  # each batch adds its own 50 entries, no more
    path.write_text('{"someone": "else"}\n')  # changed behind the run's back: written anew, whole
    entries["9999"] = {"action": "closed"}
    record(entries)
    assert json.loads(path.read_text(encoding="utf-8"))["9999"] == {"action": "closed"}
    assert len(json.loads(path.read_text(encoding="utf-8"))) == len(entries)


@pytest.mark.skipif(os.name == "nt", reason="a FIFO is a POSIX thing")
def test_a_record_to_a_fifo_or_dev_null_is_left_to_the_last_write(tmp_path):
    from oint_py.output.render import recorder

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (str(fifo), os.devnull):
        record = recorder(path)
        record({"1": {"action": "closed"}})  # nobody reads the FIFO: a write would block or fail; none is made
        record({"1": {"action": "closed"}, "2": {"action": "closed"}})
    assert os.path.exists(os.devnull) and not os.path.isfile(fifo)


@pytest.mark.skipif(os.name == "nt", reason="RLIMIT_FSIZE is POSIX")
def test_a_record_whose_append_fails_midway_stays_whole_json(make_portal, tmp_path):
    """A file size limit (or a full disk) reached in the middle of a batch's append: the --out file must not be
    left cut inside an entry with no closing brace. The last write fails too (exit 6, the answer on stdout),
    so the file is what a reader finds: whole JSON of the batches before, as each batch's rewrite used to leave."""
    import resource
    import subprocess
    import sys

    portal = make_portal(users=300)
    out = tmp_path / "record.json"

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40000, 40000))  # the first batch fits, the third does not

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "oint_py",
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            "all",
            "--out",
            str(out),
        ],
        capture_output=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        preexec_fn=limited,
        timeout=60,
    )
    assert proc.returncode == 6, proc.stderr.decode()
    assert len(json.loads(proc.stdout)) == 300  # the whole answer, on stdout
    kept = json.loads(out.read_text(encoding="utf-8"))  # whole JSON, not a cut entry
    assert 50 <= len(kept) < 300 and len(kept) % 50 == 0
    assert all(entry["result"]["STATUS"] == "CLOSED" for entry in kept.values())


@pytest.mark.skipif(os.name == "nt", reason="a FIFO is a POSIX thing")
def test_a_record_replaced_by_a_fifo_mid_run_does_not_hang_the_run(tmp_path):
    """The --out file swapped for a FIFO between two batches: the next append must not block for ever in open()
    (the run would hang holding the portal's lock); the run's last write deals with the path."""
    import threading

    from oint_py.output.render import recorder

    path = tmp_path / "record.json"
    record = recorder(str(path))
    record({"1": {"action": "closed"}})
    path.unlink()
    os.mkfifo(path)
    done = threading.Thread(target=record, args=({"1": {"action": "closed"}, "2": {"action": "closed"}},), daemon=True)
    done.start()
    done.join(5)
    hung = done.is_alive()
    if hung:  # release it
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    assert not hung
