"""Issue 11: close every forgotten workday. `--userid all`, `--if-needed` and
`--plan` as real processes against loopback portals: the in-process sandbox
Portal (whose state the tests read) and `oint sandbox` started as a process of
its own for the README's recipes."""

import copy
import json
import re
import shlex
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from conftest import (
    OINT,
    ROOT,
    Clock,
    SharedClock,
    assert_no_secret,
    clean_env,
    forgotten_sandbox,
    run_in_terminal,
    run_oint,
    wait_for,
)

from oint_py.methods import DEFAULT_REPORT
from oint_py.sandbox.portal import Paged, forgotten_kind

NEEDS_CLOSE = ("OPENED", "PAUSED", "EXPIRED")


def on(portal, method, *args, **kwargs):
    return run_oint("bitrix24", method, "--url", portal.webhook(), *args, **kwargs)


def snapshot(portal) -> dict[int, dict]:
    """Every user's day as timeman.status shows it now (days opened before today turn EXPIRED here)."""
    with portal.lock:
        return {uid: copy.deepcopy(portal._day(uid)) for uid in portal.users}


def sent(portal, rest: str, since: int = 0) -> Counter:
    """How many `rest` commands the portal received per USER_ID, in batches and as plain calls."""
    counts: Counter = Counter()
    for call in portal.calls()[since:]:
        if call["method"] == "batch":
            for line in call["params"]["cmd"].values():
                name, _, query = line.partition("?")
                if name == rest:
                    counts[dict(parse_qsl(query)).get("USER_ID", "")] += 1
        elif call["method"] == rest:
            counts[str(call["params"].get("USER_ID", ""))] += 1
    return counts


def commands(portal, since: int = 0) -> set[str]:
    """The REST methods the portal was asked for, batch commands included."""
    names = set()
    for call in portal.calls()[since:]:
        if call["method"] == "batch":
            names |= {line.partition("?")[0] for line in call["params"]["cmd"].values()}
        else:
            names.add(call["method"])
    return names


def timed_closes(portal) -> list[str]:
    """The timeman.close commands that carried a TIME."""
    return [
        line
        for call in portal.calls("batch")
        for line in call["params"]["cmd"].values()
        if line.startswith("timeman.close?") and "TIME=" in line
    ]


def today() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d")


