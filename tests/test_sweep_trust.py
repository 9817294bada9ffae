"""Issue 17 (hardening round 3) and issue 16 (runs a person can trust): a sweep
that never misses or double-applies a day. Real `oint` processes against the
sandbox portal, made to repeat, shift and lie the way a Bitrix24 portal can."""

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from conftest import IN_PROCESS, OINT, Clock, clean_env, run_oint
from test_sweep import commands, on, sent, snapshot

NEEDS_CLOSE = ("OPENED", "PAUSED", "EXPIRED")


def lying(portal, lie):
    """Replace the portal's offset pages of user.get by `lie(params, real)`; paging by ID (start=-1) stays true."""
    real = portal._m_user_get

    def user_get(params, caller):
        if str(params.get("START")) == "-1":
            return real(params, caller)
        return lie(params, lambda: real(params, caller))

    portal._m_user_get = user_get


def closed_all_active(portal, r):
    active = [uid for uid in portal.users if uid not in portal.inactive]
    assert all(portal.days[uid]["STATUS"] == "CLOSED" for uid in active), r.err
    assert set(sent(portal, "timeman.close")) == {str(uid) for uid in active}
    assert Counter(sent(portal, "timeman.close").values()) == Counter({1: len(active)})


# -- item 2: a listing that does not add up is read again by ID --------------------------------------------
def test_pages_that_repeat_are_read_again_by_id_and_every_user_is_closed(make_portal):
    portal = make_portal(users=120)
    lying(portal, lambda params, real: _first_page_always(portal, params))  # 50 of 120, then 50 again
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)
    assert "listed again by ID" in r.err.splitlines()[0]
    assert r.err.splitlines()[-1] == "oint: 120 closed, 0 skipped, 0 failed"


@pytest.mark.skipif(not IN_PROCESS, reason="the bound is lowered in this process")
@pytest.mark.parametrize("users,code", [(100, 0), (101, 4)])
def test_a_listing_read_again_by_id_takes_the_most_users_and_refuses_one_more(make_portal, monkeypatch, users, code):
    """The Bounds table's users listed by --userid all, tried at the bound and one over it, lowered to 100
    here (200,000 users would take minutes): listed by ID, as many as the bound are all closed; one more
    is refused with exit 4 and nothing changed."""
    monkeypatch.setattr("oint_py.bounds.MAX_USERS", 100)
    portal = make_portal(users=users)
    lying(portal, lambda params, real: _first_page_always(portal, params))
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == code, r.err
    if code == 0:
        closed_all_active(portal, r)
    else:
        assert "more than the 100" in r.err and sent(portal, "timeman.close") == {}, r.err


def test_a_page_that_steps_back_is_read_again_by_id_and_nobody_is_left_out(make_portal):
    """Users added while the list is read shift the second page back by five: it starts below the last ID
    of the first, with the right count and pointers, and the last five users are on no page. oint reads
    the list again by ID and closes every one."""
    from oint_py.sandbox.portal import Paged

    portal = make_portal(users=100)
    users = sorted(portal.users)

    def shifted(params, real):
        start = int(str(params.get("START") or 0))
        first = start - 5 if start else 0
        return Paged([{"ID": str(u), "ACTIVE": True} for u in users[first : first + 50]], start, len(users))

    lying(portal, shifted)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)
    assert "listed again by ID" in r.err.splitlines()[0], r.err


def _first_page_always(portal, params):
    from oint_py.sandbox.portal import Paged

    users = sorted(portal.users)[:50]
    return Paged([{"ID": str(u), "ACTIVE": True} for u in users], 0, len(portal.users))


def test_a_user_deactivated_while_the_list_is_read_leaves_nobody_out(make_portal):
    portal = make_portal(users=200)
    real = portal._m_user_get

    def user_get(params, caller):
        page = real(params, caller)
        if str(params.get("START") or 0) == "0" and 7 not in portal.inactive:
            portal.inactive.add(7)  # dismissed right after the first page: every later page shifts by one
        return page

    portal._m_user_get = user_get
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)  # user 51, shifted onto the first page, is closed too
    assert portal.days[51]["STATUS"] == "CLOSED" and portal.days[7]["STATUS"] == "OPENED"


