"""oint judges every change by the record the portal returns, never by an HTTP status or an error's text
(issue 22, part 1). A portal answers a close of a day closed hours ago with 200 and the old record (the
server code), or with a refusal of its own (older sandboxes, perhaps some portals): every test of a close of a
closed day runs against both (`closed_close`), and oint must report the same truth."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from conftest import Clock, oint_on

from oint_py.methods import BY_KEY
from oint_py.sandbox.portal import _atom

BOTH = pytest.mark.parametrize("closed_close", ["record", "refuse"])
STOP = BY_KEY["stoptimekeeping"]
SKIPPED = {"action": "skipped", "status_before": "CLOSED", "reason": "the day is CLOSED, not open"}


def closed_hours_ago(portal, *uids: int, hours: float = 3) -> None:
    now = portal.now()
    for uid in uids:
        start = now - timedelta(hours=hours + 5)
        portal.days[uid] = dict(portal._record("CLOSED", start), TIME_FINISH=_atom(now - timedelta(hours=hours)))


def five(make_portal, closed_close, **kwargs):
    """Users 1-5 with today's day open, 2 and 4 closed three hours ago, on a clock that moves when told."""
    portal = make_portal(users=5, now=Clock(), closed_close=closed_close, **kwargs)
    closed_hours_ago(portal, 2, 4)
    return portal


# -- --if-needed reports closed and skipped as the records show ---------------------------------------------
@BOTH
@pytest.mark.parametrize("userid", ["all", "1,2,3,4,5"])
def test_if_needed_counts_days_closed_before_as_skipped(make_portal, tmp_path, closed_close, userid):
    portal = five(make_portal, closed_close)
    before = {uid: dict(portal.days[uid]) for uid in (2, 4)}
    out = tmp_path / "record.json"
    r = oint_on(portal, "--userid", userid, "--if-needed", "--out", out)
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == "oint: 3 closed, 2 skipped, 0 failed"
    record = json.loads(out.read_text(encoding="utf-8"))
    assert {uid: e["action"] for uid, e in record.items()} == {
        "1": "closed",
        "2": "skipped",
        "3": "closed",
        "4": "skipped",
        "5": "closed",
    }
    assert record["2"] == record["4"] == SKIPPED  # the same entry whichever way the portal answered
    assert all(record[u]["result"]["STATUS"] == "CLOSED" for u in "135")
    assert portal.applied["timeman.close"] == Counter({1: 1, 3: 1, 5: 1})
    assert {uid: portal.days[uid] for uid in (2, 4)} == before

    portal.now.advance(60)  # the same command a minute later: nothing left to do, nothing claimed
    again = oint_on(portal, "--userid", userid, "--if-needed", "--out", out)
    assert again.code == 0, again.err
    assert again.err.splitlines()[0] == "oint: 0 closed, 5 skipped, 0 failed"
    assert all(e == SKIPPED for e in json.loads(out.read_text(encoding="utf-8")).values())
    assert portal.applied["timeman.close"] == Counter({1: 1, 3: 1, 5: 1})


@BOTH
def test_a_user_with_no_day_is_a_skip_not_a_close(make_portal, closed_close):
    portal = make_portal(users=3, opened=False, now=Clock(), closed_close=closed_close)
    portal.days[1] = portal._record("OPENED", portal.now() - timedelta(hours=1))
    r = oint_on(portal, "--userid", "1,2,3", "--if-needed")
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == "oint: 1 closed, 2 skipped, 0 failed"
    assert r.json()["2"] == r.json()["3"] == SKIPPED


@BOTH
def test_a_day_closed_by_someone_else_between_read_and_close_is_a_skip(make_portal, closed_close):
    """Statuses read first (--time): the day is OPENED when read, closed by its user before oint's close."""
    portal = five(make_portal, closed_close)
    real = portal._m_timeman_status

    def status(params, caller):
        answer = real(params, caller)
        if str(params.get("USER_ID")) == "3":
            closed_hours_ago(portal, 3, hours=0.5)
        return answer

    portal._m_timeman_status = status
    r = oint_on(portal, "--userid", "1,3,5", "--if-needed", "--time", "now")
    assert r.code == 0, r.err
    entry = r.json()["3"]
    assert entry["action"] == "skipped" and entry["status_before"] == "OPENED" and "CLOSED by now" in entry["reason"]
    assert r.err.splitlines() == ["oint: 2 closed, 1 skipped, 0 failed"]