# -- the target: 1,000 users in the forgotten mix --------------------------------
@pytest.mark.parametrize("closed_close", ["record", "refuse"])
def test_forgotten_mix_of_1000_users_within_50_requests_then_a_no_op(make_portal, closed_close, monkeypatch):
    """Against a portal that answers a close of a closed day with its old record (the server code), and one
    that refuses it: the same record and summary either way."""
    SharedClock().install(monkeypatch)  # the portal's bucket drains only by what oint waits: not a real second
    portal = make_portal(users=1000, scenario="forgotten", rate_limit=(50, 2), now=Clock(), closed_close=closed_close)
    before = snapshot(portal)
    active = [uid for uid in sorted(portal.users) if uid not in portal.inactive]
    needed = {uid for uid in active if before[uid]["STATUS"] in NEEDS_CLOSE}
    expired = {uid for uid in needed if before[uid]["STATUS"] == "EXPIRED"}
    assert len(portal.inactive) == 20 and len(expired) == 80 and len(needed) == 880  # the mix as promised

    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    # close first: 1 + 1 user.get, 20 close batches; then the 80 expired (refused: WD_EXPIRED) read in 2 status
    # batches and closed on their own date in 2. The 100 closed days: skipped by the record their close returned
    # (26 requests), or refused too, read and skipped (30)
    assert len(portal.calls()) == (26 if closed_close == "record" else 30), len(portal.calls())
    assert portal.throttled == 0
    # a close goes once to each user; an expired day's first close is refused (WD_EXPIRED: no TIME), changing
    # nothing, and its dated close follows
    assert sent(portal, "timeman.close") == Counter({str(uid): 2 if uid in expired else 1 for uid in active})
    assert portal.applied["timeman.close"] == Counter(dict.fromkeys(needed, 1))  # each needed day closed once
    assert all(portal.days[uid]["STATUS"] == "CLOSED" for uid in needed)
    for uid in portal.inactive:  # never listed, never read, never changed
        assert portal.days[uid] == before[uid]
    assert not {str(uid) for uid in portal.inactive} & set(sent(portal, "timeman.status"))

    data = r.json()
    assert list(data) == [str(uid) for uid in active]
    for uid in active:
        entry, day = data[str(uid)], before[uid]
        # a day closed at once was not read first: OPENED or PAUSED, as the close's success shows
        assert entry["status_before"] == (None if uid in needed - expired else day["STATUS"])
        if uid in needed:
            assert entry["action"] == "closed" and entry["result"]["STATUS"] == "CLOSED"
        else:
            assert entry == {"action": "skipped", "status_before": "CLOSED", "reason": "the day is CLOSED, not open"}
    for uid in expired:  # closed on their own date: the portal's default end of that day, with a report
        entry, start = data[str(uid)], before[uid]["TIME_START"]
        assert start[:10] < today()
        assert entry["time"] == before[uid]["TIME_FINISH_DEFAULT"] == portal.days[uid]["TIME_FINISH"]
        assert entry["time"][:10] == start[:10]
        assert entry["report"] == DEFAULT_REPORT
    for uid in needed - expired:  # today's days: closed now, no TIME, no report needed
        assert data[str(uid)]["time"] is None and "report" not in data[str(uid)]
    assert r.err.splitlines() == ["oint: 880 closed, 100 skipped, 0 failed"]

    # the same command a minute later changes nothing and exits 0 (even with the portal's bucket still full):
    # every close returns the day's record closed before it, or is refused and the status read after it says CLOSED
    portal.now.advance(60)
    after = snapshot(portal)
    again = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert again.code == 0, again.err
    assert snapshot(portal) == after
    assert again.err.splitlines() == ["oint: 0 closed, 980 skipped, 0 failed"]
    assert all(
        e == {"action": "skipped", "status_before": "CLOSED", "reason": "the day is CLOSED, not open"}
        for e in again.json().values()
    )


def test_plan_reads_and_changes_nothing_and_says_what_the_run_then_does(make_portal):
    portal = make_portal(users=300, scenario="forgotten")
    before = snapshot(portal)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", "--plan", "--time", "23:55")
    assert r.code == 0, r.err
    assert commands(portal) == {"user.get", "timeman.status"}
    assert snapshot(portal) == before
    plan = r.json()
    counts = Counter(entry["action"] for entry in plan.values())
    assert r.err.splitlines() == [
        f"oint: plan: {counts['close']} to close, {counts['skip']} to skip, 0 failed; nothing was changed"
    ]
    assert set(counts) == {"close", "skip"}
    for uid, entry in plan.items():
        day = before[int(uid)]
        assert entry["status_before"] == day["STATUS"]
        if day["STATUS"] == "EXPIRED":  # --time's clock on the day's own date, in the day's own offset
            assert entry["time"] == day["TIME_START"][:10] + "T23:55:00" + day["TIME_START"][19:]
        elif entry["action"] == "close":
            assert entry["time"][:10] == today() and entry["time"][11:19] == "23:55:00"
        if entry["action"] == "close":
            assert entry["report"] == DEFAULT_REPORT  # a TIME wants a report; none was given

    done = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", "--time", "23:55").json()
    assert {uid: (e["action"], e.get("time")) for uid, e in done.items()} == {
        uid: ({"close": "closed", "skip": "skipped"}[e["action"]], e.get("time")) for uid, e in plan.items()
    }


def test_a_webhook_without_the_user_scope_exits_3_with_one_line_and_changes_nothing(make_portal):
    portal = make_portal(users=100, scenario="forgotten", user_scope=False)
    before = snapshot(portal)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 3
    assert r.err.count("\n") == 1 and r.err.startswith("oint: user.get: insufficient_scope: ")
    assert "lacks the user scope" in r.err and "Nothing was changed" in r.err
    assert r.json()["error"] == "insufficient_scope"
    assert [c["method"] for c in portal.calls()] == ["user.get"]
    assert snapshot(portal) == before
    assert_no_secret(r.out, r.err)