def test_a_total_lower_than_next_shows_is_not_believed(make_portal):
    portal = make_portal(users=130)
    from oint_py.sandbox.portal import Paged

    def lie(params, real):
        page = real()
        lowered = Paged(page, 0, 0)
        lowered.total, lowered.next = 100, page.next  # the count says 100, `next` goes on to 130
        return lowered

    lying(portal, lie)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)


def test_a_listing_that_cannot_be_right_even_by_id_changes_nothing_and_exits_4(make_portal):
    portal = make_portal(users=120)
    portal._m_user_get = lambda params, caller: _first_page_always(portal, params)  # ignores >ID as well
    before = snapshot(portal)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 4
    assert r.err.startswith("oint: user.get: listed by ID, it gives user 1 after user 50")
    assert r.err.rstrip().endswith("nothing was changed") and r.err.count("\n") == 1
    assert commands(portal) == {"user.get"} and snapshot(portal) == before


def test_an_empty_listing_says_so(make_portal):
    portal = make_portal(users=3)
    portal.inactive.update(portal.users)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0
    assert r.err.splitlines() == ["oint: user.get: the portal lists no active users; nothing was done"]
    assert commands(portal) == {"user.get"}


# -- item 7: user IDs of any length --------------------------------------------------------------------
@pytest.mark.parametrize("digits", [20, 5000])
def test_a_listed_id_longer_than_19_digits_exits_4(make_portal, digits):
    portal = make_portal(users=3)
    from oint_py.sandbox.portal import Paged

    portal._m_user_get = lambda params, caller: Paged([{"ID": "1" * digits, "ACTIVE": True}], 0, 1)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 4, r.err
    assert f"a user ID of {digits:,} digits (more than 19)" in r.err and commands(portal) == {"user.get"}


@pytest.mark.parametrize("digits", [20, 5000])
def test_an_option_id_longer_than_19_digits_exits_5(portal, tmp_path, digits):
    ids = tmp_path / "ids.txt"
    ids.write_text("5\n" + "9" * digits + "\n", encoding="utf-8")
    for value in ("9" * digits, f"@{ids}"):
        r = on(portal, "StopTimekeeping", "--userid", value)
        assert r.code == 5, r.err
        assert "more than 19 digits" in r.err and r.err.count("\n") == 1
    assert portal.calls() == []


def test_a_19_digit_id_is_still_a_user_id(portal):
    r = on(portal, "GetTimekeepingStatus", "--userid", "9" * 19 + ",5")
    assert r.code == 3 and r.json()["9" * 19]["error_description"] == "User not found"


# -- item 8: records whose own ACTIVE is false ---------------------------------------------------------
def test_a_portal_that_ignores_the_active_filter_does_not_get_dismissed_users_opened(make_portal):
    portal = make_portal(users=60, opened=False)
    portal.inactive.update({3, 55})
    real = portal._m_user_get

    def user_get(params, caller):
        params = {k: v for k, v in params.items() if k != "FILTER"}  # the filter is ignored
        return real(params, caller)

    portal._m_user_get = user_get
    r = on(portal, "StartTimekeeping", "--userid", "all")
    assert r.code == 0, r.err
    assert set(sent(portal, "timeman.open")) == {str(u) for u in portal.users} - {"3", "55"}
    assert 3 not in portal.days and 55 not in portal.days
    assert r.err.splitlines()[0] == (
        "oint: user.get: 2 listed users are not ACTIVE (the portal ignored the filter): 3, 55; they were skipped"
    )


@pytest.mark.parametrize("yes,no", [("Y", "N"), ("true", "false"), (1, 0)])
def test_a_portal_that_ignores_the_filter_and_writes_active_its_own_way(make_portal, yes, no):
    """ACTIVE as PHP may write it ("Y"/"N", strings, numbers) on a portal that ignored the filter: the active
    users are opened, the others skipped, and nothing breaks on the form."""
    portal = make_portal(users=60, opened=False)
    portal.inactive.update({3, 55})
    real_get, real_fields = portal._m_user_get, portal._user_fields

    def user_fields(uid):
        user = real_fields(uid)
        return {**user, "ACTIVE": yes if user["ACTIVE"] else no}

    def user_get(params, caller):
        return real_get({k: v for k, v in params.items() if k != "FILTER"}, caller)

    portal._user_fields, portal._m_user_get = user_fields, user_get
    r = on(portal, "StartTimekeeping", "--userid", "all")
    assert r.code == 0, r.err
    assert set(sent(portal, "timeman.open")) == {str(u) for u in portal.users} - {"3", "55"}
    assert "2 listed users are not ACTIVE" in r.err.splitlines()[0], r.err