def test_a_refusal_of_any_text_is_read_not_guessed(make_portal):
    """An unknown refusal after the status was read: the status decides. Still open: a failure, with the
    portal's own code and text; closed by now: a skip."""
    portal = make_portal(users=5, now=Clock())
    portal.inject("slow:0")  # the status batch
    real = portal._m_timeman_close
    refusals = {"1": ("ALERT_WARNING", "Вы не можете закрыть рабочий день"), "3": ("", "Something else entirely")}

    def close(params, caller):
        from oint_py.sandbox.portal import ApiError

        uid = str(params.get("USER_ID"))
        if uid == "3":
            closed_hours_ago(portal, 3, hours=0.1)  # closed by the user, and the close refused in some words
        if uid in refusals:
            raise ApiError(400, *refusals[uid])
        return real(params, caller)

    portal._m_timeman_close = close
    r = oint_on(portal, "--userid", "1,3,5", "--if-needed", "--time", "now")
    assert r.code == 3
    data = r.json()
    assert data["1"]["action"] == "failed" and data["1"]["error"] == "ALERT_WARNING"
    assert data["3"]["action"] == "skipped" and "CLOSED by now" in data["3"]["reason"]
    assert data["5"]["action"] == "closed"
    assert r.err.splitlines()[-1] == "oint: 1 closed, 1 skipped, 1 failed"


# -- without --if-needed: a close that changed nothing is no success -----------------------------------------
@BOTH
def test_a_list_closing_a_day_closed_before_exits_3_naming_it(make_portal, closed_close):
    portal = five(make_portal, closed_close)
    r = oint_on(portal, "--userid", "1,2,3")
    assert r.code == 3
    data = r.json()
    assert data["1"]["result"]["STATUS"] == data["3"]["result"]["STATUS"] == "CLOSED"
    assert "error" not in data["1"] and "error" not in data["3"]
    assert data["2"]["error"] == ("ALREADY_CLOSED" if closed_close == "record" else "")
    assert [line for line in r.err.splitlines() if line.startswith("oint: user")] == [
        f"oint: user 2: {data['2']['error']}: {data['2']['error_description']}".replace(": : ", ": ")
    ]


@BOTH
def test_one_close_of_a_day_closed_before_exits_3(make_portal, closed_close):
    portal = five(make_portal, closed_close)
    old = dict(portal.days[2])
    r = oint_on(portal, "--userid", 2)
    assert r.code == 3
    if closed_close == "record":
        assert r.json()["result"] == old and r.json()["error"] == "ALREADY_CLOSED"
        assert f"was CLOSED at {old['TIME_FINISH']}, before this close" in r.json()["error_description"]
        assert r.err.startswith("oint: ALREADY_CLOSED: ") and "--if-needed" in r.err
    assert portal.days[2] == old
    r = oint_on(portal, "--userid", 2, "--if-needed")
    assert (r.code, r.json()) == (0, SKIPPED)


def test_one_close_made_now_exits_0_and_one_with_the_time_sent_too(make_portal):
    portal = five(make_portal, "record", free_schedule=True)
    r = oint_on(portal, "--userid", 1)
    assert r.code == 0, r.err
    assert r.json()["result"]["TIME_FINISH"] == r.json()["time"]["date_start"] and "error" not in r.json()
    portal.now.advance(3600)
    at = _atom(portal.now() - timedelta(minutes=30))
    r = oint_on(portal, "--userid", 3, "--time", at)
    assert r.code == 0, r.err
    assert r.json()["result"]["TIME_FINISH"] == at


@pytest.mark.parametrize(
    "method,setup,status",
    [
        ("StartTimekeeping", "expired", "EXPIRED"),  # the portal cannot open over a forgotten day
        ("PauseTimekeeping", "none", "CLOSED"),  # no day to pause: the portal answers the status
        ("PauseTimekeeping", "expired", "EXPIRED"),
    ],
)
def test_one_change_answered_200_without_it_exits_3(make_portal, method, setup, status):
    portal = make_portal(users=3, opened=False, now=Clock())
    if setup == "expired":
        portal.days[2] = portal._record("OPENED", portal.now() - timedelta(days=1))
    r = oint_on(portal, "--userid", 2, method=method)
    assert r.code == 3
    assert r.json()["result"]["STATUS"] == status and r.json()["error"] == "UNEXPECTED_STATUS"
    assert r.err.startswith(f"oint: UNEXPECTED_STATUS: the portal answered STATUS={status} after timeman.")
    done = {"StartTimekeeping": "opened", "PauseTimekeeping": "paused"}[method]
    assert f": the day is not {done} as asked" in r.err, r.err  # what did not happen, in the user's words