def test_pause_if_needed_pauses_open_days_only_and_never_a_closed_one(make_portal):
    portal = make_portal(users=100, scenario="forgotten")
    before = snapshot(portal)
    r = on(portal, "PauseTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    opened = {str(uid) for uid, day in before.items() if day["STATUS"] == "OPENED" and uid not in portal.inactive}
    assert sent(portal, "timeman.pause") == Counter(dict.fromkeys(opened, 1))
    for uid, day in before.items():
        if day["STATUS"] == "CLOSED":  # pausing would have re-opened it
            assert portal.days[uid]["STATUS"] == "CLOSED"
            assert "would re-open it" in r.json()[str(uid)]["reason"]
        elif str(uid) in opened:
            assert portal.days[uid]["STATUS"] == "PAUSED"
    # pause is not idempotent on the portal; --if-needed makes the re-run a no-op all the same
    seen = len(portal.calls())
    again = on(portal, "PauseTimekeeping", "--userid", "all", "--if-needed")
    assert again.code == 0 and "timeman.pause" not in commands(portal, seen)


def test_start_if_needed_opens_every_day_that_is_not_open(make_portal):
    """Every day that is not open gets one open; a forgotten (EXPIRED) day is not opened over: the portal
    answers its record unchanged, and oint says so (UNEXPECTED_STATUS, exit 3) instead of claiming it."""
    portal = make_portal(users=100, scenario="forgotten")
    before = snapshot(portal)
    r = on(portal, "StartTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 3, r.err
    active = [uid for uid in portal.users if uid not in portal.inactive]
    not_open = {str(uid) for uid in active if before[uid]["STATUS"] != "OPENED"}
    expired = {str(uid) for uid in active if before[uid]["STATUS"] == "EXPIRED"}
    assert not_open and expired and sent(portal, "timeman.open") == Counter(dict.fromkeys(not_open, 1))
    assert all(portal.days[uid]["STATUS"] == ("EXPIRED" if str(uid) in expired else "OPENED") for uid in active)
    assert Counter(e["action"] for e in r.json().values()) == Counter(
        opened=len(not_open - expired), skipped=len(active) - len(not_open), failed=len(expired)
    )
    assert {r.json()[uid]["error"] for uid in expired} == {"UNEXPECTED_STATUS"}
    seen = len(portal.calls())
    assert on(portal, "StartTimekeeping", "--userid", "all", "--if-needed").code == 3  # only the expired ones
    assert sent(portal, "timeman.open", seen) == Counter(dict.fromkeys(expired, 1))


# -- expired days ----------------------------------------------------------------
def _expired_day(portal, uid: int, offset_hours: int, days_ago: int = 2) -> str:
    """Leave `uid`'s day open since 09:00 `days_ago` days back, in a zone of its own; its TIME_START."""
    zone = timezone(timedelta(hours=offset_hours))
    start = (datetime.now(zone) - timedelta(days=days_ago)).replace(hour=9, minute=0, second=0, microsecond=0)
    portal.days[uid] = portal._record("OPENED", start)
    return portal.days[uid]["TIME_START"]


def test_an_expired_day_takes_the_clock_of_time_on_its_own_date_in_its_own_offset(make_portal):
    """The machine runs in one zone, the employee's day was opened in +05:00: the close goes at 17:45
    on the day's own date in +05:00, which is what the portal compares."""
    portal = make_portal(users=5)
    start = _expired_day(portal, 3, offset_hours=5)
    r = on(portal, "StopTimekeeping", "--userid", "3", "--if-needed", "--time", "17:45", "--report", "Забыл закрыть")
    assert r.code == 0, r.err
    entry = r.json()  # one user: the entry itself, as one user's answer is
    assert entry["action"] == "closed" and entry["status_before"] == "EXPIRED"
    assert entry["time"] == start[:10] + "T17:45:00+05:00" == portal.days[3]["TIME_FINISH"]
    (batch,) = [c for c in portal.calls("batch") if "timeman.close" in str(c["params"]["cmd"])]
    assert dict(parse_qsl(batch["params"]["cmd"]["u3"].partition("?")[2]))["REPORT"] == "Забыл закрыть"


def test_an_expired_day_that_cannot_be_closed_is_a_failure_not_a_skip(make_portal):
    """Issue 17, item 3: a forgotten day left open is a needed change not made: exit 3, counted as failed."""
    portal = make_portal(users=5, opened=False, finish_default=False)
    start = _expired_day(portal, 2, offset_hours=3, days_ago=1)
    r = on(portal, "StopTimekeeping", "--userid", "2,3", "--if-needed")
    assert r.code == 3, r.err
    entry = r.json()["2"]
    assert entry["action"] == "failed" and entry["status_before"] == "EXPIRED" and entry["error"] == "NOT_CLOSED"
    assert "TIME_FINISH_DEFAULT" in entry["error_description"] and "--time HH:MM" in entry["error_description"]
    assert r.json()["3"]["action"] == "skipped"  # no day at all: CLOSED, a harmless skip
    assert not timed_closes(portal) and not portal.applied["timeman.close"]  # the undated close was refused
    assert portal.days[2]["STATUS"] == "EXPIRED"
    assert r.err.splitlines() == [
        f"oint: user 2: NOT_CLOSED: {entry['error_description']}",
        "oint: 0 closed, 1 skipped, 1 failed",
    ]
    assert start[:10] in entry["error_description"]


def test_an_expired_day_whose_start_has_no_colon_in_its_offset_is_closed(make_portal):
    """Issue 17, item 3: `+0300` is read as `+03:00`."""
    portal = make_portal(users=5, opened=False)
    start = _expired_day(portal, 2, offset_hours=3, days_ago=1)
    portal.days[2]["TIME_START"] = start[:19] + "+0300"
    r = on(portal, "StopTimekeeping", "--userid", "2", "--if-needed", "--time", "17:30")
    assert r.code == 0, r.err
    assert r.json()["time"] == start[:10] + "T17:30:00+03:00" == portal.days[2]["TIME_FINISH"]


@pytest.mark.parametrize("given,clock", [("18:00", "20:00:00"), (None, "19:00:00")])
def test_a_close_before_the_days_start_is_never_sent(make_portal, given, clock):
    """Issue 17, item 5: --time's clock, or a TIME_FINISH_DEFAULT (18:00), before the expired day's start."""
    portal = make_portal(users=5, opened=False)
    start = _expired_day(portal, 2, offset_hours=3, days_ago=1)
    portal.days[2]["TIME_START"] = start = start[:11] + clock + start[19:]
    r = on(portal, "StopTimekeeping", "--userid", "2,3", "--if-needed", *(["--time", given] if given else []))
    assert r.code == 3, r.err
    entry = r.json()["2"]
    assert entry["action"] == "failed" and entry["error"] == "BEFORE_START"
    assert start in entry["error_description"] and start[:11] + "18:00:00" in entry["error_description"]
    assert not timed_closes(portal) and portal.days[2]["STATUS"] == "EXPIRED"


def test_a_close_of_todays_day_before_its_start_is_never_sent(make_portal):
    portal = make_portal(users=5)
    for uid, clock in ((3, "00:00:00"), (4, "23:59:58")):
        portal.days[uid]["TIME_START"] = (
            portal.days[uid]["TIME_START"][:11] + clock + portal.days[uid]["TIME_START"][19:]
        )
    r = on(portal, "StopTimekeeping", "--userid", "3,4", "--if-needed", "--time", "00:00:01")
    assert r.code == 3, r.err
    assert r.json()["4"]["error"] == "BEFORE_START" and portal.days[4]["STATUS"] == "OPENED"
    assert sent(portal, "timeman.close") == Counter({"3": 1})


# -- failures and the per-user retry rule ---------------------------------------------
def test_a_failing_user_exits_3_with_its_line_and_the_others_go_on(make_portal):
    portal = make_portal(users=5)
    _expired_day(portal, 4, offset_hours=0)
    r = on(
        portal,
        "StopTimekeeping",
        "--userid",
        "2,4,99999",
        "--if-needed",
        "--time",
        "2020-01-01T18:00:00+00:00",
        "--report",
        "late",
    )
    assert r.code == 3
    data = r.json()
    assert data["2"]["action"] == "failed" and data["2"]["error"] == "BEFORE_START"  # today's day, a 2020 date
    assert data["2"]["status_before"] == "OPENED" and "2020-01-01T18:00:00+00:00" in data["2"]["error_description"]
    assert data["4"]["action"] == "closed"  # the expired day takes only the clock: 18:00 on its own date
    assert data["99999"] == {
        "action": "failed",
        "status_before": None,
        "error": "",
        "error_description": "User not found",
    }
    assert r.err.splitlines() == [
        f"oint: user 2: BEFORE_START: {data['2']['error_description']}",
        "oint: user 99999: User not found",
        "oint: 1 closed, 0 skipped, 2 failed",
    ]
    assert sent(portal, "timeman.close") == Counter({"4": 1})  # nothing for a user whose status failed


def test_a_close_batch_applied_then_dropped_is_settled_per_user_not_sent_again(portal):
    portal.days[12].update(STATUS="CLOSED")  # closed before the run: its refusal is lost with the others' answers
    portal.inject("apply-reset")  # the close batch (sent first) is applied, then dropped
    r = on(portal, "StopTimekeeping", "--userid", "10,11,12", "--if-needed")
    assert r.code == 0, r.err
    assert sent(portal, "timeman.close") == Counter({"10": 1, "11": 1, "12": 1})
    data = r.json()
    assert all(data[u]["action"] == "closed" and "not sent again" in data[u]["note"] for u in data)
    # closed first, nothing was read before: the record cannot tell 12 from the others, and says so
    assert all(data[u]["note"].endswith("it was closed by this run, or already before it") for u in data)
    assert r.err.splitlines()[-1] == (
        "oint: 3 closed (3 of them by this run or before it: their answers were lost), 0 skipped, 0 failed"
    )


def test_a_close_the_batch_ran_but_did_not_answer_is_settled_not_skipped(portal):
    """Closed first: the batch applies every close but leaves user 11 out of its answer. A status that then
    shows CLOSED is not "skipped, the day is CLOSED": this run may have closed it, and the record says so."""
    real = portal._batch

    def batch(params, caller):
        answer = real(params, caller)
        if any("timeman.close" in str(line) for line in (params.get("CMD") or {}).values()):
            answer["result"].pop("u11", None)
        return answer

    portal._batch = batch
    r = on(portal, "StopTimekeeping", "--userid", "10,11,12", "--if-needed")
    assert r.code == 0, r.err
    assert sent(portal, "timeman.close") == Counter({"10": 1, "11": 1, "12": 1})  # never twice
    eleven = r.json()["11"]
    assert eleven["action"] == "closed" and eleven["result"]["STATUS"] == "CLOSED", eleven
    assert eleven["note"].endswith("it was closed by this run, or already before it")
    assert r.err.splitlines()[-1] == (
        "oint: 3 closed (1 of them by this run or before it: their answers were lost), 0 skipped, 0 failed"
    )


def test_when_the_settling_status_cannot_be_read_the_outcome_is_unknown_and_nothing_is_re_sent(portal):
    portal.inject("apply-reset", "reset")  # ... and the status check after it is dropped too
    r = on(portal, "StopTimekeeping", "--userid", "10,11", "--if-needed")
    assert r.code == 4
    assert sent(portal, "timeman.close") == Counter({"10": 1, "11": 1})
    assert {e["error"] for e in r.json().values()} == {"OUTCOME_UNKNOWN"}
    assert "oint: user 10: OUTCOME_UNKNOWN: " in r.err
    assert r.err.splitlines()[-1] == "oint: 0 closed, 0 skipped, 2 failed"


@pytest.mark.parametrize(
    "page,why",
    [
        (Paged([{"ID": "1"}], 0, 10**9), "it counts 1,000,000,000 active users, more than the 200,000"),
        (Paged([{"ID": "1; DROP"}], 0, 1), "its first page is not a Bitrix24 list of users"),
    ],
)
def test_a_listing_that_cannot_be_right_is_not_believed(make_portal, page, why):
    portal = make_portal(users=10)
    portal._m_user_get = lambda params, caller: page
    before = snapshot(portal)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 4 and r.err.startswith(f"oint: user.get: {why}")
    assert r.err.count("\n") == 1 and r.err.rstrip().endswith("nothing was changed")
    assert [c["method"] for c in portal.calls()] == ["user.get"]
    assert snapshot(portal) == before


# -- the other forms -------------------------------------------------------------
def test_userid_all_without_if_needed_is_the_list_form(make_portal):
    portal = make_portal(users=120, scenario="forgotten")
    r = on(portal, "GetTimekeepingStatus", "--userid", "all")
    assert r.code == 0, r.err
    active = [str(uid) for uid in sorted(portal.users) if uid not in portal.inactive]
    assert list(r.json()) == active and all("result" in e for e in r.json().values())
    assert [c["method"] for c in portal.calls()] == ["user.get", "batch", "batch", "batch", "batch"]


@pytest.mark.parametrize("closed_close", ["record", "refuse"])
def test_if_needed_for_the_webhooks_own_user(make_portal, closed_close):
    portal = make_portal(now=Clock(), closed_close=closed_close)
    r = on(portal, "StopTimekeeping", "--if-needed")
    assert r.code == 0, r.err
    assert r.json()["action"] == "closed" and portal.days[1]["STATUS"] == "CLOSED"
    portal.now.advance(60)
    again = on(portal, "StopTimekeeping", "--if-needed")
    assert again.code == 0 and again.json()["action"] == "skipped"
    assert again.err.splitlines() == ["oint: 0 closed, 1 skipped, 0 failed"]


def test_if_needed_from_a_file_of_ids(portal, tmp_path):
    ids = tmp_path / "staff.txt"
    ids.write_text("7\n8  # night shift\n", encoding="utf-8")
    portal.days[8]["STATUS"] = "CLOSED"
    r = on(portal, "StopTimekeeping", "--userid", f"@{ids}", "--if-needed")
    assert r.code == 0, r.err
    assert {u: e["action"] for u, e in r.json().items()} == {"7": "closed", "8": "skipped"}


@pytest.mark.parametrize(
    "args",
    [
        ["GetTimekeepingStatus", "--if-needed"],
        ["GetTimekeepingSettings", "--plan"],
        ["StopTimekeeping", "--userid", "all,5"],
        ["StopTimekeeping", "--userid", "all", "--plan", "--test"],
    ],
)
def test_misused_options_exit_5_before_anything_is_sent(portal, args):
    r = on(portal, *args)
    assert r.code == 5 and r.err.count("\n") == 1 and r.out == ""
    assert portal.calls() == []


def test_test_shows_the_first_read_and_sends_nothing(portal):
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", "--test")
    assert r.code == 0, r.err
    shown = r.json()
    assert shown["requests"][0]["url"].endswith("/user.get")
    assert shown["requests"][0]["body"] == {"FILTER": {"ACTIVE": True}, "sort": "ID", "order": "ASC"}
    assert "then" in shown and portal.calls() == []


def test_a_background_job_keeps_the_sweep(portal, tmp_path):
    jobs = tmp_path / "jobs"
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed", "--dontwait", OINT_JOBS_DIR=str(jobs))
    assert r.code == 0, r.err
    job = r.json()
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "0", open(job["log_file"]).read()
    result = json.loads(open(job["result_file"], encoding="utf-8").read())
    assert len(result) == 300 and {e["action"] for e in result.values()} == {"closed"}
    assert "oint: 300 closed, 0 skipped, 0 failed" in open(job["log_file"], encoding="utf-8").read()


# -- help, completion and the progress bar -----------------------------------------
def test_help_and_completion_list_the_new_options():
    text = " ".join(run_oint("bitrix24", "StopTimekeeping", "--help").out.split())
    assert "--if-needed" in text and "--plan" in text and "all (every active user" in text
    assert DEFAULT_REPORT in text
    assert "--if-needed" not in run_oint("bitrix24", "GetTimekeepingStatus", "--help").out
    env = clean_env(_OINT_COMPLETE="powershell_complete", COMP_LINE="oint bitrix24 PauseTimekeeping --if")
    proc = subprocess.run(OINT, capture_output=True, text=True, env=env, timeout=30)
    assert proc.stdout.split() == ["plain,--if-needed"]


def test_a_progress_bar_on_a_terminal_only(make_portal, tmp_path):
    portal = make_portal(users=400, scenario="forgotten")
    stdout = tmp_path / "out.json"
    with open(stdout, "wb") as sink:  # a file, not a pipe nobody reads while the terminal is read
        shown = run_in_terminal(
            "bitrix24",
            "StopTimekeeping",
            "--url",
            portal.webhook(),
            "--userid",
            "all",
            "--if-needed",
            stdout=sink,
            timeout=30,
        )
    err = re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", shown).decode()
    assert "oint: closing" in err and "392/392" in err and "\u2501" in err  # rich's bar at its last state
    assert err.rstrip().endswith("oint: 352 closed, 40 skipped, 0 failed")
    out = stdout.read_bytes()
    assert b"\x1b" not in out and len(json.loads(out)) == 392  # stdout is a file: plain JSON
    # in a pipe (as in cron) stderr holds the summary and nothing else: see the 1,000-user test


# -- the README's recipes, run as written against `oint sandbox` as a process of its own ----
def _recipes() -> list[str]:
    """The oint command lines of the crontab and .bat recipes for closing forgotten days (docs/forgotten-days.md)."""
    section = (ROOT / "docs" / "forgotten-days.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(cron|bat)\n(.*?)```", section, re.S)
    found = []
    for kind, block in blocks:
        for line in block.splitlines():
            if " bitrix24 " in line and not line.lstrip().startswith(("#", "rem ", "schtasks")):
                found.append((kind, "oint " + line[line.index(" bitrix24 ") + 1 :].strip()))  # oint's path dropped
    return found


def test_the_readme_has_both_recipes_for_both_jobs():
    kinds = Counter(kind for kind, _ in _recipes())
    assert kinds == Counter(cron=2, bat=2)


@pytest.mark.parametrize("kind,line", _recipes())
def test_the_readme_recipes_run_against_the_sandbox(kind, line, tmp_path):
    started = forgotten_sandbox()
    assert started.code == 0, started.err
    webhook = started.json()["webhook"]
    args = shlex.split(line.replace("\\", "/"))  # cmd.exe quotes as the shell does; %TEMP%\x is a path
    assert args[:2] == ["oint", "bitrix24"]
    at = args.index("--out") + 1
    out = tmp_path / args[at].rsplit("/", 1)[-1]  # /tmp/x.json or %TEMP%/x.json: here, in this test's folder
    args[at] = str(out)
    r = run_oint(*args[1:], OINT_BITRIX24_URL=webhook, process=True)  # a README recipe, as a user runs it
    assert r.code == 0, r.err
    assert "--quiet" in args and r.out == r.err == ""  # a good night mails nothing
    result = json.loads(out.read_text(encoding="utf-8"))
    assert len(result) == 980
    expected = Counter({"closed": 880, "skipped": 100})
    assert Counter(e["action"] for e in result.values()) == expected
    for uid, entry in result.items():
        if entry["status_before"] == "EXPIRED":
            assert forgotten_kind(int(uid)) == "expired"
            assert entry["time"][:10] == entry["result"]["TIME_START"][:10] < today()