# -- item 6: two sweeps at once; a close refused as "not opened" ----------------------------------------
def sweep_process(portal, state, *args, **env):
    return subprocess.Popen(
        [*OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "all", "--if-needed", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(XDG_STATE_HOME=str(state), **env),
    )


@pytest.mark.parametrize("closed_close", ["record", "refuse"])
def test_two_sweeps_at_once_close_each_day_once_and_both_exit_0(make_portal, tmp_path, closed_close):
    """The second run's closes meet days the first closed: with their old records (a skip, by the record's
    TIME_FINISH against the portal's clock, which moves 3 s at each reading here) or refused (a skip, by
    the status read after)."""
    portal = make_portal(users=300, now=Clock(tick=3), closed_close=closed_close)
    portal.inject(*["slow:0.4"] * 8)  # the first run takes a few seconds
    first = sweep_process(portal, tmp_path)
    deadline = time.monotonic() + 30
    while not portal.calls() and time.monotonic() < deadline:  # the first run has its lock and is sending
        time.sleep(0.05)
    second = sweep_process(portal, tmp_path)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert portal.applied["timeman.close"] == Counter(dict.fromkeys(portal.users, 1))  # nobody's day closed twice
    assert err2.decode().splitlines() == ["oint: 0 closed, 300 skipped, 0 failed"]
    folder = tmp_path / "oint" / "locks"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert [oct(f.stat().st_mode & 0o777) for f in folder.iterdir()] == ["0o600"]
    assert portal.code not in str(list(folder.iterdir()))


def test_a_lock_held_too_long_exits_4_naming_the_other_run_and_sends_nothing(make_portal, tmp_path, monkeypatch):
    portal = make_portal(users=10)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    from oint_py.files import lock

    with lock.held(portal.webhook()):
        r = run_oint(
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            "1,2",
            env=clean_env(XDG_STATE_HOME=str(tmp_path), OINT_LOCK_WAIT="0.5"),
        )
    assert r.code == 4
    assert r.err.startswith(f"oint: another oint run (pid {os.getpid()}) is changing days on 127.0.0.1")
    assert "Nothing was sent" in r.err and r.err.count("\n") == 1
    assert portal.calls() == []


def test_a_lock_file_that_is_a_symbolic_link_is_refused(make_portal, tmp_path):
    portal = make_portal(users=10)
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        "1,2",
        env=clean_env(XDG_STATE_HOME=str(tmp_path)),
    )
    assert r.code == 0, r.err
    (lock_file,) = (tmp_path / "oint" / "locks").iterdir()
    target = tmp_path / "elsewhere"
    target.write_text("")
    lock_file.unlink()
    lock_file.symlink_to(target)
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        "1,2",
        env=clean_env(XDG_STATE_HOME=str(tmp_path)),
    )
    assert r.code == 5 and "lock file" in r.err


@pytest.mark.skipif(os.name == "nt", reason="umask")
def test_lock_files_made_under_a_tight_umask_are_0600_so_the_next_run_can_open_them(make_portal, tmp_path):
    """Under umask 0277 a new lock file would be 0400: the run that made it holds it, but the next one (not
    root) could not open it for writing, and every night would end in exit 5. The portal's lock and the auth
    file's are made by the same lock.open_private."""
    import stat

    portal = make_portal(users=10)
    for _ in range(2):
        proc = subprocess.run(
            [*OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "1,2", "--if-needed"],
            env=clean_env(XDG_STATE_HOME=str(tmp_path)),
            capture_output=True,
            preexec_fn=lambda: os.umask(0o277),
        )
        assert proc.returncode == 0, proc.stderr
    (lock_file,) = (tmp_path / "oint" / "locks").iterdir()
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("closed_close", ["record", "refuse"])
def test_a_day_closed_by_someone_else_between_read_and_close_counts_as_done(make_portal, closed_close):
    portal = make_portal(users=10, closed_close=closed_close)
    real = portal._m_timeman_status

    def status(params, caller):
        answer = real(params, caller)
        if str(params.get("USER_ID")) == "5" and portal.days[5]["STATUS"] == "OPENED":
            portal.days[5]["STATUS"] = "CLOSED"  # the user closes the day just after oint read it
        return answer

    portal._m_timeman_status = status
    r = on(portal, "StopTimekeeping", "--userid", "4,5,6", "--if-needed", "--time", "now")  # read first
    assert r.code == 0, r.err
    entry = r.json()["5"]
    assert entry["action"] == "skipped" and entry["status_before"] == "OPENED"
    assert "CLOSED by now" in entry["reason"]
    assert r.err.splitlines() == ["oint: 2 closed, 1 skipped, 0 failed"]