def test_an_open_refused_for_its_time_is_the_portals_refusal(make_portal):
    portal = make_portal(users=3, now=Clock())
    r = oint_on(portal, "--userid", 2, "--time", "now", "--report", "late", method="StartTimekeeping")
    assert r.code == 3 and r.json()["error"] == "TIME"


# -- the bound ----------------------------------------------------------------------------------------------
def test_a_close_is_this_ones_up_to_close_slack_before_the_portals_clock():
    from oint_py import bounds
    from oint_py.rest.client import Shown, shown

    clock = "2026-05-26T18:00:00+03:00"
    slack = int(bounds.CLOSE_SLACK)

    def at(seconds_before: int) -> dict:
        moment = f"2026-05-26T17:59:{60 - seconds_before:02d}+03:00" if seconds_before else clock
        return {"STATUS": "CLOSED", "TIME_FINISH": moment}

    assert shown(STOP, at(0), None, clock)[0] is Shown.MADE
    assert shown(STOP, at(slack), None, clock)[0] is Shown.MADE
    assert shown(STOP, at(slack + 1), None, clock)[0] is Shown.ALREADY
    assert shown(STOP, {**at(0), "TIME_FINISH": "2026-05-26T15:00:00Z"}, None, clock)[0] is Shown.MADE  # 18:00+03
    assert shown(STOP, at(0), None, None)[0] is Shown.UNSURE  # no clock: cannot tell
    assert shown(STOP, at(0), "2026-05-26T18:00:00+03:00", None)[0] is Shown.MADE  # the TIME sent
    assert shown(STOP, at(0), "2026-05-26T17:00:00+03:00", clock)[0] is Shown.ALREADY
    assert shown(STOP, {"STATUS": "CLOSED"}, None, clock)[0] is Shown.ALREADY  # no day
    assert shown(STOP, {"STATUS": "OPENED"}, None, clock)[0] is Shown.OTHER


def test_refusals_in_russian_are_read_the_same(make_portal, tmp_path):
    portal = five(make_portal, "refuse", lang="ru")
    r = oint_on(portal, "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == "oint: 3 closed, 2 skipped, 0 failed"
    assert r.json()["2"] == r.json()["4"] == SKIPPED


@pytest.mark.parametrize("userid", ["7", "7,8"])
def test_a_close_nothing_dates_counts_with_a_note_saying_so(tmp_path, userid):
    """A portal whose answer has no clock (no time block, no result_time): the close cannot be told from one
    made before, so it counts, with a note; never a silent success, never a failure."""
    from scripted import Script, answer, commands, now, run_timeless

    def respond(req):
        if req["method"] == "batch":
            return answer(
                {"result": {"result": {k: {"STATUS": "CLOSED", "TIME_FINISH": now()} for k in commands(req)}}}
            )
        return answer({"result": {"STATUS": "CLOSED", "TIME_FINISH": now()}})

    with Script(respond) as s:
        r, _ = run_timeless(tmp_path, "bitrix24", "StopTimekeeping", "--url", s.url, "--userid", userid)
    assert r.code == 0, r.err
    notes = [line for line in r.err.splitlines() if "no clock" in line]
    assert len(notes) == len(userid.split(",")) and all("by this" in line and "or before it" in line for line in notes)


def closed_later_today(portal, *uids: int, minutes: float = 90) -> None:
    """Days closed earlier by a close whose TIME is still to come (someone ran `--time 23:58` at noon)."""
    now = portal.now()
    for uid in uids:
        start = now - timedelta(hours=6)
        portal.days[uid] = dict(portal._record("CLOSED", start), TIME_FINISH=_atom(now + timedelta(minutes=minutes)))


@BOTH
def test_a_day_closed_before_with_a_later_time_is_not_this_runs_close(make_portal, closed_close):
    """A review found it: a TIME_FINISH after the command ran was taken for this close (no upper bound), so an
    --if-needed run claimed a day closed earlier with `--time 23:58`, and a single close of it exited 0."""
    portal = make_portal(users=5, now=Clock(), closed_close=closed_close)
    closed_later_today(portal, 2)
    before = dict(portal.days[2])
    r = oint_on(portal, "--userid", "2,3", "--if-needed")
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == "oint: 1 closed, 1 skipped, 0 failed"
    assert r.json()["2"] == SKIPPED and portal.days[2] == before
    one = oint_on(portal, "--userid", "2")  # exit 3 either way: the portal's refusal, or ALREADY_CLOSED by the record
    assert one.code == 3 and ("ALREADY_CLOSED" in one.out or closed_close == "refuse"), (one.code, one.out)