# -- issue 16: a run cut short leaves a true record; a portal that went away stops the sending ---------------
def _until_requests(portal, count: int) -> None:
    """Until the portal has received `count` requests (the last of them still in flight: answers are slow)."""
    deadline = time.monotonic() + 30
    while len(portal.calls()) < count and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.parametrize("request_number", [3, 12])  # the listing is done by the 3rd; about 22 in all
def test_a_signal_at_a_named_batch_leaves_a_record_that_matches_the_portal(
    make_portal, tmp_path, sig, code, request_number
):
    portal = make_portal(users=1000)
    portal.inject(*["slow:0.06"] * 60)  # every answer slow: the signal comes while that request is in flight
    out = tmp_path / "record.json"
    proc = sweep_process(portal, tmp_path, "--out", out)
    _until_requests(portal, request_number)  # its handlers are in place once it sends
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    record = json.loads(out.read_text(encoding="utf-8"))
    closes = portal.applied["timeman.close"]
    assert set(record) == {str(uid) for uid in portal.users}
    for uid, entry in record.items():  # every applied close is listed, and nothing listed was not applied
        applied = portal.days[int(uid)]["STATUS"] == "CLOSED"
        assert (entry["action"] == "closed") == applied, (uid, entry)
        assert closes[int(uid)] == (1 if applied else 0), (uid, entry)
        assert entry["action"] in ("closed", "not reached") or entry.get("error") == "OUTCOME_UNKNOWN"
    if proc.returncode == 0:  # the signal came after the last batch
        assert all(e["action"] == "closed" for e in record.values())
        return
    assert proc.returncode == code, err
    counts = Counter(e["action"] for e in record.values())
    assert err.splitlines()[-1] == (
        f"oint: stopped by {signal.Signals(sig).name}: {counts['closed']} closed, 0 skipped, {counts['failed']} "
        f"failed, {counts['not reached']} not reached; run the same command again to finish the job"
    )
    # ... and so it does
    again = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", XDG_STATE_HOME=str(tmp_path))
    assert again.code == 0, again.err
    assert all(day["STATUS"] == "CLOSED" for day in portal.days.values())
    assert portal.applied["timeman.close"] == Counter(dict.fromkeys(portal.users, 1))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("request_number", [3, 10, 17])
def test_a_kill_9_at_a_named_batch_leaves_a_whole_record_of_what_was_applied(make_portal, tmp_path, request_number):
    """No handler runs on SIGKILL: what the file holds is what the batches wrote as they went. It is whole
    JSON, lists no close that was not applied, and misses at most the batch in flight."""
    portal = make_portal(users=1000)
    portal.inject(*["slow:0.06"] * 60)
    out = tmp_path / "record.json"
    proc = sweep_process(portal, tmp_path, "--out", out)
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _until_requests(portal, request_number)
    proc.kill()
    proc.communicate(timeout=60)
    record = json.loads(out.read_text(encoding="utf-8"))
    closed = {str(uid) for uid, day in portal.days.items() if day["STATUS"] == "CLOSED"}
    listed = {uid for uid, entry in record.items() if entry["action"] == "closed"}
    assert listed <= closed and len(closed - listed) <= 50, (len(listed), len(closed))
    assert set(record) == listed  # nothing failed here: every entry is a close


@pytest.mark.skipif(os.name == "nt", reason="SIGTERM to a detached job is a POSIX matter")
def test_a_dontwait_sweep_records_batch_by_batch_and_stops_cleanly_on_sigterm(make_portal, tmp_path):
    """A --dontwait job is what a shutdown (`systemctl stop`, a reboot) sends SIGTERM to: its result file is
    true while it runs, and after the signal it says who was closed and who was not reached."""
    portal = make_portal(users=1000)
    portal.inject(*["slow:0.3"] * 30)
    jobs = tmp_path / "jobs"
    started = sweep_process(portal, tmp_path, "--dontwait", OINT_JOBS_DIR=str(jobs))
    out, err = started.communicate(timeout=60)
    assert started.returncode == 0, err
    job = json.loads(out)
    result, exit_file = job["result_file"], job["exit_file"]
    deadline = time.monotonic() + 30
    while not os.path.exists(result) and time.monotonic() < deadline:  # the first batch's record
        time.sleep(0.02)
    with open(result, encoding="utf-8") as fh:
        early = json.load(fh)
    assert early and all(e["action"] == "closed" for e in early.values())  # a part, and true
    assert all(portal.days[int(uid)]["STATUS"] == "CLOSED" for uid in early)
    assert os.stat(result).st_mode & 0o777 == 0o600
    os.kill(job["pid"], signal.SIGTERM)
    while not os.path.exists(exit_file) and time.monotonic() < deadline + 30:
        time.sleep(0.02)
    with open(exit_file, encoding="utf-8") as fh:
        assert fh.read() == "143\n"
    with open(result, encoding="utf-8") as fh:
        record = json.load(fh)
    assert set(record) == {str(uid) for uid in portal.users}
    for uid, entry in record.items():
        assert (entry["action"] == "closed") == (portal.days[int(uid)]["STATUS"] == "CLOSED"), (uid, entry)
    counts = Counter(e["action"] for e in record.values())
    assert counts["not reached"] > 0 and counts["closed"] >= len(early)
    with open(job["log_file"], encoding="utf-8") as fh:
        assert fh.read().splitlines()[-1].startswith("oint: stopped by SIGTERM: ")


def test_a_portal_that_dies_mid_sweep_stops_the_sending_after_3_batches(make_portal, tmp_path):
    portal = make_portal(users=1000)
    portal.inject(*["slow:0"] * 10, "die")  # user.get twice, 8 close batches, then gone
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", "--retries", "1")
    assert r.code == 4
    data = r.json()
    counts = Counter(e["action"] for e in data.values())
    # the batch cut by the death: unknown (its status cannot be read); the next 3 reach nothing; the rest is
    # not reached
    assert counts == Counter({"closed": 400, "failed": 200, "not reached": 400})
    assert Counter(e.get("error") for e in data.values()) == Counter(
        {None: 800, "OUTCOME_UNKNOWN": 50, "REQUEST_FAILED": 150}
    )
    lines = r.err.splitlines()
    assert len(lines) <= 6, lines
    assert lines[-2] == (
        "oint: the portal could not be reached for 3 batches in a row (no connection, no name or "
        "no answer in time): 400 users not reached, nothing more was sent"
    )
    assert lines[-1] == (
        "oint: 400 closed, 0 skipped, 200 failed, 400 not reached; run the same command again to finish the job"
    )


# -- item 4: statuses read just before the change, and the STATUS each answer returns checked ----------------
def test_a_day_closed_while_earlier_batches_are_paused_is_not_re_opened(make_portal):
    portal = make_portal(users=200)
    real = portal._m_timeman_pause

    def pause(params, caller):
        if portal.days[180]["STATUS"] == "OPENED":
            portal.days[180].update(STATUS="CLOSED")  # user 180 closes the day while oint pauses the first users
        return real(params, caller)

    portal._m_timeman_pause = pause
    r = on(portal, "PauseTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    assert portal.days[180]["STATUS"] == "CLOSED" and "180" not in sent(portal, "timeman.pause")
    assert r.json()["180"]["action"] == "skipped" and r.json()["180"]["status_before"] == "CLOSED"
    assert r.err.splitlines() == ["oint: 199 paused, 1 skipped, 0 failed"]


def test_a_change_the_portal_answers_with_another_status_is_reported_as_it_happened(make_portal):
    portal = make_portal(users=20)
    real = portal._m_timeman_status

    def status(params, caller):
        answer = real(params, caller)
        if str(params.get("USER_ID")) == "7":
            portal.days[7]["STATUS"] = "CLOSED"  # closed between oint's read and its pause: the pause re-opens it
        return answer

    portal._m_timeman_status = status
    r = on(portal, "PauseTimekeeping", "--userid", "6,7", "--if-needed")
    assert r.code == 3
    entry = r.json()["7"]
    assert entry["action"] == "failed" and entry["error"] == "UNEXPECTED_STATUS"
    assert entry["result"]["STATUS"] == "OPENED" == portal.days[7]["STATUS"]
    assert r.err.splitlines() == [
        f"oint: user 7: UNEXPECTED_STATUS: {entry['error_description']}",
        "oint: 1 paused, 0 skipped, 1 failed",
    ]
    assert "STATUS=OPENED after timeman.pause" in entry["error_description"]


@pytest.mark.parametrize(
    "args,first", [([], "timeman.close?USER_ID=1"), (["--time", "18:00"], "timeman.status?USER_ID=1")]
)
def test_test_shows_the_close_first_or_the_status_read_first(portal, args, first):
    r = on(portal, "StopTimekeeping", "--userid", "1,2", "--if-needed", "--test", *args)
    assert r.code == 0, r.err
    assert r.json()["requests"][0]["body"]["cmd"]["u1"].startswith(first) and portal.calls() == []


@pytest.mark.parametrize("odd", ["opened", "OPENED ", "", "WORKING"])
def test_a_status_oint_does_not_know_is_a_failure_not_a_skip(make_portal, odd):
    """--if-needed skips only a day it knows needs nothing: a STATUS outside OPENED, PAUSED, EXPIRED and CLOSED
    cannot say the day is closed, so the user is a failure (exit 3), not a skip (exit 0)."""
    portal = make_portal(users=10)
    real = portal._m_timeman_status

    def status(params, caller):
        answer = real(params, caller)
        return {**answer, "STATUS": odd} if str(params.get("USER_ID")) == "5" else answer

    portal._m_timeman_status = status
    r = on(portal, "StopTimekeeping", "--userid", "4,5,6", "--if-needed", "--time", "now")  # read first
    assert r.code == 3, r.err
    data = r.json()
    assert data["5"]["action"] == "failed" and data["5"]["error"] == "UNKNOWN_STATUS"
    assert data["4"]["action"] == data["6"]["action"] == "closed"
    assert portal.days[5]["STATUS"] == "OPENED" and portal.applied["timeman.close"][5] == 0


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_while_the_users_are_listed_ends_with_its_own_code_and_changes_nothing(
    make_portal, tmp_path, sig, code
):
    """A cron `timeout` sends SIGTERM: the run must say 143 (not Ctrl-C's 130) even when it was still listing."""
    portal = make_portal(users=60)
    portal.inject("slow:20")  # the first page of user.get
    proc = sweep_process(portal, tmp_path)
    deadline = time.monotonic() + 30
    while not portal.calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(sig)
    time.sleep(0.3)
    proc.send_signal(sig)  # a second signal: no grace for the request in flight
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"stopped by {signal.Signals(sig).name}" in err.decode() and "nothing was changed" in err.decode()
    assert [c["method"] for c in portal.calls()] == ["user.get"] and not portal.applied["timeman.close"]


@pytest.mark.parametrize("scheme,port", [("http", 80), ("https", 443)])
def test_a_portal_named_with_and_without_its_default_port_has_one_lock(tmp_path, scheme, port):
    """`https://portal` and `https://portal:443` are one portal: two cron lines writing it both ways must not
    both hold a lock and send the same change twice."""
    for url in (f"{scheme}://127.0.0.1/rest/1/code/", f"{scheme}://127.0.0.1:{port}/rest/1/code/"):
        run_oint(
            "bitrix24",
            "StopTimekeeping",
            "--url",
            url,
            "--userid",
            "1,2",
            "--retries",
            0,
            "--timeout",
            2,
            env=clean_env(XDG_STATE_HOME=str(tmp_path)),
        )
    assert len(os.listdir(tmp_path / "oint" / "locks")) == 1
